//! A local disk cache of byte ranges of immutable objects, for query nodes that serve from object
//! storage: [`CachedObjects`] reads through to its inner store in fixed-size blocks, keeps them in
//! the slots of one file (`blocks.slab`, one slot per block, each with its CRC32C in memory) with
//! least-recently-used eviction within a byte budget, and merges the missing blocks of one read
//! into as few requests as possible, fetched in parallel up to a bound. A block whose checksum
//! fails when read (a damaged disk, or a slot re-used while it was being read) is fetched again.
//! The cache starts empty at every open, so its folder is safe to delete at any time (an open
//! node keeps its unlinked file until it stops). Only immutable objects may be read through it (segments, log batches and
//! manifest versions never change once written); writes and listings pass through.
//!
//! [`Delayed`] adds a fixed latency to every request of a store, to measure what the cache and
//! the merging of requests hide (object storage answers in tens of milliseconds); requests sent
//! together (`Objects::get_ranges`) wait it once, as concurrent requests do.

use crate::objects::Objects;
use quarry_core::{Error, Result};
use std::collections::{BTreeMap, HashMap};
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

/// A block's identity: two independent 64-bit hashes of the object key, and the block number.
type BlockId = (u64, u64, u64);

/// One cached block: where it sits and how to check it.
#[derive(Debug, Clone)]
struct Slot {
    name: BlockId,
    len: u32,
    crc: u32,
    tick: u64,
}

/// The in-memory index of one shard of the slab: block → slot, slots in use, and the eviction
/// order. Slots are numbered within the shard; the shard's first slot in the file is `base`.
#[derive(Debug, Default)]
struct Index {
    base: u64,
    by_name: HashMap<BlockId, u32>,
    slots: Vec<Option<Slot>>,
    /// Last use → slot (ticks are unique).
    order: BTreeMap<u64, u32>,
    free: Vec<u32>,
    used: u64,
    tick: u64,
}

impl Index {
    fn touch(&mut self, slot: u32) {
        self.tick += 1;
        let tick = self.tick;
        if let Some(Some(s)) = self.slots.get_mut(slot as usize) {
            self.order.remove(&s.tick);
            s.tick = tick;
            self.order.insert(tick, slot);
        }
    }

    /// Frees `slot` (its block leaves the index).
    fn release(&mut self, slot: u32) {
        if let Some(s) = self.slots.get_mut(slot as usize).and_then(Option::take) {
            self.order.remove(&s.tick);
            self.by_name.remove(&s.name);
            self.used -= u64::from(s.len);
            self.free.push(slot);
        }
    }

    /// A slot to write into: a free one, else the least recently used one, emptied.
    fn allocate(&mut self) -> Option<u32> {
        if let Some(slot) = self.free.pop() {
            return Some(slot);
        }
        let (_, &slot) = self.order.first_key_value()?;
        self.release(slot);
        self.free.pop()
    }
}

/// A read-through block cache over an object store (see the module docs).
#[derive(Debug)]
pub struct CachedObjects {
    inner: Arc<dyn Objects>,
    dir: PathBuf,
    block: u64,
    max_in_flight: usize,
    slab: std::fs::File,
    /// The slab mapped, so a hit is one copy out of the page cache (no system call); blocks are
    /// written with positioned writes, which the shared mapping sees. `None` for a cache with
    /// no slot.
    map: Option<memmap2::MmapRaw>,
    /// The index, in shards (a block's shard by its hash), so concurrent readers rarely wait.
    shards: Vec<Mutex<Index>>,
    sizes: Mutex<HashMap<String, u64>>,
    /// Traffic counters.
    pub stats: CacheStats,
}

fn block_name(key: &str, block: u64) -> BlockId {
    // FNV-1a from two offsets: a collision would need both 64-bit hashes to collide.
    let fnv = |seed: u64| key.bytes().fold(seed, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    (fnv(0xcbf2_9ce4_8422_2325), fnv(0x8422_2325_cbf2_9ce4) ^ key.len() as u64, block)
}

#[cfg(unix)]
fn write_at(f: &std::fs::File, buf: &[u8], at: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(f, buf, at)
}

#[cfg(windows)]
fn write_at(f: &std::fs::File, mut buf: &[u8], mut at: u64) -> std::io::Result<()> {
    while !buf.is_empty() {
        let n = std::os::windows::fs::FileExt::seek_write(f, buf, at)?;
        buf = &buf[n..];
        at += n as u64;
    }
    Ok(())
}

impl CachedObjects {
    /// A cache of `inner` in folder `dir` (created if missing; a slab left by an earlier run is
    /// discarded), holding at most `capacity` bytes in blocks of `block` bytes, with at most
    /// `max_in_flight` requests at a time for one read.
    pub fn open(
        inner: Arc<dyn Objects>,
        dir: &Path,
        capacity: u64,
        block: u64,
        max_in_flight: usize,
    ) -> Result<CachedObjects> {
        if block == 0 || max_in_flight == 0 || block > u64::from(u32::MAX) {
            return Err(Error::InvalidArgument(
                "cache block size (1 byte to 4 GiB) and requests in flight must be ≥ 1".into(),
            ));
        }
        std::fs::create_dir_all(dir).map_err(|e| Error::io("creating", dir, e))?;
        let path = dir.join("blocks.slab");
        let slab = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .map_err(|e| Error::io("creating", &path, e))?;
        let slots = (capacity / block).min(u64::from(u32::MAX));
        slab.set_len(slots * block).map_err(|e| Error::io("sizing", &path, e))?;
        // SAFETY: the mapping is only read by copying bytes out through a raw pointer, within the
        // file's length, and every copy is checked against the block's CRC32C before use, so a
        // slot re-written while being copied is detected and refetched. A process truncating
        // the file under us would fault the reader: the usual caveat of mapped files
        // (docs/FORMAT.md); deleting the folder does not (the open file keeps its bytes).
        let map = if slots > 0 {
            Some(
                memmap2::MmapOptions::new()
                    .map_raw_read_only(&slab)
                    .map_err(|e| Error::io("memory-mapping", &path, e))?,
            )
        } else {
            None
        };
        let n = slots.clamp(1, 16);
        let shards = (0..n)
            .map(|i| {
                let (lo, hi) = (slots * i / n, slots * (i + 1) / n);
                Mutex::new(Index {
                    base: lo,
                    slots: vec![None; (hi - lo) as usize],
                    free: (0..(hi - lo) as u32).rev().collect(),
                    ..Index::default()
                })
            })
            .collect();
        Ok(CachedObjects {
            inner,
            dir: dir.to_path_buf(),
            block,
            max_in_flight,
            slab,
            map,
            shards,
            sizes: Mutex::new(HashMap::new()),
            stats: CacheStats::default(),
        })
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

    /// The shard holding block `name`.
    fn shard(&self, name: &BlockId) -> &Mutex<Index> {
        let h = name.0 ^ name.2.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        &self.shards[(h % self.shards.len() as u64) as usize]
    }

    /// Block `b` of `key` from the slab, if it is there and intact.
    fn cached(&self, key: &str, b: u64) -> Option<Vec<u8>> {
        let name = block_name(key, b);
        let shard = self.shard(&name);
        let (at, slot, len, crc) = {
            let mut idx = shard.lock().unwrap_or_else(PoisonError::into_inner);
            let slot = *idx.by_name.get(&name)?;
            let s = idx.slots.get(slot as usize)?.as_ref()?;
            let (len, crc) = (s.len, s.crc);
            idx.touch(slot);
            ((idx.base + u64::from(slot)) * self.block, slot, len, crc)
        };
        let map = self.map.as_ref()?;
        let (at, len) = (at as usize, len as usize);
        let mut buf = Vec::with_capacity(len);
        if at.checked_add(len).is_some_and(|end| end <= map.len()) {
            // SAFETY: `at..at + len` lies inside the mapping (checked above), and `buf` has room for
            // `len` bytes; the bytes are checked against the CRC before use.
            unsafe {
                std::ptr::copy_nonoverlapping(map.as_ptr().add(at), buf.as_mut_ptr(), len);
                buf.set_len(len);
            }
            if crate::checksum(&buf) == crc {
                return Some(buf);
            }
        }
        // Damaged, or re-used while read: drop the entry if it is still this one.
        let mut idx = shard.lock().unwrap_or_else(PoisonError::into_inner);
        let same = idx
            .slots
            .get(slot as usize)
            .and_then(Option::as_ref)
            .is_some_and(|s| s.name == name && s.crc == crc);
        if same {
            idx.release(slot);
        }
        None
    }

    /// Writes block `b` of `key` into a slot (evicting the least recently used block if none
    /// is free); it becomes visible to readers once written. Failures only cost a later fetch.
    fn store(&self, key: &str, b: u64, body: &[u8]) {
        let name = block_name(key, b);
        let shard = self.shard(&name);
        let (at, slot) = {
            let mut idx = shard.lock().unwrap_or_else(PoisonError::into_inner);
            if idx.by_name.contains_key(&name) {
                return;
            }
            match idx.allocate() {
                Some(s) => ((idx.base + u64::from(s)) * self.block, s),
                None => return, // a cache smaller than one block
            }
        };
        let written = write_at(&self.slab, body, at).is_ok();
        let mut idx = shard.lock().unwrap_or_else(PoisonError::into_inner);
        if !written || idx.by_name.contains_key(&name) {
            idx.free.push(slot);
            return;
        }
        idx.tick += 1;
        let tick = idx.tick;
        idx.slots[slot as usize] =
            Some(Slot { name, len: body.len() as u32, crc: crate::checksum(body), tick });
        idx.by_name.insert(name, slot);
        idx.order.insert(tick, slot);
        idx.used += body.len() as u64;
    }

    /// Bytes of blocks the cache holds.
    pub fn used(&self) -> u64 {
        self.shards.iter().map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).used).sum()
    }

    /// Fetches the block runs `runs` (inclusive block numbers) of `key` (`size` bytes), one
    /// request per run, sent together in batches of at most `max_in_flight`, and stores the
    /// blocks; returns each run's first block and bytes.
    fn fetch_runs(&self, key: &str, size: u64, runs: &[(u64, u64)]) -> Result<Vec<(u64, Vec<u8>)>> {
        let mut out = Vec::with_capacity(runs.len());
        for batch in runs.chunks(self.max_in_flight) {
            let ranges: Vec<Range<u64>> =
                batch.iter().map(|&(a, b)| a * self.block..((b + 1) * self.block).min(size)).collect();
            self.stats.requests.fetch_add(batch.len() as u64, Ordering::Relaxed);
            let got = self.inner.get_ranges(key, &ranges)?;
            if got.len() != batch.len() {
                return Err(Error::InvalidArgument(format!(
                    "{key}: {} ranges asked, {} returned",
                    batch.len(),
                    got.len()
                )));
            }
            for (&(a, _), data) in batch.iter().zip(got) {
                self.stats.bytes_fetched.fetch_add(data.len() as u64, Ordering::Relaxed);
                for (j, chunk) in data.chunks(self.block as usize).enumerate() {
                    self.stats.misses.fetch_add(1, Ordering::Relaxed);
                    self.store(key, a + j as u64, chunk);
                }
                out.push((a, data));
            }
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

    /// Reads `range` of `key` through the cache: missing blocks are fetched in runs of
    /// consecutive blocks (one request per run), at most `max_in_flight` requests at a time.
    pub fn read_range(&self, key: &str, range: Range<u64>) -> Result<Vec<u8>> {
        Ok(self.read_ranges(key, std::slice::from_ref(&range))?.pop().unwrap_or_default())
    }

    /// Reads every range of `ranges` of `key` through the cache: the blocks they lack are
    /// fetched together (one request per run of adjacent missing blocks, sent in batches of
    /// `max_in_flight`), so a query's posting lists or rows cost one round trip, and the bytes
    /// come back whatever the cache evicts meanwhile.
    pub fn read_ranges(&self, key: &str, ranges: &[Range<u64>]) -> Result<Vec<Vec<u8>>> {
        let size = self.size(key)?;
        if let Some(r) = ranges.iter().find(|r| r.end < r.start || r.end > size) {
            return Err(Error::InvalidArgument(format!(
                "{key}: byte range {r:?} outside the object's {size} bytes"
            )));
        }
        // Every block the ranges touch: from the cache where it is there, else from one of the
        // fetched runs (kept whole: no copy per block).
        enum Piece {
            Cached(Vec<u8>),
            Fetched(usize, usize),
        }
        let mut blocks: HashMap<u64, Piece> = HashMap::new();
        let mut missing: Vec<u64> = Vec::new();
        let mut seen: std::collections::HashSet<u64> = std::collections::HashSet::new();
        let mut hits = 0u64;
        for r in ranges.iter().filter(|r| !r.is_empty()) {
            for b in r.start / self.block..=(r.end - 1) / self.block {
                if !seen.insert(b) {
                    continue;
                }
                match self.cached(key, b) {
                    Some(bytes) => {
                        hits += 1;
                        blocks.insert(b, Piece::Cached(bytes));
                    }
                    None => missing.push(b),
                }
            }
        }
        self.stats.hits.fetch_add(hits, Ordering::Relaxed);
        missing.sort_unstable();
        let fetched = self.fetch_runs(key, size, &Self::runs(missing))?;
        for (i, (a, data)) in fetched.iter().enumerate() {
            for j in 0..data.len().div_ceil(self.block as usize) {
                blocks.insert(a + j as u64, Piece::Fetched(i, j * self.block as usize));
            }
        }
        ranges
            .iter()
            .map(|r| {
                let mut out = Vec::with_capacity((r.end - r.start) as usize);
                if r.is_empty() {
                    return Ok(out);
                }
                for b in r.start / self.block..=(r.end - 1) / self.block {
                    let bytes: &[u8] = match blocks.get(&b) {
                        Some(Piece::Cached(v)) => v,
                        Some(Piece::Fetched(i, at)) => {
                            let d = &fetched[*i].1;
                            &d[*at..(*at + self.block as usize).min(d.len())]
                        }
                        None => {
                            return Err(Error::InvalidArgument(format!("{key}: block {b} was not fetched")))
                        }
                    };
                    let start = b * self.block;
                    let lo = r.start.saturating_sub(start) as usize;
                    let hi = ((r.end - start) as usize).min(bytes.len());
                    out.extend_from_slice(&bytes[lo..hi]);
                }
                Ok(out)
            })
            .collect()
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
    /// The requests go out together: the batch waits one latency.
    fn get_ranges(&self, key: &str, ranges: &[Range<u64>]) -> Result<Vec<Vec<u8>>> {
        std::thread::sleep(self.latency);
        self.inner.get_ranges(key, ranges)
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
