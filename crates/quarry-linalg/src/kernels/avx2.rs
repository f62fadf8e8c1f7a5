//! AVX2+FMA kernels: four 8-lane accumulators (32 floats per step), a masked tail, and a
//! fixed reduction order. f16 rows are widened with F16C `vcvtph2ps` as they are loaded.

use super::{Isa, Kernels};
use half::f16;
use std::arch::x86_64::*;

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn step_dot(acc: __m256, a: __m256, b: __m256) -> __m256 {
    _mm256_fmadd_ps(a, b, acc)
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn step_l2(acc: __m256, a: __m256, b: __m256) -> __m256 {
    let d = _mm256_sub_ps(a, b);
    _mm256_fmadd_ps(d, d, acc)
}

/// Loads 8 f32. Caller guarantees 8 readable values at `p`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn load_f32(p: *const f32) -> __m256 {
    // SAFETY: guaranteed by the caller.
    unsafe { _mm256_loadu_ps(p) }
}

/// Loads 8 f16 and widens them. Caller guarantees 8 readable values at `p`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn load_f16(p: *const f16) -> __m256 {
    // SAFETY: guaranteed by the caller; f16 is 2 bytes, so 8 of them are one 128-bit load.
    unsafe { _mm256_cvtph_ps(_mm_loadu_si128(p as *const __m128i)) }
}

/// Loads the first `r` (< 8) f32 at `p` and zeros in the other lanes, reading nothing beyond them
/// (a masked load: masked-off lanes never fault). Caller guarantees `r` readable values at `p`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn load_f32_part(p: *const f32, r: usize) -> __m256 {
    static MASKS: [i32; 16] = [-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0];
    debug_assert!(r < 8);
    // SAFETY: `8 - r` in 1..=8 keeps the 8-lane read inside MASKS; the masked load reads only
    // the `r` lanes the caller guarantees.
    unsafe { _mm256_maskload_ps(p, _mm256_loadu_si256(MASKS.as_ptr().add(8 - r) as *const __m256i)) }
}

/// The last `r` (< 8) values of an f32 pair, zero-padded to 8 lanes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn tail_f32(pa: *const f32, pb: *const f32, r: usize) -> (__m256, __m256) {
    // SAFETY: the caller guarantees `r` values at both pointers.
    unsafe { (load_f32_part(pa, r), load_f32_part(pb, r)) }
}

/// The last `r` (< 8) values of an f32 × f16 pair, zero-padded to 8 lanes (f16 has no masked
/// load below AVX-512BW: the row's tail is copied).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn tail_f16(pa: *const f32, pb: *const f16, r: usize) -> (__m256, __m256) {
    let mut tb = [f16::ZERO; 8];
    // SAFETY: the caller guarantees `r` values at both pointers; `tb` holds 8.
    unsafe {
        std::ptr::copy_nonoverlapping(pb, tb.as_mut_ptr(), r);
        (load_f32_part(pa, r), load_f16(tb.as_ptr()))
    }
}

macro_rules! pair_kernel {
    ($name:ident, $ty:ty, $load:ident, $step:ident, $tail:ident) => {
        /// Requires `b.len() >= a.len()` and AVX2+FMA+F16C.
        #[inline]
        #[target_feature(enable = "avx2,fma,f16c")]
        unsafe fn $name(a: &[f32], b: &[$ty]) -> f32 {
            let n = a.len();
            let (pa, pb) = (a.as_ptr(), b.as_ptr());
            let (mut s0, mut s1, mut s2, mut s3) =
                (_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps());
            let mut i = 0;
            // SAFETY: every load reads 8 values starting at i with i + 8 <= n <= len of a and b.
            unsafe {
                while i + 32 <= n {
                    s0 = $step(s0, load_f32(pa.add(i)), $load(pb.add(i)));
                    s1 = $step(s1, load_f32(pa.add(i + 8)), $load(pb.add(i + 8)));
                    s2 = $step(s2, load_f32(pa.add(i + 16)), $load(pb.add(i + 16)));
                    s3 = $step(s3, load_f32(pa.add(i + 24)), $load(pb.add(i + 24)));
                    i += 32;
                }
                while i + 8 <= n {
                    s0 = $step(s0, load_f32(pa.add(i)), $load(pb.add(i)));
                    i += 8;
                }
            }
            if i < n {
                // SAFETY: n - i < 8 values remain in both slices.
                let (ta, tb) = unsafe { $tail(pa.add(i), pb.add(i), n - i) };
                s1 = $step(s1, ta, tb);
            }
            hsum(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)))
        }
    };
}

/// Horizontal sum of 8 lanes in a fixed order.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn hsum(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_shuffle_ps::<0b01>(s, s));
    _mm_cvtss_f32(s)
}

pair_kernel!(dot_impl, f32, load_f32, step_dot, tail_f32);
pair_kernel!(l2_impl, f32, load_f32, step_l2, tail_f32);
pair_kernel!(dot_f16_impl, f16, load_f16, step_dot, tail_f16);
pair_kernel!(l2_f16_impl, f16, load_f16, step_l2, tail_f16);

simd_table!(Isa::Avx2, "avx2,fma,f16c");
