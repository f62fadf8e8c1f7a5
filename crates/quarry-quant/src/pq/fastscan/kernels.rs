//! The fast-scan block kernels: a scalar reference, AVX2 and AVX-512BW (`vpshufb`), all with the
//! same signature and bit-identical u16 results.
//!
//! Every kernel takes whole blocks: `data` is `nb` blocks of `pairs * 32` bytes in the layout of
//! [`super::FastScanCodes`], `table` is `pairs * 32` bytes of [`super::QuantizedLut::table`],
//! and `out` receives `nb * 32` sums (wrapping u16 arithmetic — the quantized tables guarantee
//! no wrap).
//!
//! SIMD scheme (per block, per pair of subspaces): one 32-byte load holds both subspaces' codes
//! of all 32 vectors; `and`/`shift` split the low nibbles (vectors 0–15) from the high nibbles
//! (vectors 16–31); one `vpshufb` per half looks the codes up in the pair's two 16-entry tables,
//! one per 128-bit lane. The u8 results are accumulated into u16 lanes without unpacking (faiss's
//! trick): `acc_a += r` (as u16) and `acc_b += r >> 8` collect the odd bytes in `acc_b` and the
//! even bytes in `acc_a - (acc_b << 8)`. At the end of the block the lanes (one per subspace
//! parity; four with AVX-512, which takes two pairs per step) are added and the even/odd sums
//! interleaved back into vector order.

/// Scalar reference, written from the layout definition.
pub(crate) fn scan_scalar(data: &[u8], pairs: usize, table: &[u8], out: &mut [u16]) {
    check(data, pairs, table, out);
    let block = pairs * 32;
    if block == 0 {
        out.fill(0);
        return;
    }
    for (codes, sums) in data.chunks_exact(block).zip(out.chunks_exact_mut(32)) {
        for (v, s) in sums.iter_mut().enumerate() {
            let (i, shift) = (v % 16, 4 * (v / 16));
            let mut acc = 0u16;
            for (pc, pt) in codes.chunks_exact(32).zip(table.chunks_exact(32)) {
                let c0 = ((pc[i] >> shift) & 0x0F) as usize;
                let c1 = ((pc[16 + i] >> shift) & 0x0F) as usize;
                acc = acc.wrapping_add(pt[c0] as u16).wrapping_add(pt[16 + c1] as u16);
            }
            *s = acc;
        }
    }
}

/// Shapes every kernel requires; a mismatch is a programming error inside this module.
#[inline]
pub(crate) fn check(data: &[u8], pairs: usize, table: &[u8], out: &[u16]) {
    assert!(
        table.len() == pairs * 32
            && out.len().is_multiple_of(32)
            && data.len() == (out.len() / 32) * pairs * 32,
        "fast-scan kernel: data must be nb x pairs x 32 bytes, table pairs x 32, out nb x 32"
    );
}

#[cfg(target_arch = "x86_64")]
pub(crate) mod avx2 {
    use std::arch::x86_64::*;

    /// AVX2 kernel. Requires AVX2 (checked by the caller) and the shapes of [`super::check`].
    pub(crate) fn scan(data: &[u8], pairs: usize, table: &[u8], out: &mut [u16]) {
        super::check(data, pairs, table, out);
        assert!(std::arch::is_x86_feature_detected!("avx2"), "AVX2 not available");
        // SAFETY: AVX2 is present (asserted) and the shapes were checked.
        unsafe { scan_impl(data, pairs, table, out) }
    }

    /// # Safety
    /// AVX2 must be available; shapes as in [`super::check`].
    #[target_feature(enable = "avx2")]
    unsafe fn scan_impl(data: &[u8], pairs: usize, table: &[u8], out: &mut [u16]) {
        let nb = out.len() / 32;
        let mask = _mm256_set1_epi8(0x0F);
        let pt = table.as_ptr();
        for b in 0..nb {
            // SAFETY: block b spans data[b * pairs * 32..(b + 1) * pairs * 32] (shape checked).
            let base = unsafe { data.as_ptr().add(b * pairs * 32) };
            let mut a0 = _mm256_setzero_si256();
            let mut a1 = _mm256_setzero_si256();
            let mut a2 = _mm256_setzero_si256();
            let mut a3 = _mm256_setzero_si256();
            for p in 0..pairs {
                // SAFETY: p < pairs, so both 32-byte loads stay inside the block and the table.
                let (c, l) = unsafe {
                    (
                        _mm256_loadu_si256(base.add(p * 32) as *const __m256i),
                        _mm256_loadu_si256(pt.add(p * 32) as *const __m256i),
                    )
                };
                let lo = _mm256_and_si256(c, mask);
                let hi = _mm256_and_si256(_mm256_srli_epi16::<4>(c), mask);
                let rlo = _mm256_shuffle_epi8(l, lo);
                let rhi = _mm256_shuffle_epi8(l, hi);
                a0 = _mm256_add_epi16(a0, rlo);
                a1 = _mm256_add_epi16(a1, _mm256_srli_epi16::<8>(rlo));
                a2 = _mm256_add_epi16(a2, rhi);
                a3 = _mm256_add_epi16(a3, _mm256_srli_epi16::<8>(rhi));
            }
            // SAFETY: out has nb * 32 entries; each call writes 16 at b * 32 and b * 32 + 16.
            unsafe {
                finish(a0, a1, out.as_mut_ptr().add(b * 32));
                finish(a2, a3, out.as_mut_ptr().add(b * 32 + 16));
            }
        }
    }

    /// Turns the (even-with-carry, odd) accumulators of 16 vectors into their 16 sums at `dst`.
    ///
    /// # Safety
    /// AVX2; `dst` valid for 16 u16 writes.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn finish(a_even: __m256i, a_odd: __m256i, dst: *mut u16) {
        let even = _mm256_sub_epi16(a_even, _mm256_slli_epi16::<8>(a_odd));
        let e = _mm_add_epi16(_mm256_castsi256_si128(even), _mm256_extracti128_si256::<1>(even));
        let o = _mm_add_epi16(_mm256_castsi256_si128(a_odd), _mm256_extracti128_si256::<1>(a_odd));
        // SAFETY: guaranteed by the caller.
        unsafe {
            _mm_storeu_si128(dst as *mut __m128i, _mm_unpacklo_epi16(e, o));
            _mm_storeu_si128(dst.add(8) as *mut __m128i, _mm_unpackhi_epi16(e, o));
        }
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) mod avx512 {
    use std::arch::x86_64::*;

    /// Whether the CPU has the AVX-512 subsets this kernel uses.
    pub(crate) fn supported() -> bool {
        std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("avx512bw")
    }

    /// AVX-512BW kernel: two pairs of subspaces per step. Requires [`supported`].
    pub(crate) fn scan(data: &[u8], pairs: usize, table: &[u8], out: &mut [u16]) {
        super::check(data, pairs, table, out);
        assert!(supported(), "AVX-512BW not available");
        // SAFETY: the features are present (asserted) and the shapes were checked.
        unsafe { scan_impl(data, pairs, table, out) }
    }

    #[inline]
    #[target_feature(enable = "avx512f,avx512bw")]
    fn step(acc: &mut [__m512i; 4], c: __m512i, l: __m512i) {
        let mask = _mm512_set1_epi8(0x0F);
        let lo = _mm512_and_si512(c, mask);
        let hi = _mm512_and_si512(_mm512_srli_epi16::<4>(c), mask);
        let rlo = _mm512_shuffle_epi8(l, lo);
        let rhi = _mm512_shuffle_epi8(l, hi);
        acc[0] = _mm512_add_epi16(acc[0], rlo);
        acc[1] = _mm512_add_epi16(acc[1], _mm512_srli_epi16::<8>(rlo));
        acc[2] = _mm512_add_epi16(acc[2], rhi);
        acc[3] = _mm512_add_epi16(acc[3], _mm512_srli_epi16::<8>(rhi));
    }

    /// # Safety
    /// AVX-512F/BW must be available; shapes as in [`super::check`].
    #[target_feature(enable = "avx512f,avx512bw")]
    unsafe fn scan_impl(data: &[u8], pairs: usize, table: &[u8], out: &mut [u16]) {
        let nb = out.len() / 32;
        let pt = table.as_ptr();
        for b in 0..nb {
            // SAFETY: block b spans data[b * pairs * 32..(b + 1) * pairs * 32] (shape checked).
            let base = unsafe { data.as_ptr().add(b * pairs * 32) };
            let mut acc = [_mm512_setzero_si512(); 4];
            let mut p = 0;
            while p + 2 <= pairs {
                // SAFETY: p + 2 <= pairs: the 64-byte loads stay inside the block and the table.
                let (c, l) = unsafe {
                    (
                        _mm512_loadu_si512(base.add(p * 32) as *const __m512i),
                        _mm512_loadu_si512(pt.add(p * 32) as *const __m512i),
                    )
                };
                step(&mut acc, c, l);
                p += 2;
            }
            if p < pairs {
                // SAFETY: p < pairs: the 32-byte loads stay inside; upper halves are zero codes
                // looked up in a zero table, adding nothing.
                let (c, l) = unsafe {
                    (
                        _mm512_zextsi256_si512(_mm256_loadu_si256(base.add(p * 32) as *const __m256i)),
                        _mm512_zextsi256_si512(_mm256_loadu_si256(pt.add(p * 32) as *const __m256i)),
                    )
                };
                step(&mut acc, c, l);
            }
            // SAFETY: out has nb * 32 entries; each call writes 16 at b * 32 and b * 32 + 16.
            unsafe {
                finish(acc[0], acc[1], out.as_mut_ptr().add(b * 32));
                finish(acc[2], acc[3], out.as_mut_ptr().add(b * 32 + 16));
            }
        }
    }

    /// Sum of the four 128-bit lanes as 8 u16.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw")]
    fn lanes_sum(v: __m512i) -> __m128i {
        let s = _mm256_add_epi16(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64::<1>(v));
        _mm_add_epi16(_mm256_castsi256_si128(s), _mm256_extracti128_si256::<1>(s))
    }

    /// # Safety
    /// AVX-512F/BW; `dst` valid for 16 u16 writes.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw")]
    unsafe fn finish(a_even: __m512i, a_odd: __m512i, dst: *mut u16) {
        let even = _mm512_sub_epi16(a_even, _mm512_slli_epi16::<8>(a_odd));
        let e = lanes_sum(even);
        let o = lanes_sum(a_odd);
        // SAFETY: guaranteed by the caller.
        unsafe {
            _mm_storeu_si128(dst as *mut __m128i, _mm_unpacklo_epi16(e, o));
            _mm_storeu_si128(dst.add(8) as *mut __m128i, _mm_unpackhi_epi16(e, o));
        }
    }
}
