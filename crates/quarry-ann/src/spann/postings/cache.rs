//! Decoded posting lists and the LRU cache that keeps hot ones in memory under a byte budget.
//!
//! A [`PostingList`] holds one list's ids and its vectors in one 64-byte aligned buffer (row i at
//! `i·dim`), ready for the SIMD kernels. [`PostingCache`] is shared by searching threads: a miss
//! runs the caller's loader outside the lock (so misses on different lists read in parallel), then
//! inserts the list and evicts least recently used lists until the resident total fits the budget.

use quarry_core::Result;
use quarry_linalg::AlignedVec;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// One posting list, decoded: ids and row-major vectors; or, for lists of codes, its raw entry
/// bytes as read from the file ([`PostingList::raw`]).
#[derive(Debug, Clone)]
pub(crate) struct PostingList {
    dim: usize,
    ids: Vec<u32>,
    vectors: AlignedVec<f32>,
    raw: AlignedVec<u8>,
}

impl PostingList {
    /// Collects `count` entries `(id, vector of length dim)`; shorter vectors are zero-padded,
    /// longer ones cut (the posting file always yields exactly `dim`).
    pub(crate) fn from_entries<'a>(
        dim: usize,
        count: usize,
        entries: impl Iterator<Item = (u32, &'a [f32])>,
    ) -> PostingList {
        let mut ids = Vec::with_capacity(count);
        let mut vectors = AlignedVec::zeroed(count * dim);
        let rows = vectors.as_mut_slice();
        for (i, (id, v)) in entries.take(count).enumerate() {
            ids.push(id);
            let n = v.len().min(dim);
            rows[i * dim..i * dim + n].copy_from_slice(&v[..n]);
        }
        vectors.resize_zeroed(ids.len() * dim);
        PostingList { dim, ids, vectors, raw: AlignedVec::new() }
    }

    /// A list of coded entries kept as the bytes read from the file.
    pub(crate) fn raw(bytes: AlignedVec<u8>) -> PostingList {
        PostingList { dim: 0, ids: Vec::new(), vectors: AlignedVec::new(), raw: bytes }
    }

    /// The raw entry bytes of a [`PostingList::raw`] list (empty for decoded lists).
    pub(crate) fn raw_bytes(&self) -> &AlignedVec<u8> {
        &self.raw
    }

    /// Number of entries.
    pub(crate) fn len(&self) -> usize {
        self.ids.len()
    }

    /// True without entries.
    pub(crate) fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Vector dimension.
    pub(crate) fn dim(&self) -> usize {
        self.dim
    }

    /// Id of entry `i`.
    pub(crate) fn id(&self, i: usize) -> u32 {
        self.ids[i]
    }

    /// All ids, in file order.
    pub(crate) fn ids(&self) -> &[u32] {
        &self.ids
    }

    /// Vector of entry `i`.
    pub(crate) fn row(&self, i: usize) -> &[f32] {
        &self.vectors.as_slice()[i * self.dim..(i + 1) * self.dim]
    }

    /// All vectors, row-major (row i at `i·dim`; the buffer starts 64-byte aligned).
    pub(crate) fn vectors(&self) -> &[f32] {
        self.vectors.as_slice()
    }

    /// Memory held (ids, vectors and the struct itself), the unit of the cache budget.
    pub(crate) fn bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.ids.capacity() * 4
            + self.vectors.capacity_bytes()
            + self.raw.capacity_bytes()
    }
}

/// Cache contents: lists by index with their last-use tick, and ticks in use order.
#[derive(Default)]
struct Lru {
    map: HashMap<usize, (Arc<PostingList>, u64)>,
    order: BTreeMap<u64, usize>,
    tick: u64,
    resident: usize,
}

impl Lru {
    /// The cached list `j`, marked most recently used.
    fn touch(&mut self, j: usize) -> Option<Arc<PostingList>> {
        self.tick += 1;
        let (list, used) = self.map.get_mut(&j)?;
        self.order.remove(used);
        *used = self.tick;
        self.order.insert(self.tick, j);
        Some(list.clone())
    }

    /// Evicts least recently used lists until `list` fits in `budget`, then caches it.
    fn insert(&mut self, j: usize, list: Arc<PostingList>, budget: usize) {
        let size = list.bytes();
        while self.resident + size > budget {
            let Some((_, old)) = self.order.pop_first() else { break };
            if let Some((gone, _)) = self.map.remove(&old) {
                self.resident -= gone.bytes();
            }
        }
        self.tick += 1;
        self.order.insert(self.tick, j);
        self.map.insert(j, (list, self.tick));
        self.resident += size;
    }
}

/// A thread-safe LRU cache of decoded posting lists holding at most `budget` bytes
/// ([`PostingList::bytes`]). Lists evicted while a reader still holds them stay alive until
/// dropped but no longer count. Two threads missing the same list at once both load it; the
/// first to finish is cached.
pub(crate) struct PostingCache {
    budget: usize,
    inner: Mutex<Lru>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl PostingCache {
    /// An empty cache holding at most `budget_bytes` (0 disables caching).
    pub(crate) fn new(budget_bytes: usize) -> PostingCache {
        PostingCache {
            budget: budget_bytes,
            inner: Mutex::new(Lru::default()),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Lru> {
        // The critical sections cannot panic half-way, so a poisoned lock still holds a valid LRU.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// List `j` from the cache, or from `load` (run without holding the lock) on a miss. A loaded
    /// list larger than the whole budget is returned but not cached; a loader error is returned
    /// and nothing is cached.
    pub(crate) fn get_or_load(
        &self,
        j: usize,
        load: impl FnOnce() -> Result<Arc<PostingList>>,
    ) -> Result<Arc<PostingList>> {
        if let Some(list) = self.lock().touch(j) {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(list);
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let list = load()?;
        if list.bytes() > self.budget {
            return Ok(list);
        }
        let mut lru = self.lock();
        if let Some(cached) = lru.touch(j) {
            return Ok(cached);
        }
        lru.insert(j, list.clone(), self.budget);
        Ok(list)
    }

    /// The byte budget.
    pub(crate) fn budget(&self) -> usize {
        self.budget
    }

    /// Bytes of the lists currently cached (≤ the budget).
    pub(crate) fn resident_bytes(&self) -> usize {
        self.lock().resident
    }

    /// Number of lists currently cached.
    pub(crate) fn cached_lists(&self) -> usize {
        self.lock().map.len()
    }

    /// Whether list `j` is cached (does not change the use order).
    pub(crate) fn contains(&self, j: usize) -> bool {
        self.lock().map.contains_key(&j)
    }

    /// Lookups answered from the cache.
    pub(crate) fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    /// Lookups that ran the loader.
    pub(crate) fn misses(&self) -> u64 {
        self.misses.load(Ordering::Relaxed)
    }

    /// Drops every cached list (counters kept).
    pub(crate) fn clear(&self) {
        *self.lock() = Lru::default();
    }
}

impl std::fmt::Debug for PostingCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostingCache")
            .field("budget", &self.budget())
            .field("resident_bytes", &self.resident_bytes())
            .field("hits", &self.hits())
            .field("misses", &self.misses())
            .finish()
    }
}
