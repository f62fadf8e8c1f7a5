//! Insertion order of a bulk build, and the pointwise local intrinsic dimensionality (LID) that can
//! choose it (Elliott & Clark, "The Impacts of Data, Ordering, and Intrinsic Dimensionality on
//! Recall in Hierarchical Navigable Small Worlds", arXiv 2405.17813, 2024).
//!
//! The LID of a point is the maximum-likelihood estimate of Levina & Bickel ("Maximum Likelihood
//! Estimation of Intrinsic Dimension", NIPS 2004) in the form of Amsaleg et al. ("Estimating Local
//! Intrinsic Dimensionality", KDD 2015), from the Euclidean distances to its k nearest neighbours.
//! For a whole corpus the neighbours come from a pilot HNSW graph (inserted as given, searched with
//! ef = 2k), not from an exact scan: exact k-NN of every point is quadratic (108k × 108k × 384 for
//! the dev set) while the pilot costs about one more build. [`HnswIndex::point_lids`] gives the
//! estimates of an index's own points.

use super::builder::HnswIndex;
use super::params::HnswParams;
use super::search::{Cand, Walk};
use quarry_core::{Error, Matrix, Metric, Result};
use quarry_linalg::Kernels;
use rayon::prelude::*;
use std::fmt;
use std::str::FromStr;

/// Neighbours per point for the LID estimates a bulk build orders by. 20 keeps the pilot's k-NN
/// pass cheap, and only the ranking of points matters.
pub const LID_K: usize = 20;

/// The order in which a bulk build inserts the rows. Internal ids stay the row numbers whatever
/// the order; only the sequence of insertions changes (and with it the graph).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InsertionOrder {
    /// Row 0 first, then row 1, … (the caller's order).
    #[default]
    AsGiven,
    /// A seeded shuffle of the rows (the seed is the build's).
    Random,
    /// Lowest estimated LID first ("easy" points first).
    LidAscending,
    /// Highest estimated LID first ("hard" points first).
    LidDescending,
}

impl InsertionOrder {
    /// Every order, in the order the benchmark reports them.
    pub const ALL: [InsertionOrder; 4] = [
        InsertionOrder::AsGiven,
        InsertionOrder::Random,
        InsertionOrder::LidAscending,
        InsertionOrder::LidDescending,
    ];

    /// The name used on the command line: `as_given`, `random`, `lid_asc` or `lid_desc`.
    pub fn name(self) -> &'static str {
        match self {
            InsertionOrder::AsGiven => "as_given",
            InsertionOrder::Random => "random",
            InsertionOrder::LidAscending => "lid_asc",
            InsertionOrder::LidDescending => "lid_desc",
        }
    }

    /// Whether the order needs a LID estimate per row.
    pub fn needs_lid(self) -> bool {
        matches!(self, InsertionOrder::LidAscending | InsertionOrder::LidDescending)
    }

    /// The rows `0..n` in insertion order.
    ///
    /// `seed` drives [`InsertionOrder::Random`]; `lid` (one estimate per row, NaN where
    /// undefined) is required by the LID orders, which sort by it with ties broken by row number;
    /// rows without an estimate go last in both directions.
    pub fn permutation(self, n: usize, seed: u64, lid: Option<&[f64]>) -> Result<Vec<u32>> {
        if n > u32::MAX as usize {
            return Err(Error::InvalidArgument(format!("{n} rows do not fit 32-bit ids")));
        }
        let mut order: Vec<u32> = (0..n as u32).collect();
        match self {
            InsertionOrder::AsGiven => {}
            InsertionOrder::Random => {
                // Fisher–Yates on its own SplitMix64 stream (not the level sampler's).
                let mut state = seed ^ 0x6A09_E667_F3BC_C909;
                for i in (1..n).rev() {
                    let j = (super::builder::splitmix(&mut state) % (i as u64 + 1)) as usize;
                    order.swap(i, j);
                }
            }
            InsertionOrder::LidAscending | InsertionOrder::LidDescending => {
                let lid = lid.ok_or_else(|| {
                    Error::InvalidArgument(format!("insertion order {self} needs a LID per row"))
                })?;
                if lid.len() != n {
                    return Err(Error::InvalidArgument(format!(
                        "insertion order {self}: {} LID values for {n} rows",
                        lid.len()
                    )));
                }
                let descending = self == InsertionOrder::LidDescending;
                order.sort_by(|&a, &b| {
                    let (x, y) = (lid[a as usize], lid[b as usize]);
                    let by_lid = match (x.is_nan(), y.is_nan()) {
                        (false, false) if descending => y.total_cmp(&x),
                        (false, false) => x.total_cmp(&y),
                        (nx, ny) => nx.cmp(&ny),
                    };
                    by_lid.then(a.cmp(&b))
                });
            }
        }
        Ok(order)
    }
}

impl fmt::Display for InsertionOrder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for InsertionOrder {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        InsertionOrder::ALL.into_iter().find(|o| o.name() == s).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "unknown insertion order {s:?}: expected as_given, random, lid_asc or lid_desc"
            ))
        })
    }
}

/// The maximum-likelihood LID estimate from the **non-squared** Euclidean distances of a point
/// to its nearest neighbours (any order; the point itself excluded):
/// `LID = -m / Σ_i ln(r_i / r_max)` over the `m` positive distances.
///
/// Zero distances (duplicates of the point) are skipped, as are non-finite ones. The divisor is
/// the count `m` (Amsaleg et al., KDD 2015), although the term of `r_max` itself
/// is 0; dividing by `m - 1` instead (Levina–Bickel's form) would scale every estimate by
/// `(m - 1) / m` and leave the ranking of points with as many neighbours unchanged. With k = 50
/// the `m` divisor over-estimates by about `k / (k - 2)` ≈ 4% on uniform data, the `m - 1` divisor
/// by about 2%. Squared distances would halve the estimate.
///
/// `None` when it is undefined: fewer than two positive distances, or all of them equal.
pub fn lid_mle(distances: &[f32]) -> Option<f64> {
    let positive = || distances.iter().map(|&d| d as f64).filter(|d| d.is_finite() && *d > 0.0);
    let r_max = positive().fold(0.0f64, f64::max);
    let m = positive().count();
    if m < 2 {
        return None;
    }
    let sum: f64 = positive().map(|r| (r / r_max).ln()).sum();
    (sum < 0.0).then(|| -(m as f64) / sum)
}

impl HnswIndex {
    /// The LID estimate of every stored point (NaN where undefined, see [`lid_mle`]), from the
    /// Euclidean distances to its `k` nearest other points as found by this graph with beam
    /// width `ef` (at least `k + 1`; about `2k` is plenty). The neighbours are ranked by the
    /// index's metric, so for inner product on vectors of unequal norms they are not the
    /// Euclidean ones — build the index with [`Metric::L2`] for that case (as
    /// [`corpus_lid`] does). Deleted points are included. Runs on the current rayon pool.
    pub fn point_lids(&self, k: usize, ef: usize) -> Vec<f64> {
        let n = self.graph.len();
        let Some(entry) = self.entry() else { return vec![f64::NAN; n] };
        let kern = Kernels::get();
        let ef = ef.max(k + 1);
        (0..n as u32)
            .into_par_iter()
            .with_min_len(64)
            .map(|id| {
                let q = self.flat.row_query(id as usize);
                let walk = Walk::exact(self, kern, &q, false);
                let mut cur = Cand { d: walk.key(entry.id), id: entry.id };
                for l in (1..=entry.level).rev() {
                    cur = walk.greedy(cur, l);
                }
                let dist: Vec<f32> = walk
                    .layer(&[cur], ef, 0)
                    .into_iter()
                    .filter(|c| c.id != id)
                    .take(k)
                    .map(|c| (kern.l2_sq)(&q, &self.flat.row_query(c.id as usize)).max(0.0).sqrt())
                    .collect();
                lid_mle(&dist).unwrap_or(f64::NAN)
            })
            .collect()
    }
}

/// LID estimates (k neighbours, NaN where undefined) of every row of `vectors`, for ordering a
/// build with `metric` and `params`: a pilot graph is built with the same `m`, `ef_construction`
/// capped at 100 and the rows inserted as given, then each row's k-NN is searched with ef = 2k.
/// The pilot ranks by Euclidean distance (cosine: between the normalised rows), so inner-product
/// data of unequal norms gets Euclidean neighbours too. Runs on the current rayon pool.
pub fn corpus_lid(vectors: &Matrix, metric: Metric, params: &HnswParams, k: usize) -> Result<Vec<f64>> {
    if k < 2 {
        return Err(Error::InvalidArgument(format!("LID needs at least 2 neighbours, got k = {k}")));
    }
    let pilot_metric = match metric {
        Metric::InnerProduct => Metric::L2,
        other => other,
    };
    let pilot_params = HnswParams {
        ef_construction: params.ef_construction.min(100),
        insertion_order: InsertionOrder::AsGiven,
        // The LID pass walks the rows (`point_lids`): no codes to train.
        walk_codes: false,
        ..*params
    };
    let pilot = HnswIndex::build(vectors, pilot_metric, pilot_params)?;
    Ok(pilot.point_lids(k, 2 * k))
}
