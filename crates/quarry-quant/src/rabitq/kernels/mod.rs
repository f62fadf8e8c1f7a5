//! RaBitQ's code kernels, chosen once at run time: `<x_u, q>` between packed B-bit code values
//! and a float query, and the bit-plane popcount product of a 1-bit code with a 4-bit query.
//!
//! Levels: [`Level::Avx512`] (AVX-512F + VPOPCNTDQ), [`Level::Avx2`] (AVX2 + FMA + POPCNT) and
//! [`Level::Scalar`] (the portable reference in `scalar.rs`, which every SIMD path is tested
//! against). The best supported level is used unless `QUARRY_ISA=scalar|avx2|avx512` forces
//! another supported one (the variable the distance kernels honour too). Each level has 1-, 2-,
//! 4- and 8-bit `<x_u, q>` kernels; the split layouts of 3, 5, 6 and 7 bits sum their parts.

/// Defines `dot3`, `dot5`, `dot6` and `dot7` for the split layouts from one level's 1-, 2- and
/// 4-bit kernels: `<x_u, q> = Σ_parts 2^shift · <part, q>`.
macro_rules! composed_kernels {
    ($dot1:expr, $dot2:expr, $dot4:expr) => {
        /// `<x_u, q>`, 3-bit split layout (2 + 1).
        pub(crate) fn dot3(p: &[u8], q: &[f32]) -> f32 {
            let n = p.len() / 3;
            $dot2(&p[..2 * n], q) + 4.0 * $dot1(&p[2 * n..], q)
        }
        /// `<x_u, q>`, 5-bit split layout (4 + 1).
        pub(crate) fn dot5(p: &[u8], q: &[f32]) -> f32 {
            let n = p.len() / 5;
            $dot4(&p[..4 * n], q) + 16.0 * $dot1(&p[4 * n..], q)
        }
        /// `<x_u, q>`, 6-bit split layout (4 + 2).
        pub(crate) fn dot6(p: &[u8], q: &[f32]) -> f32 {
            let n = p.len() / 6;
            $dot4(&p[..4 * n], q) + 16.0 * $dot2(&p[4 * n..], q)
        }
        /// `<x_u, q>`, 7-bit split layout (4 + 2 + 1).
        pub(crate) fn dot7(p: &[u8], q: &[f32]) -> f32 {
            let n = p.len() / 7;
            $dot4(&p[..4 * n], q) + 16.0 * $dot2(&p[4 * n..6 * n], q) + 64.0 * $dot1(&p[6 * n..], q)
        }
    };
}

pub(crate) mod scalar;
#[cfg(target_arch = "x86_64")]
mod x86;

use std::sync::OnceLock;

/// `<x_u, q>` over packed values.
pub(crate) type DotFn = fn(&[u8], &[f32]) -> f32;
/// `(Σ_j 2^j popcount(code AND plane_j), popcount(code))`.
pub(crate) type PlanesFn = fn(&[u8], &[u64]) -> (u32, u32);

/// An instruction-set level of the code kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Level {
    /// Portable Rust.
    Scalar,
    /// AVX2 + FMA + POPCNT.
    Avx2,
    /// AVX-512F + VPOPCNTDQ.
    Avx512,
}

impl Level {
    /// Levels in order of preference.
    pub const ALL: [Level; 3] = [Level::Avx512, Level::Avx2, Level::Scalar];

    /// Lower-case name, as `QUARRY_ISA` spells it.
    pub fn name(self) -> &'static str {
        match self {
            Level::Scalar => "scalar",
            Level::Avx2 => "avx2",
            Level::Avx512 => "avx512",
        }
    }

    fn is_supported(self) -> bool {
        match self {
            Level::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Level::Avx2 => {
                std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                    && std::arch::is_x86_feature_detected!("popcnt")
            }
            #[cfg(target_arch = "x86_64")]
            Level::Avx512 => {
                std::arch::is_x86_feature_detected!("avx512f")
                    && std::arch::is_x86_feature_detected!("avx512vpopcntdq")
                    && std::arch::is_x86_feature_detected!("popcnt")
            }
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }
}

/// One level's kernel table.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CodeKernels {
    /// The level.
    pub level: Level,
    /// `<x_u, q>` kernels for 1..=8 bits (index `bits − 1`).
    dots: [DotFn; 8],
    /// Bit-plane product for 1-bit codes.
    pub planes: PlanesFn,
}

const SCALAR: CodeKernels = CodeKernels {
    level: Level::Scalar,
    dots: [
        scalar::dot_bits,
        scalar::dot_slots::<2>,
        scalar::dot3,
        scalar::dot_slots::<4>,
        scalar::dot5,
        scalar::dot6,
        scalar::dot7,
        scalar::dot_slots::<8>,
    ],
    planes: scalar::bitplanes,
};

impl CodeKernels {
    /// The table of `level`, or `None` if this CPU cannot run it.
    pub fn for_level(level: Level) -> Option<CodeKernels> {
        if !level.is_supported() {
            return None;
        }
        match level {
            Level::Scalar => Some(SCALAR),
            #[cfg(target_arch = "x86_64")]
            Level::Avx2 => Some(CodeKernels { level, dots: x86::avx2::DOTS, planes: x86::avx2::bitplanes }),
            #[cfg(target_arch = "x86_64")]
            Level::Avx512 => {
                Some(CodeKernels { level, dots: x86::avx512::DOTS, planes: x86::avx512::bitplanes })
            }
            #[allow(unreachable_patterns)]
            _ => None,
        }
    }

    /// The table in use: the best supported level, or the one forced by `QUARRY_ISA`.
    pub fn get() -> &'static CodeKernels {
        static K: OnceLock<CodeKernels> = OnceLock::new();
        K.get_or_init(|| {
            let level = quarry_linalg::kernels::choose_level(
                &Level::ALL,
                Level::name,
                Level::is_supported,
                Level::Scalar,
            );
            CodeKernels::for_level(level).unwrap_or(SCALAR)
        })
    }

    /// Every table this CPU supports (for tests).
    #[cfg(test)]
    pub fn supported() -> Vec<CodeKernels> {
        Level::ALL.into_iter().filter_map(CodeKernels::for_level).collect()
    }

    /// `<x_u, q>` kernel for `bits`-bit values (1..=8) in the layout `layout.rs` defines.
    pub fn dot_for(&self, bits: u8) -> DotFn {
        self.dots[(bits.clamp(1, 8) - 1) as usize]
    }
}
