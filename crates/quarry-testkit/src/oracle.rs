//! Brute-force ground truth in f64, and recall that counts an answer as found when its exact score
//! reaches the k-th true score minus a tolerance (the tie-robust recall of Aumüller, Bernhardsson &
//! Faithfull, "ANN-Benchmarks: A benchmarking tool for approximate nearest neighbor algorithms",
//! Information Systems 87, 2020; erikbern/ann-benchmarks `plotting/metrics.py`).

use quarry_core::{Hit, Matrix, Metric};

/// Exact score of `x` for query `q` under `metric`, in f64 (cosine normalises both).
pub fn score(metric: Metric, q: &[f32], x: &[f32]) -> f64 {
    let dot: f64 = q.iter().zip(x).map(|(a, b)| *a as f64 * *b as f64).sum();
    match metric {
        Metric::InnerProduct => dot,
        Metric::Cosine => {
            let nq: f64 = q.iter().map(|a| (*a as f64).powi(2)).sum::<f64>().sqrt();
            let nx: f64 = x.iter().map(|a| (*a as f64).powi(2)).sum::<f64>().sqrt();
            if nq > 0.0 && nx > 0.0 {
                dot / (nq * nx)
            } else {
                0.0
            }
        }
        Metric::L2 => -q.iter().zip(x).map(|(a, b)| (*a as f64 - *b as f64).powi(2)).sum::<f64>(),
    }
}

/// The exact top-k `(id, score)` by f64 score descending, ties by ascending id.
pub fn exact_top_k(base: &Matrix, q: &[f32], metric: Metric, k: usize) -> Vec<(u32, f64)> {
    let mut all: Vec<(u32, f64)> =
        base.iter().enumerate().map(|(i, x)| (i as u32, score(metric, q, x))).collect();
    all.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    all.truncate(k);
    all
}

/// Fraction of `got` whose exact score reaches the k-th exact score minus `eps` (relative to the
/// score scale): duplicates and equidistant points count as correct.
pub fn tie_robust_recall(
    base: &Matrix,
    q: &[f32],
    metric: Metric,
    got: &[Hit],
    want: &[(u32, f64)],
    eps: f64,
) -> f64 {
    let Some(&(_, kth)) = want.last() else { return 1.0 };
    let scale = want.iter().map(|w| w.1.abs()).fold(1.0, f64::max);
    let ok = got
        .iter()
        .filter(|h| (h.id as usize) < base.rows())
        .filter(|h| score(metric, q, base.row(h.id as usize)) >= kth - eps * scale)
        .count();
    ok as f64 / want.len() as f64
}
