//! Extended-RaBitQ code search (Gao et al., "Practical and Asymptotically Optimal Quantization of
//! High-Dimensional Vectors in Euclidean Space for Approximate Nearest Neighbor Search", SIGMOD
//! 2025, arXiv 2409.09913; sweep range as in the reference code, VectorDB-NTU/Extended-RaBitQ
//! `Quantizer.hpp`): the critical-value sweep that picks, for the magnitudes `a = |o'|` of a
//! rotated unit vector, the magnitude code `u ∈ {0..2^ex−1}^D` whose grid direction `u + 0.5` has
//! the largest cosine with `a`, and the signed B-bit code values built from it.

/// The chosen magnitude code and the two sums the per-vector factors need.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct MagnitudeCode {
    /// `u_i ∈ 0..2^ex`.
    pub u: Vec<u32>,
    /// `<u + 0.5, a>`.
    pub dot: f64,
    /// `|u + 0.5|²`.
    pub sq_norm: f64,
}

impl MagnitudeCode {
    /// Cosine between `u + 0.5` and `a`, given `|a|`.
    #[cfg(test)]
    pub fn cosine(&self, a_norm: f64) -> f64 {
        self.dot / (self.sq_norm.sqrt() * a_norm)
    }
}

/// `u_i(t) = min(floor(t·a_i), 2^ex − 1)`: rounding the magnitudes at scale `t`.
pub(crate) fn round_at(a: &[f32], ex: u32, t: f64) -> Vec<u32> {
    let max_u = (1u32 << ex) - 1;
    // t·a_i >= 0, so the saturating cast is the floor.
    a.iter().map(|&x| ((t * x as f64) as u64).min(max_u as u64) as u32).collect()
}

/// The sweep range `[t_start, t_end]` of the reference code for `ex` magnitude bits, or `None`
/// when every magnitude is zero (or `ex == 0`, where there is nothing to choose).
pub(crate) fn sweep_range(a: &[f32], ex: u32) -> Option<(f64, f64)> {
    let a_max = a.iter().fold(0.0f32, |m, &x| m.max(x)) as f64;
    if ex == 0 || a_max <= 0.0 || !a_max.is_finite() {
        return None;
    }
    let max_u = ((1u32 << ex) - 1) as f64;
    Some(((max_u / 3.0) / a_max, (max_u + 10.0) / a_max))
}

fn sums(a: &[f32], u: &[u32]) -> (f64, f64) {
    a.iter().zip(u).fold((0.0, 0.0), |(d, s), (&x, &ui)| {
        let v = ui as f64 + 0.5;
        (d + v * x as f64, s + v * v)
    })
}

/// A critical value: `t·a_i` reaches the next integer at `t`.
#[derive(Debug, Clone, Copy)]
struct Event {
    t: f64,
    i: u32,
}

/// The best magnitude code for magnitudes `a` (all `≥ 0`) with `ex` bits.
///
/// `f(t) = <u(t)+0.5, a> / |u(t)+0.5|` only changes where some `t·a_i` crosses an integer, so
/// the sweep starts from the rounding at `t_start`, visits those critical values up to `t_end` in
/// increasing order (ties by coordinate), updates both sums incrementally and keeps the best
/// state seen. The events are ordered by a counting sort into about `events/4` equal-width
/// buckets of `t` followed by a sort inside each bucket — `O(events)` on average instead of a
/// heap's `O(events · log D)`. With `ex == 0` the only code is `u = 0` (plain RaBitQ).
pub(crate) fn best_magnitudes(a: &[f32], ex: u32) -> MagnitudeCode {
    let Some((t_start, t_end)) = sweep_range(a, ex) else {
        let u = vec![0; a.len()];
        let (dot, sq_norm) = sums(a, &u);
        return MagnitudeCode { u, dot, sq_norm };
    };
    let max_u = (1u32 << ex) - 1;
    let mut u = round_at(a, ex, t_start);
    // Critical values of coordinate i: k / a_i for k = u_i + 1 ..= max_u while ≤ t_end.
    let events_of = |i: usize, ui: u32| {
        let x = a[i] as f64;
        (ui + 1..=max_u).map(move |k| k as f64 / x).take_while(move |&t| x > 0.0 && t <= t_end)
    };
    let total: usize = u.iter().enumerate().map(|(i, &ui)| events_of(i, ui).count()).sum();
    let buckets = (total / 4).max(1);
    let scale = buckets as f64 / (t_end - t_start);
    let bucket_of = |t: f64| (((t - t_start) * scale).max(0.0) as usize).min(buckets - 1);
    let mut starts = vec![0usize; buckets + 1];
    for (i, &ui) in u.iter().enumerate() {
        for t in events_of(i, ui) {
            starts[bucket_of(t) + 1] += 1;
        }
    }
    for b in 0..buckets {
        starts[b + 1] += starts[b];
    }
    let mut fill = starts.clone();
    let mut events = vec![Event { t: 0.0, i: 0 }; total];
    for (i, &ui) in u.iter().enumerate() {
        for t in events_of(i, ui) {
            let b = bucket_of(t);
            events[fill[b]] = Event { t, i: i as u32 };
            fill[b] += 1;
        }
    }
    for b in 0..buckets {
        events[starts[b]..starts[b + 1]].sort_unstable_by(|x, y| x.t.total_cmp(&y.t).then(x.i.cmp(&y.i)));
    }

    let start = u.clone();
    let (mut dot, mut sq) = sums(a, &u);
    // Compare dot²/sq (dot > 0) to avoid a square root per step.
    let (mut best_score, mut best_len) = (dot * dot / sq, 0usize);
    for (n, e) in events.iter().enumerate() {
        let idx = e.i as usize;
        u[idx] += 1;
        dot += a[idx] as f64;
        sq += 2.0 * u[idx] as f64; // (u + 0.5)² − (u − 0.5)² = 2u
        let score = dot * dot / sq;
        if score > best_score {
            best_score = score;
            best_len = n + 1;
        }
    }
    let mut u = start;
    for e in &events[..best_len] {
        u[e.i as usize] += 1;
    }
    let (dot, sq_norm) = sums(a, &u);
    MagnitudeCode { u, dot, sq_norm }
}

/// Signed code values from a rotated vector `o'` and its magnitude code (the reference code's sign
/// convention): with `ex = bits − 1`, a positive coordinate stores `2^ex + u` (sign bit set) and
/// any other `2^ex − 1 − u`, so `x_u + c_B = ±(u + 0.5)` with `c_B = −(2^bits − 1)/2`.
pub(crate) fn signed_values(rotated: &[f32], u: &[u32], bits: u8, out: &mut [u8]) {
    let half = 1u32 << (bits - 1);
    for ((o, &x), &ui) in out.iter_mut().zip(rotated).zip(u) {
        *o = if x > 0.0 { half + ui } else { half - 1 - ui } as u8;
    }
}
