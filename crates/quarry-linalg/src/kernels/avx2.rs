//! AVX2+FMA kernels: four 8-lane accumulators (32 floats per step), zero-padded tail, and a
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

macro_rules! pair_kernel {
    ($name:ident, $ty:ty, $load:ident, $step:ident) => {
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
                let mut ta = [0.0f32; 8];
                let mut tb: [$ty; 8] = bytemuck::Zeroable::zeroed();
                ta[..n - i].copy_from_slice(&a[i..n]);
                tb[..n - i].copy_from_slice(&b[i..n]);
                // SAFETY: the padded buffers hold 8 values each.
                s1 = $step(s1, unsafe { load_f32(ta.as_ptr()) }, unsafe { $load(tb.as_ptr()) });
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

pair_kernel!(dot_impl, f32, load_f32, step_dot);
pair_kernel!(l2_impl, f32, load_f32, step_l2);
pair_kernel!(dot_f16_impl, f16, load_f16, step_dot);
pair_kernel!(l2_f16_impl, f16, load_f16, step_l2);

simd_table!(Isa::Avx2, "avx2,fma,f16c");
