//! [`SqEstimator`]: a query prepared for scoring SQ codes.
//!
//! The affine decode is folded into the query once: with `w_j = q_j·step_j` and
//! `C = Σ_j q_j·(vmin_j + step_j/2)`, `<q, x̂> = C + Σ_j w_j·code_j`, so scoring a code is one
//! f32 × u8 (or × nibble) dot product. For 8-bit codes the weights are rounded once more, to
//! 16-bit integers `ŵ_j = round(w_j·S)` with `S` as large as keeps every integer sum inside i32
//! (`ŵ` within ±16,383 up to 514 dimensions), and `Σ_j w_j·code_j ≈ (Σ_j ŵ_j·code_j) / S` is summed
//! exactly in integers (`pmaddwd`: two products per lane and instruction, against one `vfmadd`
//! per lane after widening each code to f32). The rounding moves a key by at most
//! `Σ_j code_j / (2S)` against the f32 weights, far below the codes' own cell width. Keys: `-<q,x̂>` for inner product and cosine,
//! `|q|² - 2<q,x̂> + |x̂|²` for L2 with `|x̂|²` read from the code.

use super::kernels::{i16_weight_bound, DotFn, DotI16Fn, ManyFn, ManyI16Fn, SqKernels};
use super::{SqQuantizer, NORM_BYTES};
use crate::{Estimator, Quantizer};
use quarry_core::Metric;
use quarry_linalg::{AlignedVec, Isa};

/// Weights are zero-padded to a multiple of this many lanes (one AVX-512 step of four vectors).
const PAD: usize = 64;

/// A prepared query for [`SqQuantizer`] codes.
pub struct SqEstimator<'a> {
    /// `q_j·step_j`, zero-padded to a multiple of [`PAD`] (covers the odd 4-bit nibble), 64-byte
    /// aligned so that vector loads never split a cache line.
    weights: AlignedVec<f32>,
    /// `Σ_j q_j·(vmin_j + step_j/2)`.
    constant: f32,
    /// `|q|²` (used by L2 only).
    query_norm_sq: f32,
    /// Packed cell bytes per code.
    packed: usize,
    /// Bytes per code (packed cells plus the L2 norm).
    code_len: usize,
    /// Whether keys are squared L2 (else negated inner products).
    l2: bool,
    isa: Isa,
    dot: DotFn,
    many: ManyFn,
    /// 8-bit codes: `round(w_j·S)`, zero-padded like `weights`; empty for 4-bit codes.
    iweights: AlignedVec<i16>,
    /// `1 / S`.
    inv_scale: f32,
    dot_i: DotI16Fn,
    many_i: ManyI16Fn,
    _quantizer: std::marker::PhantomData<&'a SqQuantizer>,
}

impl std::fmt::Debug for SqEstimator<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqEstimator")
            .field("dim", &self.weights.len())
            .field("packed", &self.packed)
            .field("l2", &self.l2)
            .field("isa", &self.isa)
            .finish()
    }
}

impl<'a> SqEstimator<'a> {
    /// Folds query `q` (length `dim`; panics otherwise) into per-dimension weights.
    pub(super) fn new(sq: &'a SqQuantizer, q: &[f32], k: &SqKernels) -> SqEstimator<'a> {
        let dim = sq.dim();
        assert_eq!(q.len(), dim, "SQ estimator: query length");
        let mut weights = AlignedVec::zeroed(dim.next_multiple_of(PAD));
        let (mut constant, mut query_norm_sq) = (0.0f64, 0.0f64);
        for (j, (w, &qj)) in weights.as_mut_slice().iter_mut().zip(q).enumerate() {
            *w = qj * sq.step[j];
            constant += qj as f64 * (sq.vmin[j] as f64 + 0.5 * sq.step[j] as f64);
            query_norm_sq += qj as f64 * qj as f64;
        }
        let (dot, many) = if sq.bits == 8 { (k.dot_u8, k.many_u8) } else { (k.dot_u4, k.many_u4) };
        let (iweights, inv_scale) =
            if sq.bits == 8 { integer_weights(weights.as_slice(), dim) } else { (AlignedVec::new(), 1.0) };
        SqEstimator {
            weights,
            constant: constant as f32,
            query_norm_sq: query_norm_sq as f32,
            packed: sq.packed_len(),
            code_len: sq.code_len(),
            l2: sq.metric == Metric::L2,
            isa: k.isa,
            dot,
            many,
            iweights,
            inv_scale,
            dot_i: k.dot_u8_i16,
            many_i: k.many_u8_i16,
            _quantizer: std::marker::PhantomData,
        }
    }

    /// The instruction-set level of the kernel this estimator uses.
    pub fn isa(&self) -> Isa {
        self.isa
    }

    /// The estimated inner product `<q, x̂>` with the reconstruction of `code`.
    #[inline]
    pub fn inner_product(&self, code: &[u8]) -> f32 {
        self.constant + self.sum(&code[..self.packed])
    }

    /// `Σ w_j·code_j` over packed cells: in integers for 8-bit codes.
    #[inline(always)]
    fn sum(&self, cells: &[u8]) -> f32 {
        if self.iweights.is_empty() {
            (self.dot)(self.weights.as_slice(), cells)
        } else {
            (self.dot_i)(self.iweights.as_slice(), cells) as f32 * self.inv_scale
        }
    }

    /// Turns `s = Σ w_j·code_j` into the key of `code`.
    #[inline(always)]
    fn finish(&self, s: f32, code: &[u8]) -> f32 {
        let ip = self.constant + s;
        if self.l2 {
            let n = &code[self.packed..self.packed + NORM_BYTES];
            let x_norm_sq = f32::from_le_bytes([n[0], n[1], n[2], n[3]]);
            self.query_norm_sq - 2.0 * ip + x_norm_sq
        } else {
            -ip
        }
    }
}

impl Estimator for SqEstimator<'_> {
    /// Panics if `code` is shorter than `code_len`.
    #[inline]
    fn key(&self, code: &[u8]) -> f32 {
        let s = self.sum(&code[..self.packed]);
        self.finish(s, code)
    }

    /// One kernel call over all codes (the loop stays inside the SIMD function), then the
    /// per-code affine. Panics if `code_len` differs from the quantizer's.
    fn keys(&self, codes: &[u8], code_len: usize, out: &mut [f32]) {
        assert_eq!(code_len, self.code_len, "SQ keys: code length");
        if self.iweights.is_empty() {
            (self.many)(self.weights.as_slice(), codes, self.packed, code_len, out);
        } else {
            const CHUNK: usize = 256;
            let mut sums = [0i32; CHUNK];
            for (o, c) in out.chunks_mut(CHUNK).zip(codes.chunks(CHUNK * code_len)) {
                let s = &mut sums[..o.len()];
                (self.many_i)(self.iweights.as_slice(), c, self.packed, code_len, s);
                for (x, &v) in o.iter_mut().zip(s.iter()) {
                    *x = v as f32 * self.inv_scale;
                }
            }
        }
        for (o, c) in out.iter_mut().zip(codes.chunks_exact(code_len)) {
            *o = self.finish(*o, c);
        }
    }
}

/// `round(w_j·S)` as 16-bit integers (same length and padding as `w`) and `1/S`, with `S` the
/// largest scale that keeps `|ŵ_j|` within [`i16_weight_bound`] for `dim` codes.
fn integer_weights(w: &[f32], dim: usize) -> (AlignedVec<i16>, f32) {
    let max = w.iter().fold(0.0f32, |m, &x| m.max(x.abs()));
    if !(max > 0.0 && max.is_finite()) {
        // All-zero or non-finite weights: leave them to the f32 kernel (empty = not used).
        return (AlignedVec::new(), 1.0);
    }
    let mut out = AlignedVec::zeroed(w.len());
    let scale = i16_weight_bound(dim) as f32 / max;
    for (o, &x) in out.as_mut_slice().iter_mut().zip(w) {
        *o = (x * scale).round() as i16;
    }
    (out, 1.0 / scale)
}
