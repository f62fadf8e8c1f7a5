//! Lloyd k-means (Lloyd, "Least squares quantization in PCM", IEEE Trans. Information Theory
//! 28(2), 1982), with faiss's training defaults and empty-cluster splitting (faiss
//! `Clustering.h` / `Clustering.cpp`); shared by the PQ codebooks and by the coarse quantizers of
//! IVF and SPANN.
//!
//! * Training set: subsampled to `k * max_points_per_centroid` rows (seeded) when larger.
//! * Initialisation: `k` distinct training rows drawn at random (seeded), as faiss does.
//! * Iteration: a parallel assignment step (fixed chunks, each point independent), the objective
//!   (sum of squared distances, in f64, summed in point order), then a sequential f64 mean update.
//!   Results depend on the seed only, never on the number of threads.
//! * Empty clusters are re-seeded by splitting the currently largest cluster: its centroid is
//!   copied and both copies are moved by `±eps` (alternating signs per component, `eps` =
//!   1/1024 of the centroid's RMS component), and its count is shared between the two halves.
//! * Spherical k-means renormalises every centroid to unit length after each update.
//! * Iterations stop early when an assignment repeats the previous one (the update would
//!   reproduce the same centroids), so `objective` may be shorter than `niter`.
//!
//! Narrow data (≤ 32 dimensions, the PQ case) is assigned with the dimension-major
//! all-centroids kernel of [`super::subspace`]; wider data with the pairwise `l2_sq` kernel of
//! `quarry_linalg`.

use super::subspace;
use quarry_core::{check_finite, Error, Result};
use quarry_linalg::kernels::PairFn;
use quarry_linalg::Kernels;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;
use std::borrow::Cow;

/// Widths up to this use the dimension-major all-centroids kernel.
const SMALL_DIM: usize = 32;
/// Size of the split perturbation, relative to the RMS component of the split centroid.
const SPLIT_EPS: f32 = 1.0 / 1024.0;
/// Points per parallel assignment task (fixed, so work splitting never changes results).
const CHUNK: usize = 512;

/// Parameters of [`kmeans`]; [`KMeansParams::new`] gives faiss's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KMeansParams {
    /// Number of centroids (≥ 1, at most the number of training points).
    pub k: usize,
    /// Maximum Lloyd iterations (default 25; 0 returns the initial centroids).
    pub niter: usize,
    /// Training points kept per centroid: larger inputs are subsampled to `k * this` rows
    /// (default 256; 0 disables subsampling).
    pub max_points_per_centroid: usize,
    /// Seed of the subsampling and initialisation (default 1234).
    pub seed: u64,
    /// Renormalise centroids to unit length after each update (default false).
    pub spherical: bool,
}

impl KMeansParams {
    /// `k` centroids with the defaults: 25 iterations, 256 points per centroid, seed 1234,
    /// not spherical.
    pub fn new(k: usize) -> Self {
        KMeansParams { k, niter: 25, max_points_per_centroid: 256, seed: 1234, spherical: false }
    }
}

/// A trained k-means model.
#[derive(Debug, Clone, PartialEq)]
pub struct KMeans {
    /// Row-major `k x dim` centroids.
    pub centroids: Vec<f32>,
    /// Dimension of the points and centroids.
    pub dim: usize,
    /// Number of centroids.
    pub k: usize,
    /// Sum of squared distances of the (subsampled) training points to their assigned centroid,
    /// one entry per iteration performed, measured at that iteration's assignment step.
    pub objective: Vec<f64>,
}

impl KMeans {
    /// Centroid `i` (panics if `i >= k`).
    pub fn centroid(&self, i: usize) -> &[f32] {
        &self.centroids[i * self.dim..(i + 1) * self.dim]
    }

    /// Nearest centroid of `x` and its squared L2 distance; ties go to the smaller index.
    ///
    /// # Panics
    /// If `x.len() != dim` (a programming error).
    pub fn assign(&self, x: &[f32]) -> (usize, f32) {
        assert_eq!(x.len(), self.dim, "KMeans::assign: wrong dimension");
        let mut best = (0usize, f32::INFINITY);
        if self.dim <= SMALL_DIM {
            // Same operation order as the all-centroids kernel used during training.
            for (c, row) in self.centroids.chunks_exact(self.dim).enumerate() {
                let mut s = 0.0f32;
                for (&a, &b) in x.iter().zip(row) {
                    let d = a - b;
                    s += d * d;
                }
                if s < best.1 {
                    best = (c, s);
                }
            }
        } else {
            let l2 = Kernels::get().l2_sq;
            for (c, row) in self.centroids.chunks_exact(self.dim).enumerate() {
                let s = l2(x, row);
                if s < best.1 {
                    best = (c, s);
                }
            }
        }
        best
    }

    /// Nearest centroid and squared distance of every row of `data` (row-major, `dim` wide),
    /// computed in parallel.
    pub fn assign_all(&self, data: &[f32]) -> Result<Vec<(usize, f32)>> {
        if !data.len().is_multiple_of(self.dim) {
            return Err(Error::InvalidArgument(format!(
                "{} values do not split into rows of dimension {}",
                data.len(),
                self.dim
            )));
        }
        let n = data.len() / self.dim;
        let mut labels = vec![0u32; n];
        let mut dists = vec![0.0f32; n];
        Assigner::new(&self.centroids, self.dim, self.k).run(data, &mut labels, &mut dists);
        Ok(labels.into_iter().map(|l| l as usize).zip(dists).collect())
    }
}

/// Runs Lloyd k-means on the row-major `data` (`n x dim`). See the module docs for the
/// algorithm.
///
/// Errors (`InvalidArgument`) if `dim == 0`, the length is not a multiple of `dim`, `k == 0`,
/// `k` exceeds the number of points (no clamping: ask for fewer centroids), `k` does not fit in
/// 32 bits, or a value is not finite.
pub fn kmeans(data: &[f32], dim: usize, params: &KMeansParams) -> Result<KMeans> {
    let k = params.k;
    if dim == 0 {
        return Err(Error::InvalidArgument("k-means: dimension must be at least 1".into()));
    }
    if !data.len().is_multiple_of(dim) {
        return Err(Error::InvalidArgument(format!(
            "k-means: {} values do not split into rows of dimension {dim}",
            data.len()
        )));
    }
    let n = data.len() / dim;
    if k == 0 {
        return Err(Error::InvalidArgument("k-means: k must be at least 1".into()));
    }
    if k > n {
        return Err(Error::InvalidArgument(format!(
            "k-means: k = {k} centroids need at least {k} training points, got {n}"
        )));
    }
    if u32::try_from(k).is_err() || u32::try_from(n).is_err() {
        return Err(Error::InvalidArgument(format!("k-means: k = {k} and n = {n} must fit in 32 bits")));
    }
    for (i, row) in data.chunks_exact(dim).enumerate() {
        check_finite(row, || format!("k-means training point {i}"))?;
    }

    let mut rng = SmallRng::seed_from_u64(params.seed);
    let limit = match params.max_points_per_centroid {
        0 => n,
        p => k.saturating_mul(p),
    };
    let sample: Cow<'_, [f32]> = if n > limit {
        let mut idx = sample_indices(&mut rng, n, limit);
        idx.sort_unstable(); // memory order: better locality, same set
        Cow::Owned(gather(data, dim, &idx))
    } else {
        Cow::Borrowed(data)
    };
    let n = sample.len() / dim;

    let init = sample_indices(&mut rng, n, k);
    let mut centroids = gather(&sample, dim, &init);
    if params.spherical {
        normalize_rows(&mut centroids, dim);
    }

    let mut labels = vec![0u32; n];
    let mut prev = vec![u32::MAX; n];
    let mut dists = vec![0.0f32; n];
    let mut objective = Vec::with_capacity(params.niter);
    for _ in 0..params.niter {
        Assigner::new(&centroids, dim, k).run(&sample, &mut labels, &mut dists);
        objective.push(dists.iter().map(|&d| d as f64).sum());
        if labels == prev {
            break;
        }
        update(&sample, dim, k, &labels, &mut centroids);
        if params.spherical {
            normalize_rows(&mut centroids, dim);
        }
        std::mem::swap(&mut labels, &mut prev);
    }
    Ok(KMeans { centroids, dim, k, objective })
}

/// Nearest-centroid search over one fixed set of centroids.
struct Assigner<'a> {
    centroids: &'a [f32],
    /// Dimension-major copy for narrow data.
    transposed: Option<Vec<f32>>,
    dim: usize,
    k: usize,
    l2: PairFn,
}

impl<'a> Assigner<'a> {
    fn new(centroids: &'a [f32], dim: usize, k: usize) -> Self {
        let transposed = (dim <= SMALL_DIM).then(|| subspace::transpose(centroids, k, dim));
        Assigner { centroids, transposed, dim, k, l2: Kernels::get().l2_sq }
    }

    /// Labels and squared distances of every row of `data`, in parallel over fixed chunks.
    fn run(&self, data: &[f32], labels: &mut [u32], dists: &mut [f32]) {
        let dim = self.dim;
        data.par_chunks(CHUNK * dim)
            .zip(labels.par_chunks_mut(CHUNK))
            .zip(dists.par_chunks_mut(CHUNK))
            .for_each(|((xs, ls), ds)| {
                for ((x, l), d) in xs.chunks_exact(dim).zip(ls.iter_mut()).zip(ds.iter_mut()) {
                    let (c, dist) = self.nearest(x);
                    *l = c as u32;
                    *d = dist;
                }
            });
    }

    #[inline]
    fn nearest(&self, x: &[f32]) -> (usize, f32) {
        match &self.transposed {
            Some(ct) => subspace::l2_argmin(x, ct, self.k),
            None => {
                let mut best = (0usize, f32::INFINITY);
                for (c, row) in self.centroids.chunks_exact(self.dim).enumerate() {
                    let s = (self.l2)(x, row);
                    if s < best.1 {
                        best = (c, s);
                    }
                }
                best
            }
        }
    }
}

/// Recomputes the means of the assigned points (f64 sums in point order), then re-seeds empty
/// clusters by splitting the largest one.
fn update(data: &[f32], dim: usize, k: usize, labels: &[u32], centroids: &mut [f32]) {
    let mut sums = vec![0.0f64; k * dim];
    let mut counts = vec![0usize; k];
    for (x, &l) in data.chunks_exact(dim).zip(labels) {
        let l = l as usize;
        counts[l] += 1;
        for (s, &v) in sums[l * dim..(l + 1) * dim].iter_mut().zip(x) {
            *s += v as f64;
        }
    }
    for (c, &count) in counts.iter().enumerate() {
        if count > 0 {
            let inv = 1.0 / count as f64;
            for (o, &s) in centroids[c * dim..(c + 1) * dim].iter_mut().zip(&sums[c * dim..]) {
                *o = (s * inv) as f32;
            }
        }
    }
    for empty in 0..k {
        if counts[empty] != 0 {
            continue;
        }
        // n >= k and counts sum to n, so while a cluster is empty another holds >= 2 points.
        let mut big = 0;
        for (c, &count) in counts.iter().enumerate() {
            if count > counts[big] {
                big = c;
            }
        }
        let base: Vec<f32> = centroids[big * dim..(big + 1) * dim].to_vec();
        let rms = (base.iter().map(|&v| v as f64 * v as f64).sum::<f64>() / dim as f64).sqrt();
        let eps = if rms > 0.0 && rms.is_finite() { SPLIT_EPS * rms as f32 } else { SPLIT_EPS };
        for (j, &b) in base.iter().enumerate() {
            let delta = if j % 2 == 0 { eps } else { -eps };
            centroids[empty * dim + j] = b + delta;
            centroids[big * dim + j] = b - delta;
        }
        counts[empty] = counts[big] / 2;
        counts[big] -= counts[empty];
    }
}

/// `count` distinct indices below `n`, drawn by a seeded partial Fisher–Yates shuffle.
pub(crate) fn sample_indices(rng: &mut SmallRng, n: usize, count: usize) -> Vec<u32> {
    let count = count.min(n);
    let mut idx: Vec<u32> = (0..n as u32).collect();
    for i in 0..count {
        let j = rng.random_range(i..n);
        idx.swap(i, j);
    }
    idx.truncate(count);
    idx
}

/// The rows `idx` of a row-major matrix, in that order.
pub(crate) fn gather(data: &[f32], dim: usize, idx: &[u32]) -> Vec<f32> {
    let mut out = Vec::with_capacity(idx.len() * dim);
    for &i in idx {
        let i = i as usize;
        out.extend_from_slice(&data[i * dim..(i + 1) * dim]);
    }
    out
}

fn normalize_rows(rows: &mut [f32], dim: usize) {
    for r in rows.chunks_exact_mut(dim) {
        // A zero centroid has no direction; leave it as is.
        let _ = quarry_linalg::kernels::normalize(r);
    }
}
