//! [`PqEstimator`]: asymmetric distance computation (ADC) with a per-query lookup table.
//!
//! The table holds, for every subspace `j` and centroid `i`, the term `T[j][i]` whose sum over the
//! code's centroids *is the key*: `|q^j - c^j_i|^2` under L2 and `-<q^j, c^j_i>` under inner
//! product and cosine (the inner-product table is stored negated, so `key = Σ_j T[j][code_j]`
//! for every metric and the fast-scan quantized table can be built from it unchanged).

use super::product::PqQuantizer;
use super::subspace;
use crate::{Estimator, Quantizer};
use quarry_core::Metric;

/// A query prepared for a [`PqQuantizer`]: its `m x ksub` lookup table.
#[derive(Debug, Clone)]
pub struct PqEstimator<'a> {
    pq: &'a PqQuantizer,
    /// `m x ksub`, subspace-major; the key is the sum of one entry per subspace.
    lut: Vec<f32>,
}

impl<'a> PqEstimator<'a> {
    /// Builds the table for `q`. Panics if `q.len() != pq.dim()`.
    pub fn new(pq: &'a PqQuantizer, q: &[f32]) -> Self {
        assert_eq!(q.len(), pq.dim(), "PqEstimator: wrong query dimension");
        let ksub = pq.ksub();
        let mut lut = vec![0.0f32; pq.m() * ksub];
        for (j, t) in lut.chunks_exact_mut(ksub).enumerate() {
            let qj = &q[pq.subspace(j)];
            match pq.metric() {
                Metric::L2 => subspace::l2_to_all(qj, pq.codebook_t(j), t),
                Metric::InnerProduct | Metric::Cosine => {
                    subspace::dot_to_all(qj, pq.codebook_t(j), t);
                    t.iter_mut().for_each(|v| *v = -*v);
                }
            }
        }
        PqEstimator { pq, lut }
    }

    /// The lookup table, `m x ksub` subspace-major: `key = Σ_j lut[j * ksub + code_j]`.
    pub fn lut(&self) -> &[f32] {
        &self.lut
    }

    /// Number of subspaces.
    pub fn m(&self) -> usize {
        self.pq.m()
    }

    /// Bits per subspace code (8 or 4).
    pub fn nbits(&self) -> u8 {
        self.pq.nbits()
    }
}

impl Estimator for PqEstimator<'_> {
    /// `m` table lookups. Panics if `code` is shorter than the quantizer's code length.
    #[inline]
    fn key(&self, code: &[u8]) -> f32 {
        if self.pq.nbits() == 8 {
            key8(&self.lut, &code[..self.pq.m()])
        } else {
            key4(&self.lut, self.pq.m(), &code[..self.pq.m().div_ceil(2)])
        }
    }
}

/// 8-bit codes: one lookup per byte, four independent accumulators.
#[inline]
fn key8(lut: &[f32], code: &[u8]) -> f32 {
    let (tables, _) = lut.as_chunks::<256>();
    let (t4, t_rest) = tables.as_chunks::<4>();
    let (c4, c_rest) = code.as_chunks::<4>();
    let mut s = [0.0f32; 4];
    for (t, c) in t4.iter().zip(c4) {
        s[0] += t[0][c[0] as usize];
        s[1] += t[1][c[1] as usize];
        s[2] += t[2][c[2] as usize];
        s[3] += t[3][c[3] as usize];
    }
    for (t, &c) in t_rest.iter().zip(c_rest) {
        s[0] += t[c as usize];
    }
    (s[0] + s[1]) + (s[2] + s[3])
}

/// 4-bit codes: two lookups per byte (low nibble = even subspace, high nibble = odd subspace).
#[inline]
fn key4(lut: &[f32], m: usize, code: &[u8]) -> f32 {
    let (tables, _) = lut.as_chunks::<16>();
    let (pairs, last) = tables[..m].as_chunks::<2>();
    let mut s = [0.0f32; 2];
    for (t, &b) in pairs.iter().zip(code) {
        s[0] += t[0][(b & 0x0F) as usize];
        s[1] += t[1][(b >> 4) as usize];
    }
    if let (Some(t), Some(&b)) = (last.first(), code.get(pairs.len())) {
        s[0] += t[(b & 0x0F) as usize];
    }
    s[0] + s[1]
}
