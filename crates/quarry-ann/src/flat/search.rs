//! The exact scan: block kernels feeding a bounded top-k, parallel over rows or query tiles.
//!
//! Ranking key: `-similarity` for inner product and cosine, squared L2 for L2; the public score is
//! `-key` in every case, so inner-product and cosine scores are the kernel's value bit for bit.
//! Ties are broken by ascending id, independent of thread count.

use super::builder::{FlatIndex, Rows};
use quarry_core::{
    check_finite, DocId, Error, Hit, Matrix, Metric, Result, SearchParams, VectorIndex, VectorIndexMut,
};
use quarry_linalg::{kernels, AlignedVec, Kernels, TopK};
use rayon::prelude::*;

/// Rows compared per kernel call: the distance buffer stays in L1.
const BLOCK: usize = 256;
/// Rows per parallel task for a single query.
const TASK_ROWS: usize = 16 * 1024;
/// Queries sharing one pass over a row block in batch search.
const QUERY_TILE: usize = 16;

impl FlatIndex {
    /// Validates every query of a batch (errors name the query's row) and returns them prepared.
    pub(crate) fn prepare_batch(&self, queries: &Matrix) -> Result<Vec<AlignedVec<f32>>> {
        queries.iter().enumerate().map(|(i, q)| self.prepare(q, || format!("query {i}"))).collect()
    }

    /// Validates a query and returns it 64-byte aligned (normalised for cosine).
    pub(crate) fn prepare(&self, query: &[f32], what: impl Fn() -> String) -> Result<AlignedVec<f32>> {
        if query.len() != self.dim {
            return Err(Error::DimensionMismatch { expected: self.dim, got: query.len(), context: what() });
        }
        check_finite(query, &what)?;
        let mut q = AlignedVec::from_slice(query);
        if self.metric.normalizes() && kernels::normalize(q.as_mut_slice()).is_none() {
            return Err(Error::ZeroVector { what: what() });
        }
        Ok(q)
    }

    /// Scans rows `start..end` for query `q`, offering every row to `top`.
    fn scan(&self, k: &Kernels, q: &[f32], start: usize, end: usize, top: &mut TopK) {
        let mut buf = [0.0f32; BLOCK];
        let d = self.dim;
        let mut s = start;
        while s < end {
            let e = (s + BLOCK).min(end);
            let out = &mut buf[..e - s];
            match (&self.rows, self.metric) {
                (Rows::F32(r), Metric::L2) => (k.l2_many)(q, &r.as_slice()[s * d..e * d], out),
                (Rows::F16(r), Metric::L2) => (k.l2_many_f16)(q, &r.as_slice()[s * d..e * d], out),
                (Rows::F32(r), _) => (k.dot_many)(q, &r.as_slice()[s * d..e * d], out),
                (Rows::F16(r), _) => (k.dot_many_f16)(q, &r.as_slice()[s * d..e * d], out),
            }
            // Key = -similarity for ip/cosine. A NaN (finite inputs whose products overflow to
            // +inf and -inf in different lanes) ranks last instead of vanishing from the results.
            let sign = if self.metric == Metric::L2 { 1.0 } else { -1.0 };
            out.iter_mut().for_each(|x| *x = if x.is_nan() { f32::INFINITY } else { sign * *x });
            top.push_block(out, s as DocId);
            s = e;
        }
    }

    /// Exact scores of the stored vectors `ids` for `query`, computed by the same kernels as the
    /// scan (so a tie in the scan is a tie here, bit for bit). Errors on a bad query or unknown id.
    pub fn score_ids(&self, query: &[f32], ids: &[DocId]) -> Result<Vec<f32>> {
        let q = self.prepare(query, || "query".into())?;
        let kern = Kernels::get();
        ids.iter()
            .map(|&id| {
                if id as usize >= self.len {
                    return Err(Error::InvalidArgument(format!(
                        "id {id} is not in an index of {} vectors",
                        self.len
                    )));
                }
                let mut top = TopK::new(1);
                self.scan(kern, q.as_slice(), id as usize, id as usize + 1, &mut top);
                Ok(top.into_sorted().first().map_or(f32::NEG_INFINITY, |&(key, _)| 0.0 - key))
            })
            .collect()
    }

    /// Ranking key of stored row `id` for a prepared query (what `scan` would compute).
    #[inline]
    pub(crate) fn key(&self, k: &Kernels, q: &[f32], id: usize) -> f32 {
        let d = self.dim;
        let span = id * d..(id + 1) * d;
        let x = match (&self.rows, self.metric) {
            (Rows::F32(r), Metric::L2) => return nan_last((k.l2_sq)(q, &r.as_slice()[span])),
            (Rows::F16(r), Metric::L2) => return nan_last((k.l2_sq_f16)(q, &r.as_slice()[span])),
            (Rows::F32(r), _) => (k.dot)(q, &r.as_slice()[span]),
            (Rows::F16(r), _) => (k.dot_f16)(q, &r.as_slice()[span]),
        };
        nan_last(-x)
    }

    /// Asks the cache to start loading row `id` (a hint; never faults).
    #[inline]
    pub(crate) fn prefetch(&self, id: usize) {
        let (ptr, bytes) = match &self.rows {
            Rows::F32(r) => (r.as_slice().as_ptr().wrapping_add(id * self.dim) as *const u8, self.dim * 4),
            Rows::F16(r) => (r.as_slice().as_ptr().wrapping_add(id * self.dim) as *const u8, self.dim * 2),
        };
        let lines = bytes.div_ceil(64).min(4);
        for l in 0..lines {
            prefetch_line(ptr.wrapping_add(l * 64));
        }
    }

    /// Asks the kernel to start reading the pages of rows `ids` of a memory-mapped store
    /// (`MADV_WILLNEED`: the reads run together instead of one page fault after another); a
    /// no-op for rows on the heap. A hint: failures are ignored.
    pub(crate) fn will_need(&self, ids: impl Iterator<Item = u32>) {
        if !self.is_mapped() {
            return;
        }
        #[cfg(target_os = "linux")]
        {
            let (base, row) = match &self.rows {
                Rows::F32(r) => (r.as_slice().as_ptr() as usize, self.dim * 4),
                Rows::F16(r) => (r.as_slice().as_ptr() as usize, self.dim * 2),
            };
            const PAGE: usize = 4096;
            for id in ids.filter(|&id| (id as usize) < self.len) {
                let start = base + id as usize * row;
                let first = start & !(PAGE - 1);
                let len = start + row - first;
                // SAFETY: [first, first + len) lies within the mapping of the rows (page-aligned
                // down from a row inside it; the mapping covers whole pages); MADV_WILLNEED only
                // schedules reads and never changes the contents.
                unsafe {
                    libc::madvise(first as *mut libc::c_void, len, libc::MADV_WILLNEED);
                }
            }
        }
        #[cfg(not(target_os = "linux"))]
        let _ = ids;
    }

    /// Tells the kernel that memory-mapped rows are read at random (`MADV_RANDOM`: a page fault
    /// reads its page, not a read-around window of up to the device's `read_ahead_kb`, which
    /// under a tight memory cap evicts the pages that matter), for stores whose rows are
    /// re-scored a few at a time; a no-op for rows on the heap. A hint: failures are ignored.
    pub(crate) fn advise_random(&self) {
        #[cfg(target_os = "linux")]
        self.advise(libc::MADV_RANDOM);
    }

    /// The opposite hint, for one pass over every row (encoding them all): read ahead
    /// aggressively. A no-op for rows on the heap.
    pub(crate) fn advise_sequential(&self) {
        #[cfg(target_os = "linux")]
        self.advise(libc::MADV_SEQUENTIAL);
    }

    #[cfg(target_os = "linux")]
    fn advise(&self, advice: libc::c_int) {
        if !self.is_mapped() {
            return;
        }
        let bytes = self.raw_bytes();
        const PAGE: usize = 4096;
        let start = bytes.as_ptr() as usize;
        let first = start & !(PAGE - 1);
        // SAFETY: [first, start + len) lies within the mapping of the rows (page-aligned down from
        // its first byte; the mapping covers whole pages); the advice changes only the kernel's
        // read-ahead policy, never the contents.
        unsafe {
            libc::madvise(first as *mut libc::c_void, start + bytes.len() - first, advice);
        }
    }

    /// Stored row `id` as an f32 query (borrowed for f32 storage).
    pub(crate) fn row_query(&self, id: usize) -> std::borrow::Cow<'_, [f32]> {
        let span = id * self.dim..(id + 1) * self.dim;
        match &self.rows {
            Rows::F32(r) => std::borrow::Cow::Borrowed(&r.as_slice()[span]),
            Rows::F16(r) => std::borrow::Cow::Owned(r.as_slice()[span].iter().map(|h| h.to_f32()).collect()),
        }
    }

    /// Exact top-k of a prepared query among `ids` (ascending ids keep the scan sequential).
    pub(crate) fn search_ids(&self, q: &[f32], ids: impl Iterator<Item = DocId>, k: usize) -> Vec<Hit> {
        let kern = Kernels::get();
        let mut top = TopK::new(k);
        for id in ids {
            let key = self.key(kern, q, id as usize);
            if key <= top.threshold() {
                top.push(key, id);
            }
        }
        Self::hits(top)
    }

    fn is_restricted(&self, params: &SearchParams) -> bool {
        params.filter.is_some() || !self.deleted.is_empty()
    }

    /// One prepared query under `params`: the block scan, or a scan of the admitted live ids
    /// when a filter or deletes restrict the result.
    fn search_params(&self, q: &[f32], params: &SearchParams) -> Vec<Hit> {
        let k = params.k.min(self.len);
        if !self.is_restricted(params) {
            return self.search_prepared(q, k);
        }
        let live = |id: &DocId| (*id as usize) < self.len && !self.deleted.contains(*id);
        match &params.filter {
            Some(f) => self.search_ids(q, f.iter().filter(live), k),
            None => self.search_ids(q, (0..self.len as DocId).filter(live), k),
        }
    }

    /// Marks `id` deleted; false if it already was.
    pub fn delete(&mut self, id: DocId) -> Result<bool> {
        if id as usize >= self.len {
            return Err(Error::InvalidArgument(format!(
                "id {id} is not in an index of {} vectors",
                self.len
            )));
        }
        Ok(self.deleted.insert(id))
    }

    pub(crate) fn hits(top: TopK) -> Vec<Hit> {
        // `0.0 - key` rather than `-key`: a zero distance scores +0, not -0.
        top.into_sorted().into_iter().map(|(key, id)| Hit { id, score: 0.0 - key }).collect()
    }

    /// Top-k of one prepared query, splitting the rows across the current rayon pool.
    fn search_prepared(&self, q: &[f32], k: usize) -> Vec<Hit> {
        let kern = Kernels::get();
        let n = self.len;
        if rayon::current_num_threads() <= 1 || n <= TASK_ROWS {
            let mut top = TopK::new(k);
            self.scan(kern, q, 0, n, &mut top);
            return Self::hits(top);
        }
        let top = (0..n.div_ceil(TASK_ROWS))
            .into_par_iter()
            .map(|t| {
                let mut top = TopK::new(k);
                self.scan(kern, q, t * TASK_ROWS, ((t + 1) * TASK_ROWS).min(n), &mut top);
                top
            })
            .reduce(
                || TopK::new(k),
                |mut a, b| {
                    a.merge(b);
                    a
                },
            );
        Self::hits(top)
    }
}

/// NaN keys (overflowing products) rank last rather than vanishing.
#[inline]
fn nan_last(key: f32) -> f32 {
    if key.is_nan() {
        f32::INFINITY
    } else {
        key
    }
}

/// Asks the cache to start loading the line at `p` (a hint; never faults).
#[inline]
pub(crate) fn prefetch_line(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint that never faults, whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p as *const i8)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

impl VectorIndex for FlatIndex {
    fn dim(&self) -> usize {
        self.dim
    }

    fn len(&self) -> usize {
        self.len - self.deleted.len()
    }

    fn metric(&self) -> Metric {
        self.metric
    }

    fn memory_bytes(&self) -> usize {
        match &self.rows {
            Rows::F32(r) => r.capacity_bytes(),
            Rows::F16(r) => r.capacity_bytes(),
        }
    }

    fn search(&self, query: &[f32], params: &SearchParams) -> Result<Vec<Hit>> {
        let q = self.prepare(query, || "query".into())?;
        Ok(self.search_params(q.as_slice(), params))
    }

    fn search_batch(&self, queries: &Matrix, params: &SearchParams) -> Result<Vec<Vec<Hit>>> {
        if queries.is_empty() {
            return Ok(Vec::new());
        }
        let k = params.k.min(self.len);
        let prepared = self.prepare_batch(queries)?;
        if self.is_restricted(params) {
            return Ok(prepared.par_iter().map(|q| self.search_params(q.as_slice(), params)).collect());
        }
        if prepared.len() == 1 {
            return Ok(vec![self.search_prepared(prepared[0].as_slice(), k)]);
        }
        if prepared.len() >= super::gemm::MIN_QUERIES && self.gemm_applies() {
            return Ok(self.search_gemm(&prepared, k));
        }
        let kern = Kernels::get();
        let n = self.len;
        // Each task owns a tile of queries and walks the rows once, block by block, so a block
        // is fetched from memory once and then served from cache to every query in the tile.
        Ok(prepared
            .par_chunks(QUERY_TILE)
            .flat_map_iter(|tile| {
                let mut tops: Vec<TopK> = tile.iter().map(|_| TopK::new(k)).collect();
                let mut s = 0;
                while s < n {
                    let e = (s + 4 * BLOCK).min(n);
                    for (q, top) in tile.iter().zip(tops.iter_mut()) {
                        self.scan(kern, q.as_slice(), s, e, top);
                    }
                    s = e;
                }
                tops.into_iter().map(Self::hits)
            })
            .collect())
    }
}

impl VectorIndexMut for FlatIndex {
    fn delete(&mut self, id: DocId) -> Result<bool> {
        FlatIndex::delete(self, id)
    }
}
