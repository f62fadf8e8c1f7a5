//! Relevance feedback and query expansion, the primitives of query-reformulation pipelines:
//! Rocchio on dense vectors (Rocchio, "Relevance Feedback in Information Retrieval", The SMART
//! Retrieval System, 1971) and RM3 on term queries (Lavrenko & Croft, "Relevance-Based Language
//! Models", SIGIR 2001; Abdul-Jaleel et al., "UMass at TREC 2004", with Anserini's defaults:
//! 10 feedback documents, 10 expansion terms, original-query weight 0.5).
//!
//! Both work on what the first pass returned, as pseudo-relevance feedback when no judgements
//! exist: the top documents stand in for the relevant ones.

use quarry_core::{Error, Result};
use std::collections::HashMap;

/// Rocchio's weights: `q' = α·q + β·mean(relevant) − γ·mean(non-relevant)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rocchio {
    /// Weight of the original query.
    pub alpha: f32,
    /// Weight of the relevant documents' centroid.
    pub beta: f32,
    /// Weight of the non-relevant documents' centroid.
    pub gamma: f32,
}

impl Default for Rocchio {
    /// α = 1, β = 0.75, γ = 0.15 (the SMART defaults).
    fn default() -> Self {
        Rocchio { alpha: 1.0, beta: 0.75, gamma: 0.15 }
    }
}

impl Rocchio {
    /// The moved query, scaled to unit length (for cosine indexes). Errors on mismatched
    /// dimensions, non-finite weights or a zero result.
    pub fn apply(&self, query: &[f32], relevant: &[&[f32]], non_relevant: &[&[f32]]) -> Result<Vec<f32>> {
        if [self.alpha, self.beta, self.gamma].iter().any(|w| !w.is_finite()) {
            return Err(Error::InvalidArgument("Rocchio weights must be finite".into()));
        }
        let d = query.len();
        if relevant.iter().chain(non_relevant).any(|v| v.len() != d) {
            return Err(Error::InvalidArgument("Rocchio: feedback vectors of another dimension".into()));
        }
        let mut out: Vec<f32> = query.iter().map(|x| self.alpha * x).collect();
        for (set, w) in [(relevant, self.beta), (non_relevant, -self.gamma)] {
            if set.is_empty() {
                continue;
            }
            let scale = w / set.len() as f32;
            for v in set {
                out.iter_mut().zip(v.iter()).for_each(|(o, x)| *o += scale * x);
            }
        }
        let n = out.iter().map(|x| x * x).sum::<f32>().sqrt();
        if !n.is_finite() || n == 0.0 {
            return Err(Error::InvalidArgument("Rocchio produced a zero query".into()));
        }
        out.iter_mut().for_each(|x| *x /= n);
        Ok(out)
    }
}

/// RM3 settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rm3 {
    /// Expansion terms kept.
    pub terms: usize,
    /// Weight of the original query in the mix (the expansion gets `1 − original`).
    pub original: f64,
}

impl Default for Rm3 {
    /// 10 terms, original weight 0.5 (Anserini's defaults).
    fn default() -> Self {
        Rm3 { terms: 10, original: 0.5 }
    }
}

/// One feedback document: its term counts and its first-pass score.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedbackDoc {
    /// `(term, count)` of the document's analysed terms.
    pub terms: Vec<(String, u32)>,
    /// Its retrieval score (weights the document's language model).
    pub score: f64,
}

impl Rm3 {
    /// The expanded query as `(term, weight)`, weights summing to 1, heaviest first (ties by
    /// term): `original · P(w|Q) + (1 − original) · P(w|R)`, where `P(w|Q)` is the analysed
    /// query's term frequencies and `P(w|R) ∝ Σ_d P(w|d)·score(d)` over the feedback documents,
    /// truncated to the `terms` heaviest and renormalised (RM1 then RM3's interpolation).
    pub fn expand(&self, query_terms: &[String], docs: &[FeedbackDoc]) -> Result<Vec<(String, f64)>> {
        if !(0.0..=1.0).contains(&self.original) {
            return Err(Error::InvalidArgument(format!(
                "RM3 original weight {} is not in [0, 1]",
                self.original
            )));
        }
        let mut q: HashMap<&str, f64> = HashMap::new();
        for t in query_terms {
            *q.entry(t.as_str()).or_default() += 1.0 / query_terms.len().max(1) as f64;
        }
        let total_score: f64 = docs.iter().map(|d| d.score.max(0.0)).sum();
        let mut rel: HashMap<&str, f64> = HashMap::new();
        for d in docs {
            let len: u32 = d.terms.iter().map(|t| t.1).sum();
            if len == 0 || total_score <= 0.0 {
                continue;
            }
            let w = d.score.max(0.0) / total_score;
            for (t, c) in &d.terms {
                *rel.entry(t.as_str()).or_default() += w * f64::from(*c) / f64::from(len);
            }
        }
        let mut top: Vec<(&str, f64)> = rel.into_iter().collect();
        top.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(b.0)));
        top.truncate(self.terms);
        let z: f64 = top.iter().map(|t| t.1).sum();
        let mut mix: HashMap<&str, f64> = q.iter().map(|(t, p)| (*t, self.original * p)).collect();
        if z > 0.0 {
            for (t, p) in top {
                *mix.entry(t).or_default() += (1.0 - self.original) * p / z;
            }
        }
        let total: f64 = mix.values().sum();
        let mut out: Vec<(String, f64)> = mix
            .into_iter()
            .filter(|(_, w)| *w > 0.0)
            .map(|(t, w)| (t.to_string(), w / total.max(1e-300)))
            .collect();
        out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rocchio_moves_toward_relevant_and_away_from_non_relevant() {
        let q = [1.0f32, 0.0, 0.0];
        let rel = [0.0f32, 1.0, 0.0];
        let non = [0.0f32, 0.0, 1.0];
        let r = Rocchio::default().apply(&q, &[&rel], &[&non]).expect("rocchio");
        assert!((r.iter().map(|x| x * x).sum::<f32>() - 1.0).abs() < 1e-6, "unit length");
        assert!(r[1] > 0.0 && r[2] < 0.0 && r[0] > r[1]);
        // α = 1, β = γ = 0 is the query itself (normalised).
        let same = Rocchio { alpha: 1.0, beta: 0.0, gamma: 0.0 }
            .apply(&[3.0, 4.0, 0.0], &[&rel], &[])
            .expect("same");
        assert_eq!(same, vec![0.6, 0.8, 0.0]);
        assert!(Rocchio::default().apply(&q, &[&[1.0, 0.0]], &[]).is_err(), "dimension mismatch");
        assert!(Rocchio { alpha: 0.0, beta: 0.0, gamma: 0.0 }.apply(&q, &[], &[]).is_err(), "zero query");
    }

    #[test]
    fn rm3_mixes_the_query_with_the_feedback_model() {
        let t = |s: &str, c: u32| (s.to_string(), c);
        let docs = vec![
            FeedbackDoc { terms: vec![t("tern", 3), t("arctic", 1)], score: 2.0 },
            FeedbackDoc { terms: vec![t("tern", 1), t("migrat", 1), t("pole", 2)], score: 1.0 },
        ];
        let q = vec!["tern".to_string(), "flight".to_string()];
        let e = Rm3 { terms: 10, original: 0.5 }.expand(&q, &docs).expect("expand");
        let sum: f64 = e.iter().map(|x| x.1).sum();
        assert!((sum - 1.0).abs() < 1e-12);
        let w = |s: &str| e.iter().find(|x| x.0 == s).map_or(0.0, |x| x.1);
        // P(tern|R) = (2/3)(3/4) + (1/3)(1/4) = 7/12; mixed: 0.5·0.5 + 0.5·7/12.
        assert!((w("tern") - (0.25 + 0.5 * 7.0 / 12.0)).abs() < 1e-12, "{e:?}");
        assert!((w("flight") - 0.25).abs() < 1e-12, "query-only terms keep their share");
        assert_eq!(e[0].0, "tern");
        // Truncation to the heaviest expansion terms; original = 1 returns the query.
        let one = Rm3 { terms: 1, original: 0.0 }.expand(&q, &docs).expect("expand");
        assert_eq!(one, vec![("tern".to_string(), 1.0)]);
        let orig = Rm3 { terms: 10, original: 1.0 }.expand(&q, &docs).expect("expand");
        assert_eq!(orig.len(), 2);
        assert!(Rm3 { terms: 10, original: 1.5 }.expand(&q, &docs).is_err());
    }
}
