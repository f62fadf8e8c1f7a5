//! The SQ scan kernels: `Σ_j w_j·code_j` for f32 weights against 8-bit codes or packed 4-bit
//! codes, with a scalar reference ([`scalar`]) and AVX2+FMA / AVX-512 paths chosen once at run
//! time.
//!
//! The estimator folds the per-dimension affine decode into the weights, so this dot product is
//! the whole per-code cost. Each level provides a one-code kernel (graph traversal calls it once
//! per visited node) and a many-code kernel (flat scans), which keeps the whole loop inside one
//! `#[target_feature]` function. Nibble order of 4-bit codes: byte `k` holds dimension `2k` in its
//! low nibble and dimension `2k+1` in its high nibble.
//!
//! `QUARRY_ISA=scalar|avx2|avx512` forces a supported level, as for the f32 kernels.

use quarry_linalg::Isa;
use std::sync::OnceLock;

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
pub(crate) mod scalar;

/// One-code kernel `(weights, codes) -> Σ w_j·code_j`. For 8-bit codes `weights.len() >=
/// codes.len()`; for 4-bit codes `weights.len() >= 2 * codes.len()` (a short slice panics).
pub(crate) type DotFn = fn(&[f32], &[u8]) -> f32;

/// Many-code kernel `(weights, codes, packed, stride, out)`: for each `stride`-byte chunk of
/// `codes` (zipped with `out`), writes the dot product of its first `packed` bytes.
pub(crate) type ManyFn = fn(&[f32], &[u8], usize, usize, &mut [f32]);

/// Integer one-code kernel `(weights, codes) -> Σ w_j·code_j` for 16-bit weights against 8-bit
/// codes, `weights.len() >= codes.len()`. Exact integer arithmetic, so every level returns the
/// same value; callers keep `Σ |w_j|·255` below 2³¹ (see [`i16_weight_bound`]).
pub(crate) type DotI16Fn = fn(&[i16], &[u8]) -> i32;

/// [`DotI16Fn`] over consecutive codes, as [`ManyFn`].
pub(crate) type ManyI16Fn = fn(&[i16], &[u8], usize, usize, &mut [i32]);

/// The largest 16-bit weight magnitude for `dim` 8-bit codes such that no partial or total sum
/// of the integer kernel can leave i32: `dim · 255 · bound < 2³¹`, at most 2¹⁴ − 1.
pub(crate) fn i16_weight_bound(dim: usize) -> i32 {
    let by_sum = (i32::MAX as i64 / (255 * dim.max(1) as i64)).min(16_383);
    by_sum.max(1) as i32
}

/// The SQ kernels of one instruction-set level.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SqKernels {
    /// The level these kernels use.
    pub(crate) isa: Isa,
    /// Weights × 8-bit codes.
    pub(crate) dot_u8: DotFn,
    /// Weights × packed 4-bit codes.
    pub(crate) dot_u4: DotFn,
    /// [`SqKernels::dot_u8`] over consecutive codes.
    pub(crate) many_u8: ManyFn,
    /// [`SqKernels::dot_u4`] over consecutive codes.
    pub(crate) many_u4: ManyFn,
    /// 16-bit weights × 8-bit codes, exact in i32 (`pmaddwd`: 2 products per lane and step).
    pub(crate) dot_u8_i16: DotI16Fn,
    /// [`SqKernels::dot_u8_i16`] over consecutive codes.
    pub(crate) many_u8_i16: ManyI16Fn,
}

/// Preference order when nothing is forced: the SQ kernel is compute-bound on codes in cache,
/// where the 16-lane AVX-512 path issues half the instructions of AVX2.
const PREFERENCE: [Isa; 3] = [Isa::Avx512, Isa::Avx2, Isa::Scalar];

/// Whether this CPU runs the SQ kernels of `isa` (AVX-512 here also needs BW and VL for the
/// masked byte loads of the tails).
pub(crate) fn supported(isa: Isa) -> bool {
    match isa {
        Isa::Scalar => true,
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => {
            is_x86_feature_detected!("avx512f")
                && is_x86_feature_detected!("avx512bw")
                && is_x86_feature_detected!("avx512vl")
        }
        #[allow(unreachable_patterns)]
        _ => false,
    }
}

impl SqKernels {
    /// The kernels of `isa`, or `None` when this CPU (or target) cannot run them.
    pub(crate) fn for_isa(isa: Isa) -> Option<SqKernels> {
        if !supported(isa) {
            return None;
        }
        match isa {
            Isa::Scalar => Some(scalar::KERNELS),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => Some(avx2::KERNELS),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 if is_x86_feature_detected!("avx512vnni") => {
                let (dot_u8_i16, many_u8_i16) = avx512::VNNI;
                Some(SqKernels { dot_u8_i16, many_u8_i16, ..avx512::KERNELS })
            }
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => Some(avx512::KERNELS),
            #[allow(unreachable_patterns)]
            _ => None,
        }
    }

    /// Every kernel table this CPU can run for `isa`, including the AVX-512 table without VNNI
    /// where the CPU has VNNI (so tests cover both).
    #[cfg(test)]
    pub(crate) fn variants(isa: Isa) -> Vec<SqKernels> {
        let mut out: Vec<SqKernels> = SqKernels::for_isa(isa).into_iter().collect();
        #[cfg(target_arch = "x86_64")]
        if isa == Isa::Avx512 && supported(isa) && is_x86_feature_detected!("avx512vnni") {
            out.push(avx512::KERNELS);
        }
        out
    }

    /// The kernels in use: the level forced by `QUARRY_ISA` if supported, else the best one.
    pub(crate) fn get() -> &'static SqKernels {
        static K: OnceLock<SqKernels> = OnceLock::new();
        K.get_or_init(|| {
            let isa = quarry_linalg::kernels::choose_level(&PREFERENCE, Isa::name, supported, Isa::Scalar);
            SqKernels::for_isa(isa).unwrap_or(scalar::KERNELS)
        })
    }
}

/// Checks the shapes a many-code kernel relies on (a programming error otherwise).
#[inline]
pub(crate) fn check_many(packed: usize, stride: usize) {
    assert!(stride > 0 && packed <= stride, "SQ scan: code stride {stride} < packed length {packed}");
}

/// Generates the safe one-code and many-code entry points and the `KERNELS` table of one SIMD
/// level from its `dot_u8_impl` / `dot_u4_impl` (unsafe, `#[target_feature]`, lengths checked by
/// the caller).
#[cfg(target_arch = "x86_64")]
macro_rules! sq_simd_table {
    ($isa:expr, $features:literal) => {
        #[target_feature(enable = $features)]
        unsafe fn many_u8_impl(w: &[f32], codes: &[u8], packed: usize, stride: usize, out: &mut [f32]) {
            for (o, c) in out.iter_mut().zip(codes.chunks_exact(stride)) {
                // SAFETY: `packed <= stride` (checked) and `w.len() >= packed` (checked); the
                // level's features are enabled on this function.
                *o = unsafe { dot_u8_impl(w, &c[..packed]) };
            }
        }

        #[target_feature(enable = $features)]
        unsafe fn many_u4_impl(w: &[f32], codes: &[u8], packed: usize, stride: usize, out: &mut [f32]) {
            for (o, c) in out.iter_mut().zip(codes.chunks_exact(stride)) {
                // SAFETY: `packed <= stride` and `w.len() >= 2 * packed` (checked); the level's
                // features are enabled on this function.
                *o = unsafe { dot_u4_impl(w, &c[..packed]) };
            }
        }

        // The safe entry points are reachable only through `KERNELS`, which `SqKernels::for_isa`
        // hands out only after feature detection; lengths are checked before any load.
        fn dot_u8(w: &[f32], codes: &[u8]) -> f32 {
            assert!(w.len() >= codes.len(), "SQ8 kernel: {} weights for {} codes", w.len(), codes.len());
            // SAFETY: lengths checked; the level's features are present (see above).
            unsafe { dot_u8_impl(w, codes) }
        }

        fn dot_u4(w: &[f32], codes: &[u8]) -> f32 {
            assert!(w.len() >= 2 * codes.len(), "SQ4 kernel: {} weights for {} bytes", w.len(), codes.len());
            // SAFETY: lengths checked; the level's features are present.
            unsafe { dot_u4_impl(w, codes) }
        }

        fn many_u8(w: &[f32], codes: &[u8], packed: usize, stride: usize, out: &mut [f32]) {
            $crate::sq::kernels::check_many(packed, stride);
            assert!(w.len() >= packed, "SQ8 kernel: {} weights for {packed} codes", w.len());
            // SAFETY: shapes checked; the level's features are present.
            unsafe { many_u8_impl(w, codes, packed, stride, out) }
        }

        fn many_u4(w: &[f32], codes: &[u8], packed: usize, stride: usize, out: &mut [f32]) {
            $crate::sq::kernels::check_many(packed, stride);
            assert!(w.len() >= 2 * packed, "SQ4 kernel: {} weights for {packed} bytes", w.len());
            // SAFETY: shapes checked; the level's features are present.
            unsafe { many_u4_impl(w, codes, packed, stride, out) }
        }

        #[target_feature(enable = $features)]
        unsafe fn many_u8_i16_impl(w: &[i16], codes: &[u8], packed: usize, stride: usize, out: &mut [i32]) {
            for (o, c) in out.iter_mut().zip(codes.chunks_exact(stride)) {
                // SAFETY: `packed <= stride` and `w.len() >= packed` (checked); the level's
                // features are enabled on this function.
                *o = unsafe { dot_u8_i16_impl(w, &c[..packed]) };
            }
        }

        fn dot_u8_i16(w: &[i16], codes: &[u8]) -> i32 {
            assert!(w.len() >= codes.len(), "SQ8 kernel: {} weights for {} codes", w.len(), codes.len());
            // SAFETY: lengths checked; the level's features are present.
            unsafe { dot_u8_i16_impl(w, codes) }
        }

        fn many_u8_i16(w: &[i16], codes: &[u8], packed: usize, stride: usize, out: &mut [i32]) {
            $crate::sq::kernels::check_many(packed, stride);
            assert!(w.len() >= packed, "SQ8 kernel: {} weights for {packed} codes", w.len());
            // SAFETY: shapes checked; the level's features are present.
            unsafe { many_u8_i16_impl(w, codes, packed, stride, out) }
        }

        /// This level's table; only handed out by `SqKernels::for_isa` after feature detection.
        pub(super) const KERNELS: SqKernels =
            SqKernels { isa: $isa, dot_u8, dot_u4, many_u8, many_u4, dot_u8_i16, many_u8_i16 };
    };
}
#[cfg(target_arch = "x86_64")]
pub(crate) use sq_simd_table;
