//! [`Rotation`]: the seeded random orthogonal transform RaBitQ applies before quantizing.
//!
//! It is the "FHT + Kac's walk" rotator of the RaBitQ library (VectorDB-NTU/RaBitQ-Library,
//! `docs/docs/rabitq/rotator.md`), a fast stand-in for the random orthogonal matrix of Gao & Long,
//! "RaBitQ", SIGMOD 2024: four rounds of random sign flips followed by a normalised fast
//! Walsh–Hadamard transform (FWHT) on a window of `L = 2^k ≤ D` coordinates — the first `L` in even
//! rounds, the last `L` in odd rounds — and, when `D` is not a power of two, a `π/4` rotation
//! pairing coordinate `i` with `i + D/2` (one step of Kac's walk) between rounds. Every step is an
//! exactly orthogonal, self-inverse map, so the inverse is the same steps in reverse order. Cost:
//! `O(D log D)` per vector; storage: `4·D` sign bits.

use quarry_core::{Error, Result};
use rand::rngs::SmallRng;
use rand::{RngCore, SeedableRng};

/// Rounds of (sign flip, FWHT, Kac step).
const ROUNDS: usize = 4;

/// A random orthogonal `D × D` matrix `P` (`D` a multiple of 64), applied in `O(D log D)`.
///
/// [`Rotation::rotate`] computes `P^T v` (the transform applied to data and queries) and
/// [`Rotation::unrotate`] computes `P v`, its exact inverse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    /// `D`.
    dim: usize,
    /// Largest power of two `≤ D`: the FWHT window.
    window: usize,
    /// `ROUNDS × D/64` words; bit `i % 64` of word `r·D/64 + i/64` set = negate coordinate `i` in round `r`.
    flips: Vec<u64>,
}

impl Rotation {
    /// A rotation of `padded_dim` coordinates (a positive multiple of 64) drawn from `seed`.
    pub fn new(padded_dim: usize, seed: u64) -> Result<Self> {
        check_dim(padded_dim)?;
        let mut rng = SmallRng::seed_from_u64(seed);
        let flips = (0..ROUNDS * padded_dim / 64).map(|_| rng.next_u64()).collect();
        Ok(Rotation { dim: padded_dim, window: window_of(padded_dim), flips })
    }

    /// `D`, the number of coordinates it acts on.
    pub fn padded_dim(&self) -> usize {
        self.dim
    }

    /// In place `v ← P^T v`. Panics if `v.len() != D` (a programming error).
    pub fn rotate(&self, v: &mut [f32]) {
        assert_eq!(v.len(), self.dim, "rotation of a vector of the wrong length");
        #[cfg(target_arch = "x86_64")]
        if avx2() {
            // SAFETY: AVX2 is present (runtime detection above).
            return unsafe { self.rotate_avx2(v) };
        }
        self.rotate_body(v);
    }

    /// In place `v ← P v`, the inverse (and transpose) of [`Rotation::rotate`].
    pub fn unrotate(&self, v: &mut [f32]) {
        assert_eq!(v.len(), self.dim, "rotation of a vector of the wrong length");
        #[cfg(target_arch = "x86_64")]
        if avx2() {
            // SAFETY: AVX2 is present (runtime detection above).
            return unsafe { self.unrotate_avx2(v) };
        }
        self.unrotate_body(v);
    }

    /// [`Rotation::rotate`] compiled for AVX2 (the same IEEE operations in the same order, so
    /// the results are bit-identical; only the vector width differs).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn rotate_avx2(&self, v: &mut [f32]) {
        self.rotate_body(v);
    }

    /// [`Rotation::unrotate`] compiled for AVX2.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn unrotate_avx2(&self, v: &mut [f32]) {
        self.unrotate_body(v);
    }

    #[inline(always)]
    fn rotate_body(&self, v: &mut [f32]) {
        for r in 0..ROUNDS {
            self.flip(r, v);
            let start = self.window_start(r);
            fwht(&mut v[start..start + self.window]);
            if self.kac_after(r) {
                kac_step(v);
            }
        }
    }

    #[inline(always)]
    fn unrotate_body(&self, v: &mut [f32]) {
        for r in (0..ROUNDS).rev() {
            if self.kac_after(r) {
                kac_step(v);
            }
            let start = self.window_start(r);
            fwht(&mut v[start..start + self.window]);
            self.flip(r, v);
        }
    }

    /// Serialises the rotation: `D` (u32 LE), the round count (u32 LE), then the sign words
    /// (u64 LE).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + 8 * self.flips.len());
        out.extend_from_slice(&(self.dim as u32).to_le_bytes());
        out.extend_from_slice(&(ROUNDS as u32).to_le_bytes());
        for w in &self.flips {
            out.extend_from_slice(&w.to_le_bytes());
        }
        out
    }

    /// Reads bytes written by [`Rotation::to_bytes`]; anything malformed is an error.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let bad = |m: String| Error::InvalidArgument(format!("rotation bytes: {m}"));
        if bytes.len() < 8 {
            return Err(bad(format!("{} bytes is shorter than the 8-byte header", bytes.len())));
        }
        let dim = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
        let rounds = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]) as usize;
        check_dim(dim).map_err(|e| bad(e.to_string()))?;
        if rounds != ROUNDS {
            return Err(bad(format!("{rounds} rounds, expected {ROUNDS}")));
        }
        let words = ROUNDS * dim / 64;
        let expected = 8 + 8 * words;
        if bytes.len() != expected {
            return Err(bad(format!("{} bytes, expected {expected} for dimension {dim}", bytes.len())));
        }
        let flips = bytes[8..]
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
            .collect();
        Ok(Rotation { dim, window: window_of(dim), flips })
    }

    /// Negates the coordinates whose round-`r` sign bit is set.
    #[inline(always)]
    fn flip(&self, r: usize, v: &mut [f32]) {
        let words = &self.flips[r * self.dim / 64..(r + 1) * self.dim / 64];
        for (chunk, &w) in v.chunks_exact_mut(64).zip(words) {
            for (i, x) in chunk.iter_mut().enumerate() {
                // Flip the IEEE sign bit: exact, and branch-free.
                *x = f32::from_bits(x.to_bits() ^ ((((w >> i) & 1) as u32) << 31));
            }
        }
    }

    fn window_start(&self, r: usize) -> usize {
        if r.is_multiple_of(2) {
            0
        } else {
            self.dim - self.window
        }
    }

    fn kac_after(&self, r: usize) -> bool {
        self.window != self.dim && r + 1 < ROUNDS
    }
}

/// Whether AVX2 is available (detected once).
#[cfg(target_arch = "x86_64")]
fn avx2() -> bool {
    static AVX2: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *AVX2.get_or_init(|| std::arch::is_x86_feature_detected!("avx2"))
}

fn check_dim(dim: usize) -> Result<()> {
    if dim == 0 || !dim.is_multiple_of(64) || dim > u32::MAX as usize {
        return Err(Error::InvalidArgument(format!(
            "rotation dimension {dim} must be a positive multiple of 64"
        )));
    }
    Ok(())
}

/// Largest power of two `≤ dim` (`dim ≥ 1`).
fn window_of(dim: usize) -> usize {
    1usize << (usize::BITS - 1 - dim.leading_zeros())
}

/// Normalised in-place Walsh–Hadamard transform (`x.len()` a power of two): `H/√L`, symmetric and
/// orthogonal, hence its own inverse.
#[inline(always)]
fn fwht(x: &mut [f32]) {
    let n = x.len();
    let mut h = 1;
    while h < n {
        for block in x.chunks_exact_mut(2 * h) {
            let (lo, hi) = block.split_at_mut(h);
            for (a, b) in lo.iter_mut().zip(hi.iter_mut()) {
                let (s, d) = (*a + *b, *a - *b);
                *a = s;
                *b = d;
            }
        }
        h *= 2;
    }
    let scale = 1.0 / (n as f32).sqrt();
    x.iter_mut().for_each(|v| *v *= scale);
}

/// One step of Kac's walk: `(a, b) ← ((a+b)/√2, (a−b)/√2)` for each pair `(i, i + D/2)`. The
/// matrix `[[1,1],[1,−1]]/√2` is symmetric orthogonal, so the step is its own inverse.
#[inline(always)]
fn kac_step(v: &mut [f32]) {
    let half = v.len() / 2;
    let (lo, hi) = v.split_at_mut(half);
    let s = std::f32::consts::FRAC_1_SQRT_2;
    for (a, b) in lo.iter_mut().zip(hi.iter_mut()) {
        let (x, y) = (*a, *b);
        *a = (x + y) * s;
        *b = (x - y) * s;
    }
}
