//! `flat+sq8`, `flat+pq`, `flat+rabitq`, ...: a scan over compressed codes followed by exact
//! re-scoring of the best candidates ([`QuantFlatIndex`]).

use super::codes::{with_quantizer, AnyQuantizer, Codes};
use super::rerank::{rescore, rescore_bounded};
use super::spec::QuantParams;
use crate::flat::{FlatIndex, FlatParams};
use quarry_core::{DocId, Hit, IdFilter, Matrix, Metric, Result, SearchParams, VectorIndex, VectorIndexMut};
use quarry_linalg::TopK;
use quarry_quant::pq::{top_candidates, QuantizedLut};
use quarry_quant::{Estimator, Quantizer};
use rayon::prelude::*;

/// Codes scanned per call of the estimator's batched `keys`.
const BLOCK: usize = 256;

/// An exhaustive scan over codes with exact re-scoring. The f32 rows stay in an embedded
/// [`FlatIndex`]; opened from disk ([`QuantFlatIndex::open`]) they are memory-mapped, so only
/// the codes (and the rows re-scored) need to be resident.
#[derive(Debug)]
pub struct QuantFlatIndex {
    pub(crate) flat: FlatIndex,
    pub(crate) codes: Codes,
}

impl QuantFlatIndex {
    /// Builds the exact store over `vectors`, trains the quantizer on a sample and encodes
    /// every row.
    pub fn build(vectors: &Matrix, metric: Metric, flat: FlatParams, params: QuantParams) -> Result<Self> {
        Self::from_flat(FlatIndex::build(vectors, metric, flat)?, params)
    }

    /// Adds codes to an existing exact index (its deletes are kept).
    pub fn from_flat(flat: FlatIndex, params: QuantParams) -> Result<Self> {
        let codes = Codes::train(&flat, params)?;
        Ok(QuantFlatIndex { flat, codes })
    }

    /// The parameters the codes were built with.
    pub fn params(&self) -> QuantParams {
        self.codes.params
    }

    /// The embedded exact store (the re-scoring source).
    pub fn flat(&self) -> &FlatIndex {
        &self.flat
    }

    /// Bytes per code (per-vector factors included; 0 when the index is searched exactly).
    pub fn code_len(&self) -> usize {
        self.codes.code_len
    }

    /// A view that re-scores `k × rerank` candidates per query (0: by RaBitQ error bound).
    pub fn searcher(&self, rerank: usize) -> QuantFlatSearcher<'_> {
        QuantFlatSearcher { index: self, rerank }
    }

    /// Marks `id` deleted; false if it already was.
    pub fn delete(&mut self, id: DocId) -> Result<bool> {
        self.flat.delete(id)
    }

    /// Top-k for a query, re-scoring `k × rerank` code candidates exactly (0 with RaBitQ: by
    /// error bound).
    pub fn search_with(
        &self,
        query: &[f32],
        k: usize,
        rerank: usize,
        filter: Option<&IdFilter>,
    ) -> Result<Vec<Hit>> {
        let q = self.flat.prepare(query, || "query".into())?;
        Ok(self.search_prepared(q.as_slice(), k, rerank, filter))
    }

    fn search_prepared(&self, q: &[f32], k: usize, rerank: usize, filter: Option<&IdFilter>) -> Vec<Hit> {
        let n = self.flat.rows();
        let k = k.min(n);
        if k == 0 {
            return Vec::new();
        }
        let deleted = &self.flat.deleted;
        let restricted = filter.is_some() || !deleted.is_empty();
        let admitted = |id: &DocId| (*id as usize) < n && !deleted.contains(*id);
        let Some(quant) = &self.codes.quant else {
            return match filter {
                Some(f) => self.flat.search_ids(q, f.iter().filter(admitted), k),
                None => self.flat.search_ids(q, (0..n as DocId).filter(admitted), k),
            };
        };
        if let (Some(fs), AnyQuantizer::Pq(pq), false) = (&self.codes.fastscan, quant, restricted) {
            // 4-bit PQ without a filter: SIMD fast-scan over blocks of 32 codes.
            let est = pq.estimator(q);
            if let Ok(lut) = QuantizedLut::from_estimator(&est) {
                let cands = top_candidates(fs, &lut, k.saturating_mul(rerank.max(1)));
                let ids: Vec<u32> = cands.into_iter().map(|(_, id)| id).collect();
                return rescore(&self.flat, q, &ids, k);
            }
        }
        with_quantizer!(quant, qz => {
            let est = qz.estimator(q);
            let bounded = self.codes.bounded(rerank);
            if bounded {
                let ids: Box<dyn Iterator<Item = DocId>> = match filter {
                    Some(f) => Box::new(f.iter().filter(admitted)),
                    None if restricted => Box::new((0..n as DocId).filter(admitted)),
                    None => Box::new(0..n as DocId),
                };
                self.scan_bounded(&est, q, k, ids)
            } else {
                let want = k.saturating_mul(rerank.max(1));
                let mut top = TopK::new(want);
                match filter {
                    Some(f) => self.scan_ids(&est, f.iter().filter(admitted), &mut top),
                    None if restricted => self.scan_ids(&est, (0..n as DocId).filter(admitted), &mut top),
                    None => self.scan_all(&est, &mut top),
                }
                let ids: Vec<u32> = top.into_sorted().into_iter().map(|(_, id)| id).collect();
                rescore(&self.flat, q, &ids, k)
            }
        })
    }

    /// Estimated keys of every row into `top`.
    fn scan_all<E: Estimator>(&self, est: &E, top: &mut TopK) {
        let len = self.codes.code_len;
        let mut buf = [0f32; BLOCK];
        for (b, chunk) in self.codes.arena.as_slice().chunks(BLOCK * len).enumerate() {
            let m = chunk.len() / len;
            est.keys(chunk, len, &mut buf[..m]);
            top.push_block(&buf[..m], (b * BLOCK) as DocId);
        }
    }

    /// Estimated keys of the rows `ids` into `top`.
    fn scan_ids<E: Estimator>(&self, est: &E, ids: impl Iterator<Item = DocId>, top: &mut TopK) {
        for id in ids {
            let key = est.key(self.codes.code(id));
            if key <= top.threshold() {
                top.push(key, id);
            }
        }
    }

    /// RaBitQ re-scoring by error bound: one pass keeps the candidates whose lower bound is
    /// within the k-th smallest upper bound seen, then they are re-scored in bound order.
    fn scan_bounded<E: Estimator>(
        &self,
        est: &E,
        q: &[f32],
        k: usize,
        ids: impl Iterator<Item = DocId>,
    ) -> Vec<Hit> {
        let mut upper = TopK::new(k);
        let mut cands = Vec::new();
        for id in ids {
            let (e, lb) = est.key_and_bound(self.codes.code(id));
            let ub = e + (e - lb);
            if ub <= upper.threshold() {
                upper.push(ub, id);
            }
            if lb <= upper.threshold() {
                cands.push((lb, id));
            }
        }
        let t = upper.threshold();
        cands.retain(|&(lb, _)| lb <= t);
        rescore_bounded(&self.flat, q, cands, k).0
    }

    fn batch(&self, queries: &Matrix, params: &SearchParams, rerank: usize) -> Result<Vec<Vec<Hit>>> {
        let prepared = self.flat.prepare_batch(queries)?;
        let filter = params.filter.as_deref();
        Ok(prepared
            .par_iter()
            .map(|q| self.search_prepared(q.as_slice(), params.k, rerank, filter))
            .collect())
    }

    /// Resident bytes: codes and quantizer, plus the f32 rows when they are on the heap (rows
    /// memory-mapped from a file are left out: they are read only for re-scoring).
    pub fn resident_bytes(&self) -> usize {
        self.codes.memory_bytes() + if self.flat.is_mapped() { 0 } else { self.flat.memory_bytes() }
    }
}

/// A [`QuantFlatIndex`] with a fixed re-scoring depth, usable wherever a [`VectorIndex`] is.
#[derive(Debug, Clone, Copy)]
pub struct QuantFlatSearcher<'a> {
    index: &'a QuantFlatIndex,
    rerank: usize,
}

impl VectorIndex for QuantFlatSearcher<'_> {
    fn dim(&self) -> usize {
        self.index.flat.dim()
    }
    fn len(&self) -> usize {
        self.index.flat.len()
    }
    fn metric(&self) -> Metric {
        self.index.flat.metric()
    }
    fn memory_bytes(&self) -> usize {
        self.index.resident_bytes()
    }
    fn search(&self, query: &[f32], params: &SearchParams) -> Result<Vec<Hit>> {
        self.index.search_with(query, params.k, self.rerank, params.filter.as_deref())
    }
    fn search_batch(&self, queries: &Matrix, params: &SearchParams) -> Result<Vec<Vec<Hit>>> {
        self.index.batch(queries, params, self.rerank)
    }
}

impl VectorIndex for QuantFlatIndex {
    fn dim(&self) -> usize {
        self.flat.dim()
    }
    fn len(&self) -> usize {
        self.flat.len()
    }
    fn metric(&self) -> Metric {
        self.flat.metric()
    }
    fn memory_bytes(&self) -> usize {
        self.resident_bytes()
    }
    fn search(&self, query: &[f32], params: &SearchParams) -> Result<Vec<Hit>> {
        self.search_with(query, params.k, self.codes.params.rerank, params.filter.as_deref())
    }
    fn search_batch(&self, queries: &Matrix, params: &SearchParams) -> Result<Vec<Vec<Hit>>> {
        self.batch(queries, params, self.codes.params.rerank)
    }
}

impl VectorIndexMut for QuantFlatIndex {
    fn delete(&mut self, id: DocId) -> Result<bool> {
        QuantFlatIndex::delete(self, id)
    }
}
