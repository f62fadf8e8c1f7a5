//! x86-64 kernels for RaBitQ codes, one submodule per level:
//!
//! * `<x_u, q>` over the slotted layouts (2, 4, 8 bits): 16 code bytes widened to 32-bit lanes,
//!   shifted and masked per slot, converted and fused-multiply-added with the float query into
//!   four accumulators; over the 1-bit stream: 16 code bits used as an AVX-512 lane mask for a
//!   masked add (AVX2: 8 bits expanded to a lane mask by compare); split layouts sum their parts.
//! * The bit-plane popcount product of 1-bit codes with a 4-bit query: AVX-512 VPOPCNTDQ, or the
//!   scalar body compiled with the `popcnt` instruction.
//!
//! The `unsafe` functions require their target features (checked by `CodeKernels::for_level`
//! before a table is handed out) and the lengths their docs state (checked by the safe entry
//! points in this file before any load).

use super::{scalar, DotFn};

/// Checks a `bits ∈ {1, 2, 4, 8}` kernel's shape: whole 64-value steps and enough query floats.
#[inline]
fn check_shape(bits: u32, packed: &[u8], q: &[f32]) {
    assert!(
        packed.len().is_multiple_of(8 * bits as usize) && q.len() >= packed.len() * 8 / bits as usize,
        "packed codes of {} bytes do not match a {}-float query at {bits} bits",
        packed.len(),
        q.len()
    );
}

/// Safe entry points of one level's `<x_u, q>` kernels (shape checked, then the `unsafe`
/// kernel; the features are present because the table is only handed out after detection),
/// the split-layout sums, and the level's `DOTS` table.
macro_rules! composed_entries {
    ($bits1:ident, $slots:ident) => {
        fn dot1(p: &[u8], q: &[f32]) -> f32 {
            check_shape(1, p, q);
            // SAFETY: shape checked; the level's features are present.
            unsafe { $bits1(p, q) }
        }
        fn dot2(p: &[u8], q: &[f32]) -> f32 {
            check_shape(2, p, q);
            // SAFETY: shape checked; the level's features are present.
            unsafe { $slots::<2>(p, q) }
        }
        fn dot4(p: &[u8], q: &[f32]) -> f32 {
            check_shape(4, p, q);
            // SAFETY: shape checked; the level's features are present.
            unsafe { $slots::<4>(p, q) }
        }
        fn dot8(p: &[u8], q: &[f32]) -> f32 {
            check_shape(8, p, q);
            // SAFETY: shape checked; the level's features are present.
            unsafe { $slots::<8>(p, q) }
        }
        composed_kernels!(dot1, dot2, dot4);

        /// This level's `<x_u, q>` kernels for 1..=8 bits.
        pub(in super::super) const DOTS: [DotFn; 8] = [dot1, dot2, dot3, dot4, dot5, dot6, dot7, dot8];
    };
}
/// AVX-512F kernels (and VPOPCNTDQ for the bit planes).
pub(super) mod avx512 {
    use super::{check_shape, scalar, DotFn};
    use std::arch::x86_64::*;

    /// `<x_u, q>`, slotted layout, `B ∈ {2, 4, 8}`.
    ///
    /// Requires AVX-512F, `packed.len()` a multiple of `8·B` (64 values) and
    /// `q.len() >= packed.len()·8/B`.
    #[target_feature(enable = "avx512f")]
    unsafe fn dot_slots<const B: u32>(packed: &[u8], q: &[f32]) -> f32 {
        let step_bytes = 8 * B as usize;
        let steps = packed.len() / step_bytes;
        let groups = (B / 2) as usize;
        let slots = (8 / B) as usize;
        let mask = _mm512_set1_epi32(((1u32 << B) - 1) as i32);
        let mut acc = [_mm512_setzero_ps(); 4];
        let (pp, pq) = (packed.as_ptr(), q.as_ptr());
        for s in 0..steps {
            for g in 0..groups {
                // SAFETY: step `s`, group `g` reads bytes `[8Bs + 16g, +16)`, inside `packed`
                // because `steps·8B <= packed.len()` and `16·groups = 8B`.
                let raw = unsafe { _mm_loadu_si128(pp.add(s * step_bytes + 16 * g) as *const __m128i) };
                let v = _mm512_cvtepu8_epi32(raw);
                for k in 0..slots {
                    let c = g * slots + k;
                    let x = if B == 8 {
                        v
                    } else {
                        _mm512_and_si512(_mm512_srl_epi32(v, _mm_cvtsi32_si128((k as u32 * B) as i32)), mask)
                    };
                    // SAFETY: reads floats `[64s + 16c, +16)` with `c < 4`, inside `q` because
                    // `q.len() >= 64·steps`.
                    let qv = unsafe { _mm512_loadu_ps(pq.add(64 * s + 16 * c)) };
                    acc[c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(x), qv, acc[c]);
                }
            }
        }
        _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3])))
    }

    /// `<x_b, q>`, 1-bit stream: each 16 code bits mask an add of 16 query floats.
    ///
    /// Requires AVX-512F, `packed.len()` a multiple of 8 and `q.len() >= 8·packed.len()`.
    #[target_feature(enable = "avx512f")]
    unsafe fn dot_bits(packed: &[u8], q: &[f32]) -> f32 {
        let mut acc = [_mm512_setzero_ps(); 4];
        let pq = q.as_ptr();
        for (s, w) in packed.chunks_exact(8).enumerate() {
            let w = u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
            for (c, a) in acc.iter_mut().enumerate() {
                // SAFETY: reads floats `[64s + 16c, +16)`, inside `q` (`q.len() >= 64·steps`).
                let qv = unsafe { _mm512_loadu_ps(pq.add(64 * s + 16 * c)) };
                *a = _mm512_mask_add_ps(*a, (w >> (16 * c)) as u16, *a, qv);
            }
        }
        _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3])))
    }

    /// Bit-plane product (see `scalar::bitplanes`) with 512-bit popcounts, eight words at a time
    /// (masked loads for the tail).
    ///
    /// Requires AVX-512F and VPOPCNTDQ, `code.len()` a multiple of 8 and
    /// `planes.len() >= 4·code.len()/8`.
    #[target_feature(enable = "avx512f,avx512vpopcntdq")]
    unsafe fn bitplanes_impl(code: &[u8], planes: &[u64]) -> (u32, u32) {
        let words = code.len() / 8;
        let (pc, pp) = (code.as_ptr(), planes.as_ptr());
        let mut acc = [_mm512_setzero_si512(); 4];
        let mut count = _mm512_setzero_si512();
        let mut w = 0;
        while w < words {
            let m: __mmask8 = if words - w >= 8 { 0xFF } else { ((1u32 << (words - w)) - 1) as u8 };
            // SAFETY: the mask enables only words `w .. min(w + 8, words)`, all inside `code`;
            // masked-off lanes are not accessed.
            let x = unsafe { _mm512_maskz_loadu_epi64(m, pc.add(8 * w) as *const i64) };
            count = _mm512_add_epi64(count, _mm512_popcnt_epi64(x));
            for (j, a) in acc.iter_mut().enumerate() {
                // SAFETY: enabled words `j·words + w .. j·words + min(w + 8, words)` lie inside
                // `planes` (`planes.len() >= 4·words`).
                let p = unsafe { _mm512_maskz_loadu_epi64(m, pp.add(j * words + w) as *const i64) };
                *a = _mm512_add_epi64(*a, _mm512_popcnt_epi64(_mm512_and_si512(x, p)));
            }
            w += 8;
        }
        let weighted = _mm512_add_epi64(
            _mm512_add_epi64(acc[0], _mm512_slli_epi64::<1>(acc[1])),
            _mm512_add_epi64(_mm512_slli_epi64::<2>(acc[2]), _mm512_slli_epi64::<3>(acc[3])),
        );
        (_mm512_reduce_add_epi64(weighted) as u32, _mm512_reduce_add_epi64(count) as u32)
    }

    /// Bit-plane product with AVX-512 VPOPCNTDQ.
    pub(in super::super) fn bitplanes(code: &[u8], planes: &[u64]) -> (u32, u32) {
        scalar::check_planes(code, planes);
        // SAFETY: shape checked; AVX-512F and VPOPCNTDQ are present (module doc).
        unsafe { bitplanes_impl(code, planes) }
    }

    composed_entries!(dot_bits, dot_slots);
}

/// AVX2 + FMA kernels (and POPCNT for the bit planes).
pub(super) mod avx2 {
    use super::{check_shape, scalar, DotFn};
    use std::arch::x86_64::*;

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn hsum(v: __m256) -> f32 {
        let half = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
        let quad = _mm_add_ps(half, _mm_movehl_ps(half, half));
        _mm_cvtss_f32(_mm_add_ss(quad, _mm_shuffle_ps::<1>(quad, quad)))
    }

    /// `<x_u, q>`, slotted layout, `B ∈ {2, 4, 8}`, eight lanes at a time.
    ///
    /// Requires AVX2 and FMA, `packed.len()` a multiple of `8·B` and `q.len() >= packed.len()·8/B`.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn dot_slots<const B: u32>(packed: &[u8], q: &[f32]) -> f32 {
        let step_bytes = 8 * B as usize;
        let steps = packed.len() / step_bytes;
        let groups = (B / 2) as usize;
        let slots = (8 / B) as usize;
        let mask = _mm256_set1_epi32(((1u32 << B) - 1) as i32);
        let mut acc = [_mm256_setzero_ps(); 4];
        let (pp, pq) = (packed.as_ptr(), q.as_ptr());
        for s in 0..steps {
            for g in 0..groups {
                for h in 0..2 {
                    // SAFETY: reads bytes `[8Bs + 16g + 8h, +8)`, inside the 16-byte group (see
                    // the AVX-512 kernel) since `8h + 8 <= 16`.
                    let raw =
                        unsafe { _mm_loadl_epi64(pp.add(s * step_bytes + 16 * g + 8 * h) as *const __m128i) };
                    let v = _mm256_cvtepu8_epi32(raw);
                    for k in 0..slots {
                        let c = g * slots + k;
                        let x = if B == 8 {
                            v
                        } else {
                            _mm256_and_si256(
                                _mm256_srl_epi32(v, _mm_cvtsi32_si128((k as u32 * B) as i32)),
                                mask,
                            )
                        };
                        // SAFETY: reads floats `[64s + 16c + 8h, +8)`, inside `q` (`q.len() >= 64·steps`).
                        let qv = unsafe { _mm256_loadu_ps(pq.add(64 * s + 16 * c + 8 * h)) };
                        acc[c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(x), qv, acc[c]);
                    }
                }
            }
        }
        hsum(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])))
    }

    /// `<x_b, q>`, 1-bit stream: each code byte is broadcast, compared bitwise into a lane mask
    /// and used to select 8 query floats.
    ///
    /// Requires AVX2, `packed.len()` a multiple of 8 and `q.len() >= 8·packed.len()`.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn dot_bits(packed: &[u8], q: &[f32]) -> f32 {
        let select = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
        let mut acc = [_mm256_setzero_ps(); 4];
        let pq = q.as_ptr();
        for (s, bytes) in packed.chunks_exact(4).enumerate() {
            for (j, a) in acc.iter_mut().enumerate() {
                let bits = _mm256_and_si256(_mm256_set1_epi32(bytes[j] as i32), select);
                let lanes = _mm256_castsi256_ps(_mm256_cmpeq_epi32(bits, select));
                // SAFETY: reads floats `[32s + 8j, +8)`, inside `q` (`q.len() >= 8·packed.len()`
                // and `packed.len()` is a multiple of 8).
                let qv = unsafe { _mm256_loadu_ps(pq.add(32 * s + 8 * j)) };
                *a = _mm256_add_ps(*a, _mm256_and_ps(lanes, qv));
            }
        }
        hsum(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])))
    }

    /// The scalar bit-plane product compiled with the `popcnt` instruction.
    #[target_feature(enable = "popcnt")]
    fn bitplanes_impl(code: &[u8], planes: &[u64]) -> (u32, u32) {
        scalar::bitplanes(code, planes)
    }

    /// Bit-plane product with the scalar `popcnt` instruction.
    pub(in super::super) fn bitplanes(code: &[u8], planes: &[u64]) -> (u32, u32) {
        // SAFETY: `popcnt` is present (module doc); the scalar body indexes safely.
        unsafe { bitplanes_impl(code, planes) }
    }

    composed_entries!(dot_bits, dot_slots);
}
