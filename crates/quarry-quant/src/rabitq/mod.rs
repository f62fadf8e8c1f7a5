//! RaBitQ (Gao & Long, "RaBitQ: Quantizing High-Dimensional Vectors with a Theoretical Error Bound
//! for Approximate Nearest Neighbor Search", SIGMOD 2024, arXiv 2405.12497) and extended RaBitQ
//! (Gao et al., "Practical and Asymptotically Optimal Quantization of High-Dimensional Vectors in
//! Euclidean Space for Approximate Nearest Neighbor Search", SIGMOD 2025, arXiv 2409.09913):
//! [`RaBitQuantizer`] and its per-query [`RaBitQEstimator`].
//!
//! Training takes the sample mean as centroid `c` and draws a seeded random [`Rotation`] `P` of
//! `D` coordinates (`dim` padded to a multiple of 64). A vector `o_r` is encoded through its
//! rotated unit residual `o' = P^T (o_r − c)/|o_r − c|`:
//!
//! * `bits = 1` (RaBitQ): the sign code `1[o'_i > 0]`.
//! * `bits = B ≥ 2` (extended RaBitQ): the grid direction `y = x_u + c_B` (`x_u ∈ 0..2^B`,
//!   `c_B = −(2^B − 1)/2`) with the largest cosine to `o'`, found by the critical-value sweep in
//!   `ext.rs`; the sign is the top bit of `x_u`.
//!
//! A code is 16 bytes of per-vector factors followed by the packed values (`layout.rs` defines
//! both). With `q' = P^T (q_r − c)`, the estimator uses the unbiased
//! `<o_r − c, q_r − c> ≈ |o_r − c| · <y, q'> / <y, o'>`, hence
//!
//! * L2: `|o_r − q_r|² ≈ |o_r − c|² + |q_r − c|² − 2·<o_r − c, q_r − c>`;
//! * inner product and cosine: `−<o_r, q_r> ≈ −(<o_r − c, c> + <c, q_r> + <o_r − c, q_r − c>)`,
//!
//! and the error of `<o_r − c, q_r − c>` is at most
//! `eps0 · |o_r − c| · |q_r − c| · sqrt(1 − a²)/a / sqrt(D − 1)` with high probability, where
//! `a = <o_bar, o> = <y, o'>/|y|` is stored per vector. For `bits = 1` the query is quantized to
//! 4 bits with randomized rounding and `<x_b, q_u>` is computed by bit-plane popcounts; for
//! `bits ≥ 2`, `<x_u, q'>` is a SIMD kernel over the packed values (`kernels/`).
//!
//! Files: `rotation.rs` ([`Rotation`]), `ext.rs` (code search), `layout.rs` (packing and
//! factors), `kernels/` (scalar, AVX2, AVX-512), `estimator.rs`, `format.rs` (serialisation).

mod estimator;
mod ext;
mod format;
mod kernels;
mod layout;
mod rotation;
#[cfg(test)]
mod tests;

pub use estimator::RaBitQEstimator;
pub use rotation::Rotation;

use crate::Quantizer;
use kernels::CodeKernels;
use layout::{Factors, FACTOR_BYTES};
use quarry_core::{check_finite, Error, Matrix, Metric, Result};

/// The RaBitQ reference code's `eps0`.
///
/// The estimation error is close to normal with standard deviation equal to the `eps0 = 1`
/// bound, so 1.9 is a ~94% two-sided interval: measured, 5.6–6.6% of (o, q) pairs fall outside
/// it and ~3% have an exact key below the lower bound (synthetic and wndict-384 data, 1 and 4
/// bits). `eps0 = 4` brings both to ~0.01%; see [`RaBitQuantizer::set_eps0`].
pub const REFERENCE_EPS0: f32 = 1.9;

/// Quarry's default `eps0`: 3.0, a ~99.7% two-sided interval (~0.13% of exact keys under the lower
/// bound), because bound-driven re-scoring drops any neighbour whose lower bound is too high.
pub const DEFAULT_EPS0: f32 = 3.0;

/// RaBitQ (1 bit per dimension) or extended RaBitQ (2–8 bits) with a global centroid.
#[derive(Debug, Clone)]
pub struct RaBitQuantizer {
    dim: usize,
    padded: usize,
    metric: Metric,
    bits: u8,
    seed: u64,
    eps0: f32,
    centroid: Vec<f32>,
    /// `|c|²` (f64), so that a query's `<c, q> = <q − c, c> + |c|²` comes with its centring.
    centroid_sq: f64,
    rotation: Rotation,
    kernels: &'static CodeKernels,
}

/// One encoded vector before packing (also used by the tests).
#[derive(Debug, Clone)]
pub(crate) struct Encoded {
    /// Code values `x_u`, one per padded coordinate.
    pub values: Vec<u8>,
    /// Per-vector factors.
    pub factors: Factors,
    /// `<o_bar, o>` (1 for a vector equal to the centroid); read by the tests.
    #[cfg_attr(not(test), allow(dead_code))]
    pub obar_o: f64,
    /// The rotated unit residual `o'`; read by the tests.
    #[cfg_attr(not(test), allow(dead_code))]
    pub rotated: Vec<f32>,
}

impl RaBitQuantizer {
    /// Trains on `sample`: centroid = sample mean, rotation drawn from `seed`. `bits ∈ 1..=8`
    /// bits per dimension (1 = RaBitQ, 2–8 = extended RaBitQ). Errors on an empty sample,
    /// non-finite values or `bits` out of range.
    pub fn train(sample: &Matrix, metric: Metric, bits: u8, seed: u64) -> Result<Self> {
        if !(1..=8).contains(&bits) {
            return Err(Error::InvalidArgument(format!(
                "RaBitQ bits per dimension must be in 1..=8, got {bits}"
            )));
        }
        if sample.is_empty() {
            return Err(Error::InvalidArgument("RaBitQ training sample is empty".into()));
        }
        let dim = sample.dim();
        let mut sum = vec![0.0f64; dim];
        for (i, row) in sample.iter().enumerate() {
            check_finite(row, || format!("training vector {i}"))?;
            sum.iter_mut().zip(row).for_each(|(s, &x)| *s += x as f64);
        }
        let n = sample.rows() as f64;
        let centroid = sum.into_iter().map(|s| (s / n) as f32).collect();
        let padded = dim.div_ceil(64) * 64;
        let rotation = Rotation::new(padded, seed)?;
        Ok(Self::from_parts(metric, bits, seed, DEFAULT_EPS0, centroid, rotation))
    }

    /// Assembles a quantizer from validated parts (`centroid.len()` = dim, rotation of the padded dim).
    fn from_parts(
        metric: Metric,
        bits: u8,
        seed: u64,
        eps0: f32,
        centroid: Vec<f32>,
        rotation: Rotation,
    ) -> Self {
        RaBitQuantizer {
            dim: centroid.len(),
            padded: rotation.padded_dim(),
            metric,
            bits,
            seed,
            eps0,
            centroid_sq: centroid.iter().map(|&c| c as f64 * c as f64).sum(),
            centroid,
            rotation,
            kernels: CodeKernels::get(),
        }
    }

    /// Bits per dimension (1 = RaBitQ).
    pub fn bits(&self) -> u8 {
        self.bits
    }

    /// `D`: the dimension padded to a multiple of 64.
    pub fn padded_dim(&self) -> usize {
        self.padded
    }

    /// The centroid `c` (the training-sample mean).
    pub fn centroid(&self) -> &[f32] {
        &self.centroid
    }

    /// The random rotation.
    pub fn rotation(&self) -> &Rotation {
        &self.rotation
    }

    /// The seed the rotation (and the query rounding of 1-bit codes) was drawn from.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// `eps0` of the error bound used by `key_and_bound` (default [`DEFAULT_EPS0`]).
    pub fn eps0(&self) -> f32 {
        self.eps0
    }

    /// Sets `eps0` (finite, `≥ 0`; larger is a safer, looser bound).
    pub fn set_eps0(&mut self, eps0: f32) -> Result<()> {
        if !eps0.is_finite() || eps0 < 0.0 {
            return Err(Error::InvalidArgument(format!(
                "RaBitQ eps0 must be finite and non-negative, got {eps0}"
            )));
        }
        self.eps0 = eps0;
        Ok(())
    }

    /// The instruction-set level of the code kernels in use (`avx512`, `avx2` or `scalar`).
    pub fn simd_level(&self) -> &'static str {
        self.kernels.level.name()
    }

    /// `c_B = −(2^B − 1)/2`: the offset turning code values into grid coordinates.
    fn grid_offset(&self) -> f32 {
        -(((1u32 << self.bits) - 1) as f32) / 2.0
    }

    /// `x − c` zero-padded to the rotation's dimension, `|x − c|²`, and `<x − c, c>` (all in f64
    /// accumulation), the common first step of encoding a vector and preparing a query.
    pub(crate) fn centered(&self, x: &[f32]) -> (Vec<f32>, f64, f64) {
        let mut v = vec![0.0f32; self.padded];
        let (mut norm_sq, mut dot_c) = (0.0f64, 0.0f64);
        for ((o, &xi), &ci) in v.iter_mut().zip(x).zip(&self.centroid) {
            let r = xi - ci;
            *o = r;
            norm_sq += r as f64 * r as f64;
            dot_c += r as f64 * ci as f64;
        }
        (v, norm_sq, dot_c)
    }

    /// Encodes `x` without packing.
    pub(crate) fn encode_parts(&self, x: &[f32]) -> Encoded {
        assert_eq!(x.len(), self.dim, "RaBitQ encode: vector of the wrong dimension");
        let (mut v, norm_sq, dot_c) = self.centered(x);
        let norm = norm_sq.sqrt();
        let add = match self.metric {
            Metric::L2 => norm_sq,
            Metric::InnerProduct | Metric::Cosine => dot_c,
        } as f32;
        let mut values = vec![0u8; self.padded];
        if !(norm > 0.0 && norm.is_finite()) {
            // o_r = c: every estimate is exact through the additive terms alone.
            let u = vec![0u32; self.padded];
            ext::signed_values(&v, &u, self.bits, &mut values);
            let factors = Factors { norm: 0.0, add, rescale: 0.0, err: 0.0 };
            return Encoded { values, factors, obar_o: 1.0, rotated: vec![0.0; self.padded] };
        }
        let inv = (1.0 / norm) as f32;
        v.iter_mut().for_each(|o| *o *= inv);
        self.rotation.rotate(&mut v);
        let a: Vec<f32> = v.iter().map(|o| o.abs()).collect();
        let a_norm = a.iter().map(|&x| x as f64 * x as f64).sum::<f64>().sqrt();
        let m = ext::best_magnitudes(&a, self.bits as u32 - 1);
        ext::signed_values(&v, &m.u, self.bits, &mut values);
        // <y, o'> for the unit o' (the rotation keeps |o'| = 1 up to float rounding).
        let y_dot_o = m.dot / a_norm;
        let obar_o = (y_dot_o / m.sq_norm.sqrt()).min(1.0);
        let rescale = norm / y_dot_o;
        let err = norm * (1.0 - obar_o * obar_o).max(0.0).sqrt() / obar_o / ((self.padded - 1) as f64).sqrt();
        let finite_or_zero = |x: f64| if x.is_finite() { x as f32 } else { 0.0 };
        let factors =
            Factors { norm: norm as f32, add, rescale: finite_or_zero(rescale), err: finite_or_zero(err) };
        Encoded { values, factors, obar_o, rotated: v }
    }
}

impl Quantizer for RaBitQuantizer {
    type Estimator<'a> = RaBitQEstimator<'a>;

    fn dim(&self) -> usize {
        self.dim
    }

    fn metric(&self) -> Metric {
        self.metric
    }

    fn code_len(&self) -> usize {
        FACTOR_BYTES + layout::packed_len(self.padded, self.bits)
    }

    fn encode(&self, x: &[f32], code: &mut [u8]) {
        assert_eq!(code.len(), self.code_len(), "RaBitQ encode: code buffer of the wrong length");
        let e = self.encode_parts(x);
        e.factors.write(code);
        layout::pack(self.bits, &e.values, &mut code[FACTOR_BYTES..]);
    }

    /// `c + |o_r − c| · P · y/|y|`, truncated to `dim` (an approximate reconstruction).
    fn decode(&self, code: &[u8], out: &mut [f32]) {
        assert_eq!(code.len(), self.code_len(), "RaBitQ decode: code of the wrong length");
        assert_eq!(out.len(), self.dim, "RaBitQ decode: output of the wrong dimension");
        let f = Factors::read(code);
        let mut values = vec![0u8; self.padded];
        layout::unpack(self.bits, &code[FACTOR_BYTES..], &mut values);
        let offset = self.grid_offset();
        let mut y: Vec<f32> = values.iter().map(|&v| v as f32 + offset).collect();
        let y_norm = y.iter().map(|&x| x as f64 * x as f64).sum::<f64>().sqrt() as f32;
        let scale = if y_norm > 0.0 { f.norm / y_norm } else { 0.0 };
        self.rotation.unrotate(&mut y);
        for ((o, &yi), &ci) in out.iter_mut().zip(&y).zip(&self.centroid) {
            *o = ci + scale * yi;
        }
    }

    fn estimator<'a>(&'a self, q: &[f32]) -> RaBitQEstimator<'a> {
        RaBitQEstimator::new(self, q)
    }

    fn to_bytes(&self) -> Vec<u8> {
        format::to_bytes(self)
    }

    fn from_bytes(bytes: &[u8]) -> Result<Self> {
        format::from_bytes(bytes)
    }
}
