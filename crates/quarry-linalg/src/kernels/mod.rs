//! Distance kernels with one scalar reference and SIMD paths chosen once at run time.
//!
//! Every kernel comes in a per-vector form (`dot`, `l2_sq`) and a scan form (`dot_many`,
//! `l2_many`) that compares one query with a block of contiguous rows — the exact-scan hot loop,
//! which keeps the whole loop inside one `#[target_feature]` function. The `_f16` variants read
//! stored vectors as IEEE half floats and compute in f32.
//!
//! The instruction set is detected once ([`detected_isa`]); `QUARRY_ISA=scalar|avx2|avx512|neon`
//! forces another supported level (for tests and benchmarks). [`Kernels::for_isa`] hands out the function
//! table of any level this CPU supports, so each SIMD path is tested against [`scalar`].

use half::f16;
use std::sync::OnceLock;

#[cfg(target_arch = "x86_64")]
#[macro_use]
mod table;
#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
#[cfg(target_arch = "aarch64")]
mod neon;
pub mod scalar;
#[cfg(test)]
mod tests;

/// An instruction-set level with its own kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Isa {
    /// Portable Rust, no explicit SIMD.
    Scalar,
    /// ARM NEON (aarch64).
    Neon,
    /// x86-64 AVX2 with FMA and F16C.
    Avx2,
    /// x86-64 AVX-512F.
    Avx512,
}

impl Isa {
    /// Lower-case name (`scalar`, `neon`, `avx2`, `avx512`).
    pub fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Neon => "neon",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
        }
    }

    /// Whether the running CPU can execute this level.
    pub fn is_supported(self) -> bool {
        match self {
            Isa::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => {
                std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                    && std::arch::is_x86_feature_detected!("f16c")
            }
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => std::arch::is_x86_feature_detected!("avx512f"),
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => std::arch::is_aarch64_feature_detected!("neon"),
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }

    /// Every level, in order of preference. AVX2 comes before AVX-512: on the exact scan, which is
    /// bound by memory bandwidth, it measured as fast or faster (docs/decisions/0002); AVX-512
    /// stays available through `QUARRY_ISA=avx512`.
    pub const ALL: [Isa; 4] = [Isa::Avx2, Isa::Avx512, Isa::Neon, Isa::Scalar];
}

/// One-vector kernel: `(a, b) -> f32`; `a` and `b` have equal length.
pub type PairFn = fn(&[f32], &[f32]) -> f32;
/// One-vector kernel on an f16-stored vector.
pub type PairF16Fn = fn(&[f32], &[f16]) -> f32;
/// Scan kernel: compares `q` with each `q.len()`-wide row of `rows`, writing one value per row to `out`.
pub type ManyFn = fn(&[f32], &[f32], &mut [f32]);
/// Scan kernel over f16-stored rows.
pub type ManyF16Fn = fn(&[f32], &[f16], &mut [f32]);

/// The kernel table of one instruction-set level.
#[derive(Debug, Clone, Copy)]
pub struct Kernels {
    /// The level these kernels use.
    pub isa: Isa,
    /// Inner product.
    pub dot: PairFn,
    /// Squared Euclidean distance.
    pub l2_sq: PairFn,
    /// Inner product with an f16-stored second operand.
    pub dot_f16: PairF16Fn,
    /// Squared Euclidean distance with an f16-stored second operand.
    pub l2_sq_f16: PairF16Fn,
    /// Inner product of a query with each row.
    pub dot_many: ManyFn,
    /// Squared L2 of a query to each row.
    pub l2_many: ManyFn,
    /// Inner product of a query with each f16 row.
    pub dot_many_f16: ManyF16Fn,
    /// Squared L2 of a query to each f16 row.
    pub l2_many_f16: ManyF16Fn,
}

impl Kernels {
    /// The kernels of `isa`, or `None` if this CPU (or build target) cannot run them.
    pub fn for_isa(isa: Isa) -> Option<Kernels> {
        if !isa.is_supported() {
            return None;
        }
        match isa {
            Isa::Scalar => Some(scalar::KERNELS),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => Some(avx2::KERNELS),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => Some(avx512::KERNELS),
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => Some(neon::KERNELS),
            #[allow(unreachable_patterns)]
            _ => None,
        }
    }

    /// The kernels in use: the best supported level, or the one forced by `QUARRY_ISA`.
    pub fn get() -> &'static Kernels {
        static K: OnceLock<Kernels> = OnceLock::new();
        K.get_or_init(|| {
            let isa = choose_level(&Isa::ALL, Isa::name, Isa::is_supported, Isa::Scalar);
            Kernels::for_isa(isa).unwrap_or(scalar::KERNELS)
        })
    }

    /// Kernels for ranking only (graph walks): [`Kernels::get`] with the f32 one-row kernels
    /// (`dot`, `l2_sq`) of AVX-512 where the CPU has it, unless `QUARRY_ISA` forces a level. A
    /// walk is bound by latency, not bandwidth: it measured 8–10 % faster with them, while the
    /// scans keep AVX2 (13 % faster here; decision 0002). They sum in another order than the
    /// scan kernels, so scores a caller reports are computed with [`Kernels::get`] (decision 0015).
    pub fn walk() -> &'static Kernels {
        static K: OnceLock<Kernels> = OnceLock::new();
        K.get_or_init(|| match std::env::var_os("QUARRY_ISA") {
            Some(_) => *Kernels::get(),
            None => Kernels::get().with_wide_pairs(),
        })
    }

    /// `self` with the f32 one-row kernels of AVX-512 when this is the AVX2 table and the CPU
    /// runs AVX-512 (else unchanged).
    pub fn with_wide_pairs(self) -> Kernels {
        #[cfg(target_arch = "x86_64")]
        if self.isa == Isa::Avx2 {
            if let Some(w) = Kernels::for_isa(Isa::Avx512) {
                return Kernels { dot: w.dot, l2_sq: w.l2_sq, ..self };
            }
        }
        self
    }
}

/// The level a kernel family runs at: the one `QUARRY_ISA` names (case-insensitive) if `supported`,
/// else the first supported level of `preference`, else `fallback`. Every SIMD kernel family
/// (here and in `quarry-quant`) selects its level with this, once, at first use.
pub fn choose_level<T: Copy>(
    preference: &[T],
    name: impl Fn(T) -> &'static str,
    supported: impl Fn(T) -> bool,
    fallback: T,
) -> T {
    let forced = std::env::var("QUARRY_ISA")
        .ok()
        .and_then(|s| preference.iter().copied().find(|&l| name(l).eq_ignore_ascii_case(s.trim())));
    match forced {
        Some(l) if supported(l) => l,
        _ => preference.iter().copied().find(|&l| supported(l)).unwrap_or(fallback),
    }
}

/// The instruction-set level the dispatched kernels use.
pub fn detected_isa() -> Isa {
    Kernels::get().isa
}

/// Inner product `<a,b>`. Panics if lengths differ (a programming error, not user input).
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "dot: length mismatch");
    (Kernels::get().dot)(a, b)
}

/// Squared Euclidean distance `|a-b|^2`. Panics if lengths differ.
#[inline]
pub fn l2_sq(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "l2_sq: length mismatch");
    (Kernels::get().l2_sq)(a, b)
}

/// Inner product of an f32 query with an f16-stored vector. Panics if lengths differ.
#[inline]
pub fn dot_f16(a: &[f32], b: &[f16]) -> f32 {
    assert_eq!(a.len(), b.len(), "dot_f16: length mismatch");
    (Kernels::get().dot_f16)(a, b)
}

/// Squared L2 between an f32 query and an f16-stored vector. Panics if lengths differ.
#[inline]
pub fn l2_sq_f16(a: &[f32], b: &[f16]) -> f32 {
    assert_eq!(a.len(), b.len(), "l2_sq_f16: length mismatch");
    (Kernels::get().l2_sq_f16)(a, b)
}

/// Cosine similarity; 0 when either vector is zero (never NaN).
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let denom = (dot(a, a) * dot(b, b)).sqrt();
    if denom > 0.0 && denom.is_finite() {
        dot(a, b) / denom
    } else {
        0.0
    }
}

/// Euclidean norm, accumulated in f64 so that neither large nor tiny components overflow or
/// underflow (the result is `inf` only if the norm itself exceeds f32's range).
pub fn norm(a: &[f32]) -> f32 {
    a.iter().map(|&x| x as f64 * x as f64).sum::<f64>().sqrt() as f32
}

/// Scales `a` to unit length in place and returns its former norm; returns `None` (leaving `a`
/// untouched) for a zero or non-finite norm.
pub fn normalize(a: &mut [f32]) -> Option<f32> {
    let n = a.iter().map(|&x| x as f64 * x as f64).sum::<f64>().sqrt();
    if n > 0.0 && n.is_finite() {
        let inv = 1.0 / n;
        a.iter_mut().for_each(|x| *x = (*x as f64 * inv) as f32);
        Some(n as f32)
    } else {
        None
    }
}

/// Checks the shapes shared by every scan kernel; a mismatch is a programming error.
#[inline]
pub(crate) fn check_many(dim: usize, rows_len: usize, out_len: usize) {
    assert!(dim > 0 && rows_len == dim * out_len, "scan kernel: rows must be out.len() x q.len()");
}
