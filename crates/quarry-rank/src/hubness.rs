//! Hubness: measuring it (the skewness of k-occurrence; Radovanović, Nanopoulos & Ivanović,
//! "Hubs in Space", JMLR 11, 2010) and reducing it by re-scoring candidates with inverted softmax
//! over banks of reference samples: inverted softmax (Smith et al., arXiv 1702.03859), QB-Norm
//! with dynamic inverted softmax (Bogolin et al., "Cross Modal Retrieval with Querybank
//! Normalisation", CVPR 2022, arXiv 2112.12777) and DBNorm's dual banks (Wang et al., "Balance
//! Act: Mitigating Hubness in Cross-Modal Retrieval with Query and Gallery Banks", EMNLP 2023,
//! arXiv 2310.11612).
//!
//! For a fixed query, ranking by `exp(β·S(q,g)) / Σ_{b∈B} exp(β·S(b,g))` is ranking by
//! `S(q,g) − log Z(g)/β`: each gallery item carries an additive penalty computed from the bank
//! alone. Quarry computes `log Z` in log-sum-exp form (no overflow) and applies it per candidate;
//! with two banks the re-scored value is `((β_q + β_g)·S − Σ_active log Z_f) / (β_q + β_g)`,
//! rank-equivalent to the product of the two factors. A dynamic factor applies only when the
//! query's raw top-1 is in that bank's activation set (the items some bank sample ranks first);
//! an inactive factor contributes no penalty (its normaliser is left out, never the raw score
//! mixed with a normalised one).

use quarry_core::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::hash::Hash;

/// k-occurrence: how many of the `lists` (each one query's top-k ids) hold each item.
pub fn k_occurrence<D: Clone + Eq + Hash>(lists: &[Vec<D>]) -> HashMap<D, u32> {
    let mut counts = HashMap::new();
    for l in lists {
        for d in l {
            *counts.entry(d.clone()).or_insert(0) += 1;
        }
    }
    counts
}

/// Population skewness `m₃ / m₂^{3/2}` (scipy's default); 0 for fewer than 2 values or a constant
/// sample.
pub fn skewness(values: &[f64]) -> f64 {
    if values.len() < 2 {
        return 0.0;
    }
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let m2 = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    let m3 = values.iter().map(|v| (v - mean).powi(3)).sum::<f64>() / n;
    if m2 <= 0.0 {
        0.0
    } else {
        m3 / m2.powf(1.5)
    }
}

/// Hubness of a set of top-k lists: the skewness of k-occurrence over the items that occur at
/// least once (as in DBNorm's reference measurement).
pub fn hubness<D: Clone + Eq + Hash>(lists: &[Vec<D>]) -> f64 {
    let counts: Vec<f64> = k_occurrence(lists).values().map(|&c| f64::from(c)).collect();
    skewness(&counts)
}

/// `log Σ exp(β·sᵢ)`, computed stably; `−∞` for no scores.
pub fn log_sum_exp(beta: f64, scores: &[f64]) -> f64 {
    let max = scores.iter().map(|s| beta * s).fold(f64::NEG_INFINITY, f64::max);
    if !max.is_finite() {
        return max;
    }
    max + scores.iter().map(|s| (beta * s - max).exp()).sum::<f64>().ln()
}

/// Which re-scoring, with its temperatures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "snake_case")]
pub enum HubnessMethod {
    /// Inverted softmax over a query bank (QB-Norm; `dynamic`: only when the query's top-1 is
    /// activated).
    QbNorm {
        /// Temperature (reference default 20).
        beta: f64,
        /// Dynamic inverted softmax.
        dynamic: bool,
    },
    /// Dual inverted softmax over a query bank and a gallery bank (DBNorm).
    DbNorm {
        /// Query-bank temperature (reference default 1/1.99).
        beta_query: f64,
        /// Gallery-bank temperature (reference default 3).
        beta_gallery: f64,
        /// Dual dynamic inverted softmax.
        dynamic: bool,
    },
}

impl HubnessMethod {
    /// QB-Norm with the reference defaults (β = 20, dynamic).
    pub fn qb_norm() -> HubnessMethod {
        HubnessMethod::QbNorm { beta: 20.0, dynamic: true }
    }

    /// DBNorm with the reference defaults (β_q = 1/1.99, β_g = 3, dynamic).
    pub fn db_norm() -> HubnessMethod {
        HubnessMethod::DbNorm { beta_query: 1.0 / 1.99, beta_gallery: 3.0, dynamic: true }
    }

    /// Checks the temperatures (finite, > 0).
    pub fn check(&self) -> Result<()> {
        let ok = |b: f64| b.is_finite() && b > 0.0;
        let good = match self {
            HubnessMethod::QbNorm { beta, .. } => ok(*beta),
            HubnessMethod::DbNorm { beta_query, beta_gallery, .. } => ok(*beta_query) && ok(*beta_gallery),
        };
        if good {
            Ok(())
        } else {
            Err(Error::InvalidArgument("hubness temperatures must be finite and > 0".into()))
        }
    }

    /// The query-bank temperature.
    pub fn beta_query(&self) -> f64 {
        match self {
            HubnessMethod::QbNorm { beta, .. } => *beta,
            HubnessMethod::DbNorm { beta_query, .. } => *beta_query,
        }
    }

    /// The gallery-bank temperature, if the method has a gallery bank.
    pub fn beta_gallery(&self) -> Option<f64> {
        match self {
            HubnessMethod::QbNorm { .. } => None,
            HubnessMethod::DbNorm { beta_gallery, .. } => Some(*beta_gallery),
        }
    }

    /// Whether factors apply only to activated queries.
    pub fn dynamic(&self) -> bool {
        match self {
            HubnessMethod::QbNorm { dynamic, .. } | HubnessMethod::DbNorm { dynamic, .. } => *dynamic,
        }
    }
}

/// An item's normalisers: `log Z_q(g)` over the query bank and, for DBNorm, `log Z_g(g)` over the
/// gallery bank (without `g` itself), each as a log-mean-exp (the log-sum-exp minus the log of the
/// bank's size: the same ranking, and `log Z/β` stays on the similarity's scale, between the
/// bank's mean and maximum similarity to `g`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Normalisers {
    /// `log mean_{b∈B_q} exp(β_q·S(b,g))`.
    pub query: f64,
    /// `log mean_{ĝ∈B_g, ĝ≠g} exp(β_g·S(ĝ,g))`, when there is a gallery bank.
    pub gallery: Option<f64>,
}

impl Normalisers {
    /// From the item's similarities to each bank (the caller leaves `g` itself out of the
    /// gallery bank).
    pub fn of(method: &HubnessMethod, query_bank: &[f64], gallery_bank: &[f64]) -> Normalisers {
        let lme = |beta: f64, s: &[f64]| log_sum_exp(beta, s) - (s.len().max(1) as f64).ln();
        Normalisers {
            query: lme(method.beta_query(), query_bank),
            gallery: method.beta_gallery().map(|b| lme(b, gallery_bank)),
        }
    }
}

/// Re-scores one candidate with raw similarity `s` and normalisers `z`; `active` says which
/// factors apply to this query (query bank, gallery bank). The result is on the similarity's
/// scale (divided by the summed temperatures), ranking as the product of inverted softmaxes.
pub fn rescore(method: &HubnessMethod, s: f64, z: &Normalisers, active: (bool, bool)) -> f64 {
    let bq = method.beta_query();
    let mut total_beta = bq;
    let mut v = bq * s;
    if active.0 && z.query.is_finite() {
        v -= z.query;
    }
    if let (Some(bg), Some(zg)) = (method.beta_gallery(), z.gallery) {
        total_beta += bg;
        v += bg * s;
        if active.1 && zg.is_finite() {
            v -= zg;
        }
    }
    v / total_beta
}

/// [`rescore`] applied at `strength` ∈ (0, 1]: `s + strength·(rescore(s) − s)`, that is the
/// inverted softmax with the normaliser raised to the power `strength` (1: the full correction;
/// smaller values keep more of the raw similarity, for galleries with mild hubness where the full
/// correction costs ranking quality).
pub fn rescore_with_strength(
    method: &HubnessMethod,
    s: f64,
    z: &Normalisers,
    active: (bool, bool),
    strength: f64,
) -> f64 {
    s + strength * (rescore(method, s, z, active) - s)
}

#[cfg(test)]
#[path = "hubness_tests.rs"]
mod tests;
