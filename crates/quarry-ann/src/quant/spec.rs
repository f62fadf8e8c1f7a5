//! Which codes a quantized index keeps ([`QuantSpec`]) and how it trains and re-scores them
//! ([`QuantParams`]).

use quarry_core::{Error, Result};

/// A compression family and its size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuantSpec {
    /// Scalar quantization with per-dimension ranges, `bits` ∈ {8, 4} per dimension.
    Sq {
        /// Bits per dimension.
        bits: u8,
    },
    /// Product quantization: `m` sub-spaces of `nbits` ∈ {8, 4} bits each.
    Pq {
        /// Number of sub-spaces.
        m: usize,
        /// Bits per sub-space code.
        nbits: u8,
    },
    /// RaBitQ after a random rotation: 1 bit per dimension, or extended RaBitQ with 2–8.
    RaBitQ {
        /// Bits per dimension.
        bits: u8,
    },
}

impl QuantSpec {
    /// The spec's name as written after `+` in an index spec (`sq8`, `sq4`, `pq`, `rabitq`).
    pub fn family(&self) -> &'static str {
        match self {
            QuantSpec::Sq { bits: 4 } => "sq4",
            QuantSpec::Sq { .. } => "sq8",
            QuantSpec::Pq { .. } => "pq",
            QuantSpec::RaBitQ { .. } => "rabitq",
        }
    }

    /// Bits of code per dimension of a `dim`-dimensional vector (per-vector factors excluded).
    pub fn bits_per_dim(&self, dim: usize) -> f64 {
        match *self {
            QuantSpec::Sq { bits } | QuantSpec::RaBitQ { bits } => bits as f64,
            QuantSpec::Pq { m, nbits } => (m * nbits as usize) as f64 / dim.max(1) as f64,
        }
    }

    /// Default number of candidates re-scored per result (`k × rerank`) when none is given; 0
    /// means RaBitQ's error bounds decide which candidates to re-score.
    pub fn default_rerank(&self) -> usize {
        match *self {
            QuantSpec::Sq { bits: 8 } => 3,
            QuantSpec::Sq { .. } => 8,
            QuantSpec::Pq { .. } => 10,
            QuantSpec::RaBitQ { .. } => 0,
        }
    }
}

/// Everything a quantized index is built with besides the base index's own parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuantParams {
    /// The codes.
    pub spec: QuantSpec,
    /// Candidates re-scored exactly per result: the best `k × rerank` by estimated distance. For
    /// RaBitQ, 0 (its default) re-scores by error bound instead: a candidate is re-scored
    /// unless its lower bound already exceeds the k-th exact distance found.
    pub rerank: usize,
    /// Vectors sampled (seeded, uniformly) to train the quantizer.
    pub train_size: usize,
    /// Seed for the training sample and the RaBitQ rotation.
    pub seed: u64,
}

impl QuantParams {
    /// Parameters for `spec` with its default re-ranking, 65,536 training vectors and seed 42.
    pub fn new(spec: QuantSpec) -> Self {
        QuantParams { spec, rerank: spec.default_rerank(), train_size: 65_536, seed: 42 }
    }

    /// Parses a family name (`sq8`, `sq4`, `pq`, `rabitq`) with `key=value` options:
    /// `m` and `nbits` (pq; m defaults to dim/4, nbits to 8), `bits` (rabitq, default 1; sq as an
    /// alternative to the name), `rerank`, `train`, `seed`. `dim` sizes the PQ default. Unknown
    /// keys are left for the caller (it returns them, for the base index's parameters); keys are
    /// case-sensitive (`m` is PQ's sub-space count, `M` the graph degree).
    pub fn parse<'a>(
        family: &str,
        options: &[(&'a str, &'a str)],
        dim: usize,
    ) -> Result<(QuantParams, Vec<(&'a str, &'a str)>)> {
        let num = |k: &str, v: &str| -> Result<usize> {
            v.parse::<usize>()
                .map_err(|_| Error::InvalidArgument(format!("{k}={v}: expected a non-negative integer")))
        };
        let get = |key: &str| options.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
        let spec = match family.to_ascii_lowercase().as_str() {
            "sq8" | "sq4" | "sq" => {
                let default = if family.ends_with('4') { 4 } else { 8 };
                let bits = get("bits").map(|v| num("bits", v)).transpose()?.unwrap_or(default);
                if bits != 8 && bits != 4 {
                    return Err(Error::InvalidArgument(format!("sq: bits={bits}; expected 8 or 4")));
                }
                QuantSpec::Sq { bits: bits as u8 }
            }
            "pq" => {
                let m = get("m").map(|v| num("m", v)).transpose()?.unwrap_or((dim / 4).max(1));
                let nbits = get("nbits").map(|v| num("nbits", v)).transpose()?.unwrap_or(8);
                if m == 0 || (dim > 0 && m > dim) {
                    return Err(Error::InvalidArgument(format!(
                        "pq: m={m}; expected between 1 and the dimension {dim}"
                    )));
                }
                if nbits != 8 && nbits != 4 {
                    return Err(Error::InvalidArgument(format!("pq: nbits={nbits}; expected 8 or 4")));
                }
                QuantSpec::Pq { m, nbits: nbits as u8 }
            }
            "rabitq" => {
                let bits = get("bits").map(|v| num("bits", v)).transpose()?.unwrap_or(1);
                if !(1..=8).contains(&bits) {
                    return Err(Error::InvalidArgument(format!("rabitq: bits={bits}; expected 1 to 8")));
                }
                QuantSpec::RaBitQ { bits: bits as u8 }
            }
            other => {
                return Err(Error::InvalidArgument(format!(
                    "unknown compression {other:?}; expected sq8, sq4, pq or rabitq"
                )))
            }
        };
        let mut p = QuantParams::new(spec);
        if let Some(v) = get("rerank") {
            p.rerank = num("rerank", v)?;
        }
        if let Some(v) = get("train") {
            p.train_size = num("train", v)?.max(1);
        }
        if let Some(v) = get("seed") {
            p.seed = num("seed", v)? as u64;
        }
        let used: &[&str] = match spec {
            QuantSpec::Sq { .. } => &["bits", "rerank", "train", "seed"],
            QuantSpec::Pq { .. } => &["m", "nbits", "rerank", "train", "seed"],
            QuantSpec::RaBitQ { .. } => &["bits", "rerank", "train", "seed"],
        };
        let rest = options.iter().filter(|(k, _)| !used.contains(k)).copied().collect();
        Ok((p, rest))
    }
}
