//! `hnsw+sq8`, `hnsw+rabitq`, ...: the HNSW graph walked on compressed codes, with exact
//! re-scoring of the final beam ([`QuantHnswIndex`]).
//!
//! The graph is built with exact distances (graph quality does not depend on the codes); only
//! searches read codes. The f32 rows stay in the graph's flat store, memory-mapped when the
//! index is opened from disk, and are read only to re-score the beam.

use super::codes::{with_quantizer, CodeKeys, Codes};
use super::rerank::{rescore, rescore_bounded};
use super::spec::QuantParams;
use crate::hnsw::search::Walked;
use crate::hnsw::{HnswIndex, HnswParams, HnswSearch};
use quarry_core::{DocId, Hit, IdFilter, Matrix, Metric, Result, SearchParams, VectorIndex, VectorIndexMut};
use quarry_quant::{Estimator, Quantizer};
use rayon::prelude::*;

/// An HNSW graph searched on codes, re-scored exactly.
#[derive(Debug)]
pub struct QuantHnswIndex {
    pub(crate) hnsw: HnswIndex,
    pub(crate) codes: Codes,
}

impl QuantHnswIndex {
    /// Builds the graph over `vectors` with exact distances, then trains the quantizer on a
    /// sample and encodes every row.
    pub fn build(vectors: &Matrix, metric: Metric, graph: HnswParams, params: QuantParams) -> Result<Self> {
        // The codes below replace the graph's own walk codes: do not train those.
        let graph = HnswParams { walk_codes: false, ..graph };
        Self::from_hnsw(HnswIndex::build(vectors, metric, graph)?, params)
    }

    /// Adds codes to an existing graph index (its deletes are kept; the graph's own walk codes
    /// are dropped: the walk ranks by these).
    pub fn from_hnsw(mut hnsw: HnswIndex, params: QuantParams) -> Result<Self> {
        hnsw.params.walk_codes = false;
        hnsw.walk_codes = None;
        let codes = Codes::train(&hnsw.flat, params)?;
        Ok(QuantHnswIndex { hnsw, codes })
    }

    /// The parameters the codes were built with.
    pub fn params(&self) -> QuantParams {
        self.codes.params
    }

    /// The embedded graph index (exact distances).
    pub fn graph(&self) -> &HnswIndex {
        &self.hnsw
    }

    /// Bytes per code (per-vector factors included; 0 when the index is searched exactly).
    pub fn code_len(&self) -> usize {
        self.codes.code_len
    }

    /// A view searching with `search` (its `ef` is the beam walked on codes, raised to
    /// `k × rerank` if smaller) and re-scoring the best `k × rerank` of the beam exactly (0 with
    /// RaBitQ: by error bound over the whole beam).
    pub fn searcher(&self, search: HnswSearch, rerank: usize) -> QuantHnswSearcher<'_> {
        QuantHnswSearcher { index: self, search, rerank, rescore: true }
    }

    /// Marks `id` deleted; false if it already was.
    pub fn delete(&mut self, id: DocId) -> Result<bool> {
        self.hnsw.delete(id)
    }

    /// Top-k for `query`: a beam of `search.ef` walked on codes, then exact re-scoring.
    pub fn search_with(
        &self,
        query: &[f32],
        k: usize,
        search: &HnswSearch,
        rerank: usize,
        filter: Option<&IdFilter>,
    ) -> Result<Vec<Hit>> {
        let q = self.hnsw.flat.prepare(query, || "query".into())?;
        Ok(self.search_prepared(q.as_slice(), k, search, rerank, filter))
    }

    /// The `k` best ids for `query` as the codes rank them, with the codes' estimated scores:
    /// no row is read (Qdrant's `rescore: false`; faiss's HNSW over SQ codes without a refine
    /// step). Filters so selective that the walk gives way to an exact scan still read rows.
    pub fn search_estimated(
        &self,
        query: &[f32],
        k: usize,
        search: &HnswSearch,
        filter: Option<&IdFilter>,
    ) -> Result<Vec<Hit>> {
        let q = self.hnsw.flat.prepare(query, || "query".into())?;
        let q = q.as_slice();
        let Some(quant) = &self.codes.quant else {
            return Ok(self.hnsw.search_prepared(q, k, search, filter));
        };
        Ok(with_quantizer!(quant, qz => {
            let est = qz.estimator(q);
            let keys = CodeKeys { est: &est, codes: &self.codes };
            match self.hnsw.walk_candidates(keys, k, search.ef, search, filter) {
                Walked::Empty => Vec::new(),
                Walked::Exact => self.hnsw.exact(q, k, filter),
                // The beam is nearest first by estimated key; `0.0 - key` as for exact hits.
                Walked::Found(beam) => beam.iter().take(k).map(|c| Hit { id: c.id, score: 0.0 - c.d }).collect(),
            }
        }))
    }

    fn search_prepared(
        &self,
        q: &[f32],
        k: usize,
        search: &HnswSearch,
        rerank: usize,
        filter: Option<&IdFilter>,
    ) -> Vec<Hit> {
        let Some(quant) = &self.codes.quant else {
            return self.hnsw.search_prepared(q, k, search, filter);
        };
        with_quantizer!(quant, qz => {
            let est = qz.estimator(q);
            self.walk(&est, q, k, search, rerank, filter)
        })
    }

    fn walk<E: Estimator>(
        &self,
        est: &E,
        q: &[f32],
        k: usize,
        search: &HnswSearch,
        rerank: usize,
        filter: Option<&IdFilter>,
    ) -> Vec<Hit> {
        let keys = CodeKeys { est, codes: &self.codes };
        // The beam holds at least the k × rerank candidates that will be re-scored.
        let ef = if self.codes.bounded(rerank) { search.ef } else { search.ef.max(k.saturating_mul(rerank)) };
        match self.hnsw.walk_candidates(keys, k, ef, search, filter) {
            Walked::Empty => Vec::new(),
            Walked::Exact => self.hnsw.exact(q, k, filter),
            Walked::Found(beam) => {
                if self.codes.bounded(rerank) {
                    let cands =
                        beam.iter().map(|c| (est.key_and_bound(self.codes.code(c.id)).1, c.id)).collect();
                    rescore_bounded(&self.hnsw.flat, q, cands, k).0
                } else {
                    let ids: Vec<u32> =
                        beam.iter().take(k.saturating_mul(rerank.max(1))).map(|c| c.id).collect();
                    rescore(&self.hnsw.flat, q, &ids, k)
                }
            }
        }
    }

    fn batch(
        &self,
        queries: &Matrix,
        params: &SearchParams,
        search: &HnswSearch,
        rerank: usize,
    ) -> Result<Vec<Vec<Hit>>> {
        let prepared = self.hnsw.flat.prepare_batch(queries)?;
        let filter = params.filter.as_deref();
        Ok(prepared
            .par_iter()
            .map(|q| self.search_prepared(q.as_slice(), params.k, search, rerank, filter))
            .collect())
    }

    /// Resident bytes: graph, codes and quantizer, plus the f32 rows when they are on the heap
    /// (rows memory-mapped from a file are left out: they are read only for re-scoring).
    pub fn resident_bytes(&self) -> usize {
        let flat = &self.hnsw.flat;
        self.codes.memory_bytes()
            + self.hnsw.graph.memory_bytes()
            + if flat.is_mapped() { 0 } else { flat.memory_bytes() }
    }
}

/// A [`QuantHnswIndex`] with fixed search parameters, usable wherever a [`VectorIndex`] is.
#[derive(Debug, Clone, Copy)]
pub struct QuantHnswSearcher<'a> {
    index: &'a QuantHnswIndex,
    search: HnswSearch,
    rerank: usize,
    rescore: bool,
}

impl QuantHnswSearcher<'_> {
    /// The same view answering from the codes alone ([`QuantHnswIndex::search_estimated`]).
    pub fn estimated(self) -> Self {
        QuantHnswSearcher { rescore: false, ..self }
    }
}

impl VectorIndex for QuantHnswSearcher<'_> {
    fn dim(&self) -> usize {
        self.index.hnsw.dim()
    }
    fn len(&self) -> usize {
        self.index.hnsw.len()
    }
    fn metric(&self) -> Metric {
        self.index.hnsw.metric()
    }
    fn memory_bytes(&self) -> usize {
        self.index.resident_bytes()
    }
    fn search(&self, query: &[f32], params: &SearchParams) -> Result<Vec<Hit>> {
        match self.rescore {
            true => {
                self.index.search_with(query, params.k, &self.search, self.rerank, params.filter.as_deref())
            }
            false => self.index.search_estimated(query, params.k, &self.search, params.filter.as_deref()),
        }
    }
    fn search_batch(&self, queries: &Matrix, params: &SearchParams) -> Result<Vec<Vec<Hit>>> {
        if !self.rescore {
            let qs: Vec<&[f32]> = queries.iter().collect();
            return qs.par_iter().map(|q| self.search(q, params)).collect();
        }
        self.index.batch(queries, params, &self.search, self.rerank)
    }
}

impl VectorIndex for QuantHnswIndex {
    fn dim(&self) -> usize {
        self.hnsw.dim()
    }
    fn len(&self) -> usize {
        self.hnsw.len()
    }
    fn metric(&self) -> Metric {
        self.hnsw.metric()
    }
    fn memory_bytes(&self) -> usize {
        self.resident_bytes()
    }
    fn search(&self, query: &[f32], params: &SearchParams) -> Result<Vec<Hit>> {
        let s = HnswSearch::default();
        self.search_with(query, params.k, &s, self.codes.params.rerank, params.filter.as_deref())
    }
    fn search_batch(&self, queries: &Matrix, params: &SearchParams) -> Result<Vec<Vec<Hit>>> {
        self.batch(queries, params, &HnswSearch::default(), self.codes.params.rerank)
    }
}

impl VectorIndexMut for QuantHnswIndex {
    fn delete(&mut self, id: DocId) -> Result<bool> {
        QuantHnswIndex::delete(self, id)
    }
}
