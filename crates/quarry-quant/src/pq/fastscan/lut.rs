//! [`QuantizedLut`]: a 4-bit PQ lookup table quantized to u8 for the fast-scan kernels
//! (André, Kermarrec & Le Scouarnec, "Accelerated Nearest Neighbor Search with Quick ADC",
//! ICMR 2017; faiss `utils/quantize_lut.h`).
//!
//! Every subspace table gets its own bias (its minimum) and all share one step, so that a sum of
//! quantized entries maps back linearly: `key ≈ bias + step * Σ_j q_j` with `bias = Σ_j min_j`.
//! Each entry is rounded to the nearest level, so the mapped-back key is within `m * step / 2`
//! of the float ADC key. The step is the largest per-subspace span over 255, enlarged when `m`
//! is so large that the sum of the per-subspace maxima could pass 65535: the u16 accumulators
//! of the scan never saturate or wrap.

use super::super::estimator::PqEstimator;
use quarry_core::{Error, Result};

/// Quantized per-query tables for [`super::FastScanCodes::scan`].
#[derive(Debug, Clone, PartialEq)]
pub struct QuantizedLut {
    m: usize,
    /// `ceil(m / 2)` pairs of 32 bytes: bytes `0..16` are subspace `2p`'s 16 entries and bytes
    /// `16..32` subspace `2p + 1`'s (zero for the padding subspace of an odd `m`).
    table: Vec<u8>,
    step: f32,
    bias: f32,
}

/// Largest number of subspaces whose quantized sum is kept below 2^16.
const MAX_M: usize = 65_535;

impl QuantizedLut {
    /// Quantizes a float table of `m x 16` entries (subspace-major; `key = Σ_j lut[16 j + c_j]`,
    /// as [`PqEstimator::lut`] provides). Errors on a wrong length, `m == 0`, `m > 65535` or a
    /// non-finite entry.
    pub fn new(lut: &[f32], m: usize) -> Result<Self> {
        if m == 0 || m > MAX_M {
            return Err(Error::InvalidArgument(format!(
                "fast-scan table: m must be in 1..={MAX_M}, got {m}"
            )));
        }
        if lut.len() != m * 16 {
            return Err(Error::InvalidArgument(format!(
                "fast-scan table: expected m x 16 = {} entries, got {}",
                m * 16,
                lut.len()
            )));
        }
        if let Some(i) = lut.iter().position(|v| !v.is_finite()) {
            return Err(Error::InvalidArgument(format!(
                "fast-scan table: entry {i} is not finite ({})",
                lut[i]
            )));
        }
        let mut mins = Vec::with_capacity(m);
        let mut spans = Vec::with_capacity(m);
        for t in lut.chunks_exact(16) {
            let lo = t.iter().copied().fold(f32::INFINITY, f32::min);
            let hi = t.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            mins.push(lo);
            spans.push(hi as f64 - lo as f64);
        }
        let max_span = spans.iter().copied().fold(0.0f64, f64::max);
        let total: f64 = spans.iter().sum();
        // Σ_j round(span_j / step) <= total / step + m / 2 must stay <= 65535.
        let mut step = (max_span / 255.0).max(total / (65_535.0 - m.div_ceil(2) as f64));
        if !(step > 0.0 && step.is_finite() && (step as f32) > 0.0) {
            step = 1.0; // every table is flat: all entries quantize to 0
        }
        let mut step = step as f32;
        let pairs = m.div_ceil(2);
        let mut table = vec![0u8; pairs * 32];
        loop {
            let mut max_sum = 0u64;
            for (j, (t, &lo)) in lut.chunks_exact(16).zip(&mins).enumerate() {
                let dst = &mut table[j * 16..(j + 1) * 16];
                let mut top = 0u8;
                for (q, &v) in dst.iter_mut().zip(t) {
                    *q = ((v - lo) / step).round().clamp(0.0, 255.0) as u8;
                    top = top.max(*q);
                }
                max_sum += top as u64;
            }
            // Rounding of the step itself could in principle tip the sum over; widen and redo.
            if max_sum <= 65_535 {
                break;
            }
            step *= 1.0 + 1.0 / 1024.0;
        }
        let bias = mins.iter().map(|&v| v as f64).sum::<f64>() as f32;
        Ok(QuantizedLut { m, table, step, bias })
    }

    /// Quantizes the table of a 4-bit PQ estimator. Errors if the quantizer is 8-bit.
    pub fn from_estimator(est: &PqEstimator<'_>) -> Result<Self> {
        if est.nbits() != 4 {
            return Err(Error::InvalidArgument(format!(
                "fast-scan needs 4-bit PQ codes, the estimator is {}-bit",
                est.nbits()
            )));
        }
        Self::new(est.lut(), est.m())
    }

    /// Number of subspaces.
    pub fn m(&self) -> usize {
        self.m
    }

    /// Key units per quantized level.
    pub fn step(&self) -> f32 {
        self.step
    }

    /// Sum of the per-subspace minima: the key of a quantized sum of 0.
    pub fn bias(&self) -> f32 {
        self.bias
    }

    /// The quantized entries in the scan layout (see the field docs): pair `p` is
    /// `table[32 p..32 p + 32]`.
    pub fn table(&self) -> &[u8] {
        &self.table
    }

    /// Quantized entry `i` of subspace `j`.
    pub fn entry(&self, j: usize, i: usize) -> u8 {
        self.table[16 * j + i]
    }

    /// Maps a quantized sum back to an approximate key: `bias + step * sum`.
    #[inline]
    pub fn key(&self, sum: u16) -> f32 {
        self.bias + self.step * sum as f32
    }
}
