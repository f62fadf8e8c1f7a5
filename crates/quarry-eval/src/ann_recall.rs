//! Recall of an index's answers against exact ground-truth neighbours (the tie-robust variant
//! follows Aumüller, Bernhardsson & Faithfull, "ANN-Benchmarks: A benchmarking tool for approximate
//! nearest neighbor algorithms", Information Systems 87, 2020; erikbern/ann-benchmarks
//! `plotting/metrics.py`, with a relative tolerance).
//!
//! [`recall_at_k`] is the plain `|A_k ∩ G_k| / k` that peer benchmarks print;
//! [`tie_aware_recall_at_k`] also credits an answer outside `G_k` whose exact score *equals* the
//! k-th true neighbour's (within a relative tolerance), so an exact search that returns the other
//! copy of a duplicated vector is not penalised. An answer scoring clearly *above* the k-th true
//! neighbour is never credited; it is counted, since it means the ground truth and the metric
//! disagree.

use quarry_core::{Error, Hit, Result};

/// Ground-truth neighbour ids, one row per query (e.g. from `.ivecs` or an integer `.npy`).
pub trait GroundTruth {
    /// Number of queries.
    fn rows(&self) -> usize;
    /// Neighbour ids of query `i`, best first.
    fn row(&self, i: usize) -> &[u32];
}

/// Mean over queries of `|found[..k] ∩ truth[..k]| / k`. Errors when the truth is shorter than
/// the answers or has fewer than `k` columns.
pub fn recall_at_k(found: &[Vec<u32>], truth: &dyn GroundTruth, k: usize) -> Result<f64> {
    check_shape(found.len(), truth, k)?;
    if found.is_empty() || k == 0 {
        return Ok(1.0);
    }
    let mut hits = 0usize;
    for (i, f) in found.iter().enumerate() {
        let g = &truth.row(i)[..k];
        hits += f.iter().take(k).filter(|id| g.contains(id)).count();
    }
    Ok(hits as f64 / (k * found.len()) as f64)
}

/// Result of [`tie_aware_recall_at_k`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TieAwareRecall {
    /// Mean over queries of (answers in the true top-k, or tying its k-th score) / k.
    pub recall: f64,
    /// Answers outside the true top-k that score clearly above its k-th neighbour: evidence that
    /// the ground truth was computed with another metric or on other data.
    pub above_truth: usize,
}

/// Tie-aware recall@k. `found[i]` holds query i's answers as `(id, exact score)`, best first;
/// `kth_score[i]` is the exact score, by the same scorer, of the last valid id among the true
/// top-k (`None` when the row has none). An answer outside the true top-k counts when
/// `|score - kth| <= rel_tol * max(|kth|, 1e-30)`.
pub fn tie_aware_recall_at_k(
    found: &[Vec<(u32, f32)>],
    truth: &dyn GroundTruth,
    kth_score: &[Option<f32>],
    k: usize,
    rel_tol: f32,
) -> Result<TieAwareRecall> {
    check_shape(found.len(), truth, k)?;
    if found.is_empty() || k == 0 {
        return Ok(TieAwareRecall { recall: 1.0, above_truth: 0 });
    }
    let (mut hits, mut above_truth) = (0usize, 0usize);
    for (i, answers) in found.iter().enumerate() {
        let g = &truth.row(i)[..k];
        let kth = kth_score.get(i).copied().flatten();
        for &(id, score) in answers.iter().take(k) {
            if g.contains(&id) {
                hits += 1;
            } else if let Some(kth) = kth {
                let tol = rel_tol * kth.abs().max(1e-30);
                if (score - kth).abs() <= tol {
                    hits += 1;
                } else if score > kth + tol {
                    above_truth += 1;
                }
            }
        }
    }
    Ok(TieAwareRecall { recall: hits as f64 / (k * found.len()) as f64, above_truth })
}

fn check_shape(queries: usize, truth: &dyn GroundTruth, k: usize) -> Result<()> {
    if truth.rows() < queries {
        return Err(Error::InvalidArgument(format!(
            "ground truth has {} rows but {queries} queries were searched",
            truth.rows()
        )));
    }
    if let Some(short) = (0..queries).find(|&i| truth.row(i).len() < k) {
        return Err(Error::InvalidArgument(format!(
            "ground truth row {short} has {} neighbours, fewer than k = {k}",
            truth.row(short).len()
        )));
    }
    Ok(())
}

/// Ids of hits, in order.
pub fn ids(hits: &[Hit]) -> Vec<u32> {
    hits.iter().map(|h| h.id).collect()
}

impl GroundTruth for crate::io::IdRows {
    fn rows(&self) -> usize {
        crate::io::IdRows::rows(self)
    }
    fn row(&self, i: usize) -> &[u32] {
        crate::io::IdRows::row(self, i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Rows(Vec<Vec<u32>>);
    impl GroundTruth for Rows {
        fn rows(&self) -> usize {
            self.0.len()
        }
        fn row(&self, i: usize) -> &[u32] {
            &self.0[i]
        }
    }

    #[test]
    fn plain_recall() {
        let gt = Rows(vec![vec![1, 2, 3, 4], vec![5, 6, 7, 8]]);
        let found = vec![vec![1, 2, 9], vec![8, 7, 6]];
        assert!((recall_at_k(&found, &gt, 3).expect("shape") - 4.0 / 6.0).abs() < 1e-12);
        assert!(recall_at_k(&found, &gt, 5).is_err());
        assert!(recall_at_k(&[vec![1], vec![2], vec![3]], &gt, 1).is_err());
    }

    #[test]
    fn only_exact_ties_count() {
        let gt = Rows(vec![vec![1, 2], vec![5, 6]]);
        // Query 0 returned id 9, tying the 2nd true neighbour: credited. Query 1 returned id 7
        // scoring well below (a miss) and id 8 scoring above the truth (inconsistent truth).
        let found = vec![vec![(1, 0.9), (9, 0.8)], vec![(8, 0.95), (7, 0.5)]];
        let r = tie_aware_recall_at_k(&found, &gt, &[Some(0.8), Some(0.7)], 2, 1e-6).expect("shape");
        assert_eq!(r, TieAwareRecall { recall: 0.5, above_truth: 1 });
        // No valid truth in a row: only membership can count.
        let r = tie_aware_recall_at_k(&found[..1], &gt, &[None], 2, 1e-6).expect("shape");
        assert_eq!(r.recall, 0.5);
    }
}
