//! Searching the graph: greedy descent, the level-0 beam search, filters and deletes
//! (Malkov & Yashunin, "Efficient and robust approximate nearest neighbor search using
//! Hierarchical Navigable Small World graphs", IEEE TPAMI 2020: Alg. 2 SEARCH-LAYER, Alg. 5
//! K-NN-SEARCH; filters and deletes as in hnswlib: excluded nodes are walked through but never
//! returned), and the `VectorIndex` implementations.

use super::beam::Beam;
use super::builder::HnswIndex;
use super::graph::Graph;
use super::params::HnswSearch;
use super::visited::with_visited;
use quarry_core::{DocId, Hit, IdFilter, Matrix, Metric, Result, SearchParams, VectorIndex, VectorIndexMut};
use quarry_linalg::Kernels;
use rayon::prelude::*;
use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::sync::atomic::Ordering::Relaxed;

/// A candidate: ranking key (lower is better) and id; ordered by key, then id.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cand {
    pub(crate) d: f32,
    pub(crate) id: u32,
}

impl PartialEq for Cand {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Cand {}
impl PartialOrd for Cand {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Cand {
    fn cmp(&self, o: &Self) -> Ordering {
        self.d.total_cmp(&o.d).then(self.id.cmp(&o.id))
    }
}

/// Where a walk gets its ranking keys from: exact rows, or compressed codes.
pub(crate) trait KeySource {
    /// Ranking key (lower is better) of node `id` for the walk's query.
    fn key(&self, id: u32) -> f32;
    /// Asks the cache to start loading what `key(id)` will read.
    fn prefetch(&self, id: u32);
}

/// Exact keys from the rows of the index's flat store.
pub(crate) struct ExactKeys<'a> {
    pub(crate) flat: &'a crate::flat::FlatIndex,
    pub(crate) kern: &'a Kernels,
    pub(crate) q: &'a [f32],
}

impl KeySource for ExactKeys<'_> {
    #[inline]
    fn key(&self, id: u32) -> f32 {
        self.flat.key(self.kern, self.q, id as usize)
    }
    #[inline]
    fn prefetch(&self, id: u32) {
        self.flat.prefetch(id as usize);
    }
}

/// The outcome of [`HnswIndex::walk_candidates`].
pub(crate) enum Walked {
    /// No admitted live node, or k = 0.
    Empty,
    /// Answer with an exact scan of the admitted ids.
    Exact,
    /// The beam, nearest first.
    Found(Vec<Cand>),
}

/// One walk over the graph for one query, ranking nodes by the keys of `S`.
pub(crate) struct Walk<'a, S: KeySource> {
    pub(crate) graph: &'a Graph,
    pub(crate) keys: S,
    /// Read lists under node locks (while inserts run concurrently).
    pub(crate) locked: bool,
    /// Ids that may enter the results (`None`: all); others are still walked through.
    pub(crate) admit: Option<&'a dyn Fn(u32) -> bool>,
    /// Stop after visiting this many nodes at level 0.
    pub(crate) budget: usize,
}

impl<'a> Walk<'a, ExactKeys<'a>> {
    /// An unrestricted walk with exact keys over `index` for prepared query `q`.
    pub(crate) fn exact(index: &'a HnswIndex, kern: &'a Kernels, q: &'a [f32], locked: bool) -> Self {
        Walk {
            graph: &index.graph,
            keys: ExactKeys { flat: &index.flat, kern, q },
            locked,
            admit: None,
            budget: usize::MAX,
        }
    }
}

impl<S: KeySource> Walk<'_, S> {
    #[inline]
    pub(crate) fn key(&self, id: u32) -> f32 {
        self.keys.key(id)
    }

    fn neighbours(&self, id: u32, level: usize, out: &mut Vec<u32>) {
        if self.locked {
            self.graph.read_locked(id, level, out);
        } else {
            self.graph.read(id, level, out);
        }
    }

    /// Greedy descent at `level` (beam width 1).
    pub(crate) fn greedy(&self, mut cur: Cand, level: usize) -> Cand {
        if !self.locked {
            // A finished graph: lists read in place.
            loop {
                let mut best = cur;
                self.graph.for_each(cur.id, level, |nb| {
                    let c = Cand { d: self.key(nb), id: nb };
                    if c < best {
                        best = c;
                    }
                });
                if best.id == cur.id {
                    return cur;
                }
                cur = best;
            }
        }
        let mut buf = Vec::with_capacity(self.graph.m0);
        loop {
            let mut moved = false;
            self.neighbours(cur.id, level, &mut buf);
            for &nb in &buf {
                let c = Cand { d: self.key(nb), id: nb };
                if c < cur {
                    cur = c;
                    moved = true;
                }
            }
            if !moved {
                return cur;
            }
        }
    }

    /// Beam search at `level` from `entry`, keeping the `ef` best admitted nodes; returns them
    /// nearest first.
    pub(crate) fn layer(&self, entry: &[Cand], ef: usize, level: usize) -> Vec<Cand> {
        let n = self.graph.len();
        if self.admit.is_none() && self.budget == usize::MAX && n < (1 << 31) {
            return self.layer_beam(entry, ef, level);
        }
        with_visited(n, |visited| {
            let admit = |id: u32| self.admit.is_none_or(|f| f(id));
            let mut cands: BinaryHeap<Reverse<Cand>> = BinaryHeap::with_capacity(ef * 2);
            let mut best: BinaryHeap<Cand> = BinaryHeap::with_capacity(ef + 1);
            for &e in entry {
                if visited.insert(e.id) {
                    cands.push(Reverse(e));
                    if admit(e.id) {
                        best.push(e);
                    }
                }
            }
            let mut buf = Vec::with_capacity(self.graph.m0);
            let mut visits = 0usize;
            while let Some(Reverse(c)) = cands.pop() {
                if best.len() >= ef && best.peek().is_some_and(|w| c.d > w.d) {
                    break;
                }
                self.neighbours(c.id, level, &mut buf);
                if level == 0 {
                    // Likely the next node expanded: its list loads while these are scored.
                    if let Some(Reverse(next)) = cands.peek() {
                        self.graph.prefetch0(next.id);
                    }
                }
                buf.retain(|&nb| visited.insert(nb));
                visits += buf.len();
                // One neighbour ahead, as hnswlib does: asking for every neighbour's row at once
                // fills the core's line-fill buffers and the prefetches themselves stall (half of
                // the loop's samples sat on them, decision 0015).
                if let Some(&first) = buf.first() {
                    self.keys.prefetch(first);
                }
                for (j, &nb) in buf.iter().enumerate() {
                    if let Some(&next) = buf.get(j + 1) {
                        self.keys.prefetch(next);
                    }
                    let cand = Cand { d: self.key(nb), id: nb };
                    if best.len() < ef || best.peek().is_some_and(|w| cand < *w) {
                        cands.push(Reverse(cand));
                        if admit(nb) {
                            best.push(cand);
                            if best.len() > ef {
                                best.pop();
                            }
                        }
                    }
                }
                if visits >= self.budget {
                    break;
                }
            }
            best.into_sorted_vec()
        })
    }
}

impl<S: KeySource> Walk<'_, S> {
    /// [`Walk::layer`] without filter or deletes: one bounded, sorted beam ([`Beam`]); level-0
    /// lists of a finished graph are read in place, others copied (under the node's lock while
    /// inserts run).
    fn layer_beam(&self, entry: &[Cand], ef: usize, level: usize) -> Vec<Cand> {
        let in_place = level == 0 && !self.locked;
        with_visited(self.graph.len(), |visited| {
            let mut beam = Beam::new(ef);
            for &e in entry {
                if visited.insert(e.id) {
                    beam.insert(e.d, e.id);
                }
            }
            let mut fresh: Vec<u32> = Vec::with_capacity(self.graph.m0);
            while let Some(c) = beam.next() {
                if level == 0 {
                    // Likely the next node expanded: its list loads while these are scored.
                    if let Some(next) = beam.peek() {
                        self.graph.prefetch0(next);
                    }
                }
                if in_place {
                    fresh.clear();
                    for a in self.graph.list0(c) {
                        let nb = a.load(Relaxed);
                        if visited.insert(nb) {
                            fresh.push(nb);
                        }
                    }
                } else {
                    self.neighbours(c, level, &mut fresh);
                    fresh.retain(|&nb| visited.insert(nb));
                }
                // One neighbour ahead (decision 0015).
                if let Some(&first) = fresh.first() {
                    self.keys.prefetch(first);
                }
                for (j, &nb) in fresh.iter().enumerate() {
                    if let Some(&next) = fresh.get(j + 1) {
                        self.keys.prefetch(next);
                    }
                    let d = self.key(nb);
                    if beam.admits(d) {
                        beam.insert(d, nb);
                    }
                }
            }
            beam.into_sorted()
        })
    }
}

impl HnswIndex {
    /// A view that searches with `search` and implements [`VectorIndex`].
    pub fn searcher(&self, search: HnswSearch) -> HnswSearcher<'_> {
        HnswSearcher { index: self, search }
    }

    /// Top-k for `query` with `search` parameters, returning only ids in `filter` (if given) that
    /// are not deleted. Whenever at least k live ids pass the filter, k hits come back: a very
    /// selective filter, or a walk that finds too few admitted nodes, is answered by an exact
    /// scan over the admitted ids.
    pub fn search_with(
        &self,
        query: &[f32],
        k: usize,
        search: &HnswSearch,
        filter: Option<&IdFilter>,
    ) -> Result<Vec<Hit>> {
        let q = self.flat.prepare(query, || "query".into())?;
        Ok(self.search_prepared(q.as_slice(), k, search, filter))
    }

    pub(crate) fn search_prepared(
        &self,
        q: &[f32],
        k: usize,
        search: &HnswSearch,
        filter: Option<&IdFilter>,
    ) -> Vec<Hit> {
        if let Some(hits) = self.search_on_codes(q, k, search, filter) {
            return hits;
        }
        // The walk ranks with the ranking kernels; the k results are scored again with the scan
        // kernels, so a hit's score is bit for bit what an exact scan gives it.
        let keys = ExactKeys { flat: &self.flat, kern: Kernels::walk(), q };
        match self.walk_candidates(keys, k, search.ef.max(k), search, filter) {
            Walked::Empty => Vec::new(),
            Walked::Exact => self.exact(q, k, filter),
            Walked::Found(found) => {
                let ids: Vec<u32> = found.iter().take(k).map(|c| c.id).collect();
                crate::quant::rerank::rescore(&self.flat, q, &ids, k)
            }
        }
    }

    /// The level-0 beam (nearest first, at most `ef` admitted live nodes) for a query whose keys
    /// come from `keys`, or what to do instead: nothing to find, or an exact scan because the
    /// filter is very selective or the walk found fewer than k admitted nodes.
    pub(crate) fn walk_candidates<S: KeySource>(
        &self,
        keys: S,
        k: usize,
        ef: usize,
        search: &HnswSearch,
        filter: Option<&IdFilter>,
    ) -> Walked {
        let n = self.graph.len();
        let live = n - self.deleted.len();
        let admitted = match filter {
            Some(f) => f.len().min(live),
            None => live,
        };
        if k == 0 || admitted == 0 {
            return Walked::Empty;
        }
        let Some(entry) = self.entry() else { return Walked::Empty };
        let restricted = filter.is_some() || !self.deleted.is_empty();
        let sigma = admitted as f64 / n as f64;
        let ef = ef.max(k);
        if filter.is_some() && (sigma <= search.exact_scan_fraction || admitted <= ef) {
            return Walked::Exact;
        }
        let admit_fn = |id: u32| !self.deleted.contains(id) && filter.is_none_or(|f| f.contains(id));
        let walk = Walk {
            graph: &self.graph,
            keys,
            locked: false,
            admit: restricted.then_some(&admit_fn as &dyn Fn(u32) -> bool),
            // A restricted walk may wander; cap it at a tenth of the graph (then scan exactly).
            budget: if restricted { (n / 10).max(ef * 64) } else { usize::MAX },
        };
        let mut cur = Cand { d: walk.key(entry.id), id: entry.id };
        for l in (1..=entry.level).rev() {
            cur = walk.greedy(cur, l);
        }
        // Restricted walks widen the beam as the admitted fraction σ shrinks: ef / √σ, at most
        // 8 × ef (our heuristic, not from a paper; the visit budget above bounds the cost).
        let ef = if restricted { ((ef as f64 / sigma.sqrt()) as usize).min(ef * 8) } else { ef };
        let found = walk.layer(&[cur], ef, 0);
        if found.len() < k.min(admitted) {
            return Walked::Exact;
        }
        Walked::Found(found)
    }

    /// Exact top-k over the admitted live ids.
    pub(crate) fn exact(&self, q: &[f32], k: usize, filter: Option<&IdFilter>) -> Vec<Hit> {
        let live = |id: &DocId| !self.deleted.contains(*id);
        match filter {
            Some(f) => self.flat.search_ids(
                q,
                f.iter().filter(|&id| (id as usize) < self.graph.len()).filter(live),
                k,
            ),
            None => self.flat.search_ids(q, (0..self.graph.len() as DocId).filter(live), k),
        }
    }

    fn batch(&self, queries: &Matrix, params: &SearchParams, search: &HnswSearch) -> Result<Vec<Vec<Hit>>> {
        let prepared = self.flat.prepare_batch(queries)?;
        let filter = params.filter.as_deref();
        Ok(prepared
            .par_iter()
            .map(|q| self.search_prepared(q.as_slice(), params.k, search, filter))
            .collect())
    }
}

/// An [`HnswIndex`] with fixed search parameters, usable wherever a [`VectorIndex`] is.
#[derive(Debug, Clone, Copy)]
pub struct HnswSearcher<'a> {
    index: &'a HnswIndex,
    search: HnswSearch,
}

impl VectorIndex for HnswSearcher<'_> {
    fn dim(&self) -> usize {
        self.index.dim()
    }
    fn len(&self) -> usize {
        self.index.len()
    }
    fn metric(&self) -> Metric {
        self.index.metric()
    }
    fn memory_bytes(&self) -> usize {
        self.index.memory_bytes()
    }
    fn search(&self, query: &[f32], params: &SearchParams) -> Result<Vec<Hit>> {
        self.index.search_with(query, params.k, &self.search, params.filter.as_deref())
    }
    fn search_batch(&self, queries: &Matrix, params: &SearchParams) -> Result<Vec<Vec<Hit>>> {
        self.index.batch(queries, params, &self.search)
    }
}

impl VectorIndex for HnswIndex {
    fn dim(&self) -> usize {
        self.flat.dim()
    }
    fn len(&self) -> usize {
        self.graph.len() - self.deleted.len()
    }
    fn metric(&self) -> Metric {
        self.flat.metric()
    }
    fn memory_bytes(&self) -> usize {
        self.flat.memory_bytes()
            + self.graph.memory_bytes()
            + self.walk_codes.as_ref().map_or(0, |w| w.memory_bytes())
    }
    fn search(&self, query: &[f32], params: &SearchParams) -> Result<Vec<Hit>> {
        self.search_with(query, params.k, &HnswSearch::default(), params.filter.as_deref())
    }
    fn search_batch(&self, queries: &Matrix, params: &SearchParams) -> Result<Vec<Vec<Hit>>> {
        self.batch(queries, params, &HnswSearch::default())
    }
}

impl VectorIndexMut for HnswIndex {
    fn delete(&mut self, id: DocId) -> Result<bool> {
        HnswIndex::delete(self, id)
    }
}
