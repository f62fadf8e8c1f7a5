//! Searching SPANN (Chen et al., "SPANN: Highly-efficient Billion-scale Approximate Nearest
//! Neighbor Search", NeurIPS 2021, Sec. 3, query-aware dynamic pruning; SPTAG's `MaxDistRatio`):
//! nearest heads from the head graph, query-aware pruning, posting lists from the LRU cache or the
//! file, replicas de-duplicated, exact keys, top-k; and the `VectorIndex` implementations.

use super::builder::SpannIndex;
use super::heads::{HeadSearch, SCAN_MAX_HEADS};
use super::params::SpannSearch;
use super::seen::{with_seen, SeenIds};
use crate::hnsw::HnswSearch;
use crate::quant::codes::with_quantizer;
use crate::quant::QuantSpec;
use quarry_core::{
    DocId, Error, Hit, IdFilter, Matrix, Metric, Result, SearchParams, VectorIndex, VectorIndexMut,
};
use quarry_linalg::{AlignedVec, Kernels, TopK};
use quarry_quant::{Estimator, Quantizer};

/// Estimated key and lower bound of a code for the query being searched.
type KeyFn<'a> = dyn Fn(&[u8]) -> (f32, f32) + 'a;

/// Candidates from coded entries: the best `k × rerank` by estimate, or (RaBitQ, `rerank` 0)
/// every candidate whose lower bound is within the k-th smallest upper bound seen.
pub(crate) struct CodeSink {
    bounded: bool,
    /// Best estimates (fixed depth) or smallest upper bounds (bounded).
    top: TopK,
    /// Bounded: `(lower bound, id)`.
    cands: Vec<(f32, u32)>,
}

impl CodeSink {
    fn new(k: usize, rerank: usize, bounded: bool) -> Self {
        let depth = if bounded { k } else { k.saturating_mul(rerank.max(1)) };
        CodeSink { bounded, top: TopK::new(depth), cands: Vec::new() }
    }

    #[inline]
    fn offer(&mut self, estimate: f32, lower: f32, id: u32) {
        if self.bounded {
            let upper = estimate + (estimate - lower);
            if upper <= self.top.threshold() {
                self.top.push(upper, id);
            }
            if lower <= self.top.threshold() {
                self.cands.push((lower, id));
            }
        } else if estimate <= self.top.threshold() {
            self.top.push(estimate, id);
        }
    }

    fn len(&self) -> usize {
        if self.bounded {
            self.cands.len()
        } else {
            self.top.len()
        }
    }

    /// The candidates to re-score, in order: `(estimate, id)` best first, or (bounded)
    /// `(lower bound, id)` ascending, to stop at the first bound above the k-th exact key.
    fn finish(self) -> Vec<(f32, u32)> {
        if self.bounded {
            let t = self.top.threshold();
            let mut c: Vec<(f32, u32)> = self.cands.into_iter().filter(|&(lb, _)| lb <= t).collect();
            c.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            c
        } else {
            self.top.into_sorted()
        }
    }
}
use rayon::prelude::*;
use std::sync::Arc;

/// What a list scan needs besides the index: the kernels, the prepared query, the code estimator
/// (coded entries) and the admission test (deletes, filter).
struct ScanCtx<'a> {
    kern: &'a Kernels,
    q: &'a [f32],
    est: Option<&'a KeyFn<'a>>,
    admit: &'a dyn Fn(u32) -> bool,
}

/// Where a scan puts what it finds: ids seen (replicas), exact top-k, coded candidates.
struct Found<'a> {
    seen: &'a mut SeenIds,
    top: &'a mut TopK,
    cands: &'a mut CodeSink,
}

impl Found<'_> {
    /// Offers an f32 row: exact key into `top` if new and admitted.
    #[inline]
    fn offer_row(&mut self, index: &SpannIndex, cx: &ScanCtx<'_>, id: u32, row: &[f32]) {
        if self.seen.insert(id) && (cx.admit)(id) {
            let key = index.key(cx.kern, cx.q, row);
            if key <= self.top.threshold() {
                self.top.push(key, id);
            }
        }
    }
}

impl SpannIndex {
    /// The `k` best of `ids` for `query`, scored exactly from the rows file (announced first, so
    /// rows in object storage are fetched together). Ids out of range are an error.
    pub fn score_ids(&self, query: &[f32], ids: &[DocId], k: usize) -> Result<Vec<Hit>> {
        if let Some(&bad) = ids.iter().find(|&&id| id as usize >= self.n) {
            return Err(Error::InvalidArgument(format!("id {bad} is not in an index of {} rows", self.n)));
        }
        let q = self.validator.prepare(query, || "query".into())?;
        if let Some(rows) = &self.rows {
            rows.will_need(ids.iter().copied().filter(|&id| (id as usize) < self.base_n));
        }
        let kern = Kernels::get();
        let mut row = vec![0f32; self.dim];
        let mut top = TopK::new(k);
        for &id in ids {
            self.read_row(id, &mut row)?;
            let key = self.key(kern, q.as_slice(), &row);
            if key <= top.threshold() {
                top.push(key, id);
            }
        }
        Ok(crate::flat::FlatIndex::hits(top))
    }

    /// Stored row `id` (normalised under cosine), read from the rows file; `None` out of range.
    pub fn vector(&self, id: DocId) -> Option<Vec<f32>> {
        if id as usize >= self.n {
            return None;
        }
        let mut row = vec![0f32; self.dim];
        self.read_row(id, &mut row).ok().map(|()| row)
    }

    /// Whether the posting lists are read from object storage by byte range.
    pub fn is_remote(&self) -> bool {
        self.postings.is_remote()
    }

    /// Ranking key of row `x` for prepared query `q` (lower is better).
    #[inline]
    fn key(&self, kern: &Kernels, q: &[f32], x: &[f32]) -> f32 {
        let k = match self.metric {
            Metric::L2 => (kern.l2_sq)(q, x),
            _ => -(kern.dot)(q, x),
        };
        if k.is_nan() {
            f32::INFINITY
        } else {
            k
        }
    }

    /// Top-k for `query` under `search`, returning only ids in `filter` (if given) that are not
    /// deleted. When the probed lists hold fewer than k admitted ids, the remaining lists are
    /// read too, so k hits come back whenever k live ids pass the filter.
    pub fn search_with(
        &self,
        query: &[f32],
        k: usize,
        search: &SpannSearch,
        filter: Option<&IdFilter>,
    ) -> Result<Vec<Hit>> {
        let q = self.validator.prepare(query, || "query".into())?;
        self.search_prepared(q.as_slice(), k, search, filter)
    }

    fn search_prepared(
        &self,
        q: &[f32],
        k: usize,
        search: &SpannSearch,
        filter: Option<&IdFilter>,
    ) -> Result<Vec<Hit>> {
        let h = self.head_ids.len();
        if k == 0 || h == 0 {
            return Ok(Vec::new());
        }
        // A filter admitting a fraction σ of the ids leaves about σ of each list: probe 1/σ times
        // as many lists, without ratio pruning (as a filtered graph walk widens its beam).
        let (probes, ratio) = match filter {
            Some(f) => {
                let sigma = (f.len().min(self.n) as f64 / self.n.max(1) as f64).max(1e-9);
                ((search.max_postings as f64 / sigma).ceil().min(h as f64) as usize, f32::INFINITY)
            }
            None => (search.max_postings, search.max_dist_ratio),
        };
        let probes = probes.clamp(1, h);
        let near = self.nearest_heads(q, probes, search)?;
        let kern = Kernels::get();
        let admit = |id: u32| !self.deleted.contains(id) && filter.is_none_or(|f| f.contains(id));
        let mut top = TopK::new(k);
        // With coded entries, list entries are collected by estimated key (or RaBitQ bound) and
        // re-scored exactly at the end.
        let est: Option<Box<KeyFn<'_>>> = self.coded.as_ref().map(|c| {
            with_quantizer!(&c.quant, qz => {
                let est = qz.estimator(q);
                Box::new(move |code: &[u8]| est.key_and_bound(code)) as Box<KeyFn<'_>>
            })
        });
        let bounded = matches!(self.params.codes, Some(QuantSpec::RaBitQ { .. })) && search.rerank == 0;
        let mut cands = CodeSink::new(k, search.rerank, bounded);
        let cx = ScanCtx { kern, q, est: est.as_deref(), admit: &admit };
        // Room for every entry of the lists to probe (replicas make it an overestimate).
        let expected: usize = near.iter().map(|h| self.postings.count(h.id as usize)).sum();
        with_seen(expected, |seen| -> Result<()> {
            let d1 = near.first().map_or(0.0, |c| -c.score);
            if search.readahead {
                // Parallel reads: the OS fetches every list to probe while the first are scanned.
                self.postings.will_need(
                    near.iter()
                        .take_while(|c| d1 <= 1e-6 || -c.score <= ratio * d1)
                        .map(|hit| hit.id as usize)
                        .filter(|&j| self.lists.get(j).is_none_or(|l| l.base)),
                );
            }
            let mut read = vec![false; h];
            for hit in &near {
                let d = -hit.score;
                if d1 > 1e-6 && d > ratio * d1 {
                    break;
                }
                self.scan_list(hit.id as usize, &cx, &mut Found { seen, top: &mut top, cands: &mut cands })?;
                read[hit.id as usize] = true;
            }
            // Too few admitted hits (a selective filter, many deletes): read the other lists too.
            if top.len() + cands.len() < k {
                for (r, done) in read.iter().enumerate() {
                    if !done {
                        self.scan_list(r, &cx, &mut Found { seen, top: &mut top, cands: &mut cands })?;
                    }
                }
            }
            Ok(())
        })?;
        if let Some(coded) = &self.coded {
            let mut row = vec![0f32; self.dim];
            let cands = cands.finish();
            // Rows re-scored from the file: ask for the likely ones together while reads are slow.
            // A bounded re-ranking may read past them: from object storage, each further wave
            // (twice the last) is asked for together too, so it costs one round trip, not one per
            // row.
            let timer = self.rows.as_ref().map(|r| (r, std::time::Instant::now()));
            let mut announced = 0;
            let mut waves = self.rows.as_ref().filter(|r| r.wants_readahead());
            if let Some(rows) = waves {
                announced = if bounded { 2 * k + 4 } else { cands.len() };
                rows.will_need(cands.iter().take(announced).map(|c| c.1));
                if !rows.is_remote() {
                    waves = None;
                }
            }
            for (i, &(bound, id)) in cands.iter().enumerate() {
                if bounded && bound > top.threshold() {
                    break;
                }
                if let Some(rows) = waves.filter(|_| i >= announced) {
                    announced = (2 * announced).max(i + 2 * k + 4);
                    rows.will_need(cands[i..announced.min(cands.len())].iter().map(|c| c.1));
                }
                let _ = coded;
                self.read_row(id, &mut row)?;
                let key = self.key(kern, q, &row);
                if key <= top.threshold() {
                    top.push(key, id);
                }
            }
            if let Some((rows, t)) = timer {
                rows.readahead.record(t.elapsed().as_nanos());
            }
        }
        Ok(crate::flat::FlatIndex::hits(top))
    }

    /// The `probes` nearest heads of prepared query `q` (hits scored `-squared L2`), by the head
    /// codes (scan or graph walk, see [`HeadSearch`]) or, without codes, the exact graph.
    fn nearest_heads(&self, q: &[f32], probes: usize, search: &SpannSearch) -> Result<Vec<Hit>> {
        let ef = search.head_ef.max(probes);
        let Some(codes) = &self.head_codes else {
            if self.heads_changed {
                // Too few heads for codes, and updates changed them: rank every live head exactly.
                let kern = Kernels::get();
                let mut row = vec![0f32; self.dim];
                let mut all = Vec::with_capacity(self.head_ids.len());
                for (r, &id) in self.head_ids.iter().enumerate() {
                    if id != super::delta::DEAD {
                        self.read_row(id, &mut row)?;
                        all.push(Hit { id: r as u32, score: -(kern.l2_sq)(q, &row) });
                    }
                }
                all.sort_unstable_by(|a, b| b.score.total_cmp(&a.score).then(a.id.cmp(&b.id)));
                all.truncate(probes);
                return Ok(all);
            }
            return self.heads.search_with(q, probes, &HnswSearch::ef(ef), None);
        };
        let auto_depth = probes.saturating_mul(2).max(64);
        let mut near = match search.head_search {
            HeadSearch::Scan { depth } => codes.scan(q, probes, depth),
            // After updates changed the heads, the head graph is stale: scan.
            _ if self.heads_changed => codes.scan(q, probes, auto_depth),
            HeadSearch::Auto if self.head_ids.len() <= SCAN_MAX_HEADS => codes.scan(q, probes, auto_depth),
            HeadSearch::Auto | HeadSearch::Graph => codes.walk(&self.heads, q, probes, ef),
        };
        near.retain(|h| self.head_ids.get(h.id as usize).is_some_and(|&id| id != super::delta::DEAD));
        Ok(near)
    }

    /// Offers every not-yet-seen admitted entry of posting list `r` (the base list and, after
    /// updates, its runs in the update log): to `f.top` by exact key, or with coded entries to
    /// `f.cands` by estimated key. Hot lists come from the LRU cache when it has a budget.
    fn scan_list(&self, r: usize, cx: &ScanCtx<'_>, f: &mut Found<'_>) -> Result<()> {
        if let (Some(st), Some(delta)) = (self.lists.get(r), &self.delta) {
            if st.base && self.postings.count(r) > 0 {
                self.with_list_bytes(r, |buf| self.offer_bytes(cx, buf, f))?;
            }
            let mut buf = AlignedVec::new();
            for c in &st.chunks {
                delta.read_chunk(c, &mut buf)?;
                self.offer_bytes(cx, buf.as_slice(), f);
            }
            return Ok(());
        }
        if r >= self.postings.len() || self.postings.count(r) == 0 {
            return Ok(());
        }
        if self.cache.budget() == 0 {
            // No cache: one positioned read into a reused buffer, entries viewed in place.
            return self.with_list_bytes(r, |buf| self.offer_bytes(cx, buf, f));
        }
        if cx.est.is_some() {
            // Lists of codes stay in the cache as the bytes read.
            let list = self.cache.get_or_load(r, || {
                let mut buf = AlignedVec::new();
                self.postings.read(r, &mut buf)?;
                Ok(Arc::new(super::postings::PostingList::raw(buf)))
            })?;
            self.offer_bytes(cx, list.raw_bytes().as_slice(), f);
            return Ok(());
        }
        let list = self.cache.get_or_load(r, || self.postings.load(r).map(Arc::new))?;
        for i in 0..list.len() {
            f.offer_row(self, cx, list.id(i), list.row(i));
        }
        Ok(())
    }

    /// Offers the entries of one run of list bytes (file layout).
    fn offer_bytes(&self, cx: &ScanCtx<'_>, bytes: &[u8], f: &mut Found<'_>) {
        match (cx.est, &self.coded) {
            (Some(est), Some(coded)) => {
                let len = coded.code_len;
                let arena = coded.arena.as_ref().map(|a| a.as_slice());
                for (id, code) in self.postings.code_entries(bytes) {
                    if f.seen.insert(id) && (cx.admit)(id) {
                        let code = match arena {
                            Some(a) => &a[id as usize * len..(id as usize + 1) * len],
                            None => &code[..len],
                        };
                        let (e, lb) = est(code);
                        f.cands.offer(e, lb, id);
                    }
                }
            }
            _ => {
                for (id, row) in self.postings.entries(bytes) {
                    f.offer_row(self, cx, id, row);
                }
            }
        }
    }

    /// Reads list `r` and runs `f` on its bytes: from object storage, the bytes the block cache
    /// assembled (no copy; f32 entries are copied only when they are not 4-byte aligned); from
    /// disk, one positioned read into a reused per-thread buffer.
    fn with_list_bytes(&self, r: usize, f: impl FnOnce(&[u8])) -> Result<()> {
        thread_local! {
            static CODES: std::cell::RefCell<AlignedVec<u8>> = std::cell::RefCell::new(AlignedVec::new());
        }
        let shared = if self.postings.is_remote() { Some(self.postings.read_shared(r)?) } else { None };
        if let Some(bytes) = &shared {
            if self.postings.has_codes() || super::postings::PostingFile::aligned(bytes) {
                f(bytes);
                return Ok(());
            }
        }
        CODES.with(|cell| {
            let mut owned = AlignedVec::new();
            let mut borrowed = cell.try_borrow_mut();
            let buf = match borrowed.as_deref_mut() {
                Ok(b) => b,
                Err(_) => &mut owned,
            };
            match &shared {
                Some(bytes) => {
                    buf.resize_zeroed(bytes.len());
                    buf.as_mut_slice().copy_from_slice(bytes);
                }
                None => self.postings.read(r, buf)?,
            }
            f(buf.as_slice());
            Ok(())
        })
    }

    /// Bytes the posting cache may hold (see [`SpannIndex::open_with_budget`]).
    pub fn cache_budget(&self) -> usize {
        self.cache.budget()
    }

    /// A view that searches with `search` and implements [`VectorIndex`].
    pub fn searcher(&self, search: SpannSearch) -> SpannSearcher<'_> {
        SpannSearcher { index: self, search }
    }

    /// Marks `id` deleted (a tombstone: its posting entries are skipped); false if it already was.
    /// Before any update the tombstone is kept in memory until [`SpannIndex::save`]; once the
    /// index has an update log it is logged durably like [`SpannIndex::delete_batch`].
    pub fn delete(&mut self, id: DocId) -> Result<bool> {
        if id as usize >= self.n {
            return Err(Error::InvalidArgument(format!("id {id} is not in an index of {} vectors", self.n)));
        }
        if self.delta.is_some() {
            return Ok(self.delete_batch(&[id])? == 1);
        }
        Ok(self.deleted.insert(id))
    }

    /// Resident bytes: the head graph's links (its f32 vectors are memory-mapped and read only by
    /// builds and updates when head codes exist), the head codes, the id map, the posting cache,
    /// the deleted bitmap and in-memory codes (posting lists not in the cache stay on disk).
    pub fn resident_bytes(&self) -> usize {
        let graph = match &self.head_codes {
            Some(c) => self.heads.graph.memory_bytes() + c.memory_bytes(),
            None => self.heads.memory_bytes(),
        };
        graph
            + self.head_ids.len() * 4
            + self.cache.resident_bytes()
            + self.n.div_ceil(8)
            + self.coded.as_ref().and_then(|c| c.arena.as_ref()).map_or(0, |a| a.capacity_bytes())
            + self.lists.iter().map(|l| std::mem::size_of_val(l) + l.chunks.len() * 16).sum::<usize>()
            + self.delta.as_ref().map_or(0, |d| d.memory_bytes())
    }

    fn batch(&self, queries: &Matrix, params: &SearchParams, search: &SpannSearch) -> Result<Vec<Vec<Hit>>> {
        let prepared = self.validator.prepare_batch(queries)?;
        let filter = params.filter.as_deref();
        prepared.par_iter().map(|q| self.search_prepared(q.as_slice(), params.k, search, filter)).collect()
    }
}

/// A [`SpannIndex`] with fixed search parameters, usable wherever a [`VectorIndex`] is.
#[derive(Debug, Clone, Copy)]
pub struct SpannSearcher<'a> {
    index: &'a SpannIndex,
    search: SpannSearch,
}

impl VectorIndex for SpannSearcher<'_> {
    fn dim(&self) -> usize {
        self.index.dim
    }
    fn len(&self) -> usize {
        self.index.n - self.index.deleted.len()
    }
    fn metric(&self) -> Metric {
        self.index.metric
    }
    fn memory_bytes(&self) -> usize {
        self.index.resident_bytes()
    }
    fn search(&self, query: &[f32], params: &SearchParams) -> Result<Vec<Hit>> {
        self.index.search_with(query, params.k, &self.search, params.filter.as_deref())
    }
    fn search_batch(&self, queries: &Matrix, params: &SearchParams) -> Result<Vec<Vec<Hit>>> {
        self.index.batch(queries, params, &self.search)
    }
}

impl VectorIndex for SpannIndex {
    fn dim(&self) -> usize {
        self.dim
    }
    fn len(&self) -> usize {
        self.n - self.deleted.len()
    }
    fn metric(&self) -> Metric {
        self.metric
    }
    fn memory_bytes(&self) -> usize {
        self.resident_bytes()
    }
    fn search(&self, query: &[f32], params: &SearchParams) -> Result<Vec<Hit>> {
        self.search_with(query, params.k, &SpannSearch::default(), params.filter.as_deref())
    }
    fn search_batch(&self, queries: &Matrix, params: &SearchParams) -> Result<Vec<Vec<Hit>>> {
        self.batch(queries, params, &SpannSearch::default())
    }
}

impl VectorIndexMut for SpannIndex {
    fn delete(&mut self, id: DocId) -> Result<bool> {
        SpannIndex::delete(self, id)
    }
}
