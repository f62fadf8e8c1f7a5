//! A local disk cache of byte ranges of immutable objects, for query nodes that serve from object
//! storage: [`CachedObjects`] reads through to its inner store in fixed-size blocks, keeps them as
//! checksummed files under a folder with least-recently-used eviction within a byte budget, and
//! merges the missing blocks of one read into as few requests as possible, fetched in parallel up
//! to a bound. The folder is safe to delete at any time: a missing or damaged block file is
//! fetched again. Only immutable objects may be read through it (segments, log batches and
//! manifest versions never change once written); writes and listings pass through.
//!
//! [`Delayed`] adds a fixed latency to every request of a store, to measure what the cache and
//! the merging of requests hide (object storage answers in tens of milliseconds).

use crate::objects::Objects;
use quarry_core::{Error, Result};
use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// Counters of a cache's traffic.
#[derive(Debug, Default)]
pub struct CacheStats {
    /// Requests sent to the inner store.
    pub requests: AtomicU64,
    /// Bytes fetched from the inner store.
    pub bytes_fetched: AtomicU64,
    /// Blocks served from the cache.
    pub hits: AtomicU64,
    /// Blocks fetched.
    pub misses: AtomicU64,
}

#[derive(Debug, Default)]
struct Lru {
    /// Block file name → (bytes, last use).
    entries: HashMap<String, (u64, u64)>,
    used: u64,
    tick: u64,
}

/// A read-through block cache over an object store (see the module docs).
#[derive(Debug)]
pub struct CachedObjects {
    inner: Arc<dyn Objects>,
    dir: PathBuf,
    block: u64,
    capacity: u64,
    max_in_flight: usize,
    lru: Mutex<Lru>,
    sizes: Mutex<HashMap<String, u64>>,
    /// Traffic counters.
    pub stats: CacheStats,
}

fn block_name(key: &str, block: u64) -> String {
    // FNV-1a of the key: file names stay short and flat whatever the key.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
    }
    format!("{h:016x}-{:08x}-{block}.blk", key.len())
}

impl CachedObjects {
    /// A cache of `inner` in folder `dir` (created if missing; blocks left there by an earlier run
    /// are reused after their checksums pass), holding at most `capacity` bytes in blocks of
    /// `block` bytes, with at most `max_in_flight` requests at a time.
    pub fn open(
        inner: Arc<dyn Objects>,
        dir: &Path,
        capacity: u64,
        block: u64,
        max_in_flight: usize,
    ) -> Result<CachedObjects> {
        if block == 0 || max_in_flight == 0 {
            return Err(Error::InvalidArgument("cache block size and requests in flight must be ≥ 1".into()));
        }
        std::fs::create_dir_all(dir).map_err(|e| Error::io("creating", dir, e))?;
        let mut lru = Lru::default();
        for entry in std::fs::read_dir(dir).map_err(|e| Error::io("listing", dir, e))?.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            if name.ends_with(".blk") {
                let len = entry.metadata().map_or(0, |m| m.len());
                lru.used += len;
                lru.entries.insert(name, (len, 0));
            }
        }
        let cache = CachedObjects {
            inner,
            dir: dir.to_path_buf(),
            block,
            capacity,
            max_in_flight,
            lru: Mutex::new(lru),
            sizes: Mutex::new(HashMap::new()),
            stats: CacheStats::default(),
        };
        cache.evict();
        Ok(cache)
    }

    /// Object `key`'s size (asked of the inner store once, then remembered: objects are immutable).
    fn size(&self, key: &str) -> Result<u64> {
        if let Some(s) = self.sizes.lock().unwrap_or_else(PoisonError::into_inner).get(key) {
            return Ok(*s);
        }
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        let s = self
            .inner
            .size(key)?
            .ok_or_else(|| Error::NotFound(format!("object {key} in {}", self.inner.location())))?;
        self.sizes.lock().unwrap_or_else(PoisonError::into_inner).insert(key.to_string(), s);
        Ok(s)
    }

    /// Block `b` of `key` from the cache folder, if it is there and intact.
    fn cached(&self, key: &str, b: u64) -> Option<Vec<u8>> {
        let name = block_name(key, b);
        let bytes = std::fs::read(self.dir.join(&name)).ok()?;
        let (crc, body) = (crate::le::u32_at(&bytes, 0)?, bytes.get(4..)?);
        if crate::checksum(body) != crc {
            let _ = std::fs::remove_file(self.dir.join(&name));
            return None;
        }
        let mut lru = self.lru.lock().unwrap_or_else(PoisonError::into_inner);
        lru.tick += 1;
        let tick = lru.tick;
        let len = bytes.len() as u64;
        if let Some(e) = lru.entries.get_mut(&name) {
            e.1 = tick;
        } else {
            lru.used += len;
            lru.entries.insert(name, (len, tick));
        }
        Some(body.to_vec())
    }

    fn store(&self, key: &str, b: u64, body: &[u8]) {
        let name = block_name(key, b);
        let mut bytes = Vec::with_capacity(body.len() + 4);
        bytes.extend_from_slice(&crate::checksum(body).to_le_bytes());
        bytes.extend_from_slice(body);
        // Written under a temporary name and renamed: a reader never sees half a block. No fsync:
        // the cache is disposable.
        let tmp = self.dir.join(format!(".{name}.{}", std::process::id()));
        let _ = std::fs::create_dir_all(&self.dir); // the folder may have been deleted
        if std::fs::write(&tmp, &bytes).and_then(|()| std::fs::rename(&tmp, self.dir.join(&name))).is_err() {
            let _ = std::fs::remove_file(&tmp);
            return;
        }
        let mut lru = self.lru.lock().unwrap_or_else(PoisonError::into_inner);
        lru.tick += 1;
        let tick = lru.tick;
        if let Some(old) = lru.entries.insert(name, (bytes.len() as u64, tick)) {
            lru.used -= old.0;
        }
        lru.used += bytes.len() as u64;
        drop(lru);
        self.evict();
    }

    /// Removes least-recently-used blocks until the cache fits its budget.
    fn evict(&self) {
        let mut lru = self.lru.lock().unwrap_or_else(PoisonError::into_inner);
        if lru.used <= self.capacity {
            return;
        }
        let mut order: Vec<(u64, String, u64)> =
            lru.entries.iter().map(|(n, (len, tick))| (*tick, n.clone(), *len)).collect();
        order.sort();
        for (_, name, len) in order {
            if lru.used <= self.capacity {
                break;
            }
            let _ = std::fs::remove_file(self.dir.join(&name));
            lru.entries.remove(&name);
            lru.used -= len;
        }
    }

    /// Bytes the cache folder holds.
    pub fn used(&self) -> u64 {
        self.lru.lock().unwrap_or_else(PoisonError::into_inner).used
    }

    /// Whether block `b` of `key` is in the cache (by the index: the file is checked when read).
    fn has_block(&self, key: &str, b: u64) -> bool {
        self.lru.lock().unwrap_or_else(PoisonError::into_inner).entries.contains_key(&block_name(key, b))
    }

    /// Fetches the block runs `runs` (inclusive block numbers) of `key` (`size` bytes), one
    /// request per run, at most `max_in_flight` at a time, and stores the blocks; returns each
    /// run's first block and bytes.
    fn fetch_runs(&self, key: &str, size: u64, runs: &[(u64, u64)]) -> Result<Vec<(u64, Vec<u8>)>> {
        let next = std::sync::atomic::AtomicUsize::new(0);
        let results: Mutex<Vec<(usize, Result<Vec<u8>>)>> = Mutex::new(Vec::with_capacity(runs.len()));
        let fetch = || loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(&(a, b)) = runs.get(i) else { break };
            let bytes = a * self.block..((b + 1) * self.block).min(size);
            self.stats.requests.fetch_add(1, Ordering::Relaxed);
            let data = self.inner.get_range(key, bytes);
            if let Ok(d) = &data {
                self.stats.bytes_fetched.fetch_add(d.len() as u64, Ordering::Relaxed);
            }
            results.lock().unwrap_or_else(PoisonError::into_inner).push((i, data));
        };
        let workers = runs.len().min(self.max_in_flight);
        if workers <= 1 {
            fetch();
        } else {
            std::thread::scope(|s| {
                for _ in 0..workers {
                    s.spawn(fetch);
                }
            });
        }
        let mut results = results.into_inner().unwrap_or_else(PoisonError::into_inner);
        results.sort_by_key(|r| r.0);
        let mut out = Vec::with_capacity(runs.len());
        for (i, data) in results {
            let data = data?;
            let a = runs[i].0;
            for (j, chunk) in data.chunks(self.block as usize).enumerate() {
                self.stats.misses.fetch_add(1, Ordering::Relaxed);
                self.store(key, a + j as u64, chunk);
            }
            out.push((a, data));
        }
        Ok(out)
    }

    /// Runs of consecutive block numbers in sorted `blocks`.
    fn runs(blocks: impl IntoIterator<Item = u64>) -> Vec<(u64, u64)> {
        let mut runs: Vec<(u64, u64)> = Vec::new();
        for n in blocks {
            match runs.last_mut() {
                Some(r) if r.1 + 1 == n => r.1 = n,
                Some(r) if r.1 == n => {}
                _ => runs.push((n, n)),
            }
        }
        runs
    }

    /// Fetches the blocks of `ranges` of `key` that the cache lacks, all together: one request
    /// per run of adjacent missing blocks, at most `max_in_flight` at a time (what a query
    /// announces before reading its posting lists or rows).
    pub fn prefetch(&self, key: &str, ranges: &[Range<u64>]) -> Result<()> {
        let size = self.size(key)?;
        let mut blocks: Vec<u64> = ranges
            .iter()
            .filter(|r| r.end > r.start && r.start < size)
            .flat_map(|r| r.start / self.block..=(r.end.min(size) - 1) / self.block)
            .collect();
        blocks.sort_unstable();
        blocks.dedup();
        let missing: Vec<u64> = blocks.into_iter().filter(|&b| !self.has_block(key, b)).collect();
        self.fetch_runs(key, size, &Self::runs(missing)).map(|_| ())
    }

    /// Reads `range` of `key` through the cache: missing blocks are fetched in runs of
    /// consecutive blocks (one request per run), at most `max_in_flight` requests at a time.
    pub fn read_range(&self, key: &str, range: Range<u64>) -> Result<Vec<u8>> {
        let size = self.size(key)?;
        if range.end < range.start || range.end > size {
            return Err(Error::InvalidArgument(format!(
                "{key}: byte range {range:?} outside the object's {size} bytes"
            )));
        }
        if range.is_empty() {
            return Ok(Vec::new());
        }
        let (first, last) = (range.start / self.block, (range.end - 1) / self.block);
        let mut blocks: Vec<Option<Vec<u8>>> = (first..=last).map(|b| self.cached(key, b)).collect();
        let hits = blocks.iter().filter(|b| b.is_some()).count() as u64;
        self.stats.hits.fetch_add(hits, Ordering::Relaxed);
        let missing = blocks.iter().enumerate().filter(|(_, b)| b.is_none()).map(|(i, _)| first + i as u64);
        for (a, data) in self.fetch_runs(key, size, &Self::runs(missing))? {
            for (j, chunk) in data.chunks(self.block as usize).enumerate() {
                blocks[(a + j as u64 - first) as usize] = Some(chunk.to_vec());
            }
        }
        let mut out = Vec::with_capacity((range.end - range.start) as usize);
        for (i, b) in blocks.into_iter().enumerate() {
            let b = b.ok_or_else(|| {
                Error::InvalidArgument(format!("{key}: block {} was not fetched", first + i as u64))
            })?;
            let start = (first + i as u64) * self.block;
            let lo = range.start.saturating_sub(start) as usize;
            let hi = ((range.end - start) as usize).min(b.len());
            out.extend_from_slice(&b[lo..hi]);
        }
        Ok(out)
    }
}

impl Objects for CachedObjects {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        match self.inner.size(key)? {
            Some(size) => {
                self.sizes.lock().unwrap_or_else(PoisonError::into_inner).insert(key.to_string(), size);
                self.read_range(key, 0..size).map(Some)
            }
            None => Ok(None),
        }
    }
    fn get_range(&self, key: &str, range: Range<u64>) -> Result<Vec<u8>> {
        self.read_range(key, range)
    }
    fn size(&self, key: &str) -> Result<Option<u64>> {
        self.inner.size(key)
    }
    fn put(&self, key: &str, bytes: &[u8]) -> Result<()> {
        self.inner.put(key, bytes)
    }
    fn put_if_absent(&self, key: &str, bytes: &[u8]) -> Result<bool> {
        self.inner.put_if_absent(key, bytes)
    }
    fn list(&self, prefix: &str) -> Result<Vec<String>> {
        self.inner.list(prefix)
    }
    fn delete(&self, key: &str) -> Result<()> {
        self.inner.delete(key)
    }
    fn location(&self) -> String {
        format!("{} (cached in {})", self.inner.location(), self.dir.display())
    }
}

/// A store whose every request first waits `latency` (see the module docs).
#[derive(Debug)]
pub struct Delayed {
    /// The store.
    pub inner: Arc<dyn Objects>,
    /// Added to every request.
    pub latency: Duration,
}

impl Objects for Delayed {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        std::thread::sleep(self.latency);
        self.inner.get(key)
    }
    fn get_range(&self, key: &str, range: Range<u64>) -> Result<Vec<u8>> {
        std::thread::sleep(self.latency);
        self.inner.get_range(key, range)
    }
    fn size(&self, key: &str) -> Result<Option<u64>> {
        std::thread::sleep(self.latency);
        self.inner.size(key)
    }
    fn put(&self, key: &str, bytes: &[u8]) -> Result<()> {
        std::thread::sleep(self.latency);
        self.inner.put(key, bytes)
    }
    fn put_if_absent(&self, key: &str, bytes: &[u8]) -> Result<bool> {
        std::thread::sleep(self.latency);
        self.inner.put_if_absent(key, bytes)
    }
    fn list(&self, prefix: &str) -> Result<Vec<String>> {
        std::thread::sleep(self.latency);
        self.inner.list(prefix)
    }
    fn delete(&self, key: &str) -> Result<()> {
        std::thread::sleep(self.latency);
        self.inner.delete(key)
    }
    fn location(&self) -> String {
        format!("{} (+{:?} per request)", self.inner.location(), self.latency)
    }
}
