//! A local disk cache of byte ranges of immutable objects, for query nodes that serve from object
//! storage: [`CachedObjects`] reads through to its inner store in fixed-size blocks, keeps them in
//! the slots of one file (`blocks.slab`, one slot per block, each with its CRC32C in memory)
//! within a byte budget, and merges the missing blocks of one read into as few requests as
//! possible, fetched in parallel up to a bound. A block whose checksum fails when read (a damaged
//! disk, or a slot re-used while it was being read) is fetched again. The cache starts empty at
//! every open, so its folder is safe to delete at any time (an open node keeps its unlinked file
//! until it stops). Only immutable objects may be read through it (segments, log batches and
//! manifest versions never change once written); writes and listings pass through.
//!
//! Eviction is CLOCK (an approximation of least recently used). Once the cache is full, a block
//! is admitted on its second miss only (a doorkeeper, as in TinyLFU: Einziger, Friedman & Manes,
//! 2017): under a uniform load most fetched blocks are not read again before they would be
//! evicted, and admitting them would push out blocks that are. Admission is decided before the
//! fetch: a missing block that will not be admitted is fetched only in the bytes the read needs
//! (a 1.5 KB row then costs 1.5 KB, not one or two whole blocks). Readers hold a shard's lock
//! shared; a fill takes it exclusively only if it is free at once (else the fill is skipped), for
//! the time of one block copy, so readers wait at most that long and fills never wait.
//!
//! [`Delayed`] adds a fixed latency to every request of a store, to measure what the cache and
//! the merging of requests hide (object storage answers in tens of milliseconds); requests sent
//! together (`Objects::get_ranges`) wait it once, as concurrent requests do.

use crate::objects::Objects;
use quarry_core::{Error, Result};
use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

/// Counters of a cache's traffic.
#[derive(Debug, Default)]
pub struct CacheStats {
    /// Requests sent to the inner store.
    pub requests: AtomicU64,
    /// Batches of requests sent together (`Objects::get_ranges` calls, one round trip each).
    pub round_trips: AtomicU64,
    /// Bytes fetched from the inner store.
    pub bytes_fetched: AtomicU64,
    /// Blocks served from the cache.
    pub hits: AtomicU64,
    /// Blocks fetched.
    pub misses: AtomicU64,
}

/// The bytes of one range read through the cache: a buffer of its own (when some of its blocks
/// were cached), or a part of a fetched run, shared with the other ranges that run covers (no
/// copy).
#[derive(Debug, Clone)]
pub struct RangeBytes {
    buf: Arc<Vec<u8>>,
    at: usize,
    len: usize,
}

impl RangeBytes {
    /// Bytes of their own.
    pub fn owned(buf: Vec<u8>) -> RangeBytes {
        let len = buf.len();
        RangeBytes { buf: Arc::new(buf), at: 0, len }
    }

    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        &self.buf[self.at..self.at + self.len]
    }
}

impl std::ops::Deref for RangeBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

/// A block's identity: two independent 64-bit hashes of the object key, and the block number.
type BlockId = (u64, u64, u64);

/// Hashes a [`BlockId`] for the index's tables: its parts are already hashes (and a block
/// number), so one multiply-mix of them is enough (SipHash would cost more than the lookup).
#[derive(Debug, Default, Clone, Copy)]
struct BlockHasher(u64);

impl std::hash::Hasher for BlockHasher {
    fn finish(&self) -> u64 {
        let h = self.0 ^ (self.0 >> 29);
        h.wrapping_mul(0xBF58_476D_1CE4_E5B9) ^ (h >> 32)
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(23) ^ v).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

type BlockMap<V> = HashMap<BlockId, V, std::hash::BuildHasherDefault<BlockHasher>>;
type BlockSet = std::collections::HashSet<BlockId, std::hash::BuildHasherDefault<BlockHasher>>;

/// One cached block: where it sits and how to check it.
#[derive(Debug)]
struct Slot {
    name: BlockId,
    len: u32,
    crc: u32,
    /// Read since the clock hand last passed (CLOCK, an approximation of least recently used);
    /// set by readers, who hold the shard's lock shared.
    referenced: std::sync::atomic::AtomicBool,
}

/// The in-memory index of one shard of the slab: block → slot, slots in use, and the clock hand
/// that picks which block to evict. Slots are numbered within the shard; the shard's first slot
/// in the file is `base`.
#[derive(Debug, Default)]
struct Index {
    base: u64,
    by_name: BlockMap<u32>,
    slots: Vec<Option<Slot>>,
    free: Vec<u32>,
    hand: usize,
    used: u64,
    /// Blocks missed once while the shard was full and not admitted (the doorkeeper), oldest
    /// first: a block is admitted on its second miss within this window.
    ghosts: std::collections::VecDeque<BlockId>,
    ghost_set: BlockSet,
}

impl Index {
    /// Whether a block missed now may take a slot: always while a slot is free; once the shard
    /// is full, only on its second miss within the last `slots.len()` first misses (a block read
    /// once is not worth evicting a block that may be read again: under a uniform load most
    /// fetched blocks are never read twice before they would be evicted).
    fn admit(&mut self, name: BlockId) -> bool {
        if !self.free.is_empty() || self.ghost_set.remove(&name) {
            return true;
        }
        if self.ghosts.len() >= self.slots.len().max(1) {
            while let Some(old) = self.ghosts.pop_front() {
                if self.ghost_set.remove(&old) {
                    break;
                }
            }
        }
        self.ghosts.push_back(name);
        self.ghost_set.insert(name);
        false
    }

    fn touch(&self, slot: u32) {
        if let Some(Some(s)) = self.slots.get(slot as usize) {
            s.referenced.store(true, Ordering::Relaxed);
        }
    }

    /// Frees `slot` (its block leaves the index).
    fn release(&mut self, slot: u32) {
        if let Some(s) = self.slots.get_mut(slot as usize).and_then(Option::take) {
            self.by_name.remove(&s.name);
            self.used -= u64::from(s.len);
            self.free.push(slot);
        }
    }

    /// A slot to write into: a free one, else the first block the clock hand finds unread since
    /// its last pass (a read block gets a second chance), emptied.
    fn allocate(&mut self) -> Option<u32> {
        if let Some(slot) = self.free.pop() {
            return Some(slot);
        }
        let n = self.slots.len();
        for _ in 0..2 * n {
            let i = self.hand % n.max(1);
            self.hand = i + 1;
            match self.slots.get_mut(i) {
                Some(Some(s)) if s.referenced.swap(false, Ordering::Relaxed) => {}
                Some(Some(_)) => {
                    self.release(i as u32);
                    return self.free.pop();
                }
                _ => {}
            }
        }
        None
    }
}

/// Blocks to fetch in one request: `first..=last`, as the bytes `bytes` (whole blocks where
/// admitted, else only what the read needs at the ends), and which of them to store.
#[derive(Debug)]
struct Run {
    first: u64,
    last: u64,
    bytes: Range<u64>,
    admitted: Vec<u64>,
}

/// A fetched run: its first block, its first byte in the object, and its bytes.
#[derive(Debug)]
struct Fetched {
    first: u64,
    start: u64,
    data: Arc<Vec<u8>>,
}

/// A read-through block cache over an object store (see the module docs).
#[derive(Debug)]
pub struct CachedObjects {
    inner: Arc<dyn Objects>,
    dir: PathBuf,
    block: u64,
    max_in_flight: usize,
    /// The slab mapped shared: a hit is one copy out of it and a fill one copy into it (no
    /// system call per block). `None` for a cache with no slot.
    map: Option<memmap2::MmapRaw>,
    /// The index, in shards (a block's shard by its hash), so concurrent readers rarely wait.
    shards: Vec<RwLock<Index>>,
    sizes: std::sync::RwLock<HashMap<String, u64>>,
    /// Traffic counters.
    pub stats: CacheStats,
}

/// The two hashes of an object key that name its blocks (computed once per read).
#[derive(Debug, Clone, Copy)]
struct KeyHash(u64, u64);

impl KeyHash {
    fn of(key: &str) -> KeyHash {
        // FNV-1a from two offsets: a collision would need both 64-bit hashes to collide.
        let fnv = |seed: u64| key.bytes().fold(seed, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
        KeyHash(fnv(0xcbf2_9ce4_8422_2325), fnv(0x8422_2325_cbf2_9ce4) ^ key.len() as u64)
    }

    fn block(self, block: u64) -> BlockId {
        (self.0, self.1, block)
    }
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
                    .map_raw(&slab)
                    .map_err(|e| Error::io("memory-mapping", &path, e))?,
            )
        } else {
            None
        };
        // Many shards: with many more searchers than cores, a thread preempted while it holds a
        // shard's lock stalls every reader of that shard until it runs again.
        let n = slots.clamp(1, 256);
        let shards = (0..n)
            .map(|i| {
                let (lo, hi) = (slots * i / n, slots * (i + 1) / n);
                RwLock::new(Index {
                    base: lo,
                    slots: (lo..hi).map(|_| None).collect(),
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
            map,
            shards,
            sizes: std::sync::RwLock::new(HashMap::new()),
            stats: CacheStats::default(),
        })
    }

    /// Object `key`'s size (asked of the inner store once, then remembered: objects are immutable).
    fn size(&self, key: &str) -> Result<u64> {
        if let Some(s) = self.sizes.read().unwrap_or_else(PoisonError::into_inner).get(key) {
            return Ok(*s);
        }
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        let s = self
            .inner
            .size(key)?
            .ok_or_else(|| Error::NotFound(format!("object {key} in {}", self.inner.location())))?;
        self.sizes.write().unwrap_or_else(PoisonError::into_inner).insert(key.to_string(), s);
        Ok(s)
    }

    /// The shard holding block `name`.
    fn shard(&self, name: &BlockId) -> &RwLock<Index> {
        let h = name.0 ^ name.2.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        &self.shards[(h % self.shards.len() as u64) as usize]
    }

    /// Where block `b` of the key hashed `kh` sits if it is cached: (byte offset in the slab,
    /// slot, length, CRC32C). Marks it read.
    fn lookup(&self, kh: KeyHash, b: u64) -> Option<(usize, u32, usize, u32)> {
        let name = kh.block(b);
        let idx = self.shard(&name).read().unwrap_or_else(PoisonError::into_inner);
        let slot = idx.by_name.get(&name).copied()?;
        let s = idx.slots.get(slot as usize)?.as_ref()?;
        let (len, crc) = (s.len as usize, s.crc);
        idx.touch(slot);
        let at = usize::try_from((idx.base + u64::from(slot)) * self.block).ok()?;
        Some((at, slot, len, crc))
    }

    /// Appends to `out` the bytes `piece` (object offsets, within block `b`) of cached block `b`
    /// (found by [`CachedObjects::lookup`]), if the copy is intact; else leaves `out` as it was
    /// and drops the entry. A whole block is copied straight onto the end of `out` and checked
    /// there; a part of one is checked in `scratch` first.
    fn append_cached(
        &self,
        kh: KeyHash,
        b: u64,
        (at, slot, len, crc): (usize, u32, usize, u32),
        piece: &Range<u64>,
        out: &mut Vec<u8>,
        scratch: &mut Vec<u8>,
    ) -> bool {
        let Some(map) = self.map.as_ref() else { return false };
        let start = b * self.block;
        if at.checked_add(len).is_none_or(|end| end > map.len()) || piece.end > start + len as u64 {
            return false;
        }
        let whole = piece.start == start && piece.end == start + len as u64;
        let dest: &mut Vec<u8> = if whole { out } else { scratch };
        let n0 = if whole { dest.len() } else { 0 };
        dest.truncate(n0);
        dest.reserve(len);
        // SAFETY: `at..at + len` lies inside the mapping (checked above) and `dest` has room for
        // `len` more bytes (reserved); any byte value is a valid u8, and the copy is checked
        // against the CRC before use (a slot re-written meanwhile fails it).
        unsafe {
            std::ptr::copy_nonoverlapping(map.as_ptr().add(at), dest.as_mut_ptr().add(n0), len);
            dest.set_len(n0 + len);
        }
        if crate::checksum(&dest[n0..]) == crc {
            if !whole {
                let s0 = (piece.start - start) as usize;
                out.extend_from_slice(&scratch[s0..s0 + (piece.end - piece.start) as usize]);
            }
            return true;
        }
        if whole {
            out.truncate(n0);
        }
        // Damaged, or re-used while read: drop the entry if it is still this one.
        let name = kh.block(b);
        let mut idx = self.shard(&name).write().unwrap_or_else(PoisonError::into_inner);
        let same = idx
            .slots
            .get(slot as usize)
            .and_then(Option::as_ref)
            .is_some_and(|s| s.name == name && s.crc == crc);
        if same {
            idx.release(slot);
        }
        false
    }

    /// Writes block `b` of the key hashed `kh` (admitted before its fetch) into a slot (evicting
    /// the least recently used block if none is free); it becomes visible to readers once written.
    /// Failures only cost a later fetch. The fill is skipped when another thread holds the
    /// shard's lock: waiting would stall this query, and with many more searchers than cores, a
    /// holder preempted by the scheduler would stall every query behind it.
    fn store(&self, kh: KeyHash, b: u64, body: &[u8]) {
        let name = kh.block(b);
        let Ok(mut idx) = self.shard(&name).try_write() else { return };
        if idx.by_name.contains_key(&name) {
            return;
        }
        let Some(slot) = idx.allocate() else { return }; // a cache smaller than one block
        let at = (idx.base + u64::from(slot)) * self.block;
        match self.map.as_ref() {
            Some(map) if (at as usize).checked_add(body.len()).is_some_and(|end| end <= map.len()) => {
                // SAFETY: `at..at + len` lies inside the writable mapping (checked above); the
                // slot is reserved for this writer (out of the free list and of the index). A
                // reader still copying the block evicted from it fails its CRC check.
                unsafe {
                    std::ptr::copy_nonoverlapping(
                        body.as_ptr(),
                        map.as_mut_ptr().add(at as usize),
                        body.len(),
                    )
                };
            }
            _ => {
                idx.free.push(slot);
                return;
            }
        }
        idx.slots[slot as usize] = Some(Slot {
            name,
            len: body.len() as u32,
            crc: crate::checksum(body),
            referenced: Default::default(),
        });
        idx.by_name.insert(name, slot);
        idx.used += body.len() as u64;
    }

    /// Bytes of blocks the cache holds.
    pub fn used(&self) -> u64 {
        self.shards.iter().map(|s| s.read().unwrap_or_else(PoisonError::into_inner).used).sum()
    }

    /// Whether missing block `b` of the key hashed `kh` will take a slot once fetched (see
    /// [`Index::admit`]; a busy shard says no, as fills never wait). A block that will not is
    /// fetched only in the bytes the read needs.
    fn admits(&self, kh: KeyHash, b: u64) -> bool {
        let name = kh.block(b);
        let Ok(mut idx) = self.shard(&name).try_write() else { return false };
        !idx.by_name.contains_key(&name) && idx.admit(name)
    }

    /// Fetches `runs` of `key` (`size` bytes), one request per run, sent together in batches of
    /// at most `max_in_flight`, and stores their admitted blocks; returns each run's first block,
    /// first byte and bytes.
    fn fetch_runs(&self, key: &str, kh: KeyHash, size: u64, runs: &[Run]) -> Result<Vec<Fetched>> {
        let mut out = Vec::with_capacity(runs.len());
        for batch in runs.chunks(self.max_in_flight) {
            let ranges: Vec<Range<u64>> = batch.iter().map(|r| r.bytes.clone()).collect();
            self.stats.requests.fetch_add(batch.len() as u64, Ordering::Relaxed);
            self.stats.round_trips.fetch_add(1, Ordering::Relaxed);
            let got = self.inner.get_ranges(key, &ranges)?;
            if got.len() != batch.len() {
                return Err(Error::InvalidArgument(format!(
                    "{key}: {} ranges asked, {} returned",
                    batch.len(),
                    got.len()
                )));
            }
            for ((run, data), r) in batch.iter().zip(got).zip(&ranges) {
                // A short answer is an error before anything of it is cached: a short block
                // stored as whole would read back with a hole.
                if data.len() as u64 != r.end - r.start {
                    return Err(Error::InvalidArgument(format!(
                        "{key}: {} bytes returned for range {r:?} of {} bytes",
                        data.len(),
                        r.end - r.start
                    )));
                }
                self.stats.bytes_fetched.fetch_add(data.len() as u64, Ordering::Relaxed);
                self.stats.misses.fetch_add(run.last - run.first + 1, Ordering::Relaxed);
                for &b in &run.admitted {
                    let (lo, hi) = (b * self.block, ((b + 1) * self.block).min(size));
                    if lo >= r.start && hi <= r.end {
                        self.store(kh, b, &data[(lo - r.start) as usize..(hi - r.start) as usize]);
                    }
                }
                out.push(Fetched { first: run.first, start: r.start, data: Arc::new(data) });
            }
        }
        Ok(out)
    }

    /// The runs to fetch for `needs` (missing blocks with the bytes of them a read needs, sorted
    /// by block): adjacent blocks in one run, each admitted block whole, the others only in
    /// the bytes needed at the run's ends.
    fn plan_runs(&self, kh: KeyHash, size: u64, needs: &[(u64, u64, u64)]) -> Vec<Run> {
        let mut runs: Vec<Run> = Vec::new();
        for &(b, lo, hi) in needs {
            let admitted = self.admits(kh, b);
            let (lo, hi) =
                if admitted { (b * self.block, ((b + 1) * self.block).min(size)) } else { (lo, hi) };
            match runs.last_mut() {
                Some(run) if run.last + 1 == b => {
                    run.last = b;
                    run.bytes.end = hi;
                    if admitted {
                        run.admitted.push(b);
                    }
                }
                _ => runs.push(Run {
                    first: b,
                    last: b,
                    bytes: lo..hi,
                    admitted: if admitted { vec![b] } else { Vec::new() },
                }),
            }
        }
        runs
    }

    /// Reads `range` of `key` through the cache: missing blocks are fetched in runs of
    /// consecutive blocks (one request per run), at most `max_in_flight` requests at a time.
    pub fn read_range(&self, key: &str, range: Range<u64>) -> Result<Vec<u8>> {
        let got = self.read_ranges(key, std::slice::from_ref(&range))?;
        Ok(got.first().map(|b| b.to_vec()).unwrap_or_default())
    }

    /// Reads every range of `ranges` of `key` through the cache: the blocks they lack are
    /// fetched together (one request per run of adjacent missing blocks, sent in batches of
    /// `max_in_flight`), so a query's posting lists or rows cost one round trip, and the bytes
    /// come back whatever the cache evicts meanwhile. A range none of whose blocks was cached
    /// shares the buffer of the run that fetched it.
    pub fn read_ranges(&self, key: &str, ranges: &[Range<u64>]) -> Result<Vec<RangeBytes>> {
        let size = self.size(key)?;
        if let Some(r) = ranges.iter().find(|r| r.end < r.start || r.end > size) {
            return Err(Error::InvalidArgument(format!(
                "{key}: byte range {r:?} outside the object's {size} bytes"
            )));
        }
        // A range gets a buffer of its own at its first cached block, and is then assembled in
        // order: a cached block is copied onto its end (and checked there), a missing one leaves
        // a zeroed hole, filled once the blocks missing anywhere are fetched together. A range
        // with no cached block is a part of one fetched run (no buffer, no copy).
        let kh = KeyHash::of(key);
        let mut outs: Vec<Option<Vec<u8>>> = vec![None; ranges.len()];
        let mut scratch = Vec::new();
        let mut missing: Vec<(u64, u64, u64)> = Vec::new();
        let mut holes: Vec<(usize, u64)> = Vec::new();
        let mut hits = 0u64;
        for (i, r) in ranges.iter().enumerate().filter(|(_, r)| !r.is_empty()) {
            let mut out: Option<Vec<u8>> = None;
            for b in r.start / self.block..=(r.end - 1) / self.block {
                let piece = r.start.max(b * self.block)..r.end.min((b + 1) * self.block);
                let copied = self.lookup(kh, b).is_some_and(|found| {
                    let out = out.get_or_insert_with(|| {
                        let mut v = Vec::with_capacity((r.end - r.start) as usize);
                        v.resize((piece.start - r.start) as usize, 0);
                        v
                    });
                    self.append_cached(kh, b, found, &piece, out, &mut scratch)
                });
                if copied {
                    hits += 1;
                } else {
                    if let Some(out) = out.as_mut() {
                        out.resize(out.len() + (piece.end - piece.start) as usize, 0);
                    }
                    holes.push((i, b));
                    missing.push((b, piece.start, piece.end));
                }
            }
            outs[i] = out;
        }
        self.stats.hits.fetch_add(hits, Ordering::Relaxed);
        let fetched = if holes.is_empty() {
            Vec::new()
        } else {
            // One entry per missing block: the union of the bytes the ranges need of it.
            missing.sort_unstable();
            let mut needs: Vec<(u64, u64, u64)> = Vec::with_capacity(missing.len());
            for (b, lo, hi) in missing {
                match needs.last_mut() {
                    Some(n) if n.0 == b => (n.1, n.2) = (n.1.min(lo), n.2.max(hi)),
                    _ => needs.push((b, lo, hi)),
                }
            }
            self.fetch_runs(key, kh, size, &self.plan_runs(kh, size, &needs))?
        };
        // The run holding block `b`, its first byte, and the byte after its last.
        let run_of = |b: u64| -> Result<(&Arc<Vec<u8>>, u64, u64)> {
            let k = fetched.partition_point(|f| f.first <= b);
            let f = k
                .checked_sub(1)
                .and_then(|k| fetched.get(k))
                .ok_or_else(|| Error::InvalidArgument(format!("{key}: block {b} was not fetched")))?;
            Ok((&f.data, f.start, f.start + f.data.len() as u64))
        };
        for &(i, b) in &holes {
            let Some(out) = outs[i].as_mut() else { continue };
            let r = &ranges[i];
            let (data, run_start, run_end) = run_of(b)?;
            let start = b * self.block;
            let (lo, hi) = (r.start.max(start), r.end.min(start + self.block));
            if run_start > lo || run_end < hi {
                return Err(Error::InvalidArgument(format!("{key}: block {b} was fetched short")));
            }
            let (o, d) = ((lo - r.start) as usize, (lo - run_start) as usize);
            out[o..o + (hi - lo) as usize].copy_from_slice(&data[d..d + (hi - lo) as usize]);
        }
        ranges
            .iter()
            .zip(outs)
            .map(|(r, out)| match out {
                Some(buf) => Ok(RangeBytes::owned(buf)),
                None if r.is_empty() => Ok(RangeBytes::owned(Vec::new())),
                None => {
                    // Every block of the range was missing: they are consecutive, so one run
                    // holds them all.
                    let (data, run_start, run_end) = run_of(r.start / self.block)?;
                    if run_start > r.start || run_end < r.end {
                        return Err(Error::InvalidArgument(format!("{key}: range {r:?} was fetched short")));
                    }
                    let at = (r.start - run_start) as usize;
                    Ok(RangeBytes { buf: data.clone(), at, len: (r.end - r.start) as usize })
                }
            })
            .collect()
    }
}

impl Objects for CachedObjects {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        match self.inner.size(key)? {
            Some(size) => {
                self.sizes.write().unwrap_or_else(PoisonError::into_inner).insert(key.to_string(), size);
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
