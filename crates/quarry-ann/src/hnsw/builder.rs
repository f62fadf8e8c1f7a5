//! Building the graph: level sampling, parallel insertion with the neighbour-selection
//! heuristic (Malkov & Yashunin, "Efficient and robust approximate nearest neighbor search using
//! Hierarchical Navigable Small World graphs", IEEE TPAMI 2020: Alg. 1 INSERT, Alg. 4
//! SELECT-NEIGHBORS-HEURISTIC) in a chosen insertion order (see `order.rs`), and later changes —
//! appends, deletes, re-inserts.

use super::graph::Graph;
use super::order::{corpus_lid, LID_K};
use super::params::HnswParams;
use super::search::{Cand, Walk};
use crate::flat::{FlatIndex, FlatParams};
use quarry_core::{DocId, Error, IdFilter, Matrix, Metric, Result};
use quarry_linalg::Kernels;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Mutex;

/// Entry point and top level of the graph.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Entry {
    pub(crate) id: u32,
    pub(crate) level: usize,
}

/// An HNSW graph over vectors held in an embedded flat index.
#[derive(Debug)]
pub struct HnswIndex {
    pub(crate) flat: FlatIndex,
    pub(crate) graph: Graph,
    pub(crate) entry: Mutex<Option<Entry>>,
    pub(crate) deleted: IdFilter,
    pub(crate) params: HnswParams,
    /// 8-bit codes the walk ranks by (see `walk_codes.rs`); `None`: the walk reads the rows.
    pub(crate) walk_codes: Option<super::walk_codes::WalkCodes>,
}

/// SplitMix64: a small, seedable generator for level sampling and shuffles.
pub(crate) fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// `floor(-ln(U) / ln(M))` with `U` uniform in (0, 1], capped at 32 levels.
fn sample_levels(n: usize, m: usize, state: &mut u64) -> Vec<u8> {
    let ml = 1.0 / (m.max(2) as f64).ln();
    (0..n)
        .map(|_| {
            let u = ((splitmix(state) >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
            ((-u.ln() * ml).floor() as usize).min(32) as u8
        })
        .collect()
}

impl HnswIndex {
    /// Builds the graph over `vectors` (ids `0..rows`) on the current rayon pool, inserting the
    /// rows in `params.insertion_order`. The LID orders first estimate every row's LID with
    /// [`corpus_lid`] (k = [`LID_K`]), which costs a pilot build with `ef_construction` ≤ 100 plus
    /// one k-NN search per row.
    pub fn build(vectors: &Matrix, metric: Metric, params: HnswParams) -> Result<Self> {
        Self::check_params(&params)?;
        let order = params.insertion_order;
        let perm = if order.needs_lid() && vectors.rows() < 2 {
            (0..vectors.rows() as u32).collect()
        } else if order.needs_lid() {
            let lid = corpus_lid(vectors, metric, &params, LID_K)?;
            order.permutation(vectors.rows(), params.seed, Some(&lid))?
        } else {
            order.permutation(vectors.rows(), params.seed, None)?
        };
        Self::build_in_order(vectors, metric, params, &perm)
    }

    /// Builds the graph inserting the rows in the sequence `order` (a permutation of
    /// `0..rows`; `params.insertion_order` is only recorded). Ids stay the row numbers: only the
    /// graph differs. `order[0]` is inserted first, alone; the rest are taken from `order` one
    /// at a time by the threads of the current rayon pool, so with T threads at most T
    /// consecutive rows of `order` are in flight together (one thread: exactly this sequence,
    /// and a deterministic graph).
    pub fn build_in_order(
        vectors: &Matrix,
        metric: Metric,
        params: HnswParams,
        order: &[u32],
    ) -> Result<Self> {
        Self::check_params(&params)?;
        let n = vectors.rows();
        if order.len() != n {
            return Err(Error::InvalidArgument(format!(
                "the insertion order lists {} rows, the data has {n}",
                order.len()
            )));
        }
        let mut seen = vec![false; n];
        for &id in order {
            match seen.get_mut(id as usize) {
                Some(s) if !*s => *s = true,
                _ => {
                    return Err(Error::InvalidArgument(format!(
                        "the insertion order is not a permutation of 0..{n}: row {id} is repeated or out of range"
                    )))
                }
            }
        }
        let flat = FlatIndex::build(vectors, metric, FlatParams { storage: params.storage })?;
        let mut state = params.seed;
        let levels = sample_levels(n, params.m, &mut state);
        let mut index = HnswIndex {
            flat,
            graph: Graph::new(levels, params.m),
            entry: Mutex::new(None),
            deleted: IdFilter::new(),
            params,
            walk_codes: None,
        };
        if let Some((&first, rest)) = order.split_first() {
            index.insert(first);
            index.insert_all(rest.len(), |i| rest[i]);
            index.repair_reachability();
        }
        index.refresh_walk_codes()?;
        Ok(index)
    }

    fn check_params(params: &HnswParams) -> Result<()> {
        if params.m < 2 || params.m > 256 {
            return Err(Error::InvalidArgument(format!("HNSW M must be in 2..=256, got {}", params.m)));
        }
        if params.ef_construction == 0 {
            return Err(Error::InvalidArgument("HNSW ef_construction must be at least 1".into()));
        }
        Ok(())
    }

    /// Inserts `id_at(0), id_at(1), …, id_at(count - 1)` on every thread of the current rayon
    /// pool, each thread taking the next position from a shared counter (hnswlib's scheme), so
    /// the insertions start in sequence order. (Splitting the range into per-thread halves, as a
    /// parallel iterator does, would insert two far-apart parts of the order side by side.)
    fn insert_all(&self, count: usize, id_at: impl Fn(usize) -> u32 + Sync) {
        let next = AtomicUsize::new(0);
        rayon::broadcast(|_| loop {
            let i = next.fetch_add(1, Relaxed);
            if i >= count {
                break;
            }
            self.insert(id_at(i));
        });
    }

    /// The build parameters.
    pub fn params(&self) -> HnswParams {
        self.params
    }

    pub(crate) fn entry(&self) -> Option<Entry> {
        *self.entry.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Links node `id` (its vector already stored) into the graph. Safe to run concurrently for
    /// different ids.
    pub(crate) fn insert(&self, id: u32) {
        let level = self.graph.levels[id as usize] as usize;
        let Some(entry) = self.entry() else {
            let mut e = self.entry.lock().unwrap_or_else(|p| p.into_inner());
            if e.is_none() {
                *e = Some(Entry { id, level });
                return;
            }
            drop(e);
            return self.insert(id);
        };
        let kern = Kernels::get();
        let q = self.flat.row_query(id as usize);
        let walk = Walk::exact(self, kern, &q, true);
        let mut cur = Cand { d: walk.key(entry.id), id: entry.id };
        for l in (level + 1..=entry.level).rev() {
            cur = walk.greedy(cur, l);
        }
        let mut buf = Vec::new();
        for l in (0..=level.min(entry.level)).rev() {
            let mut w = walk.layer(&[cur], self.params.ef_construction.max(self.params.m), l);
            w.retain(|c| c.id != id);
            let Some(&nearest) = w.first() else { continue };
            let chosen = self.select(kern, &w, self.params.m);
            {
                let _g = self.graph.lock(id);
                self.graph.write(id, l, &chosen);
            }
            for &nb in &chosen {
                self.link_back(kern, nb, id, l, &mut buf);
            }
            cur = nearest;
        }
        if level > entry.level {
            let mut e = self.entry.lock().unwrap_or_else(|p| p.into_inner());
            if e.is_none_or(|e| level > e.level) {
                *e = Some(Entry { id, level });
            }
        }
    }

    /// Adds `id` to `nb`'s list at `level`, re-running the heuristic if the list overflows.
    fn link_back(&self, kern: &Kernels, nb: u32, id: u32, level: usize, buf: &mut Vec<u32>) {
        let _g = self.graph.lock(nb);
        self.graph.read(nb, level, buf);
        if buf.contains(&id) {
            return;
        }
        buf.push(id);
        let cap = self.graph.cap(level);
        if buf.len() > cap {
            let q = self.flat.row_query(nb as usize);
            let mut cands: Vec<Cand> =
                buf.iter().map(|&x| Cand { d: self.flat.key(kern, &q, x as usize), id: x }).collect();
            cands.sort_unstable();
            *buf = self.select(kern, &cands, cap);
        }
        self.graph.write(nb, level, buf);
    }

    /// The neighbour-selection heuristic: from candidates sorted nearest first, keep a candidate
    /// only if it is closer to the base than to every neighbour already kept (hnswlib's rule).
    fn select(&self, kern: &Kernels, cands: &[Cand], m: usize) -> Vec<u32> {
        if cands.len() <= m {
            return cands.iter().map(|c| c.id).collect();
        }
        let mut kept: Vec<u32> = Vec::with_capacity(m);
        for c in cands {
            if kept.len() == m {
                break;
            }
            let q = self.flat.row_query(c.id as usize);
            if kept.iter().all(|&r| self.flat.key(kern, &q, r as usize) >= c.d) {
                kept.push(c.id);
            }
        }
        kept
    }

    /// Appends `vectors` (ids continue after the current ones) and links them into the graph.
    pub fn add(&mut self, vectors: &Matrix) -> Result<DocId> {
        let first = self.flat.add(vectors)?;
        let mut state = self.params.seed ^ (first as u64).wrapping_mul(0x9E37_79B9);
        let levels = sample_levels(vectors.rows(), self.params.m, &mut state);
        self.graph.extend(&levels);
        self.insert_all(vectors.rows(), |i| first + i as u32);
        self.repair_reachability();
        self.walk_codes_appended(first as usize)?;
        Ok(first)
    }

    /// Marks `id` deleted: it is never returned again but still routes searches.
    /// Returns false if it was already deleted.
    pub fn delete(&mut self, id: DocId) -> Result<bool> {
        if id as usize >= self.graph.len() {
            return Err(Error::InvalidArgument(format!(
                "id {id} is not in an index of {} vectors",
                self.graph.len()
            )));
        }
        Ok(self.deleted.insert(id))
    }

    /// Replaces the vector of `id` (deleted or not), makes it live again and re-links it.
    pub fn reinsert(&mut self, id: DocId, vector: &[f32]) -> Result<()> {
        if id as usize >= self.graph.len() {
            return Err(Error::InvalidArgument(format!(
                "id {id} is not in an index of {} vectors",
                self.graph.len()
            )));
        }
        self.flat.set_row(id, vector)?;
        self.walk_codes_changed(id);
        for l in 0..=self.graph.levels[id as usize] as usize {
            self.graph.write(id, l, &[]);
        }
        let entry = self.entry();
        if entry.is_some_and(|e| e.id == id) {
            // Re-linking the entry point from itself would leave it isolated: pick another node
            // of the highest level as the temporary entry.
            let top = entry.map_or(0, |e| e.level);
            let other = (0..self.graph.len() as u32)
                .find(|&x| x != id && self.graph.levels[x as usize] as usize >= top);
            let fallback = other.map(|x| Entry { id: x, level: top }).or_else(|| {
                (0..self.graph.len() as u32)
                    .filter(|&x| x != id)
                    .max_by_key(|&x| self.graph.levels[x as usize])
                    .map(|x| Entry { id: x, level: self.graph.levels[x as usize] as usize })
            });
            *self.entry.lock().unwrap_or_else(|p| p.into_inner()) = fallback;
        }
        self.insert(id);
        self.deleted.remove(id);
        Ok(())
    }

    /// Number of deleted (tombstoned) ids.
    pub fn deleted_count(&self) -> usize {
        self.deleted.len()
    }
}

/// Test access to the level sampler.
#[cfg(test)]
pub(crate) mod tests_support {
    /// Samples `n` levels as a build would.
    pub(crate) fn levels(n: usize, m: usize, state: &mut u64) -> Vec<u8> {
        super::sample_levels(n, m, state)
    }
}
