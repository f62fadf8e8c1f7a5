//! `simd_table!`: the part every x86 SIMD level shares — scan loops over the level's pair kernels,
//! the safe entry points with their length checks, and the `KERNELS` table.
//!
//! A level's file defines `dot_impl`, `l2_impl`, `dot_f16_impl` and `l2_f16_impl` (unsafe,
//! `#[target_feature]`, requiring `b.len() >= a.len()`) and then invokes
//! `simd_table!(Isa::Level, "features")`.

/// Generates the scan kernels, safe wrappers and `KERNELS` for one SIMD level.
macro_rules! simd_table {
    ($isa:expr, $features:literal) => {
        macro_rules! many_kernel {
            ($name:ident, $ty:ty, $pair:ident) => {
                #[target_feature(enable = $features)]
                unsafe fn $name(q: &[f32], rows: &[$ty], out: &mut [f32]) {
                    for (o, r) in out.iter_mut().zip(rows.chunks_exact(q.len())) {
                        // SAFETY: `r.len() == q.len()`; the features are enabled on this function.
                        *o = unsafe { $pair(q, r) };
                    }
                }
            };
        }
        many_kernel!(dot_many_impl, f32, dot_impl);
        many_kernel!(l2_many_impl, f32, l2_impl);
        many_kernel!(dot_many_f16_impl, f16, dot_f16_impl);
        many_kernel!(l2_many_f16_impl, f16, l2_f16_impl);

        // The safe entry points below are reachable only through `KERNELS`, which
        // `Kernels::for_isa` returns only when the level is supported by this CPU; lengths are
        // checked before any load.
        macro_rules! pair_entry {
            ($name:ident, $ty:ty, $impl:ident) => {
                fn $name(a: &[f32], b: &[$ty]) -> f32 {
                    assert_eq!(a.len(), b.len());
                    // SAFETY: lengths checked; the level's features are present (see above).
                    unsafe { $impl(a, b) }
                }
            };
        }
        pair_entry!(dot, f32, dot_impl);
        pair_entry!(l2_sq, f32, l2_impl);
        pair_entry!(dot_f16, f16, dot_f16_impl);
        pair_entry!(l2_sq_f16, f16, l2_f16_impl);

        macro_rules! many_entry {
            ($name:ident, $ty:ty, $impl:ident) => {
                fn $name(q: &[f32], rows: &[$ty], out: &mut [f32]) {
                    $crate::kernels::check_many(q.len(), rows.len(), out.len());
                    // SAFETY: shapes checked; the level's features are present.
                    unsafe { $impl(q, rows, out) }
                }
            };
        }
        many_entry!(dot_many, f32, dot_many_impl);
        many_entry!(l2_many, f32, l2_many_impl);
        many_entry!(dot_many_f16, f16, dot_many_f16_impl);
        many_entry!(l2_many_f16, f16, l2_many_f16_impl);

        /// This level's kernel table; only handed out by [`Kernels::for_isa`] after feature detection.
        pub(super) const KERNELS: Kernels = Kernels {
            isa: $isa,
            dot,
            l2_sq,
            dot_f16,
            l2_sq_f16,
            dot_many,
            l2_many,
            dot_many_f16,
            l2_many_f16,
        };
    };
}
