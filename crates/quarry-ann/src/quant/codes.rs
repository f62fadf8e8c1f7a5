//! The trained quantizer of a quantized index and its code arena ([`Codes`]), with dispatch over
//! the families ([`AnyQuantizer`], [`with_quantizer!`]) and graph-walk keys read from codes.

use super::spec::{QuantParams, QuantSpec};
use crate::flat::FlatIndex;
use crate::hnsw::search::KeySource;
use quarry_core::{Matrix, Metric, Result, VectorIndex};
use quarry_linalg::AlignedVec;
use quarry_quant::pq::{FastScanCodes, PqQuantizer};
use quarry_quant::rabitq::RaBitQuantizer;
use quarry_quant::sq::SqQuantizer;
use quarry_quant::{encode_all, Estimator, Quantizer};

/// One trained quantizer of any family.
#[derive(Debug)]
pub(crate) enum AnyQuantizer {
    Sq(SqQuantizer),
    Pq(PqQuantizer),
    RaBitQ(RaBitQuantizer),
}

/// Runs `$body` with `$q` bound to the concrete quantizer inside `$any` (so the body is
/// monomorphised per family: estimators are called without dynamic dispatch).
macro_rules! with_quantizer {
    ($any:expr, $q:ident => $body:expr) => {
        match $any {
            $crate::quant::codes::AnyQuantizer::Sq($q) => $body,
            $crate::quant::codes::AnyQuantizer::Pq($q) => $body,
            $crate::quant::codes::AnyQuantizer::RaBitQ($q) => $body,
        }
    };
}
pub(crate) use with_quantizer;

impl AnyQuantizer {
    /// Reads a quantizer of family `tag` from its parameter bytes.
    pub(crate) fn from_bytes(tag: u8, bytes: &[u8]) -> Result<AnyQuantizer> {
        Ok(match tag {
            1 => AnyQuantizer::Sq(SqQuantizer::from_bytes(bytes)?),
            2 => AnyQuantizer::Pq(PqQuantizer::from_bytes(bytes)?),
            3 => AnyQuantizer::RaBitQ(RaBitQuantizer::from_bytes(bytes)?),
            t => {
                return Err(quarry_core::Error::InvalidArgument(format!("unknown quantizer family tag {t}")))
            }
        })
    }
}

/// The codes of every row of an index, and the quantizer that reads them. `quant` is `None`
/// when the index had too few vectors to train its quantizer (PQ needs at least 2^nbits): it is
/// then searched exactly.
#[derive(Debug)]
pub(crate) struct Codes {
    pub(crate) quant: Option<AnyQuantizer>,
    pub(crate) code_len: usize,
    pub(crate) arena: AlignedVec<u8>,
    pub(crate) params: QuantParams,
    /// 4-bit PQ codes again in fast-scan blocks of 32 (see `quarry_quant::pq`), for full scans.
    pub(crate) fastscan: Option<FastScanCodes>,
}

/// SplitMix64 step (for the seeded training sample).
fn splitmix(state: &mut u64) -> u64 {
    crate::hnsw::splitmix(state)
}

/// Up to `size` distinct row ids of `0..n`, uniformly sampled with `seed`, ascending.
pub(crate) fn sample_ids(n: usize, size: usize, seed: u64) -> Vec<u32> {
    if size >= n {
        return (0..n as u32).collect();
    }
    let mut ids: Vec<u32> = (0..n as u32).collect();
    let mut state = seed ^ 0x5151_5151;
    for i in 0..size {
        let j = i + (splitmix(&mut state) % (n - i) as u64) as usize;
        ids.swap(i, j);
    }
    ids.truncate(size);
    ids.sort_unstable();
    ids
}

impl Codes {
    /// Trains the quantizer of `params` on a sample of `flat`'s rows and encodes every row.
    pub(crate) fn train(flat: &FlatIndex, params: QuantParams) -> Result<Codes> {
        let n = flat.rows();
        let dim = flat.dim();
        let rows = |ids: &[u32]| -> Result<Matrix> {
            let mut data = Vec::with_capacity(ids.len() * dim);
            for &id in ids {
                data.extend_from_slice(&flat.row_query(id as usize));
            }
            Matrix::new(data, dim)
        };
        let metric = match flat.metric() {
            Metric::Cosine => Metric::InnerProduct,
            m => m,
        };
        let enough = match params.spec {
            QuantSpec::Pq { nbits, .. } => n >= 1usize << nbits,
            _ => n > 0,
        };
        if !enough {
            return Ok(Codes { quant: None, code_len: 0, arena: AlignedVec::new(), params, fastscan: None });
        }
        let sample = rows(&sample_ids(n, params.train_size, params.seed))?;
        let quant = match params.spec {
            QuantSpec::Sq { bits } => AnyQuantizer::Sq(SqQuantizer::train(&sample, metric, bits)?),
            QuantSpec::Pq { m, nbits } => AnyQuantizer::Pq(PqQuantizer::train(&sample, metric, m, nbits)?),
            QuantSpec::RaBitQ { bits } => {
                AnyQuantizer::RaBitQ(RaBitQuantizer::train(&sample, metric, bits, params.seed)?)
            }
        };
        drop(sample);
        // Encode in slices so that only one slice of f32 rows is materialised at a time.
        let code_len = with_quantizer!(&quant, q => q.code_len());
        let mut arena = AlignedVec::zeroed(n * code_len);
        const SLICE: usize = 16_384;
        for start in (0..n).step_by(SLICE) {
            let ids: Vec<u32> = (start as u32..(start + SLICE).min(n) as u32).collect();
            let block = rows(&ids)?;
            let codes = with_quantizer!(&quant, q => encode_all(q, &block));
            arena.as_mut_slice()[start * code_len..start * code_len + codes.len()].copy_from_slice(&codes);
        }
        Codes::assemble(quant, code_len, arena, params)
    }

    /// Codes from their parts, adding the fast-scan layout for 4-bit PQ.
    pub(crate) fn assemble(
        quant: AnyQuantizer,
        code_len: usize,
        arena: AlignedVec<u8>,
        params: QuantParams,
    ) -> Result<Codes> {
        let fastscan = match &quant {
            AnyQuantizer::Pq(pq) if pq.nbits() == 4 => Some(FastScanCodes::from_pq(pq, arena.as_slice())?),
            _ => None,
        };
        Ok(Codes { quant: Some(quant), code_len, arena, params, fastscan })
    }

    /// The code of row `id`.
    #[inline]
    pub(crate) fn code(&self, id: u32) -> &[u8] {
        let at = id as usize * self.code_len;
        &self.arena.as_slice()[at..at + self.code_len]
    }

    /// Heap bytes held: codes plus quantizer parameters.
    pub(crate) fn memory_bytes(&self) -> usize {
        self.arena.capacity_bytes()
            + self.fastscan.as_ref().map_or(0, |f| f.as_bytes().len())
            + self.quant.as_ref().map_or(0, |a| with_quantizer!(a, q => q.to_bytes().len()))
    }

    /// Whether a search re-scoring `rerank` candidates per result goes by RaBitQ error bound
    /// instead (RaBitQ codes and `rerank` = 0).
    pub(crate) fn bounded(&self, rerank: usize) -> bool {
        matches!(self.params.spec, QuantSpec::RaBitQ { .. }) && rerank == 0
    }
}

/// Graph-walk keys estimated from codes.
pub(crate) struct CodeKeys<'a, E: Estimator> {
    pub(crate) est: &'a E,
    pub(crate) codes: &'a Codes,
}

impl<E: Estimator> KeySource for CodeKeys<'_, E> {
    #[inline]
    fn key(&self, id: u32) -> f32 {
        self.est.key(self.codes.code(id))
    }

    #[inline]
    fn prefetch(&self, id: u32) {
        let at = id as usize * self.codes.code_len;
        let ptr = self.codes.arena.as_slice().as_ptr().wrapping_add(at);
        let lines = (self.codes.code_len + (ptr as usize & 63)).div_ceil(64).min(8);
        for l in 0..lines {
            crate::flat::prefetch_line(ptr.wrapping_add(l * 64));
        }
    }
}
