//! The [`Quantizer`] and [`Estimator`] traits, and [`encode_all`] to fill a code arena.

use quarry_core::{Matrix, Metric, Result};
use rayon::prelude::*;

/// A trained vector quantizer: fixed-length codes and per-query distance estimation.
///
/// The metric is fixed at training. Cosine is treated as inner product: callers pass unit
/// vectors (the indexes normalise at ingest and at query time), so keys are `-<q,x>`.
pub trait Quantizer: Send + Sync + std::fmt::Debug + Sized {
    /// What a prepared query looks like (lookup tables, rotated/quantized query, ...).
    type Estimator<'a>: Estimator
    where
        Self: 'a;

    /// Dimension of the vectors it encodes.
    fn dim(&self) -> usize;

    /// Metric the keys approximate.
    fn metric(&self) -> Metric;

    /// Bytes per encoded vector, per-vector factors included.
    fn code_len(&self) -> usize;

    /// Encodes `x` (length `dim`, finite) into `code` (length `code_len`).
    fn encode(&self, x: &[f32], code: &mut [u8]);

    /// Writes the approximate reconstruction of `code` into `out` (length `dim`).
    fn decode(&self, code: &[u8], out: &mut [f32]);

    /// Prepares query `q` (length `dim`, finite; unit length under cosine).
    fn estimator<'a>(&'a self, q: &[f32]) -> Self::Estimator<'a>;

    /// Serialises the trained parameters (not the codes). The bytes start with a tag naming the
    /// family and a version; [`Quantizer::from_bytes`] reads them back.
    fn to_bytes(&self) -> Vec<u8>;

    /// Reads parameters written by [`Quantizer::to_bytes`]; a malformed buffer is an
    /// `Error::InvalidArgument` naming what is wrong, never a panic.
    fn from_bytes(bytes: &[u8]) -> Result<Self>;
}

/// A prepared query: estimates the key of an encoded vector.
pub trait Estimator: Send + Sync {
    /// Estimated key (lower is better) of `code`.
    fn key(&self, code: &[u8]) -> f32;

    /// Estimated key and a lower bound on the exact key, for pruning re-scoring. Families
    /// without a bound return the estimate twice.
    #[inline]
    fn key_and_bound(&self, code: &[u8]) -> (f32, f32) {
        let k = self.key(code);
        (k, k)
    }

    /// Keys of consecutive codes in `codes` (a multiple of `code_len` bytes) into `out`.
    fn keys(&self, codes: &[u8], code_len: usize, out: &mut [f32]) {
        for (o, c) in out.iter_mut().zip(codes.chunks_exact(code_len)) {
            *o = self.key(c);
        }
    }
}

/// Encodes every row of `vectors` into one contiguous arena of `rows × code_len` bytes, in
/// parallel on the current rayon pool.
pub fn encode_all<Q: Quantizer>(q: &Q, vectors: &Matrix) -> Vec<u8> {
    let len = q.code_len();
    let mut out = vec![0u8; vectors.rows() * len];
    if len == 0 {
        return out;
    }
    out.par_chunks_exact_mut(len)
        .zip(vectors.as_slice().par_chunks_exact(vectors.dim().max(1)))
        .for_each(|(code, x)| q.encode(x, code));
    out
}
