//! Scalar quantization as faiss does it (`faiss/impl/ScalarQuantizer.h`, `QT_8bit` / `QT_4bit`
//! with `RS_minmax`; Douze et al., "The Faiss library", arXiv 2401.08281, 2024):
//! [`SqQuantizer`] learns a per-dimension range `[vmin_j, vmax_j]` and stores every coordinate as
//! an 8-bit or 4-bit cell index; [`SqEstimator`] scores codes against a query.
//!
//! * Encode: `t = (x - vmin)/(vmax - vmin)` clamped to `[0, 1]`, `code = floor(levels·t)` clamped
//!   to `levels` (`levels` = 255 or 15).
//! * Decode: `vmin + (code + 0.5)·step` with `step = (vmax - vmin)/levels` — the middle of the
//!   cell, so an in-range coordinate is off by at most `step/2`.
//! * Code layout: the packed cells (one byte per dimension for 8 bits; for 4 bits byte `k` holds
//!   dimension `2k` in its low nibble and `2k+1` in its high nibble, and an odd last high nibble is
//!   0), then for [`Metric::L2`] the f32 (little-endian) `|x̂|²` of the reconstruction.
//!
//! Files: `estimator.rs` (the per-query folded weights), `format.rs` (`to_bytes`/`from_bytes`),
//! `kernels/` (the `Σ w_j·code_j` kernels: scalar, AVX2+FMA, AVX-512), `tests.rs`.

mod estimator;
mod format;
mod kernels;
#[cfg(test)]
mod tests;

pub use estimator::SqEstimator;

use crate::Quantizer;
use quarry_core::{check_finite, Error, Matrix, Metric, Result};
use quarry_linalg::Isa;

/// Bytes of the trailing `|x̂|²` of an L2 code.
const NORM_BYTES: usize = 4;

/// A trained scalar quantizer: per-dimension ranges, 8 or 4 bits per dimension.
#[derive(Debug, Clone, PartialEq)]
pub struct SqQuantizer {
    metric: Metric,
    bits: u8,
    vmin: Vec<f32>,
    vmax: Vec<f32>,
    /// `(vmax - vmin) / levels` per dimension.
    step: Vec<f32>,
    /// `1 / (vmax - vmin)` per dimension (encode).
    inv_width: Vec<f32>,
}

impl SqQuantizer {
    /// Learns the per-dimension ranges (min and max over `sample`, faiss `RS_minmax`) for `bits`
    /// per dimension (8 or 4). A dimension whose values are all equal gets a tiny positive width.
    /// Errors on an empty sample, a non-finite value, other `bits`, or a range too wide for f32.
    pub fn train(sample: &Matrix, metric: Metric, bits: u8) -> Result<SqQuantizer> {
        check_bits(bits)?;
        if sample.is_empty() {
            return Err(Error::InvalidArgument("SQ training needs at least one vector".into()));
        }
        let dim = sample.dim();
        for (i, row) in sample.iter().enumerate() {
            check_finite(row, || format!("SQ training vector {i}"))?;
        }
        let mut vmin = sample.row(0).to_vec();
        let mut vmax = vmin.clone();
        for row in sample.iter().skip(1) {
            for j in 0..dim {
                vmin[j] = vmin[j].min(row[j]);
                vmax[j] = vmax[j].max(row[j]);
            }
        }
        for j in 0..dim {
            if vmax[j] <= vmin[j] {
                vmax[j] = vmin[j] + (vmin[j].abs() * 1e-5).max(1e-20);
            }
        }
        SqQuantizer::from_ranges(metric, bits, vmin, vmax)
    }

    /// A quantizer with the given ranges (`vmin_j < vmax_j`, finite, `vmax_j - vmin_j` finite).
    pub fn from_ranges(metric: Metric, bits: u8, vmin: Vec<f32>, vmax: Vec<f32>) -> Result<SqQuantizer> {
        check_bits(bits)?;
        if vmin.is_empty() || vmin.len() != vmax.len() {
            return Err(Error::InvalidArgument(format!(
                "SQ ranges need equal, non-zero lengths (got {} minima and {} maxima)",
                vmin.len(),
                vmax.len()
            )));
        }
        let levels = levels(bits) as f32;
        let (mut step, mut inv_width) = (Vec::with_capacity(vmin.len()), Vec::with_capacity(vmin.len()));
        for (j, (&lo, &hi)) in vmin.iter().zip(&vmax).enumerate() {
            let width = hi - lo;
            if !(lo.is_finite()
                && hi.is_finite()
                && width.is_finite()
                && width > 0.0
                && (1.0 / width).is_finite())
            {
                return Err(Error::InvalidArgument(format!(
                    "SQ range of dimension {j} is [{lo}, {hi}]: it must be finite, non-empty and its \
                     width must fit in f32"
                )));
            }
            step.push(width / levels);
            inv_width.push(1.0 / width);
        }
        Ok(SqQuantizer { metric, bits, vmin, vmax, step, inv_width })
    }

    /// Bits per dimension (8 or 4).
    pub fn bits(&self) -> u8 {
        self.bits
    }

    /// The highest cell index: 255 for 8 bits, 15 for 4 bits.
    pub fn levels(&self) -> u32 {
        levels(self.bits)
    }

    /// Per-dimension lower range ends.
    pub fn vmin(&self) -> &[f32] {
        &self.vmin
    }

    /// Per-dimension upper range ends.
    pub fn vmax(&self) -> &[f32] {
        &self.vmax
    }

    /// Per-dimension cell width `(vmax - vmin)/levels`; the reconstruction error of an in-range
    /// coordinate is at most half of it.
    pub fn step(&self) -> &[f32] {
        &self.step
    }

    /// Like [`Quantizer::estimator`], with the kernels of one instruction-set level (tests and
    /// benchmarks); `None` when this CPU cannot run them.
    pub fn estimator_for_isa(&self, q: &[f32], isa: Isa) -> Option<SqEstimator<'_>> {
        kernels::SqKernels::for_isa(isa).map(|k| SqEstimator::new(self, q, &k))
    }

    /// Bytes of packed cells per code (without the L2 norm).
    pub fn packed_len(&self) -> usize {
        packed_len(self.dim(), self.bits)
    }

    /// The cell index of coordinate `x` in dimension `j`.
    #[inline]
    fn cell(&self, j: usize, x: f32) -> u8 {
        let levels = self.levels() as f32;
        let t = ((x - self.vmin[j]) * self.inv_width[j]).clamp(0.0, 1.0);
        // A NaN `t` (never for the finite inputs the contract asks for) casts to 0.
        (levels * t).floor().min(levels) as u8
    }

    /// The reconstruction of cell `c` in dimension `j`: the middle of the cell.
    #[inline]
    fn value(&self, j: usize, c: u8) -> f32 {
        self.vmin[j] + (c as f32 + 0.5) * self.step[j]
    }

    /// The cell index of dimension `j` in `packed` cells.
    #[inline]
    fn cell_at(&self, packed: &[u8], j: usize) -> u8 {
        match self.bits {
            8 => packed[j],
            _ => (packed[j / 2] >> (4 * (j % 2))) & 0x0F,
        }
    }
}

impl Quantizer for SqQuantizer {
    type Estimator<'a> = SqEstimator<'a>;

    fn dim(&self) -> usize {
        self.vmin.len()
    }

    fn metric(&self) -> Metric {
        self.metric
    }

    fn code_len(&self) -> usize {
        self.packed_len() + if self.metric == Metric::L2 { NORM_BYTES } else { 0 }
    }

    /// Panics if `x.len() != dim` or `code.len() != code_len` (programming errors).
    fn encode(&self, x: &[f32], code: &mut [u8]) {
        let dim = self.dim();
        assert_eq!(x.len(), dim, "SQ encode: vector length");
        assert_eq!(code.len(), self.code_len(), "SQ encode: code length");
        let packed = self.packed_len();
        let (cells, norm) = code.split_at_mut(packed);
        if self.bits == 8 {
            for (j, (c, &v)) in cells.iter_mut().zip(x).enumerate() {
                *c = self.cell(j, v);
            }
        } else {
            for (k, c) in cells.iter_mut().enumerate() {
                let lo = self.cell(2 * k, x[2 * k]);
                let hi = if 2 * k + 1 < dim { self.cell(2 * k + 1, x[2 * k + 1]) } else { 0 };
                *c = lo | (hi << 4);
            }
        }
        if self.metric == Metric::L2 {
            let n2: f64 = (0..dim).map(|j| (self.value(j, self.cell_at(cells, j)) as f64).powi(2)).sum();
            norm.copy_from_slice(&(n2 as f32).to_le_bytes());
        }
    }

    /// Panics if `out.len() != dim` or `code` is shorter than the packed cells.
    fn decode(&self, code: &[u8], out: &mut [f32]) {
        assert_eq!(out.len(), self.dim(), "SQ decode: output length");
        let packed = &code[..self.packed_len()];
        for (j, o) in out.iter_mut().enumerate() {
            *o = self.value(j, self.cell_at(packed, j));
        }
    }

    fn estimator<'a>(&'a self, q: &[f32]) -> SqEstimator<'a> {
        SqEstimator::new(self, q, kernels::SqKernels::get())
    }

    fn to_bytes(&self) -> Vec<u8> {
        format::to_bytes(self)
    }

    fn from_bytes(bytes: &[u8]) -> Result<SqQuantizer> {
        format::from_bytes(bytes)
    }
}

/// Highest cell index for `bits` (8 or 4).
fn levels(bits: u8) -> u32 {
    (1u32 << bits) - 1
}

/// Packed cell bytes for `dim` dimensions at `bits` each.
fn packed_len(dim: usize, bits: u8) -> usize {
    (dim * bits as usize).div_ceil(8)
}

fn check_bits(bits: u8) -> Result<()> {
    if bits == 8 || bits == 4 {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!("SQ supports 8 or 4 bits per dimension, not {bits}")))
    }
}
