//! Hierarchical balanced k-means choosing the SPANN heads (Chen et al., "SPANN: Highly-efficient
//! Billion-scale Approximate Nearest Neighbor Search", NeurIPS 2021, Sec. 3: balanced clustering
//! to limit posting length, each list represented by a real vector near its centroid).
//!
//! The tree follows SPTAG's balanced k-means tree (BKT) with one addition, a **leaf budget**:
//!
//! * Every node carries a budget `L` (how many leaves it must become) and holds at least `L` and
//!   at most `L * max_leaf` points. The root gets `L = ceil(n / max_cluster)`
//!   ([`balanced_clusters`]) or `L = min(head_count, n)` ([`choose_heads`]). A node with `L = 1`
//!   is a leaf, so the output has **exactly `L` clusters**, each of at most `max_leaf` points.
//! * A node with `L ≥ 2` splits into `k = min(params.k, L)` children: balanced k-means on a
//!   seeded sample of `params.sample` node points (cost `dist + lambda * count`, SPTAG's
//!   assignment rule, with running counts: see `cluster/split.rs`), then one pass over all node points
//!   computing their nearest centroids.
//! * The budget is shared among the children in proportion to their natural (nearest-centroid)
//!   sizes, every used child getting at least 1; child `j` may then hold at most
//!   `ceil(m * L_j / L)` points. A greedy capacitated assignment (all (point, candidate centroid)
//!   pairs by ascending distance, the 8 nearest centroids per point, then the nearest centroid with
//!   room) enforces these capacities. The budget is finally re-shared among the children by their
//!   actual sizes (at least `ceil(size / max_leaf)`, at most `size`). Capacities keep every child
//!   strictly smaller than its parent, so the recursion always ends, even on identical vectors.
//! * `lambda = factor * mean_nearest_distance * k / sample_size`: at the average cluster size the
//!   penalty is `factor` times the mean squared distance to the nearest centroid, which makes the
//!   factor scale-free (SPTAG's `lambdaFactor` instead depends on the value range). `None`
//!   selects the factor as SPTAG does (`BKTLambdaFactor = -1`): at the root, each factor of a grid
//!   trains on the root sample, and the one whose plain nearest-centroid sizes have the lowest
//!   coefficient of variation is used for every node.
//!
//! Distances are squared L2 for every metric. Under cosine the vectors are unit length, so L2
//! order equals cosine order; for raw inner product squared L2 is the usual clustering choice
//! (as in SPTAG and faiss' IVF). Centroids are plain means (not renormalised); each cluster's head
//! is the member nearest its centroid (ties to the smaller id), a real vector.
//!
//! Sizes: every cluster is non-empty and at most `max_leaf`; most are within a point or two of
//! `n / L`, but capacities are upper bounds, so a few can be much smaller (108k x 384-d into 5,000
//! heads: sizes 1..22, mean 21.6, coefficient of variation 0.035).
//!
//! Cost: per tree level one nearest-centroid pass over all points (`n * k * dim`, parallel over
//! fixed chunks of points) plus k-means on at most `sample` points per node; subtrees are built in
//! parallel. 108k x 384-d into 5,000-20,000 heads takes about 1 s on 2 threads (release).
//!
//! Results depend on the seed only, never on the thread count: every node has its own seed
//! derived from its parent's, work is split into fixed chunks, and every sort is by a total order.

use crate::hnsw::splitmix;
use quarry_core::{check_finite, Error, Metric, Result};
use quarry_linalg::Kernels;
use rayon::prelude::*;
use std::borrow::Cow;

mod split;
#[cfg(test)]
mod tests;

/// The vector of an id, borrowed or decoded. Must return the same `dim` values on every call.
pub(crate) type Rows<'a> = dyn Fn(u32) -> Cow<'a, [f32]> + Sync + 'a;

/// Parameters of [`balanced_clusters`] and [`choose_heads`].
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ClusterParams {
    /// Children per split (SPTAG's `BKTKmeansK`, default 32; at least 2).
    pub k: usize,
    /// Largest cluster [`balanced_clusters`] may return (default 8, SPTAG's `BKTLeafSize`);
    /// [`choose_heads`] overrides it.
    pub max_cluster: usize,
    /// Points the k-means of a node trains on (default 1000, SPTAG's `SamplesNumber`).
    pub sample: usize,
    /// Lloyd iterations per node (default 10; 0 keeps the random initial centroids).
    pub iters: usize,
    /// Seed of every sample and initialisation.
    pub seed: u64,
    /// Balance factor (see the module docs); `Some(0.0)` is plain k-means at every node,
    /// `None` (default) chooses it at the root by the lowest spread of cluster sizes.
    pub lambda_factor: Option<f32>,
}

impl Default for ClusterParams {
    fn default() -> Self {
        ClusterParams {
            k: 32,
            max_cluster: 8,
            sample: 1000,
            iters: 10,
            seed: 0x5A4E_0001,
            lambda_factor: None,
        }
    }
}

/// One cluster: its members, their mean and the head (the member nearest the mean).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Cluster {
    /// Mean of the members' vectors.
    pub centroid: Vec<f32>,
    /// Member ids, ascending.
    pub members: Vec<u32>,
    /// The member nearest the centroid (squared L2, ties to the smaller id): a real vector.
    pub head: u32,
}

/// Partitions `ids` into exactly `ceil(ids.len() / params.max_cluster)` non-empty clusters of at
/// most `params.max_cluster` members each, in depth-first tree order (see the module docs).
///
/// `metric` does not change the clustering (squared L2 throughout). No ids give no clusters.
/// Errors (`InvalidArgument`) on bad parameters, `dim == 0`, duplicate ids, a vector whose length
/// is not `dim`, or a non-finite component (`NonFinite`).
pub(crate) fn balanced_clusters(
    rows: &Rows<'_>,
    ids: &[u32],
    dim: usize,
    metric: Metric,
    params: &ClusterParams,
) -> Result<Vec<Cluster>> {
    let _ = metric; // squared L2 for every metric: see the module docs
    if params.max_cluster == 0 {
        return Err(Error::InvalidArgument("SPANN clustering: max_cluster must be at least 1".into()));
    }
    let budget = ids.len().div_ceil(params.max_cluster);
    build(rows, ids, dim, params, budget, params.max_cluster)
}

/// Chooses `min(head_count, n)` heads among the ids `0..n`: exactly that many clusters, each of at
/// most `ceil(n / head_count)` members (`params.max_cluster` is ignored). `head_count ≥ n` gives
/// `n` singletons; `n == 0` gives none.
///
/// Errors as [`balanced_clusters`], and when `head_count == 0` (with `n > 0`) or `n` exceeds
/// `u32::MAX`.
pub(crate) fn choose_heads(
    rows: &Rows<'_>,
    n: usize,
    dim: usize,
    metric: Metric,
    head_count: usize,
    params: &ClusterParams,
) -> Result<Vec<Cluster>> {
    let _ = metric;
    if n == 0 {
        return Ok(Vec::new());
    }
    if head_count == 0 {
        return Err(Error::InvalidArgument("SPANN heads: head_count must be at least 1".into()));
    }
    let Ok(n32) = u32::try_from(n) else {
        return Err(Error::InvalidArgument(format!("SPANN heads: {n} vectors exceed 32-bit ids")));
    };
    let ids: Vec<u32> = (0..n32).collect();
    let budget = head_count.min(n);
    build(rows, &ids, dim, params, budget, n.div_ceil(budget))
}

/// The recursion's shared, read-only state.
struct Tree<'r, 'a> {
    rows: &'r Rows<'a>,
    dim: usize,
    params: &'r ClusterParams,
    /// Largest leaf allowed; every node holds at most `budget * max_leaf` points.
    max_leaf: usize,
    /// The balance factor in use (chosen or given).
    factor: f32,
}

/// Validates, picks the balance factor, grows the tree and turns its leaves into clusters.
fn build(
    rows: &Rows<'_>,
    ids: &[u32],
    dim: usize,
    params: &ClusterParams,
    budget: usize,
    max_leaf: usize,
) -> Result<Vec<Cluster>> {
    validate(rows, ids, dim, params)?;
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut tree = Tree { rows, dim, params, max_leaf, factor: params.lambda_factor.unwrap_or(0.0) };
    if params.lambda_factor.is_none() && budget >= 2 {
        tree.factor = tree.auto_factor(ids, params.k.min(budget));
    }
    let leaves = tree.grow(ids.to_vec(), budget, params.seed);
    Ok(leaves.into_par_iter().map(|members| tree.cluster(members)).collect())
}

fn validate(rows: &Rows<'_>, ids: &[u32], dim: usize, params: &ClusterParams) -> Result<()> {
    let bad = |msg: String| Err(Error::InvalidArgument(format!("SPANN clustering: {msg}")));
    if dim == 0 {
        return bad("dimension must be at least 1".into());
    }
    if params.k < 2 || u32::try_from(params.k).is_err() {
        return bad(format!("k = {} children per split must be in 2..2^32", params.k));
    }
    if params.sample == 0 {
        return bad("sample must be at least 1".into());
    }
    if let Some(f) = params.lambda_factor {
        if !(f.is_finite() && f >= 0.0) {
            return bad(format!("lambda_factor {f} must be finite and non-negative"));
        }
    }
    let mut sorted = ids.to_vec();
    sorted.sort_unstable();
    if let Some(w) = sorted.windows(2).find(|w| w[0] == w[1]) {
        return bad(format!("id {} appears more than once", w[0]));
    }
    for &id in ids {
        let v = rows(id);
        if v.len() != dim {
            return bad(format!("vector {id} has {} components, expected {dim}", v.len()));
        }
        check_finite(&v, || format!("SPANN clustering vector {id}"))?;
    }
    Ok(())
}

impl Tree<'_, '_> {
    /// The leaves (member lists) of the subtree of `ids` with `budget` leaves, depth-first.
    fn grow(&self, ids: Vec<u32>, budget: usize, seed: u64) -> Vec<Vec<u32>> {
        if budget <= 1 || ids.len() <= 1 {
            return vec![ids];
        }
        let children = self.split(&ids, budget, seed);
        drop(ids);
        let subtrees: Vec<Vec<Vec<u32>>> = children
            .into_par_iter()
            .enumerate()
            .map(|(j, (members, b))| self.grow(members, b, child_seed(seed, j)))
            .collect();
        subtrees.into_iter().flatten().collect()
    }

    /// Sorts the members, averages them (f64) and picks the head.
    fn cluster(&self, mut members: Vec<u32>) -> Cluster {
        members.sort_unstable();
        let mut sum = vec![0.0f64; self.dim];
        for &id in &members {
            for (s, &v) in sum.iter_mut().zip((self.rows)(id).iter()) {
                *s += v as f64;
            }
        }
        let inv = 1.0 / members.len().max(1) as f64;
        let centroid: Vec<f32> = sum.iter().map(|&s| (s * inv) as f32).collect();
        let l2 = Kernels::get().l2_sq;
        let mut head = (members.first().copied().unwrap_or(0), f32::INFINITY);
        for &id in &members {
            let d = l2(&(self.rows)(id), &centroid);
            if d < head.1 {
                head = (id, d);
            }
        }
        Cluster { centroid, members, head: head.0 }
    }
}

/// Seed of child `j` of a node seeded `seed`.
fn child_seed(seed: u64, j: usize) -> u64 {
    let mut s = seed ^ (j as u64 + 1).wrapping_mul(0xD1B5_4A32_D192_ED03);
    splitmix(&mut s)
}
