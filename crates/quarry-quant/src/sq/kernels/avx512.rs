//! AVX-512 SQ kernels (F + BW + VL): codes widened 16 at a time into four 16-lane accumulators;
//! 4-bit codes are split into nibbles and interleaved back into dimension order. The tail is one
//! masked step (`vmovdqu8` / `vmovups` with a zeroing mask), so no dimension needs padding.

use super::SqKernels;
use quarry_linalg::Isa;
use std::arch::x86_64::*;

/// Widens 16 codes to f32.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
fn widen16(b: __m128i) -> __m512 {
    _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(b))
}

/// Loads 16 bytes. Caller guarantees 16 readable bytes at `p`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn load_bytes(p: *const u8) -> __m128i {
    // SAFETY: guaranteed by the caller; unaligned load.
    unsafe { _mm_loadu_si128(p as *const __m128i) }
}

/// Loads 16 f32. Caller guarantees 16 readable values at `p`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn load(p: *const f32) -> __m512 {
    // SAFETY: guaranteed by the caller.
    unsafe { _mm512_loadu_ps(p) }
}

/// Loads the first `lanes` (0..=16) f32 at `p`, zeroing the rest. Caller guarantees `lanes`
/// readable values at `p`; masked-off lanes are not accessed.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn load_part(p: *const f32, lanes: usize) -> __m512 {
    let mask = ((1u32 << lanes) - 1) as __mmask16;
    // SAFETY: guaranteed by the caller; the masked load suppresses faults on masked-off lanes.
    unsafe { _mm512_maskz_loadu_ps(mask, p) }
}

/// The 32 nibbles of 16 bytes, in dimension order (low nibble first), as two 16-byte vectors.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
fn split_nibbles(b: __m128i) -> (__m128i, __m128i) {
    let mask = _mm_set1_epi8(0x0F);
    let lo = _mm_and_si128(b, mask);
    let hi = _mm_and_si128(_mm_srli_epi16::<4>(b), mask);
    (_mm_unpacklo_epi8(lo, hi), _mm_unpackhi_epi8(lo, hi))
}

#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
fn hsum(s0: __m512, s1: __m512, s2: __m512, s3: __m512) -> f32 {
    _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)))
}

/// `Σ w_j·codes_j` over 8-bit codes. Requires `w.len() >= codes.len()` and AVX-512F/BW/VL.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn dot_u8_impl(w: &[f32], codes: &[u8]) -> f32 {
    let n = codes.len();
    let (pw, pc) = (w.as_ptr(), codes.as_ptr());
    let (mut s0, mut s1, mut s2, mut s3) =
        (_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps());
    let mut i = 0;
    // SAFETY: each full step reads 16 codes and 16 weights below i + 64 (or i + 16) <= n <=
    // w.len(); the tail reads n - i < 16 codes and weights through masked loads.
    unsafe {
        while i + 64 <= n {
            s0 = _mm512_fmadd_ps(widen16(load_bytes(pc.add(i))), load(pw.add(i)), s0);
            s1 = _mm512_fmadd_ps(widen16(load_bytes(pc.add(i + 16))), load(pw.add(i + 16)), s1);
            s2 = _mm512_fmadd_ps(widen16(load_bytes(pc.add(i + 32))), load(pw.add(i + 32)), s2);
            s3 = _mm512_fmadd_ps(widen16(load_bytes(pc.add(i + 48))), load(pw.add(i + 48)), s3);
            i += 64;
        }
        while i + 16 <= n {
            s0 = _mm512_fmadd_ps(widen16(load_bytes(pc.add(i))), load(pw.add(i)), s0);
            i += 16;
        }
        if i < n {
            let lanes = n - i;
            let b = _mm_maskz_loadu_epi8(((1u32 << lanes) - 1) as __mmask16, pc.add(i) as *const i8);
            s1 = _mm512_fmadd_ps(widen16(b), load_part(pw.add(i), lanes), s1);
        }
    }
    hsum(s0, s1, s2, s3)
}

/// `Σ w_j·code_j` over packed 4-bit codes. Requires `w.len() >= 2 * codes.len()` and
/// AVX-512F/BW/VL.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn dot_u4_impl(w: &[f32], codes: &[u8]) -> f32 {
    let n = codes.len();
    let (pw, pc) = (w.as_ptr(), codes.as_ptr());
    let (mut s0, mut s1, mut s2, mut s3) =
        (_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps());
    let mut i = 0;
    // SAFETY: byte i covers weights 2i and 2i+1. Full steps read 16 bytes at i (and i + 16) and
    // 32 weights from 2i (and 2i + 32), all below 2n <= w.len(); the tail reads its n - i < 16
    // bytes and 2(n - i) weights through masked loads.
    unsafe {
        while i + 32 <= n {
            let (a, b) = split_nibbles(load_bytes(pc.add(i)));
            let (c, d) = split_nibbles(load_bytes(pc.add(i + 16)));
            s0 = _mm512_fmadd_ps(widen16(a), load(pw.add(2 * i)), s0);
            s1 = _mm512_fmadd_ps(widen16(b), load(pw.add(2 * i + 16)), s1);
            s2 = _mm512_fmadd_ps(widen16(c), load(pw.add(2 * i + 32)), s2);
            s3 = _mm512_fmadd_ps(widen16(d), load(pw.add(2 * i + 48)), s3);
            i += 32;
        }
        while i + 16 <= n {
            let (a, b) = split_nibbles(load_bytes(pc.add(i)));
            s0 = _mm512_fmadd_ps(widen16(a), load(pw.add(2 * i)), s0);
            s1 = _mm512_fmadd_ps(widen16(b), load(pw.add(2 * i + 16)), s1);
            i += 16;
        }
        if i < n {
            let bytes = n - i;
            let raw = _mm_maskz_loadu_epi8(((1u32 << bytes) - 1) as __mmask16, pc.add(i) as *const i8);
            let (a, b) = split_nibbles(raw);
            let dims = 2 * bytes;
            s2 = _mm512_fmadd_ps(widen16(a), load_part(pw.add(2 * i), dims.min(16)), s2);
            if dims > 16 {
                s3 = _mm512_fmadd_ps(widen16(b), load_part(pw.add(2 * i + 16), dims - 16), s3);
            }
        }
    }
    hsum(s0, s1, s2, s3)
}

/// `acc + Σ pairs c·w` in 32-bit lanes: `vpmaddwd` + `vpaddd`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
fn madd_acc(acc: __m512i, c: __m512i, w: __m512i) -> __m512i {
    _mm512_add_epi32(acc, _mm512_madd_epi16(c, w))
}

/// The same with VNNI's fused `vpdpwssd` (one instruction).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
fn vnni_acc(acc: __m512i, c: __m512i, w: __m512i) -> __m512i {
    _mm512_dpwssd_epi32(acc, c, w)
}

/// Defines `$name(w, codes) -> Σ w_j·codes_j` in integers with features `$features` and the
/// pairwise multiply-accumulate `$acc`: 32 codes widened to 16-bit words (`vpmovzxbw`) per step,
/// the tail through masked loads. The result is the same exact integer whichever `$acc`.
macro_rules! dot_u8_i16 {
    ($name:ident, $features:literal, $acc:ident) => {
        /// Requires `w.len() >= codes.len()` and the function's target features.
        #[inline]
        #[target_feature(enable = $features)]
        unsafe fn $name(w: &[i16], codes: &[u8]) -> i32 {
            let n = codes.len();
            let (pw, pc) = (w.as_ptr(), codes.as_ptr());
            let (mut a0, mut a1) = (_mm512_setzero_si512(), _mm512_setzero_si512());
            let mut i = 0;
            // SAFETY: full steps read 32 codes and 32 weights below i + 64 (or i + 32) <= n <=
            // w.len(); the tail reads n - i < 32 of each through masked loads.
            unsafe {
                while i + 64 <= n {
                    let c0 = _mm512_cvtepu8_epi16(_mm256_loadu_si256(pc.add(i) as *const __m256i));
                    let c1 = _mm512_cvtepu8_epi16(_mm256_loadu_si256(pc.add(i + 32) as *const __m256i));
                    a0 = $acc(a0, c0, _mm512_loadu_si512(pw.add(i) as *const _));
                    a1 = $acc(a1, c1, _mm512_loadu_si512(pw.add(i + 32) as *const _));
                    i += 64;
                }
                if i + 32 <= n {
                    let c0 = _mm512_cvtepu8_epi16(_mm256_loadu_si256(pc.add(i) as *const __m256i));
                    a0 = $acc(a0, c0, _mm512_loadu_si512(pw.add(i) as *const _));
                    i += 32;
                }
                if i < n {
                    let m = ((1u64 << (n - i)) - 1) as __mmask32;
                    let c = _mm512_cvtepu8_epi16(_mm256_maskz_loadu_epi8(m, pc.add(i) as *const i8));
                    a1 = $acc(a1, c, _mm512_maskz_loadu_epi16(m, pw.add(i)));
                }
            }
            _mm512_reduce_add_epi32(_mm512_add_epi32(a0, a1))
        }
    };
}
dot_u8_i16!(dot_u8_i16_impl, "avx512f,avx512bw,avx512vl", madd_acc);
dot_u8_i16!(dot_u8_i16_vnni_impl, "avx512f,avx512bw,avx512vl,avx512vnni", vnni_acc);

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn many_u8_i16_vnni_impl(w: &[i16], codes: &[u8], packed: usize, stride: usize, out: &mut [i32]) {
    for (o, c) in out.iter_mut().zip(codes.chunks_exact(stride)) {
        // SAFETY: `packed <= stride` and `w.len() >= packed` (checked by the caller).
        *o = unsafe { dot_u8_i16_vnni_impl(w, &c[..packed]) };
    }
}

fn dot_u8_i16_vnni(w: &[i16], codes: &[u8]) -> i32 {
    assert!(w.len() >= codes.len(), "SQ8 kernel: {} weights for {} codes", w.len(), codes.len());
    // SAFETY: lengths checked; handed out only when the CPU has AVX-512 VNNI (`VNNI`).
    unsafe { dot_u8_i16_vnni_impl(w, codes) }
}

fn many_u8_i16_vnni(w: &[i16], codes: &[u8], packed: usize, stride: usize, out: &mut [i32]) {
    super::check_many(packed, stride);
    assert!(w.len() >= packed, "SQ8 kernel: {} weights for {packed} codes", w.len());
    // SAFETY: shapes checked; handed out only when the CPU has AVX-512 VNNI.
    unsafe { many_u8_i16_vnni_impl(w, codes, packed, stride, out) }
}

/// The integer kernels with VNNI, for CPUs that have it (chosen in `SqKernels::for_isa`).
pub(super) const VNNI: (super::DotI16Fn, super::ManyI16Fn) = (dot_u8_i16_vnni, many_u8_i16_vnni);

super::sq_simd_table!(Isa::Avx512, "avx512f,avx512bw,avx512vl");
