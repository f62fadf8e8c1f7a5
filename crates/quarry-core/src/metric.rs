//! The similarity metrics and Quarry's single sign convention.
//!
//! Internally every component ranks by a *distance* (lower is better); the public API reports a
//! *score* (higher is better). For a metric, `score = -distance` except cosine, where
//! `distance = 1 - cos` and `score = cos`. See docs/decisions/0001-workspace-and-conventions.md.

use std::fmt;
use std::str::FromStr;

/// How two vectors are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Metric {
    /// Inner product `<q,x>` (maximum inner product search). Distance `-<q,x>`.
    #[serde(rename = "ip")]
    InnerProduct,
    /// Cosine similarity. Vectors are normalised at ingest and queries at search; distance `1 - cos`.
    Cosine,
    /// Euclidean. Distance is the squared L2 norm of the difference; score is its negation.
    L2,
}

impl Metric {
    /// Converts an internal distance to the public score (higher is better).
    #[inline]
    pub fn score(self, distance: f32) -> f32 {
        match self {
            Metric::InnerProduct | Metric::L2 => -distance,
            Metric::Cosine => 1.0 - distance,
        }
    }

    /// Converts a public score back to the internal distance.
    #[inline]
    pub fn distance(self, score: f32) -> f32 {
        match self {
            Metric::InnerProduct | Metric::L2 => -score,
            Metric::Cosine => 1.0 - score,
        }
    }

    /// Whether stored vectors and queries are normalised to unit length.
    pub fn normalizes(self) -> bool {
        matches!(self, Metric::Cosine)
    }

    /// The short name used on the command line and in files (`ip`, `cosine`, `l2`).
    pub fn name(self) -> &'static str {
        match self {
            Metric::InnerProduct => "ip",
            Metric::Cosine => "cosine",
            Metric::L2 => "l2",
        }
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Metric {
    type Err = crate::Error;
    fn from_str(s: &str) -> crate::Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "ip" | "dot" | "inner_product" | "innerproduct" => Ok(Metric::InnerProduct),
            "cosine" | "cos" => Ok(Metric::Cosine),
            "l2" | "euclid" | "euclidean" | "l2sq" => Ok(Metric::L2),
            other => Err(crate::Error::InvalidArgument(format!(
                "unknown metric {other:?}: expected one of ip (or Dot), cosine, l2 (or Euclid)"
            ))),
        }
    }
}

/// The factor that scales a row of Euclidean norm `norm` (computed in f64) to unit length for
/// cosine: `1 / norm`, or exactly 1 when the row is already unit within 1e-6 — f32 rounding
/// leaves a normalised row within about 1e-7 of unit length, so normalising twice (a row read
/// back and stored again) changes no bit. `None` for a zero row.
pub fn unit_scale(norm: f64) -> Option<f64> {
    if norm == 0.0 || !norm.is_finite() {
        None
    } else if (norm - 1.0).abs() <= 1e-6 {
        Some(1.0)
    } else {
        Some(1.0 / norm)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn score_and_distance_round_trip() {
        for m in [Metric::InnerProduct, Metric::Cosine, Metric::L2] {
            for d in [-2.0f32, 0.0, 0.25, 3.5] {
                assert_eq!(m.distance(m.score(d)), d);
            }
            assert_eq!(m.name().parse::<Metric>().ok(), Some(m));
        }
        assert!("manhattan".parse::<Metric>().is_err());
        // Qdrant's distance names are accepted too, in any case, so CLI and server agree.
        for (name, m) in [("Dot", Metric::InnerProduct), ("Cosine", Metric::Cosine), ("Euclid", Metric::L2)] {
            assert_eq!(name.parse::<Metric>().ok(), Some(m), "{name}");
        }
    }
}
