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
        // Runs of consecutive missing blocks: one request each.
        let mut runs: Vec<(u64, u64)> = Vec::new();
        for (i, b) in blocks.iter().enumerate() {
            if b.is_none() {
                let n = first + i as u64;
                match runs.last_mut() {
                    Some(r) if r.1 + 1 == n => r.1 = n,
                    _ => runs.push((n, n)),
                }
            }
        }
        let fetched: Vec<Result<(u64, Vec<u8>)>> = std::thread::scope(|s| {
            let mut out = Vec::with_capacity(runs.len());
            for chunk in runs.chunks(self.max_in_flight) {
                let handles: Vec<_> = chunk
                    .iter()
                    .map(|&(a, b)| {
                        s.spawn(move || {
                            let bytes = a * self.block..((b + 1) * self.block).min(size);
                            self.stats.requests.fetch_add(1, Ordering::Relaxed);
                            let data = self.inner.get_range(key, bytes.clone())?;
                            self.stats.bytes_fetched.fetch_add(data.len() as u64, Ordering::Relaxed);
                            Ok((a, data))
                        })
                    })
                    .collect();
                for h in handles {
                    out.push(h.join().unwrap_or_else(|_| {
                        Err(Error::InvalidArgument("a cache fetch thread panicked".into()))
                    }));
                }
            }
            out
        });
        for f in fetched {
            let (a, data) = f?;
            for (j, chunk) in data.chunks(self.block as usize).enumerate() {
                let b = a + j as u64;
                self.stats.misses.fetch_add(1, Ordering::Relaxed);
                self.store(key, b, chunk);
                blocks[(b - first) as usize] = Some(chunk.to_vec());
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
