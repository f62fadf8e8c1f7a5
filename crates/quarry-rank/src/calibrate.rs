//! Calibrated relevance cut-off: a monotone map from a hit's raw similarity to the probability
//! that it is relevant, so one global threshold can drop irrelevant hits (the "Cosine Adapter" of
//! Rossi et al., "Relevance Filtering for Embedding-based Retrieval", CIKM 2024, arXiv
//! 2408.04887; Platt, "Probabilistic Outputs for Support Vector Machines", 1999).
//!
//! The paper predicts a per-query map from the query embedding with a small network. With the
//! few hundred judged queries a collection usually has, Quarry fits the same idea with three
//! per-query features instead, each non-decreasing in the raw score `s` for a fixed query, and a
//! logistic regression with non-negative weights over them:
//! * `score`: `s` itself (global Platt scaling);
//! * `null_z`: `(s − μ₀(q)) / σ₀(q)`, standardised against the query's scores over a fixed random
//!   sample of the corpus (the null distribution: removes each query's offset and scale);
//! * `gap`: `s − s₁`, the distance below the query's best hit.
//!
//! `p = sigmoid(Σ wᵢ·fᵢ + b)` with every `wᵢ ≥ 0`, so `p` never reorders a query's hits; the
//! probabilities down a ranked list are also made non-increasing (a running minimum) so that
//! hybrid lists, ranked by a fused score, are cut to a prefix too. Without judgements the
//! training-free rule is `p = sigmoid(null_z − z_τ)` (z_τ = 3: p = ½ exactly at three standard
//! deviations above the null mean).

use quarry_core::{Error, Result};
use serde::{Deserialize, Serialize};

/// A per-hit input of the calibration map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Feature {
    /// The raw score.
    Score,
    /// The score standardised against the query's null distribution.
    NullZ,
    /// The score minus the query's best score (≤ 0).
    Gap,
}

impl Feature {
    /// Its name as serialised.
    pub fn name(self) -> &'static str {
        match self {
            Feature::Score => "score",
            Feature::NullZ => "null_z",
            Feature::Gap => "gap",
        }
    }
}

/// Mean and standard deviation of a query's scores over a fixed random sample of the corpus.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NullStats {
    /// Mean score.
    pub mean: f64,
    /// Standard deviation (population).
    pub sd: f64,
}

impl NullStats {
    /// From the query's scores against the sample; `None` for fewer than 2 scores or a constant
    /// sample.
    pub fn from_scores(scores: &[f64]) -> Option<NullStats> {
        if scores.len() < 2 {
            return None;
        }
        let n = scores.len() as f64;
        let mean = scores.iter().sum::<f64>() / n;
        let sd = (scores.iter().map(|s| (s - mean) * (s - mean)).sum::<f64>() / n).sqrt();
        (sd > 0.0 && sd.is_finite()).then_some(NullStats { mean, sd })
    }
}

/// A fitted (or training-free) calibration: `p = sigmoid(Σ weightᵢ·featureᵢ + bias)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// Features used, in the order of `weights`.
    pub features: Vec<Feature>,
    /// One non-negative weight per feature.
    pub weights: Vec<f64>,
    /// The intercept.
    pub bias: f64,
    /// The recommended `min_relevance` (chosen when fitting; ½ for the training-free rule).
    pub threshold: f64,
}

/// One query's ranked hits with their judgements, for fitting.
#[derive(Debug, Clone, PartialEq)]
pub struct JudgedList {
    /// Raw scores, best first.
    pub scores: Vec<f64>,
    /// Whether each hit is relevant.
    pub relevant: Vec<bool>,
    /// The query's null statistics, when a null sample exists.
    pub null: Option<NullStats>,
}

/// What a fit found, measured on the lists it was fitted on.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FitReport {
    /// Queries used.
    pub queries: usize,
    /// Hits used.
    pub hits: usize,
    /// Relevant hits among them.
    pub relevant: usize,
    /// Mean log-loss of the fitted probabilities.
    pub log_loss: f64,
    /// Fraction of returned hits that are relevant at the chosen threshold (micro-averaged).
    pub precision_at_threshold: f64,
    /// The same with every hit returned.
    pub precision_raw: f64,
    /// Fraction of the relevant hits kept at the chosen threshold.
    pub kept_relevant: f64,
}

fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

fn features_of(features: &[Feature], s: f64, top: f64, null: Option<NullStats>) -> Result<Vec<f64>> {
    features
        .iter()
        .map(|f| match f {
            Feature::Score => Ok(s),
            Feature::Gap => Ok(s - top),
            Feature::NullZ => null.map(|n| (s - n.mean) / n.sd).ok_or_else(|| {
                Error::InvalidArgument("the calibration needs the query's null statistics".into())
            }),
        })
        .collect()
}

impl Calibration {
    /// The training-free rule: `p = sigmoid(null_z − z_tau)`, threshold ½ (keep `z ≥ z_tau`).
    pub fn training_free(z_tau: f64) -> Calibration {
        Calibration { features: vec![Feature::NullZ], weights: vec![1.0], bias: -z_tau, threshold: 0.5 }
    }

    /// Checks the shape and the monotonicity constraint (every weight finite and ≥ 0).
    pub fn check(&self) -> Result<()> {
        if self.features.is_empty() || self.features.len() != self.weights.len() {
            return Err(Error::InvalidArgument(
                "a calibration needs one weight per feature, at least one".into(),
            ));
        }
        if self.weights.iter().any(|w| !w.is_finite() || *w < 0.0) || !self.bias.is_finite() {
            return Err(Error::InvalidArgument(
                "calibration weights must be finite and ≥ 0 (monotone)".into(),
            ));
        }
        if !(0.0..=1.0).contains(&self.threshold) {
            return Err(Error::InvalidArgument("a calibration threshold is a probability in [0, 1]".into()));
        }
        Ok(())
    }

    /// Whether the map needs the query's null statistics.
    pub fn needs_null(&self) -> bool {
        self.features.contains(&Feature::NullZ)
    }

    /// The relevance probability of each hit of one query (`scores` in ranked order; the
    /// query's best score is the largest), made non-increasing down the list.
    pub fn probabilities(&self, scores: &[f64], null: Option<NullStats>) -> Result<Vec<f64>> {
        let top = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let mut out = Vec::with_capacity(scores.len());
        let mut run = 1.0f64;
        for &s in scores {
            let f = features_of(&self.features, s, top, null)?;
            let p = sigmoid(self.bias + f.iter().zip(&self.weights).map(|(x, w)| x * w).sum::<f64>());
            run = run.min(p);
            out.push(run);
        }
        Ok(out)
    }

    /// How many leading hits reach `min_relevance` (never fewer than `min_results`, capped by the
    /// list): the cut is always a prefix of the ranked list.
    pub fn cut(&self, probabilities: &[f64], min_relevance: f64, min_results: usize) -> usize {
        let n = probabilities.iter().take_while(|p| **p >= min_relevance).count();
        n.max(min_results.min(probabilities.len()))
    }
}

/// Fits a calibration on judged lists by logistic regression (Newton's method with a small ridge)
/// over `features`; a feature whose weight comes out negative is dropped and the rest refitted.
/// The threshold keeps `keep_relevant` (e.g. 0.97) of the relevant hits of these lists. Errors on
/// empty input, lists without any relevant or irrelevant hit, or lists lacking null statistics
/// when `NullZ` is asked for.
pub fn fit(
    lists: &[JudgedList],
    features: &[Feature],
    keep_relevant: f64,
) -> Result<(Calibration, FitReport)> {
    if !(0.0..=1.0).contains(&keep_relevant) {
        return Err(Error::InvalidArgument(format!("keep_relevant {keep_relevant} is not in [0, 1]")));
    }
    let mut rows: Vec<(Vec<f64>, bool)> = Vec::new();
    let all = features.to_vec();
    for l in lists {
        if l.scores.len() != l.relevant.len() {
            return Err(Error::InvalidArgument("a judged list needs one judgement per score".into()));
        }
        let top = l.scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        for (&s, &r) in l.scores.iter().zip(&l.relevant) {
            if !s.is_finite() {
                return Err(Error::InvalidArgument("a judged list has a non-finite score".into()));
            }
            rows.push((features_of(&all, s, top, l.null)?, r));
        }
    }
    let pos = rows.iter().filter(|r| r.1).count();
    if pos == 0 || pos == rows.len() {
        return Err(Error::InvalidArgument(format!(
            "calibration needs relevant and irrelevant hits; got {pos} relevant of {}",
            rows.len()
        )));
    }
    let mut active: Vec<usize> = (0..all.len()).collect();
    let (weights, bias) = loop {
        if active.is_empty() {
            return Err(Error::InvalidArgument(
                "no feature ranks relevant hits above irrelevant ones".into(),
            ));
        }
        let (w, b) = logistic(&rows, &active);
        match w.iter().position(|x| *x < 0.0) {
            Some(i) => {
                active.remove(i);
            }
            None => break (w, b),
        }
    };
    let mut cal =
        Calibration { features: active.iter().map(|&i| all[i]).collect(), weights, bias, threshold: 0.5 };
    // Threshold: the probability of the relevant hit at the (1 − keep) quantile.
    let mut rel_p = Vec::with_capacity(pos);
    let mut all_p = Vec::with_capacity(rows.len());
    let mut loss = 0.0;
    for l in lists {
        let p = cal.probabilities(&l.scores, l.null)?;
        for (&pi, &r) in p.iter().zip(&l.relevant) {
            if r {
                rel_p.push(pi);
            }
            all_p.push((pi, r));
        }
    }
    // Log-loss with the raw (not enveloped) probabilities, the quantity fitted.
    for (x, r) in &rows {
        let z = cal.bias + x_of(&cal, &all, x);
        let p = sigmoid(z).clamp(1e-12, 1.0 - 1e-12);
        loss -= if *r { p.ln() } else { (1.0 - p).ln() };
    }
    rel_p.sort_by(f64::total_cmp);
    let drop = ((1.0 - keep_relevant) * rel_p.len() as f64).floor() as usize;
    cal.threshold = rel_p.get(drop.min(rel_p.len() - 1)).copied().unwrap_or(0.5).clamp(0.0, 1.0);
    let kept: Vec<&(f64, bool)> = all_p.iter().filter(|(p, _)| *p >= cal.threshold).collect();
    let kept_rel = kept.iter().filter(|(_, r)| *r).count();
    let report = FitReport {
        queries: lists.len(),
        hits: rows.len(),
        relevant: pos,
        log_loss: loss / rows.len() as f64,
        precision_at_threshold: kept_rel as f64 / kept.len().max(1) as f64,
        precision_raw: pos as f64 / rows.len() as f64,
        kept_relevant: kept_rel as f64 / pos as f64,
    };
    Ok((cal, report))
}

/// `Σ wᵢ·xᵢ` for a row holding every candidate feature, with `cal`'s (surviving) features.
fn x_of(cal: &Calibration, all: &[Feature], x: &[f64]) -> f64 {
    cal.features
        .iter()
        .zip(&cal.weights)
        .map(|(f, w)| all.iter().position(|a| a == f).map_or(0.0, |i| w * x[i]))
        .sum()
}

/// Logistic regression on the `active` columns: Newton steps on the standardised features with
/// a ridge of 1e-4, returned in the original units.
fn logistic(rows: &[(Vec<f64>, bool)], active: &[usize]) -> (Vec<f64>, f64) {
    let k = active.len();
    let n = rows.len() as f64;
    let mean: Vec<f64> = active.iter().map(|&j| rows.iter().map(|r| r.0[j]).sum::<f64>() / n).collect();
    let sd: Vec<f64> = active
        .iter()
        .zip(&mean)
        .map(|(&j, m)| (rows.iter().map(|r| (r.0[j] - m).powi(2)).sum::<f64>() / n).sqrt().max(1e-12))
        .collect();
    // Parameters: k weights then the intercept.
    let mut beta = vec![0.0; k + 1];
    let lambda = 1e-4;
    for _ in 0..100 {
        let mut grad = vec![0.0; k + 1];
        let mut hess = vec![0.0; (k + 1) * (k + 1)];
        for (x, y) in rows {
            let mut z: Vec<f64> = active.iter().enumerate().map(|(a, &j)| (x[j] - mean[a]) / sd[a]).collect();
            z.push(1.0);
            let eta: f64 = z.iter().zip(&beta).map(|(a, b)| a * b).sum();
            let p = sigmoid(eta);
            let g = p - f64::from(u8::from(*y));
            let w = (p * (1.0 - p)).max(1e-12);
            for a in 0..=k {
                grad[a] += g * z[a] / n;
                for b in 0..=k {
                    hess[a * (k + 1) + b] += w * z[a] * z[b] / n;
                }
            }
        }
        for a in 0..k {
            grad[a] += lambda * beta[a];
            hess[a * (k + 1) + a] += lambda;
        }
        let step = solve(&mut hess, &mut grad, k + 1);
        let mut moved = 0.0f64;
        for (b, s) in beta.iter_mut().zip(&step) {
            *b -= s;
            moved = moved.max(s.abs());
        }
        if moved < 1e-10 {
            break;
        }
    }
    let weights: Vec<f64> = (0..k).map(|a| beta[a] / sd[a]).collect();
    let bias = beta[k] - (0..k).map(|a| beta[a] * mean[a] / sd[a]).sum::<f64>();
    (weights, bias)
}

/// Solves `A x = b` (small, symmetric positive definite) by Gaussian elimination with partial
/// pivoting; a singular pivot gives a zero step for that unknown.
fn solve(a: &mut [f64], b: &mut [f64], n: usize) -> Vec<f64> {
    for c in 0..n {
        let p = (c..n).max_by(|&i, &j| a[i * n + c].abs().total_cmp(&a[j * n + c].abs())).unwrap_or(c);
        if p != c {
            for j in 0..n {
                a.swap(c * n + j, p * n + j);
            }
            b.swap(c, p);
        }
        let d = a[c * n + c];
        if d.abs() < 1e-300 {
            continue;
        }
        for i in c + 1..n {
            let f = a[i * n + c] / d;
            for j in c..n {
                a[i * n + j] -= f * a[c * n + j];
            }
            b[i] -= f * b[c];
        }
    }
    let mut x = vec![0.0; n];
    for c in (0..n).rev() {
        let d = a[c * n + c];
        if d.abs() < 1e-300 {
            continue;
        }
        let s: f64 = (c + 1..n).map(|j| a[c * n + j] * x[j]).sum();
        x[c] = (b[c] - s) / d;
    }
    x
}

#[cfg(test)]
#[path = "calibrate_tests.rs"]
mod tests;
