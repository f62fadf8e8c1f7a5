//! AVX-512F kernels: four 16-lane accumulators (64 floats per step), a masked tail, and a
//! fixed reduction order. f16 rows are widened with `vcvtph2ps` as they are loaded.

use super::{Isa, Kernels};
use half::f16;
use std::arch::x86_64::*;

#[inline]
#[target_feature(enable = "avx512f")]
fn step_dot(acc: __m512, a: __m512, b: __m512) -> __m512 {
    _mm512_fmadd_ps(a, b, acc)
}

#[inline]
#[target_feature(enable = "avx512f")]
fn step_l2(acc: __m512, a: __m512, b: __m512) -> __m512 {
    let d = _mm512_sub_ps(a, b);
    _mm512_fmadd_ps(d, d, acc)
}

/// Loads 16 f32. Caller guarantees 16 readable values at `p`.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn load_f32(p: *const f32) -> __m512 {
    // SAFETY: guaranteed by the caller.
    unsafe { _mm512_loadu_ps(p) }
}

/// Loads 16 f16 and widens them. Caller guarantees 16 readable values at `p`.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn load_f16(p: *const f16) -> __m512 {
    // SAFETY: guaranteed by the caller; f16 is 2 bytes, so 16 of them are one 256-bit load.
    unsafe { _mm512_cvtph_ps(_mm256_loadu_si256(p as *const __m256i)) }
}

/// The last `r` (< 16) values of an f32 pair, zero-padded to 16 lanes (masked loads: masked-off
/// lanes never fault).
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn tail_f32(pa: *const f32, pb: *const f32, r: usize) -> (__m512, __m512) {
    let m: __mmask16 = (1u16 << r) - 1;
    // SAFETY: the caller guarantees `r` values at both pointers; only those lanes are read.
    unsafe { (_mm512_maskz_loadu_ps(m, pa), _mm512_maskz_loadu_ps(m, pb)) }
}

/// The last `r` (< 16) values of an f32 × f16 pair, zero-padded to 16 lanes (the f16 tail is
/// copied: its masked load needs AVX-512BW).
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn tail_f16(pa: *const f32, pb: *const f16, r: usize) -> (__m512, __m512) {
    let m: __mmask16 = (1u16 << r) - 1;
    let mut tb = [f16::ZERO; 16];
    // SAFETY: the caller guarantees `r` values at both pointers; `tb` holds 16.
    unsafe {
        std::ptr::copy_nonoverlapping(pb, tb.as_mut_ptr(), r);
        (_mm512_maskz_loadu_ps(m, pa), load_f16(tb.as_ptr()))
    }
}

macro_rules! pair_kernel {
    ($name:ident, $ty:ty, $load:ident, $step:ident, $tail:ident) => {
        /// Requires `b.len() >= a.len()` and AVX-512F.
        #[inline]
        #[target_feature(enable = "avx512f")]
        unsafe fn $name(a: &[f32], b: &[$ty]) -> f32 {
            let n = a.len();
            let (pa, pb) = (a.as_ptr(), b.as_ptr());
            let (mut s0, mut s1, mut s2, mut s3) =
                (_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps());
            let mut i = 0;
            // SAFETY: every load reads 16 values starting at i with i + 16 <= n <= len of a and b.
            unsafe {
                while i + 64 <= n {
                    s0 = $step(s0, load_f32(pa.add(i)), $load(pb.add(i)));
                    s1 = $step(s1, load_f32(pa.add(i + 16)), $load(pb.add(i + 16)));
                    s2 = $step(s2, load_f32(pa.add(i + 32)), $load(pb.add(i + 32)));
                    s3 = $step(s3, load_f32(pa.add(i + 48)), $load(pb.add(i + 48)));
                    i += 64;
                }
                while i + 16 <= n {
                    s0 = $step(s0, load_f32(pa.add(i)), $load(pb.add(i)));
                    i += 16;
                }
            }
            if i < n {
                // SAFETY: n - i < 16 values remain in both slices.
                let (ta, tb) = unsafe { $tail(pa.add(i), pb.add(i), n - i) };
                s1 = $step(s1, ta, tb);
            }
            _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)))
        }
    };
}

pair_kernel!(dot_impl, f32, load_f32, step_dot, tail_f32);
pair_kernel!(l2_impl, f32, load_f32, step_l2, tail_f32);
pair_kernel!(dot_f16_impl, f16, load_f16, step_dot, tail_f16);
pair_kernel!(l2_f16_impl, f16, load_f16, step_l2, tail_f16);

simd_table!(Isa::Avx512, "avx512f");
