//! Recall of an index's answers against exact ground-truth neighbours (ALGORITHMS.md §13.3).
//!
//! [`recall_at_k`] is the plain `|A_k ∩ G_k| / k` that peer benchmarks print;
//! [`tie_robust_recall_at_k`] counts any answer whose exact score reaches the k-th true score
//! (minus `eps`) as correct, so duplicates and equidistant points do not cost recall.

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

/// Tie-robust recall: `found` holds each answer's exact score, `kth_score[i]` the exact score of
/// query i's k-th true neighbour; an answer counts when `score >= kth_score - eps`.
pub fn tie_robust_recall_at_k(found_scores: &[Vec<f32>], kth_score: &[f32], k: usize, eps: f32) -> f64 {
    if found_scores.is_empty() || k == 0 {
        return 1.0;
    }
    let hits: usize = found_scores
        .iter()
        .zip(kth_score)
        .map(|(f, &kth)| f.iter().take(k).filter(|&&s| s >= kth - eps).count())
        .sum();
    hits as f64 / (k * found_scores.len()) as f64
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
    fn ties_count_as_hits() {
        // A different duplicate than the ground truth chose still scores 1.0.
        assert_eq!(tie_robust_recall_at_k(&[vec![0.9, 0.8]], &[0.8], 2, 1e-6), 1.0);
        assert_eq!(tie_robust_recall_at_k(&[vec![0.9, 0.7]], &[0.8], 2, 1e-6), 0.5);
    }
}
