//! AVX2+FMA SQ kernels: codes widened 8 at a time (`vpmovzxbd` + `vcvtdq2ps`) and multiplied
//! into four 8-lane accumulators; 4-bit codes are split into nibbles and interleaved back into
//! dimension order with one `punpcklbw`. Tails shorter than one vector run scalar.

use super::SqKernels;
use quarry_linalg::Isa;
use std::arch::x86_64::*;

/// Widens 8 codes at `p` to f32. Caller guarantees 8 readable bytes at `p`.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn widen8(p: *const u8) -> __m256 {
    // SAFETY: guaranteed by the caller; `_mm_loadl_epi64` reads exactly 8 bytes, unaligned.
    let b = unsafe { _mm_loadl_epi64(p as *const __m128i) };
    _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(b))
}

/// Widens the 16 nibbles of the 8 bytes at `p` to f32, in dimension order (low nibble first).
/// Caller guarantees 8 readable bytes at `p`.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn widen16_nibbles(p: *const u8) -> (__m256, __m256) {
    // SAFETY: guaranteed by the caller; `_mm_loadl_epi64` reads exactly 8 bytes, unaligned.
    let b = unsafe { _mm_loadl_epi64(p as *const __m128i) };
    let mask = _mm_set1_epi8(0x0F);
    let lo = _mm_and_si128(b, mask);
    let hi = _mm_and_si128(_mm_srli_epi16::<4>(b), mask);
    let x = _mm_unpacklo_epi8(lo, hi);
    let a = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(x));
    let c = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128::<8>(x)));
    (a, c)
}

/// Loads 8 f32. Caller guarantees 8 readable values at `p`.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn load(p: *const f32) -> __m256 {
    // SAFETY: guaranteed by the caller.
    unsafe { _mm256_loadu_ps(p) }
}

#[inline]
#[target_feature(enable = "avx2,fma")]
fn hsum(s0: __m256, s1: __m256, s2: __m256, s3: __m256) -> f32 {
    let s = _mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3));
    let h = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps::<1>(s));
    let h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    let h = _mm_add_ss(h, _mm_movehdup_ps(h));
    _mm_cvtss_f32(h)
}

/// `Σ w_j·codes_j` over 8-bit codes. Requires `w.len() >= codes.len()` and AVX2+FMA.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_u8_impl(w: &[f32], codes: &[u8]) -> f32 {
    let n = codes.len();
    let (pw, pc) = (w.as_ptr(), codes.as_ptr());
    let (mut s0, mut s1, mut s2, mut s3) =
        (_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps());
    let mut i = 0;
    // SAFETY: each step reads 8 codes and 8 weights at offsets < i + 32 (or i + 8) <= n, and
    // `w.len() >= n` by the caller's contract.
    unsafe {
        while i + 32 <= n {
            s0 = _mm256_fmadd_ps(widen8(pc.add(i)), load(pw.add(i)), s0);
            s1 = _mm256_fmadd_ps(widen8(pc.add(i + 8)), load(pw.add(i + 8)), s1);
            s2 = _mm256_fmadd_ps(widen8(pc.add(i + 16)), load(pw.add(i + 16)), s2);
            s3 = _mm256_fmadd_ps(widen8(pc.add(i + 24)), load(pw.add(i + 24)), s3);
            i += 32;
        }
        while i + 8 <= n {
            s0 = _mm256_fmadd_ps(widen8(pc.add(i)), load(pw.add(i)), s0);
            i += 8;
        }
    }
    let tail: f32 = w[i..n].iter().zip(&codes[i..]).map(|(x, &c)| x * c as f32).sum();
    hsum(s0, s1, s2, s3) + tail
}

/// `Σ w_j·code_j` over packed 4-bit codes. Requires `w.len() >= 2 * codes.len()` and AVX2+FMA.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_u4_impl(w: &[f32], codes: &[u8]) -> f32 {
    let n = codes.len();
    let (pw, pc) = (w.as_ptr(), codes.as_ptr());
    let (mut s0, mut s1, mut s2, mut s3) =
        (_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps());
    let mut i = 0;
    // SAFETY: byte i covers weights 2i and 2i+1; each step reads 8 bytes at i (or i + 8) and the
    // 16 weights from 2i (or 2i + 16), all below 2n <= w.len() because i + 16 (i + 8) <= n.
    unsafe {
        while i + 16 <= n {
            let (a, b) = widen16_nibbles(pc.add(i));
            let (c, d) = widen16_nibbles(pc.add(i + 8));
            s0 = _mm256_fmadd_ps(a, load(pw.add(2 * i)), s0);
            s1 = _mm256_fmadd_ps(b, load(pw.add(2 * i + 8)), s1);
            s2 = _mm256_fmadd_ps(c, load(pw.add(2 * i + 16)), s2);
            s3 = _mm256_fmadd_ps(d, load(pw.add(2 * i + 24)), s3);
            i += 16;
        }
        while i + 8 <= n {
            let (a, b) = widen16_nibbles(pc.add(i));
            s0 = _mm256_fmadd_ps(a, load(pw.add(2 * i)), s0);
            s1 = _mm256_fmadd_ps(b, load(pw.add(2 * i + 8)), s1);
            i += 8;
        }
    }
    let tail: f32 = w[2 * i..2 * n]
        .chunks_exact(2)
        .zip(&codes[i..])
        .map(|(x, &c)| x[0] * (c & 0x0F) as f32 + x[1] * (c >> 4) as f32)
        .sum();
    hsum(s0, s1, s2, s3) + tail
}

/// `Σ w_j·codes_j` in integers: 16 codes widened to 16-bit words (`vpmovzxbw`) and multiplied
/// pairwise into 32-bit lanes (`vpmaddwd`). Requires `w.len() >= codes.len()` and AVX2.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_u8_i16_impl(w: &[i16], codes: &[u8]) -> i32 {
    let n = codes.len();
    let (pw, pc) = (w.as_ptr(), codes.as_ptr());
    let (mut a0, mut a1) = (_mm256_setzero_si256(), _mm256_setzero_si256());
    let mut i = 0;
    // SAFETY: each step reads 16 codes and 16 weights below i + 32 (or i + 16) <= n <= w.len().
    unsafe {
        while i + 32 <= n {
            let c0 = _mm256_cvtepu8_epi16(_mm_loadu_si128(pc.add(i) as *const __m128i));
            let c1 = _mm256_cvtepu8_epi16(_mm_loadu_si128(pc.add(i + 16) as *const __m128i));
            a0 = _mm256_add_epi32(a0, _mm256_madd_epi16(c0, _mm256_loadu_si256(pw.add(i) as *const __m256i)));
            a1 = _mm256_add_epi32(
                a1,
                _mm256_madd_epi16(c1, _mm256_loadu_si256(pw.add(i + 16) as *const __m256i)),
            );
            i += 32;
        }
        if i + 16 <= n {
            let c0 = _mm256_cvtepu8_epi16(_mm_loadu_si128(pc.add(i) as *const __m128i));
            a0 = _mm256_add_epi32(a0, _mm256_madd_epi16(c0, _mm256_loadu_si256(pw.add(i) as *const __m256i)));
            i += 16;
        }
    }
    let s = _mm256_add_epi32(a0, a1);
    let h = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256::<1>(s));
    let h = _mm_add_epi32(h, _mm_shuffle_epi32::<0b01_00_11_10>(h));
    let h = _mm_add_epi32(h, _mm_shuffle_epi32::<0b10_11_00_01>(h));
    let tail: i32 = w[i..n].iter().zip(&codes[i..n]).map(|(&x, &c)| x as i32 * c as i32).sum();
    _mm_cvtsi128_si32(h) + tail
}

super::sq_simd_table!(Isa::Avx2, "avx2,fma");
