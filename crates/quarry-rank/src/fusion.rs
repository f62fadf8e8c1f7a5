//! Fusing ranked lists: reciprocal rank fusion (Cormack, Clarke & Büttcher, "Reciprocal Rank Fusion
//! outperforms Condorcet and Individual Rank Learning Methods", SIGIR 2009), and weighted (convex)
//! combination (Bruch, Gai & Ingber, "An Analysis of Fusion Functions for Hybrid Retrieval", ACM
//! TOIS 42(1), 2023, arXiv 2210.11934), CombSUM and CombMNZ (Fox & Shaw, "Combination of Multiple
//! Searches", TREC-2, 1994) of per-list normalised scores — for hybrid search (BM25 + dense) and
//! for multi-query fusion (one list per reformulation of a need).
//!
//! Conventions, fixed and tested: ranks start at 1 in list order (lists are best first); a
//! document absent from a list contributes 0 to it (for score methods: 0 after normalisation);
//! min-max of a constant list gives every entry 1, z-score of a constant list gives 0; the
//! result is sorted by fused score, descending, ties by document id ascending.

use quarry_core::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::hash::Hash;

/// Per-list score normalisation before a weighted combination.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Norm {
    /// `(s − min) / (max − min)` over the list.
    MinMax,
    /// `(s − lower) / (max − lower)` with a known lower bound of the scorer (0 for BM25, −1 for
    /// cosine).
    TheoreticalMinMax {
        /// The scorer's lowest possible score.
        lower: f64,
    },
    /// `(s − mean) / std` over the list.
    ZScore,
    /// `(s − (μ − 3σ)) / 6σ` clamped to [0, 1] over the list (DBSF's scaling; a constant list
    /// gives 0.5).
    ThreeSigma,
    /// Scores as given.
    None,
}

/// How lists are fused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "snake_case")]
pub enum Fusion {
    /// Reciprocal rank fusion: `Σ 1 / (k + rank)` (Cormack et al.; k = 60 is usual).
    Rrf {
        /// The rank offset.
        k: f64,
    },
    /// `Σ weight_i · norm(s_i)`; weights are per list, in list order.
    Weighted {
        /// One weight per list.
        weights: Vec<f64>,
        /// Normalisation of each list's scores.
        norm: Norm,
    },
    /// Sum of normalised scores.
    CombSum {
        /// Normalisation of each list's scores.
        norm: Norm,
    },
    /// Sum of normalised scores times the number of lists holding the document.
    CombMnz {
        /// Normalisation of each list's scores.
        norm: Norm,
    },
    /// Distribution-based score fusion: CombSUM with [`Norm::ThreeSigma`] (Qdrant's `dbsf`).
    Dbsf,
}

fn normalise(list: &[f64], norm: Norm) -> Vec<f64> {
    match norm {
        Norm::None => list.to_vec(),
        Norm::MinMax | Norm::TheoreticalMinMax { .. } => {
            let max = list.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let min = match norm {
                Norm::TheoreticalMinMax { lower } => lower,
                _ => list.iter().copied().fold(f64::INFINITY, f64::min),
            };
            if max - min <= 0.0 {
                vec![1.0; list.len()]
            } else {
                list.iter().map(|s| (s - min) / (max - min)).collect()
            }
        }
        Norm::ThreeSigma => {
            let n = list.len().max(1) as f64;
            let mean = list.iter().sum::<f64>() / n;
            let sd = (list.iter().map(|s| (s - mean) * (s - mean)).sum::<f64>() / n).sqrt();
            let (lo, hi) = (mean - 3.0 * sd, mean + 3.0 * sd);
            list.iter().map(|s| if hi > lo { ((s - lo) / (hi - lo)).clamp(0.0, 1.0) } else { 0.5 }).collect()
        }
        Norm::ZScore => {
            let n = list.len().max(1) as f64;
            let mean = list.iter().sum::<f64>() / n;
            let sd = (list.iter().map(|s| (s - mean) * (s - mean)).sum::<f64>() / n).sqrt();
            if sd <= 0.0 {
                vec![0.0; list.len()]
            } else {
                list.iter().map(|s| (s - mean) / sd).collect()
            }
        }
    }
}

/// Fuses `lists` (each best first: `(document, score)`) with `method`; returns at most `limit`
/// `(document, fused score)`, best first. Errors on a weight count that does not match the lists,
/// a non-finite score, or an RRF `k` below 0.
pub fn fuse<D: Clone + Eq + Hash + Ord>(
    lists: &[Vec<(D, f64)>],
    method: &Fusion,
    limit: usize,
) -> Result<Vec<(D, f64)>> {
    if let Some((i, _)) = lists.iter().enumerate().find(|(_, l)| l.iter().any(|(_, s)| !s.is_finite())) {
        return Err(Error::InvalidArgument(format!("list {i} has a non-finite score")));
    }
    let mut acc: HashMap<D, (f64, usize)> = HashMap::new();
    match method {
        Fusion::Rrf { k } => {
            if k.is_nan() || *k < 0.0 {
                return Err(Error::InvalidArgument(format!("RRF k must be ≥ 0, got {k}")));
            }
            for list in lists {
                for (r, (d, _)) in list.iter().enumerate() {
                    let e = acc.entry(d.clone()).or_insert((0.0, 0));
                    e.0 += 1.0 / (k + (r + 1) as f64);
                    e.1 += 1;
                }
            }
        }
        Fusion::Dbsf => {
            for list in lists {
                let scores: Vec<f64> = list.iter().map(|(_, s)| *s).collect();
                for ((d, _), s) in list.iter().zip(normalise(&scores, Norm::ThreeSigma)) {
                    let e = acc.entry(d.clone()).or_insert((0.0, 0));
                    e.0 += s;
                    e.1 += 1;
                }
            }
        }
        Fusion::Weighted { norm, .. } | Fusion::CombSum { norm } | Fusion::CombMnz { norm } => {
            let weights: Vec<f64> = match method {
                Fusion::Weighted { weights, .. } => {
                    if weights.len() != lists.len() {
                        return Err(Error::InvalidArgument(format!(
                            "{} weights for {} lists",
                            weights.len(),
                            lists.len()
                        )));
                    }
                    weights.clone()
                }
                _ => vec![1.0; lists.len()],
            };
            for (list, w) in lists.iter().zip(&weights) {
                let scores: Vec<f64> = list.iter().map(|(_, s)| *s).collect();
                for ((d, _), s) in list.iter().zip(normalise(&scores, *norm)) {
                    let e = acc.entry(d.clone()).or_insert((0.0, 0));
                    e.0 += w * s;
                    e.1 += 1;
                }
            }
            if matches!(method, Fusion::CombMnz { .. }) {
                acc.values_mut().for_each(|e| e.0 *= e.1 as f64);
            }
        }
    }
    let mut out: Vec<(D, f64)> = acc.into_iter().map(|(d, (s, _))| (d, s)).collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    out.truncate(limit);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(items: &[(&'static str, f64)]) -> Vec<(&'static str, f64)> {
        items.to_vec()
    }

    #[test]
    fn rrf_matches_the_oracle() {
        let a = l(&[("x", 9.0), ("y", 5.0)]);
        let b = l(&[("x", 0.9), ("z", 0.8), ("y", 0.1)]);
        let f = fuse(&[a, b], &Fusion::Rrf { k: 60.0 }, 10).expect("fuse");
        assert_eq!(f[0].0, "x");
        assert!((f[0].1 - 2.0 / 61.0).abs() < 1e-12, "1st in both lists: 2/61");
        let y = f.iter().find(|(d, _)| *d == "y").expect("y").1;
        assert!((y - (1.0 / 62.0 + 1.0 / 63.0)).abs() < 1e-12);
        let z = f.iter().find(|(d, _)| *d == "z").expect("z").1;
        assert!((z - 1.0 / 62.0).abs() < 1e-12, "absent from a list: 0 from it");
        // Ranks 1 and 2: 1/61 + 1/62 = 0.0325225.
        let g = fuse(&[l(&[("p", 1.0)]), l(&[("q", 2.0), ("p", 1.0)])], &Fusion::Rrf { k: 60.0 }, 10)
            .expect("fuse");
        assert!((g[0].1 - 0.0325225).abs() < 1e-7);
    }

    #[test]
    fn ties_break_by_document_id_and_limit_truncates() {
        let f = fuse(&[l(&[("b", 1.0)]), l(&[("a", 1.0)])], &Fusion::Rrf { k: 60.0 }, 10).expect("fuse");
        assert_eq!(f.iter().map(|x| x.0).collect::<Vec<_>>(), vec!["a", "b"]);
        assert_eq!(
            fuse(&[l(&[("a", 3.0), ("b", 2.0), ("c", 1.0)])], &Fusion::Rrf { k: 0.0 }, 2)
                .expect("fuse")
                .len(),
            2
        );
    }

    #[test]
    fn weighted_combinations_normalise_per_list() {
        let bm25 = l(&[("a", 12.0), ("b", 6.0), ("c", 0.0)]);
        let dense = l(&[("b", 0.9), ("c", 0.5), ("d", 0.1)]);
        let f = fuse(
            &[bm25.clone(), dense.clone()],
            &Fusion::Weighted { weights: vec![0.5, 0.5], norm: Norm::MinMax },
            10,
        )
        .expect("fuse");
        // a: 0.5·1 + 0; b: 0.5·0.5 + 0.5·1 = 0.75; c: 0 + 0.5·0.5 = 0.25; d: 0.
        let got: Vec<(&str, f64)> = f.clone();
        assert_eq!(got[0].0, "b");
        assert!((got[0].1 - 0.75).abs() < 1e-12);
        assert!((f.iter().find(|x| x.0 == "a").expect("a").1 - 0.5).abs() < 1e-12);
        assert!((f.iter().find(|x| x.0 == "c").expect("c").1 - 0.25).abs() < 1e-12);
        // Constant lists: min-max gives 1, z-score 0 (no division by zero).
        let flat = l(&[("a", 2.0), ("b", 2.0)]);
        let m = fuse(std::slice::from_ref(&flat), &Fusion::CombSum { norm: Norm::MinMax }, 10).expect("fuse");
        assert!(m.iter().all(|x| x.1 == 1.0));
        let z = fuse(&[flat], &Fusion::CombSum { norm: Norm::ZScore }, 10).expect("fuse");
        assert!(z.iter().all(|x| x.1 == 0.0));
        // CombMNZ multiplies by the number of lists holding the document.
        let mnz = fuse(&[bm25, dense], &Fusion::CombMnz { norm: Norm::TheoreticalMinMax { lower: 0.0 } }, 10)
            .expect("fuse");
        let b = mnz.iter().find(|x| x.0 == "b").expect("b").1;
        assert!((b - 2.0 * (0.5 + 1.0)).abs() < 1e-12);
    }

    #[test]
    fn dbsf_scales_each_list_by_three_sigma() {
        // [1, 2, 3]: mean 2, σ = √(2/3); lo = 2 − 3σ, hi = 2 + 3σ: 1 ↦ 0.5 − 1/(6σ), 3 ↦ 0.5 + 1/(6σ).
        let a = l(&[("a", 3.0), ("b", 2.0), ("c", 1.0)]);
        let b = l(&[("c", 7.0)]);
        let f = fuse(&[a, b], &Fusion::Dbsf, 10).expect("fuse");
        let sd = (2.0f64 / 3.0).sqrt();
        let get = |d: &str| f.iter().find(|x| x.0 == d).expect("present").1;
        assert!((get("a") - (0.5 + 1.0 / (6.0 * sd))).abs() < 1e-12);
        assert!((get("b") - 0.5).abs() < 1e-12);
        assert!((get("c") - (0.5 - 1.0 / (6.0 * sd) + 0.5)).abs() < 1e-12, "a constant list gives 0.5");
        assert_eq!(f[0].0, "c");
        assert!(fuse::<&str>(&[vec![], vec![]], &Fusion::Dbsf, 3).expect("empty").is_empty());
    }

    #[test]
    fn bad_arguments_are_errors() {
        let a = l(&[("a", 1.0)]);
        assert!(fuse(
            std::slice::from_ref(&a),
            &Fusion::Weighted { weights: vec![1.0, 1.0], norm: Norm::None },
            5
        )
        .is_err());
        assert!(fuse(&[l(&[("a", f64::NAN)])], &Fusion::Rrf { k: 60.0 }, 5).is_err());
        assert!(fuse(&[a], &Fusion::Rrf { k: -1.0 }, 5).is_err());
    }
}
