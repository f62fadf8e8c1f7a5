//! One split of the balanced k-means tree: penalised k-means on a sample, nearest centroids of
//! every node point, the leaf-budget shares and the greedy capacitated assignment (see the
//! module docs of [`super`]); plus the root-level choice of the balance factor.

use super::Tree;
use crate::hnsw::splitmix;
use quarry_linalg::Kernels;
use rayon::prelude::*;

/// Nearest centroids kept per point for the capacitated assignment.
const CANDIDATES: usize = 8;
/// Points per parallel task (fixed, so the work split never changes results).
const CHUNK: usize = 256;
/// Balance factors tried when none is given, ascending (0 = plain k-means).
pub(super) const FACTOR_GRID: [f32; 7] = [0.0, 1.0 / 256.0, 1.0 / 64.0, 1.0 / 16.0, 0.25, 1.0, 4.0];

impl Tree<'_, '_> {
    /// Splits a node of `ids.len() >= budget >= 2` points into non-empty children with their leaf
    /// budgets (summing to `budget`; each child holds at most `budget_j * max_leaf` and at least
    /// `budget_j` points, and fewer points than the node).
    pub(super) fn split(&self, ids: &[u32], budget: usize, seed: u64) -> Vec<(Vec<u32>, usize)> {
        let m = ids.len();
        let k = self.params.k.min(budget);
        let mut state = seed;
        let sample = self.sample(ids, k, &mut state);
        let centroids = balanced_kmeans(&sample, self.dim, k, self.params.iters, self.factor, &mut state);
        let p = k.min(CANDIDATES);
        let cand = self.candidates(ids, &centroids, k, p);

        // Budget shares by natural size; centroids nobody is nearest to get none, unless all
        // points share one nearest centroid (identical vectors): then every child gets one.
        let mut natural = vec![0usize; k];
        for c in cand.chunks_exact(p) {
            natural[c[0].1 as usize] += 1;
        }
        let forced = natural.iter().filter(|&&c| c > 0).count() < 2;
        let lower: Vec<usize> = natural.iter().map(|&c| usize::from(forced || c > 0)).collect();
        let upper: Vec<usize> = lower.iter().map(|&l| if l > 0 { usize::MAX } else { 0 }).collect();
        let shares = allocate(budget, &natural, &lower, &upper);
        let cap: Vec<usize> = shares.iter().map(|&l| ceil_ratio(m, l, budget)).collect();

        let labels = self.assign(ids, &cand, p, &centroids, &cap);
        let mut members = vec![Vec::new(); k];
        for (&id, &l) in ids.iter().zip(&labels) {
            members[l as usize].push(id);
        }
        let sizes: Vec<usize> = members.iter().map(Vec::len).collect();
        let lower: Vec<usize> = sizes.iter().map(|&s| s.div_ceil(self.max_leaf)).collect();
        let shares = allocate(budget, &sizes, &lower, &sizes);
        members.into_iter().zip(shares).filter(|(c, _)| !c.is_empty()).collect()
    }

    /// A seeded sample of `max(params.sample, k)` node points (all of them if fewer), row-major.
    fn sample(&self, ids: &[u32], k: usize, state: &mut u64) -> Vec<f32> {
        let count = self.params.sample.max(k).min(ids.len());
        let pos = sample_positions(state, ids.len(), count);
        let mut out = Vec::with_capacity(count * self.dim);
        for i in pos {
            out.extend_from_slice(&(self.rows)(ids[i]));
        }
        out
    }

    /// The `p` nearest centroids of every point as `(squared distance, centroid)`, ascending,
    /// ties to the smaller centroid; `ids.len() * p` entries.
    fn candidates(&self, ids: &[u32], centroids: &[f32], k: usize, p: usize) -> Vec<(f32, u32)> {
        let l2_many = Kernels::get().l2_many;
        let mut out = vec![(0.0f32, 0u32); ids.len() * p];
        out.par_chunks_mut(CHUNK * p).zip(ids.par_chunks(CHUNK)).for_each(|(out, ids)| {
            let mut d = vec![0.0f32; k];
            for (o, &id) in out.chunks_exact_mut(p).zip(ids) {
                l2_many(&(self.rows)(id), centroids, &mut d);
                nearest(&d, o);
            }
        });
        out
    }

    /// Greedy capacitated assignment: (point, candidate) pairs by ascending distance, each taken
    /// if the point is free and the centroid has room; points left over (all candidates full) go
    /// to the nearest centroid with room, in point order. Requires `sum(cap) >= ids.len()`.
    fn assign(
        &self,
        ids: &[u32],
        cand: &[(f32, u32)],
        p: usize,
        centroids: &[f32],
        cap: &[usize],
    ) -> Vec<u32> {
        let mut pairs: Vec<(u32, u32, u32)> = cand
            .iter()
            .enumerate()
            .filter(|(_, &(_, j))| cap[j as usize] > 0)
            // Non-negative floats order like their bits; NaN (never produced) sorts first.
            .map(|(t, &(d, j))| (if d > 0.0 { d.to_bits() } else { 0 }, (t / p) as u32, j))
            .collect();
        pairs.par_sort_unstable();
        let mut room = cap.to_vec();
        let mut labels = vec![u32::MAX; ids.len()];
        for (_, i, j) in pairs {
            let (i, j) = (i as usize, j as usize);
            if labels[i] == u32::MAX && room[j] > 0 {
                labels[i] = j as u32;
                room[j] -= 1;
            }
        }
        let l2 = Kernels::get().l2_sq;
        for (i, label) in labels.iter_mut().enumerate() {
            if *label != u32::MAX {
                continue;
            }
            let x = (self.rows)(ids[i]);
            let mut best = (usize::MAX, f32::INFINITY);
            for (j, c) in centroids.chunks_exact(self.dim).enumerate() {
                if room[j] > 0 {
                    let d = l2(&x, c);
                    if best.0 == usize::MAX || d < best.1 {
                        best = (j, d);
                    }
                }
            }
            // sum(cap) >= points, so some centroid has room; fall back to 0 defensively.
            let j = if best.0 == usize::MAX { 0 } else { best.0 };
            room[j] = room[j].saturating_sub(1);
            *label = j as u32;
        }
        labels
    }

    /// The balance factor with the lowest spread of plain nearest-centroid sizes on the root
    /// sample (SPTAG's `DynamicFactorSelect`), ties to the smaller factor.
    pub(super) fn auto_factor(&self, ids: &[u32], k: usize) -> f32 {
        let mut state = self.params.seed ^ 0xFAC7_0000;
        let sample = self.sample(ids, k, &mut state);
        let mut best = (FACTOR_GRID[0], f64::INFINITY);
        for f in FACTOR_GRID {
            let mut st = state;
            let centroids = balanced_kmeans(&sample, self.dim, k, self.params.iters, f, &mut st);
            let cv = size_cv(&plain_counts(&sample, self.dim, &centroids, k));
            if cv < best.1 {
                best = (f, cv);
            }
        }
        best.0
    }
}

/// Lloyd k-means with a balance penalty on a row-major sample of `s >= k` points. Each iteration
/// visits the points in a seeded random order and assigns each by
/// `dist + lambda * count_j * s / seen`: the cluster's running count in this pass projected to
/// the whole sample, with `lambda = factor * mean_nearest_distance * k / s`. (SPTAG penalises by
/// the previous iteration's counts; with penalties strong enough to matter that oscillates:
/// measured on clustered data, factor 0.25 raised the size spread from 0.32 to 0.48.) Then f64
/// means in sample order; an empty cluster is re-seeded with the point of the largest cluster
/// farthest from its centroid. Stops when an assignment repeats. Returns `k x dim` centroids.
pub(super) fn balanced_kmeans(
    sample: &[f32],
    dim: usize,
    k: usize,
    iters: usize,
    factor: f32,
    state: &mut u64,
) -> Vec<f32> {
    let s = sample.len() / dim;
    let l2_many = Kernels::get().l2_many;
    let mut centroids = Vec::with_capacity(k * dim);
    for i in sample_positions(state, s, k) {
        centroids.extend_from_slice(&sample[i * dim..(i + 1) * dim]);
    }
    let mut dist = vec![0.0f32; s * k];
    let mut labels = vec![usize::MAX; s];
    // Points are assigned in a seeded random order: the running counts must not follow the
    // input order.
    let mut order: Vec<usize> = (0..s).collect();
    for i in (1..s).rev() {
        order.swap(i, (splitmix(state) % (i as u64 + 1)) as usize);
    }
    for _ in 0..iters {
        for (x, d) in sample.chunks_exact(dim).zip(dist.chunks_exact_mut(k)) {
            l2_many(x, &centroids, d);
        }
        let mean_nearest =
            dist.chunks_exact(k).map(|d| d.iter().fold(f32::INFINITY, |a, &b| a.min(b)) as f64).sum::<f64>()
                / s as f64;
        let lambda = (factor as f64 * mean_nearest * k as f64 / s as f64) as f32;
        let lambda = if lambda.is_finite() { lambda } else { 0.0 };
        let mut next = vec![0usize; k];
        let mut changed = false;
        for (seen, &i) in order.iter().enumerate() {
            let d = &dist[i * k..(i + 1) * k];
            // Running counts of this pass, projected to the whole sample.
            let scale = lambda * s as f32 / (seen + 1) as f32;
            let mut best = (0usize, f32::INFINITY);
            for (j, (&dj, &cj)) in d.iter().zip(&next).enumerate() {
                let cost = dj + scale * cj as f32;
                if cost < best.1 {
                    best = (j, cost);
                }
            }
            changed |= labels[i] != best.0;
            labels[i] = best.0;
            next[best.0] += 1;
        }
        let mut counts = next;
        if !changed {
            break;
        }
        update(sample, dim, k, &mut labels, &mut counts, &dist, &mut centroids);
    }
    centroids
}

/// Means of the assigned points (f64, sample order); re-seeds empty clusters.
fn update(
    sample: &[f32],
    dim: usize,
    k: usize,
    labels: &mut [usize],
    counts: &mut [usize],
    dist: &[f32],
    centroids: &mut [f32],
) {
    let mut sums = vec![0.0f64; k * dim];
    for (x, &l) in sample.chunks_exact(dim).zip(labels.iter()) {
        for (s, &v) in sums[l * dim..(l + 1) * dim].iter_mut().zip(x) {
            *s += v as f64;
        }
    }
    for (j, &c) in counts.iter().enumerate() {
        if c > 0 {
            let inv = 1.0 / c as f64;
            for (o, &s) in centroids[j * dim..(j + 1) * dim].iter_mut().zip(&sums[j * dim..]) {
                *o = (s * inv) as f32;
            }
        }
    }
    for empty in 0..k {
        if counts[empty] > 0 {
            continue;
        }
        let big = (0..k).fold(0, |b, j| if counts[j] > counts[b] { j } else { b });
        if counts[big] < 2 {
            break; // fewer points than clusters: cannot happen (the sample has >= k points)
        }
        let mut far = (usize::MAX, f32::NEG_INFINITY);
        for (i, &l) in labels.iter().enumerate() {
            if l == big && (far.0 == usize::MAX || dist[i * k + big] > far.1) {
                far = (i, dist[i * k + big]);
            }
        }
        let i = far.0;
        centroids[empty * dim..(empty + 1) * dim].copy_from_slice(&sample[i * dim..(i + 1) * dim]);
        labels[i] = empty;
        counts[big] -= 1;
        counts[empty] = 1;
    }
}

/// Cluster sizes of the sample under plain nearest-centroid assignment.
pub(super) fn plain_counts(sample: &[f32], dim: usize, centroids: &[f32], k: usize) -> Vec<usize> {
    let l2_many = Kernels::get().l2_many;
    let mut d = vec![0.0f32; k];
    let mut counts = vec![0usize; k];
    for x in sample.chunks_exact(dim) {
        l2_many(x, centroids, &mut d);
        let j = (0..k).fold(0, |b, j| if d[j] < d[b] { j } else { b });
        counts[j] += 1;
    }
    counts
}

/// Coefficient of variation (population std / mean) of sizes.
pub(super) fn size_cv(sizes: &[usize]) -> f64 {
    let n = sizes.len().max(1) as f64;
    let mean = sizes.iter().sum::<usize>() as f64 / n;
    if mean == 0.0 {
        return 0.0;
    }
    let var = sizes.iter().map(|&s| (s as f64 - mean).powi(2)).sum::<f64>() / n;
    var.sqrt() / mean
}

/// Shares `total` among entries: starts at `lower`, then repeatedly gives one unit to the entry
/// (below its `upper`) furthest below its proportional target `total * weight / sum(weight)`,
/// ties to the smaller index. Requires `sum(lower) <= total <= sum(upper)`.
pub(super) fn allocate(total: usize, weights: &[usize], lower: &[usize], upper: &[usize]) -> Vec<usize> {
    let wsum = weights.iter().sum::<usize>() as f64;
    let target: Vec<f64> =
        weights.iter().map(|&w| if wsum > 0.0 { total as f64 * w as f64 / wsum } else { 0.0 }).collect();
    let mut out = lower.to_vec();
    let mut left = total.saturating_sub(out.iter().sum());
    while left > 0 {
        let mut best: Option<(usize, f64)> = None;
        for (j, (&o, &t)) in out.iter().zip(&target).enumerate() {
            let deficit = t - o as f64;
            if o < upper[j] && best.is_none_or(|(_, b)| deficit > b) {
                best = Some((j, deficit));
            }
        }
        let Some((j, _)) = best else { break };
        out[j] += 1;
        left -= 1;
    }
    out
}

/// `ceil(m * part / whole)` without overflow (`whole > 0`).
fn ceil_ratio(m: usize, part: usize, whole: usize) -> usize {
    ((m as u128 * part as u128).div_ceil(whole as u128)) as usize
}

/// Writes the `out.len()` smallest entries of `d` as `(value, index)`, ascending, ties to the
/// smaller index (`out.len() <= d.len()`).
fn nearest(d: &[f32], out: &mut [(f32, u32)]) {
    let p = out.len();
    let mut len = 0;
    for (j, &dj) in d.iter().enumerate() {
        if len == p && dj.partial_cmp(&out[p - 1].0) != Some(std::cmp::Ordering::Less) {
            continue;
        }
        let mut pos = len.min(p - 1);
        while pos > 0 && dj < out[pos - 1].0 {
            out[pos] = out[pos - 1];
            pos -= 1;
        }
        out[pos] = (dj, j as u32);
        len = (len + 1).min(p);
    }
}

/// `count` distinct positions below `n` (seeded partial Fisher–Yates), ascending.
pub(super) fn sample_positions(state: &mut u64, n: usize, count: usize) -> Vec<usize> {
    let count = count.min(n);
    let mut idx: Vec<usize> = (0..n).collect();
    for i in 0..count {
        let j = i + (splitmix(state) % (n - i) as u64) as usize;
        idx.swap(i, j);
    }
    idx.truncate(count);
    idx.sort_unstable();
    idx
}
