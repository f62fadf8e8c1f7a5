//! One short vector against every centroid of a small codebook at once: squared L2 distances and
//! inner products over a *dimension-major* (transposed) codebook, with a scalar reference and an
//! AVX2 path chosen at run time.
//!
//! PQ subspaces are a few dimensions wide (4–16), where a per-pair kernel call costs more than the
//! arithmetic. Storing the codebook transposed (component `j` of centroid `c` at `j * k + c`)
//! turns "distances to all `k` centroids" into `dim` passes of `k`-wide vector updates. Both paths
//! do the same operations in the same order (a separate multiply and add per component, no FMA),
//! so their results are bit-identical; k-means assignment stays the same whichever path runs.

/// Transposes a row-major `k x dim` codebook into the dimension-major layout (`dim x k`).
pub(crate) fn transpose(centroids: &[f32], k: usize, dim: usize) -> Vec<f32> {
    let mut t = vec![0.0f32; k * dim];
    for (c, row) in centroids.chunks_exact(dim).take(k).enumerate() {
        for (j, &v) in row.iter().enumerate() {
            t[j * k + c] = v;
        }
    }
    t
}

/// `out[c] = |x - centroid c|^2` for a dimension-major codebook `ct` (`x.len() x out.len()`).
#[inline]
pub(crate) fn l2_to_all(x: &[f32], ct: &[f32], out: &mut [f32]) {
    check(x, ct, out);
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: AVX2 was detected on this CPU; shapes were checked above.
        unsafe { avx2::all_to(x, ct, out, Op::L2) };
        return;
    }
    scalar_all_to(x, ct, out, Op::L2);
}

/// `out[c] = <x, centroid c>` for a dimension-major codebook `ct` (`x.len() x out.len()`).
#[inline]
pub(crate) fn dot_to_all(x: &[f32], ct: &[f32], out: &mut [f32]) {
    check(x, ct, out);
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: AVX2 was detected on this CPU; shapes were checked above.
        unsafe { avx2::all_to(x, ct, out, Op::Dot) };
        return;
    }
    scalar_all_to(x, ct, out, Op::Dot);
}

/// Nearest centroid of `x` in the dimension-major codebook `ct` of `k` centroids and its squared
/// distance; ties go to the smaller index. Same distances as [`l2_to_all`] (bit for bit), with
/// the minimum tracked in registers instead of a second pass.
#[inline]
pub(crate) fn l2_argmin(x: &[f32], ct: &[f32], k: usize) -> (usize, f32) {
    assert_eq!(ct.len(), x.len() * k, "codebook must be dim x k (dimension-major)");
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: AVX2 was detected on this CPU; the shape was checked above.
        return unsafe { avx2::l2_argmin(x, ct, k) };
    }
    l2_argmin_scalar(x, ct, k)
}

/// Scalar reference of [`l2_argmin`] (also the fallback without AVX2).
pub(crate) fn l2_argmin_scalar(x: &[f32], ct: &[f32], k: usize) -> (usize, f32) {
    let mut best = (0usize, f32::INFINITY);
    for c in 0..k {
        let mut s = 0.0f32;
        for (j, &xj) in x.iter().enumerate() {
            let d = xj - ct[j * k + c];
            s += d * d;
        }
        if s < best.1 {
            best = (c, s);
        }
    }
    best
}

/// Scalar reference of [`l2_to_all`] (for the SIMD-equals-scalar tests).
#[cfg(test)]
pub(crate) fn l2_to_all_scalar(x: &[f32], ct: &[f32], out: &mut [f32]) {
    check(x, ct, out);
    scalar_all_to(x, ct, out, Op::L2);
}

/// Scalar reference of [`dot_to_all`].
#[cfg(test)]
pub(crate) fn dot_to_all_scalar(x: &[f32], ct: &[f32], out: &mut [f32]) {
    check(x, ct, out);
    scalar_all_to(x, ct, out, Op::Dot);
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    L2,
    Dot,
}

#[inline]
fn check(x: &[f32], ct: &[f32], out: &[f32]) {
    assert_eq!(ct.len(), x.len() * out.len(), "codebook must be dim x k (dimension-major)");
}

fn scalar_all_to(x: &[f32], ct: &[f32], out: &mut [f32], op: Op) {
    let k = out.len();
    out.fill(0.0);
    if k == 0 {
        return;
    }
    for (&xj, row) in x.iter().zip(ct.chunks_exact(k)) {
        match op {
            Op::L2 => {
                for (o, &c) in out.iter_mut().zip(row) {
                    let d = xj - c;
                    *o += d * d;
                }
            }
            Op::Dot => {
                for (o, &c) in out.iter_mut().zip(row) {
                    *o += xj * c;
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::Op;
    use std::arch::x86_64::*;

    /// Eight centroids per step, one accumulator per centroid lane; tail centroids in scalar code
    /// with the same operation order.
    ///
    /// # Safety
    /// Requires AVX2 and `ct.len() == x.len() * out.len()`.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn all_to(x: &[f32], ct: &[f32], out: &mut [f32], op: Op) {
        let k = out.len();
        let dim = x.len();
        let pc = ct.as_ptr();
        let po = out.as_mut_ptr();
        let mut c0 = 0;
        while c0 + 8 <= k {
            let mut acc = _mm256_setzero_ps();
            for (j, &xj) in x.iter().enumerate() {
                let xv = _mm256_set1_ps(xj);
                // SAFETY: j < dim and c0 + 8 <= k, so the 8 loaded values lie inside ct (dim * k).
                let cv = unsafe { _mm256_loadu_ps(pc.add(j * k + c0)) };
                acc = match op {
                    Op::L2 => {
                        let d = _mm256_sub_ps(xv, cv);
                        _mm256_add_ps(acc, _mm256_mul_ps(d, d))
                    }
                    Op::Dot => _mm256_add_ps(acc, _mm256_mul_ps(xv, cv)),
                };
            }
            // SAFETY: c0 + 8 <= k = out.len().
            unsafe { _mm256_storeu_ps(po.add(c0), acc) };
            c0 += 8;
        }
        for c in c0..k {
            let mut s = 0.0f32;
            for j in 0..dim {
                let v = ct[j * k + c];
                s += match op {
                    Op::L2 => (x[j] - v) * (x[j] - v),
                    Op::Dot => x[j] * v,
                };
            }
            out[c] = s;
        }
    }

    /// Fused distances and first-minimum search, eight centroids per step.
    ///
    /// # Safety
    /// Requires AVX2 and `ct.len() == x.len() * k`.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn l2_argmin(x: &[f32], ct: &[f32], k: usize) -> (usize, f32) {
        let pc = ct.as_ptr();
        let mut best_v = _mm256_set1_ps(f32::INFINITY);
        let mut best_i = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        let mut idx = best_i;
        let eight = _mm256_set1_epi32(8);
        let mut c0 = 0;
        while c0 + 8 <= k {
            let mut acc = _mm256_setzero_ps();
            for (j, &xj) in x.iter().enumerate() {
                // SAFETY: j < dim and c0 + 8 <= k, so the 8 loaded values lie inside ct.
                let cv = unsafe { _mm256_loadu_ps(pc.add(j * k + c0)) };
                let d = _mm256_sub_ps(_mm256_set1_ps(xj), cv);
                acc = _mm256_add_ps(acc, _mm256_mul_ps(d, d));
            }
            // Strictly smaller: each lane keeps its earliest minimum.
            let lt = _mm256_cmp_ps::<_CMP_LT_OQ>(acc, best_v);
            best_v = _mm256_blendv_ps(best_v, acc, lt);
            best_i = _mm256_castps_si256(_mm256_blendv_ps(
                _mm256_castsi256_ps(best_i),
                _mm256_castsi256_ps(idx),
                lt,
            ));
            idx = _mm256_add_epi32(idx, eight);
            c0 += 8;
        }
        let mut vals = [0.0f32; 8];
        let mut ids = [0i32; 8];
        // SAFETY: both arrays hold 8 lanes.
        unsafe {
            _mm256_storeu_ps(vals.as_mut_ptr(), best_v);
            _mm256_storeu_si256(ids.as_mut_ptr() as *mut __m256i, best_i);
        }
        let mut best = (0usize, f32::INFINITY);
        for (&v, &i) in vals.iter().zip(&ids) {
            let i = i as usize;
            if v < best.1 || (v == best.1 && v != f32::INFINITY && i < best.0) {
                best = (i, v);
            }
        }
        for c in c0..k {
            let mut s = 0.0f32;
            for j in 0..x.len() {
                let d = x[j] - ct[j * k + c];
                s += d * d;
            }
            if s < best.1 {
                best = (c, s);
            }
        }
        best
    }
}
