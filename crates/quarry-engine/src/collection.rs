//! A collection: its schema, its write-ahead log and the points in memory (the mutable segment,
//! searched by exact scan). A write is validated whole, logged (and fsynced, by default), then
//! applied under the log's lock, so the in-memory order is the log order and a write is visible to
//! every read that starts after it is acknowledged. Opening replays the log.
//!
//! Sealed points live in immutable segment folders named by the manifest (a checkpoint of the
//! log); opening loads them and replays only the later log records.

use crate::filter::Filter;
use crate::id::PointId;
use crate::point::{Op, Point};
use crate::schema::CollectionSchema;
use quarry_core::{Error, IdFilter, Metric, Result};
use quarry_linalg::{Kernels, TopK};
use quarry_store::Wal;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError, RwLock};

/// Where a queued write learns its outcome (an error as its message).
type Ticket = std::sync::Arc<Mutex<Option<Result<()>>>>;

/// One search result.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoredPoint {
    /// The point's id.
    pub id: PointId,
    /// Similarity (higher is better): inner product, cosine, or minus the squared L2 distance.
    pub score: f32,
    /// The point's payload.
    pub payload: Map<String, Value>,
}

/// How a search runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SearchOptions {
    /// Beam width of graph searches in sealed segments (larger: higher recall, slower).
    pub ef: usize,
    /// Whether hits carry their payloads (else empty maps: no copies).
    pub with_payload: bool,
}

impl Default for SearchOptions {
    fn default() -> Self {
        SearchOptions { ef: DEFAULT_EF, with_payload: true }
    }
}

/// Points in memory, by slot; a replaced or deleted point's slot is dead.
#[derive(Debug, Default)]
struct State {
    slot_of: HashMap<PointId, u32>,
    ids: Vec<PointId>,
    live: Vec<bool>,
    /// Per field: the vectors as given, slot-major.
    vectors: Vec<Vec<f32>>,
    /// Per field: 1 / norm of each slot's vector (cosine), else 1.
    inv_norms: Vec<Vec<f32>>,
    payloads: Vec<Map<String, Value>>,
    pidx: crate::payload_index::PayloadIndex,
    /// Sealed graph segments (slots below `sealed_end` are in one of them, or dead).
    segments: Vec<std::sync::Arc<crate::segment::Segment>>,
    sealed_end: u32,
    /// Slots below `sealed_end` that died after sealing (0: segments need no liveness filter).
    dead_sealed: usize,
}

/// Rows of sealed segments whose points have died since (0: segments need no liveness filter).
fn dead_in_segments(st: &State) -> usize {
    st.segments.iter().map(|seg| seg.slots.iter().filter(|&&s| !st.live[s as usize]).count()).sum()
}

/// Per vector field, the rows of `slots` (in that order), row-major.
fn gather_rows(schema: &CollectionSchema, st: &State, slots: &[u32]) -> Vec<Vec<f32>> {
    schema
        .vectors
        .iter()
        .enumerate()
        .map(|(f, field)| {
            let d = field.dim;
            let mut v = Vec::with_capacity(slots.len() * d);
            for &s in slots {
                v.extend_from_slice(&st.vectors[f][s as usize * d..(s as usize + 1) * d]);
            }
            v
        })
        .collect()
}

/// Asks the CPU to start loading every cache line of `items` (rows of f32, codes of u8).
#[inline]
fn prefetch<T>(items: &[T]) {
    #[cfg(target_arch = "x86_64")]
    {
        let bytes = std::mem::size_of_val(items);
        let base = items.as_ptr().cast::<i8>();
        for off in (0..bytes).step_by(64) {
            // SAFETY: prefetching is a hint; `base + off` is inside `items` (off < its size).
            unsafe { std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(base.add(off)) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = items;
}

/// Live slots at or above `from` passing `filter`: index candidates (if an indexed key is in its
/// `must` clause) or every slot, each checked against the whole filter.
fn matching<'a>(st: &'a State, filter: &'a Filter, from: u32) -> Box<dyn Iterator<Item = u32> + 'a> {
    match st.pidx.candidates(filter, from) {
        // The index answered every condition: only liveness is left to check.
        Some((c, true)) => Box::new(c.into_iter().filter(move |&s| st.live[s as usize])),
        Some((c, false)) => Box::new(c.into_iter().filter(move |&s| {
            st.live[s as usize] && filter.matches(st.ids[s as usize], &st.payloads[s as usize])
        })),
        None => Box::new((from..st.ids.len() as u32).filter(move |&s| {
            st.live[s as usize] && filter.matches(st.ids[s as usize], &st.payloads[s as usize])
        })),
    }
}

/// Checks a payload key to index: a non-empty dotted path of at most 256 bytes.
fn check_payload_key(key: &str) -> Result<()> {
    if key.is_empty() || key.len() > 256 || key.split('.').any(str::is_empty) {
        return Err(Error::InvalidArgument(format!(
            "payload key {key:?}: use a dotted path of 1-256 bytes without empty parts"
        )));
    }
    Ok(())
}

/// A collection of points with a schema.
#[derive(Debug)]
pub struct Collection {
    name: String,
    dir: PathBuf,
    schema: CollectionSchema,
    metrics: Vec<Metric>,
    /// Index kind of each vector field in sealed segments.
    kinds: Vec<crate::segment::IndexKind>,
    state: RwLock<State>,
    wal: Mutex<Wal>,
    /// Held while a segment is built (one at a time).
    sealing: Mutex<()>,
    /// Operations waiting for the next group commit.
    queue: Mutex<Vec<(Op, Ticket)>>,
    /// A background seal is scheduled or running.
    seal_pending: std::sync::atomic::AtomicBool,
    /// This collection, for background sealing threads.
    me: std::sync::Weak<Collection>,
    /// Opens the log file (fault injection in tests), also after a checkpoint rewrites it.
    opener: Option<Opener>,
    /// The manifest last written (guarded by `sealing` for writes).
    manifest: Mutex<crate::manifest::Manifest>,
    /// The error of the last background seal, if it failed (the points stay in the log).
    seal_error: Mutex<Option<String>>,
}

/// Opens a collection's log file (the default opens the real file; tests inject faults).
pub type StoreOpener =
    std::sync::Arc<dyn Fn(&Path) -> std::io::Result<Box<dyn quarry_store::LogStore>> + Send + Sync>;

/// A [`StoreOpener`] kept by a collection.
struct Opener(StoreOpener);

impl std::fmt::Debug for Opener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Opener")
    }
}

/// Magic of a collection snapshot file.
pub const SNAPSHOT_MAGIC: [u8; 8] = *b"QRYSNAP\0";
/// Version of the snapshot format.
pub const SNAPSHOT_VERSION: u32 = 1;

/// Reads a snapshot file: the schema and the log bytes, after checking magic, version, lengths
/// and the checksum (errors name the problem).
pub(crate) fn read_snapshot(path: &Path) -> Result<(CollectionSchema, Vec<u8>)> {
    let b = std::fs::read(path).map_err(|e| Error::io("reading", path, e))?;
    let bad = |m: &str| Error::corrupt(path, "snapshot", m.to_string());
    if b.len() < 32 || b[..8] != SNAPSHOT_MAGIC {
        return Err(bad("not a Quarry collection snapshot (magic)"));
    }
    let (body, tail) = b.split_at(b.len() - 4);
    if quarry_store::checksum(body).to_le_bytes() != tail {
        return Err(bad("checksum mismatch: the file is damaged or truncated"));
    }
    let version = u32::from_le_bytes([b[8], b[9], b[10], b[11]]);
    if version != SNAPSHOT_VERSION {
        return Err(bad(&format!("version {version}, this build reads {SNAPSHOT_VERSION}")));
    }
    let n = quarry_store::le::u64_at(body, 12).ok_or_else(|| bad("truncated"))? as usize;
    let schema_bytes = body.get(20..20usize.saturating_add(n)).ok_or_else(|| bad("schema length"))?;
    let schema: CollectionSchema =
        serde_json::from_slice(schema_bytes).map_err(|e| bad(&format!("schema: {e}")))?;
    schema.check()?;
    let at = 20 + n;
    let m = quarry_store::le::u64_at(body, at).ok_or_else(|| bad("truncated"))? as usize;
    let log = body.get(at + 8..).filter(|l| l.len() == m).ok_or_else(|| bad("log length"))?;
    Ok((schema, log.to_vec()))
}

/// Exact scans through SQ8 codes re-score the best `k × RESCORE_FACTOR + RESCORE_EXTRA` rows.
pub const RESCORE_FACTOR: usize = 4;
/// See [`RESCORE_FACTOR`].
pub const RESCORE_EXTRA: usize = 16;

/// Sealed segments beyond which a background seal merges the newer half of them into one.
pub const MAX_SEGMENTS: usize = 8;

/// Default beam of graph searches in sealed segments.
pub const DEFAULT_EF: usize = 100;

/// A segment with at most this many admitted points (after a filter or deletes) is scanned
/// exactly instead of walked (at 384-d about 6 MB of rows, ~0.5 ms; a filtered walk costs more).
pub const EXACT_MAX_ADMITTED: usize = 4_096;

/// File of the write-ahead log in a collection's folder.
pub const WAL_FILE: &str = "wal.log";

impl Collection {
    /// Opens the collection in `dir` (schema and log), replaying the log; the log file is opened
    /// through `opener` when given (tests inject faults there).
    pub fn open(name: &str, dir: &Path, opener: Option<&StoreOpener>) -> Result<std::sync::Arc<Collection>> {
        let schema = CollectionSchema::load(dir)?;
        let metrics = schema.vectors.iter().map(|f| f.metric()).collect::<Result<Vec<_>>>()?;
        let kinds = schema.vectors.iter().map(|f| f.index_kind()).collect::<Result<Vec<_>>>()?;
        let manifest = crate::manifest::Manifest::load(dir)?.unwrap_or_default();
        let path = dir.join(WAL_FILE);
        let (wal, records) = match opener {
            Some(open) => Wal::open_with(&path, schema.durability(), &|p| open(p))?,
            None => Wal::open(&path, schema.durability())?,
        };
        let fields = schema.vectors.len();
        let indexed = schema.payload_indexes.clone();
        let state = RwLock::new(State {
            vectors: vec![Vec::new(); fields],
            inv_norms: vec![Vec::new(); fields],
            pidx: crate::payload_index::PayloadIndex::new(&indexed),
            ..State::default()
        });
        let c = std::sync::Arc::new_cyclic(|me| Collection {
            name: name.to_string(),
            dir: dir.to_path_buf(),
            schema,
            metrics,
            kinds,
            state,
            wal: Mutex::new(wal),
            sealing: Mutex::new(()),
            queue: Mutex::new(Vec::new()),
            seal_pending: std::sync::atomic::AtomicBool::new(false),
            me: me.clone(),
            opener: opener.cloned().map(Opener),
            manifest: Mutex::new(manifest.clone()),
            seal_error: Mutex::new(None),
        });
        let unsealed = {
            let mut st = c.write_state();
            c.load_segments(&mut st, &manifest)?;
            if let Some(&(first, _)) = records.first() {
                if first > manifest.checkpoint_seq + 1 {
                    return Err(Error::corrupt(
                        dir.join(WAL_FILE),
                        "header",
                        format!(
                            "the log starts at record {first} but the manifest covers records up to {} only: records are missing",
                            manifest.checkpoint_seq
                        ),
                    ));
                }
            }
            for (seq, payload) in records {
                if seq <= manifest.checkpoint_seq {
                    continue; // already in the segments
                }
                let op =
                    Op::decode(&payload).and_then(|op| op.check_stored(&c.schema).map(|()| op)).map_err(
                        |e| Error::corrupt(dir.join(WAL_FILE), format!("record {seq}"), e.to_string()),
                    )?;
                c.apply(&mut st, op);
            }
            st.ids.len() - st.sealed_end as usize
        };
        // A crash between a checkpoint's manifest and cutting the log leaves covered records: drop
        // them (and never number a new record at or below the checkpoint).
        {
            let mut wal = c.wal.lock().unwrap_or_else(PoisonError::into_inner);
            if wal.first_seq()? <= manifest.checkpoint_seq {
                wal.truncate_before(manifest.checkpoint_seq + 1, &|p| c.open_store(p))?;
            }
        }
        // Folders of seals that crashed before naming them, or replaced by a merge.
        let keep: Vec<u64> = manifest.segments.iter().map(|s| s.id).collect();
        crate::segment_file::remove_unnamed(dir, &keep)?;
        // Unsealed points found on opening are sealed by the next write (or `optimize`), not
        // now: opening stays fast and read-only uses never start a build.
        let _ = unsealed;
        Ok(c)
    }

    /// Loads the segments named by `manifest` into the (empty) state: their points get the
    /// first slots in manifest order, tombstoned rows are dead, and the graphs are read from disk.
    fn load_segments(&self, st: &mut State, manifest: &crate::manifest::Manifest) -> Result<()> {
        for entry in &manifest.segments {
            let loaded = crate::segment_file::load(&self.dir, entry.id, &self.kinds)?;
            for p in &loaded.points {
                p.check_vectors(&self.schema).map_err(|e| {
                    Error::corrupt(
                        crate::segment_file::segment_dir(&self.dir, entry.id)
                            .join(crate::segment_file::POINTS_FILE),
                        "points",
                        e.to_string(),
                    )
                })?;
            }
            if loaded.points.len() as u64 != entry.points {
                return Err(Error::corrupt(
                    crate::segment_file::segment_dir(&self.dir, entry.id),
                    "points",
                    format!("{} points, the manifest says {}", loaded.points.len(), entry.points),
                ));
            }
            let base = st.ids.len() as u32;
            let n = loaded.points.len() as u32;
            let dims: Vec<usize> = self.schema.vectors.iter().map(|f| f.dim).collect();
            let rows: Vec<Vec<f32>> = (0..dims.len())
                .map(|f| loaded.points.iter().flat_map(|p| p.vectors[f].iter().copied()).collect())
                .collect();
            self.apply(st, Op::Upsert(loaded.points));
            for &row in &entry.dead {
                let slot = base + row;
                st.live[slot as usize] = false;
                let id = st.ids[slot as usize];
                if st.slot_of.get(&id) == Some(&slot) {
                    st.slot_of.remove(&id);
                }
            }
            let mut seg = crate::segment::Segment::from_parts((base..base + n).collect(), loaded.graphs);
            seg.id = entry.id;
            seg.attach_codes(&rows, &dims, &self.metrics)?;
            drop(rows);
            for (key, rows, graphs) in loaded.subs {
                seg.subs.insert(
                    key,
                    crate::segment::Segment::from_parts(rows.iter().map(|r| base + r).collect(), graphs),
                );
            }
            st.segments.push(std::sync::Arc::new(seg));
            st.sealed_end = base + n;
        }
        st.dead_sealed = dead_in_segments(st);
        Ok(())
    }

    /// Starts a background seal when `unsealed` points reach the schema's threshold (unless one
    /// is already scheduled).
    fn seal_in_background_if(&self, unsealed: usize) {
        let t = self.schema.seal_threshold;
        if t > 0 && unsealed >= t && !self.seal_pending.swap(true, std::sync::atomic::Ordering::AcqRel) {
            // Build the graph in the background: the write is acknowledged now.
            let me = self.me.clone();
            std::thread::spawn(move || {
                if let Some(c) = me.upgrade() {
                    // Too many segments slow every search down: merge the newer half (sizes
                    // then grow geometrically, so a point is re-indexed O(log n) times).
                    let r = c.seal(None).and_then(|()| {
                        let n = c.segment_count();
                        if n > MAX_SEGMENTS {
                            c.seal(Some(n / 2))
                        } else {
                            Ok(())
                        }
                    });
                    *c.seal_error.lock().unwrap_or_else(PoisonError::into_inner) =
                        r.err().map(|e| e.to_string());
                    c.seal_pending.store(false, std::sync::atomic::Ordering::Release);
                }
            });
        }
    }

    /// The error of the last background seal, if it failed (its points are still served from
    /// memory and kept by the log; the next seal retries).
    pub fn last_seal_error(&self) -> Option<String> {
        self.seal_error.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Opens the log file at `path` through the opener (or as a plain file).
    fn open_store(&self, path: &Path) -> std::io::Result<Box<dyn quarry_store::LogStore>> {
        match &self.opener {
            Some(Opener(open)) => open(path),
            None => {
                let f = std::fs::OpenOptions::new().read(true).write(true).open(path)?;
                Ok(Box::new(f))
            }
        }
    }

    fn write_state(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(PoisonError::into_inner)
    }

    fn read_state(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// The collection's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The collection's folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The collection's schema.
    pub fn schema(&self) -> &CollectionSchema {
        &self.schema
    }

    /// The present points of `ids` with the payload `new_payload` makes from each old one (points
    /// it answers `None` for are left out), vectors included, ready to be upserted again: a
    /// changed point moves to a new slot (its old one dies), so payload indexes and sealed
    /// segments stay append-only.
    fn repayloaded(
        &self,
        st: &State,
        ids: &[PointId],
        new_payload: impl Fn(&Map<String, Value>) -> Option<Map<String, Value>>,
    ) -> Vec<Point> {
        ids.iter()
            .filter_map(|&id| {
                let slot = *st.slot_of.get(&id)? as usize;
                let payload = new_payload(&st.payloads[slot])?;
                Some(Point { id, vectors: gather_rows(&self.schema, st, &[slot as u32]), payload })
            })
            .collect()
    }

    fn apply(&self, st: &mut State, op: Op) {
        match op {
            Op::Upsert(points) => {
                for p in points {
                    if let Some(old) = st.slot_of.get(&p.id).copied() {
                        st.live[old as usize] = false;
                        st.dead_sealed += usize::from(old < st.sealed_end);
                    }
                    let slot = st.ids.len() as u32;
                    for (f, v) in p.vectors.iter().enumerate() {
                        let inv = if self.metrics[f] == Metric::Cosine {
                            1.0 / v.iter().map(|x| x * x).sum::<f32>().sqrt()
                        } else {
                            1.0
                        };
                        st.vectors[f].extend_from_slice(v);
                        st.inv_norms[f].push(inv);
                    }
                    st.slot_of.insert(p.id, slot);
                    st.ids.push(p.id);
                    st.live.push(true);
                    st.pidx.add(slot, &p.payload);
                    st.payloads.push(p.payload);
                }
            }
            Op::SetPayload { ids, payload, overwrite } => {
                let changed = self.repayloaded(st, &ids, |old| {
                    Some(crate::point::updated_payload(old, &payload, overwrite))
                });
                self.apply(st, Op::Upsert(changed));
            }
            Op::DeletePayloadKeys { ids, keys } => {
                // Only points that hold one of the keys change.
                let changed = self.repayloaded(st, &ids, |old| {
                    keys.iter().any(|k| old.contains_key(k)).then(|| {
                        let mut p = old.clone();
                        keys.iter().for_each(|k| {
                            p.remove(k);
                        });
                        p
                    })
                });
                self.apply(st, Op::Upsert(changed));
            }
            Op::Delete(ids) => {
                for id in ids {
                    if let Some(slot) = st.slot_of.remove(&id) {
                        st.live[slot as usize] = false;
                        st.dead_sealed += usize::from(slot < st.sealed_end);
                    }
                }
            }
        }
    }

    /// Logs `op` durably, then applies it; returns after both. Seals the unsealed points into a
    /// graph segment when there are enough of them.
    ///
    /// Group commit: a writer queues its operation, then whoever holds the log's lock appends
    /// every queued operation with one write and one fsync and applies them in order; a writer
    /// whose operation a previous holder already committed returns its outcome without waiting
    /// for another fsync.
    fn commit(&self, op: Op) -> Result<()> {
        let ticket: Ticket = std::sync::Arc::new(Mutex::new(None));
        self.queue.lock().unwrap_or_else(PoisonError::into_inner).push((op, ticket.clone()));
        let outcome = |t: &Ticket| t.lock().unwrap_or_else(PoisonError::into_inner).take();
        let unsealed = loop {
            if let Some(r) = outcome(&ticket) {
                r?;
                break {
                    let st = self.read_state();
                    st.ids.len() - st.sealed_end as usize
                };
            }
            let mut wal = self.wal.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(r) = outcome(&ticket) {
                drop(wal);
                r?;
                break {
                    let st = self.read_state();
                    st.ids.len() - st.sealed_end as usize
                };
            }
            let batch = std::mem::take(&mut *self.queue.lock().unwrap_or_else(PoisonError::into_inner));
            let encoded: Vec<Vec<u8>> = batch.iter().map(|(op, _)| op.encode()).collect();
            let refs: Vec<&[u8]> = encoded.iter().map(Vec::as_slice).collect();
            match wal.append(&refs) {
                Ok(_) => {
                    let mut st = self.write_state();
                    for (op, t) in batch {
                        self.apply(&mut st, op);
                        *t.lock().unwrap_or_else(PoisonError::into_inner) = Some(Ok(()));
                    }
                }
                Err(e) => {
                    for (_, t) in &batch {
                        *t.lock().unwrap_or_else(PoisonError::into_inner) = Some(Err(e.replicate()));
                    }
                }
            }
        };
        self.seal_in_background_if(unsealed);
        Ok(())
    }

    /// Writes a consistent snapshot of the collection to one file (spec: docs/FORMAT.md,
    /// "Collection snapshot"), crash-safely, while writes continue: the schema and a log that
    /// re-creates every point present at the moment of the call (one upsert record per 1,024
    /// points, in slot order). The points are copied under the log's lock (a memory copy; writers
    /// wait only for that), then encoded and written without it. Returns the log bytes written.
    pub fn snapshot(&self, path: &Path) -> Result<u64> {
        let (ids, payloads, vectors) = {
            let wal = self.wal.lock().unwrap_or_else(PoisonError::into_inner);
            let st = self.read_state();
            drop(wal);
            let slots: Vec<u32> = (0..st.ids.len() as u32).filter(|&s| st.live[s as usize]).collect();
            let ids: Vec<PointId> = slots.iter().map(|&s| st.ids[s as usize]).collect();
            let payloads: Vec<Map<String, Value>> =
                slots.iter().map(|&s| st.payloads[s as usize].clone()).collect();
            let vectors = gather_rows(&self.schema, &st, &slots);
            (ids, payloads, vectors)
        };
        let dims: Vec<usize> = self.schema.vectors.iter().map(|f| f.dim).collect();
        let records: Vec<Vec<u8>> = (0..ids.len())
            .step_by(1024)
            .map(|start| {
                let end = (start + 1024).min(ids.len());
                let mut out = vec![1u8];
                out.extend_from_slice(&((end - start) as u32).to_le_bytes());
                for row in start..end {
                    let vs: Vec<&[f32]> =
                        dims.iter().enumerate().map(|(f, &d)| &vectors[f][row * d..(row + 1) * d]).collect();
                    crate::point::put_point(&mut out, ids[row], &vs, &payloads[row]);
                }
                out
            })
            .collect();
        let log = quarry_store::wal::encode_log(&records)?;
        let end = log.len() as u64;
        let schema =
            serde_json::to_vec(&self.current_schema()).map_err(|e| Error::InvalidArgument(e.to_string()))?;
        let mut out = Vec::with_capacity(32 + schema.len() + log.len());
        out.extend_from_slice(&SNAPSHOT_MAGIC);
        out.extend_from_slice(&SNAPSHOT_VERSION.to_le_bytes());
        out.extend_from_slice(&(schema.len() as u64).to_le_bytes());
        out.extend_from_slice(&schema);
        out.extend_from_slice(&end.to_le_bytes());
        out.extend_from_slice(&log);
        let crc = quarry_store::checksum(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        quarry_store::write_atomic(path, |w| std::io::Write::write_all(w, &out))?;
        Ok(end)
    }

    /// Waits until no background seal is scheduled or running.
    pub fn wait_for_sealing(&self) {
        while self.seal_pending.load(std::sync::atomic::Ordering::Acquire) {
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        drop(self.sealing.lock().unwrap_or_else(PoisonError::into_inner));
    }

    /// Builds a graph segment over the unsealed live points (`merge_from: Some(i)`: over the live
    /// points of segments `i..` and the unsealed ones, replacing those segments; `Some(0)` merges
    /// everything), writes it to disk with a new manifest (a checkpoint), then drops
    /// the log records the manifest covers. The graphs are built and written without holding the
    /// state lock, so reads and writes go on meanwhile; points written during the build stay
    /// unsealed (their records stay in the log).
    ///
    /// Crash safety: the segment folder is complete and fsynced before the manifest names it;
    /// the manifest is replaced atomically; the log is cut only after that, and opening skips
    /// records the manifest already covers, so a crash at any step loses nothing.
    fn seal(&self, merge_from: Option<usize>) -> Result<()> {
        let _one = self.sealing.lock().unwrap_or_else(PoisonError::into_inner);
        // Capture under the log's lock: `seq` is the last record whose effects are in the state.
        let (seq, keep, from, to, slots, ids, payloads, vectors, dead) = {
            let wal = self.wal.lock().unwrap_or_else(PoisonError::into_inner);
            let st = self.read_state();
            let seq = wal.next_seq() - 1;
            drop(wal);
            // Segments `keep..` are replaced; they are consecutive runs ending at `sealed_end`.
            let keep = merge_from.unwrap_or(st.segments.len()).min(st.segments.len());
            let from = st.segments.get(keep).and_then(|s| s.slots.first().copied()).unwrap_or(st.sealed_end);
            let to = st.ids.len() as u32;
            let slots: Vec<u32> = (from..to).filter(|&s| st.live[s as usize]).collect();
            let ids: Vec<PointId> = slots.iter().map(|&s| st.ids[s as usize]).collect();
            let payloads: Vec<Map<String, Value>> =
                slots.iter().map(|&s| st.payloads[s as usize].clone()).collect();
            let vectors = gather_rows(&self.schema, &st, &slots);
            // Tombstones of the segments that stay (rows dead at `seq`).
            let dead: Vec<Vec<u32>> = st.segments[..keep]
                .iter()
                .map(|seg| {
                    (0..seg.slots.len() as u32)
                        .filter(|&r| !st.live[seg.slots[r as usize] as usize])
                        .collect()
                })
                .collect();
            (seq, keep, from, to, slots, ids, payloads, vectors, dead)
        };
        if merge_from.is_none() && slots.is_empty() {
            return Ok(());
        }
        let dims: Vec<usize> = self.schema.vectors.iter().map(|f| f.dim).collect();
        // Frequent payload values get their own graphs (schema `payload_graphs`).
        let mut groups = Vec::new();
        if self.schema.payload_graphs && !slots.is_empty() {
            let st = self.read_state();
            for key in &st.pidx.keys() {
                for (value, all) in st.pidx.value_groups(key) {
                    let mine: Vec<u32> =
                        all.into_iter().filter(|&s| s >= from && s < to && st.live[s as usize]).collect();
                    if mine.len() >= crate::segment::Segment::SUB_MIN && mine.len() < slots.len() {
                        let vecs = gather_rows(&self.schema, &st, &mine);
                        groups.push(((key.clone(), value), mine, vecs));
                    }
                }
            }
        }
        let mut manifest = self.manifest.lock().unwrap_or_else(PoisonError::into_inner).clone();
        let seg = if slots.is_empty() {
            None
        } else {
            let mut seg =
                crate::segment::Segment::build(slots, vectors.clone(), &dims, &self.metrics, &self.kinds)?;
            seg.attach_codes(&vectors, &dims, &self.metrics)?;
            for (k, mine, vecs) in groups {
                seg.subs.insert(
                    k,
                    crate::segment::Segment::build(mine, vecs, &dims, &self.metrics, &self.kinds)?,
                );
            }
            seg.id = manifest.next_segment;
            crate::segment_file::save(&self.dir, seg.id, &seg, &ids, &vectors, &dims, &payloads)?;
            Some(std::sync::Arc::new(seg))
        };
        drop((ids, payloads, vectors));
        // The checkpoint: the new manifest names the segments and their tombstones at `seq`.
        manifest.generation += 1;
        manifest.checkpoint_seq = seq;
        manifest.segments.truncate(keep);
        for (e, d) in manifest.segments.iter_mut().zip(dead) {
            e.dead = d;
        }
        if let Some(seg) = &seg {
            manifest.next_segment = seg.id + 1;
            manifest.segments.push(crate::manifest::SegmentEntry {
                id: seg.id,
                points: seg.slots.len() as u64,
                dead: Vec::new(),
            });
        }
        manifest.save(&self.dir)?;
        *self.manifest.lock().unwrap_or_else(PoisonError::into_inner) = manifest.clone();
        {
            let mut st = self.write_state();
            st.segments.truncate(keep);
            if let Some(seg) = seg {
                st.segments.push(seg);
            }
            st.sealed_end = to;
            st.dead_sealed = dead_in_segments(&st);
        }
        // Records up to `seq` are now in the segments: drop them from the log.
        {
            let mut wal = self.wal.lock().unwrap_or_else(PoisonError::into_inner);
            wal.truncate_before(seq + 1, &|p| self.open_store(p))?;
        }
        let keep: Vec<u64> = manifest.segments.iter().map(|s| s.id).collect();
        crate::segment_file::remove_unnamed(&self.dir, &keep)
    }

    /// Builds one graph segment over every live point (merging earlier segments), so searches
    /// use a single graph. Blocks until built; reads and writes continue meanwhile.
    pub fn optimize(&self) -> Result<()> {
        self.seal(Some(0))
    }

    /// Number of sealed graph segments.
    pub fn segment_count(&self) -> usize {
        self.read_state().segments.len()
    }

    /// Inserts or replaces `points` as one durable batch. Every point is checked first (dimension,
    /// finite values, payload size); one bad point rejects the batch and nothing is written.
    pub fn upsert(&self, points: Vec<Point>) -> Result<usize> {
        for p in &points {
            p.check(&self.schema)?;
        }
        let n = points.len();
        if n > 0 {
            self.commit(Op::Upsert(points))?;
        }
        Ok(n)
    }

    /// Deletes `ids` durably; returns how many existed.
    pub fn delete(&self, ids: &[PointId]) -> Result<usize> {
        let present = {
            let st = self.read_state();
            ids.iter().filter(|id| st.slot_of.contains_key(id)).count()
        };
        if !ids.is_empty() {
            self.commit(Op::Delete(ids.to_vec()))?;
        }
        Ok(present)
    }

    /// Sets payload keys of the points `ids` durably (merged into each payload, or replacing it
    /// whole with `overwrite`); returns how many exist. A result over the collection's payload
    /// limit rejects the call and nothing is written.
    pub fn set_payload(
        &self,
        ids: &[PointId],
        payload: Map<String, Value>,
        overwrite: bool,
    ) -> Result<usize> {
        let present = {
            let st = self.read_state();
            let mut present = 0;
            for id in ids {
                let Some(&slot) = st.slot_of.get(id) else { continue };
                present += 1;
                let p = crate::point::updated_payload(&st.payloads[slot as usize], &payload, overwrite);
                crate::point::check_payload_size(*id, &p, self.schema.max_payload_bytes)?;
            }
            present
        };
        if !ids.is_empty() {
            self.commit(Op::SetPayload { ids: ids.to_vec(), payload, overwrite })?;
        }
        Ok(present)
    }

    /// Removes payload `keys` from the points `ids` durably, in one logged operation; returns
    /// how many of the points held at least one of the keys when the call began.
    pub fn delete_payload_keys(&self, ids: &[PointId], keys: &[String]) -> Result<usize> {
        let holding = {
            let st = self.read_state();
            ids.iter()
                .filter_map(|id| st.slot_of.get(id))
                .filter(|&&slot| keys.iter().any(|k| st.payloads[slot as usize].contains_key(k)))
                .count()
        };
        if holding > 0 {
            self.commit(Op::DeletePayloadKeys { ids: ids.to_vec(), keys: keys.to_vec() })?;
        }
        Ok(holding)
    }

    /// Sets payload keys of every point passing `filter` ([`Collection::set_payload`]).
    pub fn set_payload_by_filter(
        &self,
        filter: &Filter,
        payload: Map<String, Value>,
        overwrite: bool,
    ) -> Result<usize> {
        let ids: Vec<PointId> = {
            let st = self.read_state();
            matching(&st, filter, 0).map(|s| st.ids[s as usize]).collect()
        };
        self.set_payload(&ids, payload, overwrite)
    }

    /// Answers several queries ([`Collection::search_with`] each), in parallel on the rayon pool;
    /// one result list per query, in order. Any bad query fails the whole call.
    pub fn search_batch(
        &self,
        queries: &[Vec<f32>],
        field: Option<&str>,
        k: usize,
        filter: Option<&Filter>,
        opts: &SearchOptions,
    ) -> Result<Vec<Vec<ScoredPoint>>> {
        use rayon::prelude::*;
        queries.par_iter().map(|q| self.search_with(q, field, k, filter, opts)).collect()
    }

    /// Deletes every point passing `filter` durably; returns how many.
    pub fn delete_by_filter(&self, filter: &Filter) -> Result<usize> {
        let ids: Vec<PointId> = {
            let st = self.read_state();
            matching(&st, filter, 0).map(|s| st.ids[s as usize]).collect()
        };
        self.delete(&ids)
    }

    /// The point with `id`, if present.
    pub fn get(&self, id: PointId) -> Option<Point> {
        let st = self.read_state();
        let slot = *st.slot_of.get(&id)? as usize;
        let vectors = gather_rows(&self.schema, &st, &[slot as u32]);
        Some(Point { id, vectors, payload: st.payloads[slot].clone() })
    }

    /// The payload of the point with `id`, if present (no vector copies).
    pub fn payload(&self, id: PointId) -> Option<Map<String, Value>> {
        let st = self.read_state();
        st.slot_of.get(&id).map(|&s| st.payloads[s as usize].clone())
    }

    /// Number of points (passing `filter`, if given).
    pub fn count(&self, filter: Option<&Filter>) -> usize {
        let st = self.read_state();
        match filter {
            None => st.slot_of.len(),
            Some(f) => matching(&st, f, 0).count(),
        }
    }

    /// Ids of the points passing `filter` (through the payload indexes where they answer).
    pub fn matching_ids(&self, filter: &Filter) -> Vec<PointId> {
        let st = self.read_state();
        matching(&st, filter, 0).map(|s| st.ids[s as usize]).collect()
    }

    /// Calls `f` with every point's id and payload (under the read lock: `f` must not call back
    /// into this collection).
    pub fn for_each_payload(&self, mut f: impl FnMut(PointId, &Map<String, Value>)) {
        let st = self.read_state();
        for (&id, &slot) in &st.slot_of {
            f(id, &st.payloads[slot as usize]);
        }
    }

    /// The schema as it stands now: [`Collection::schema`] with the payload indexes created or
    /// dropped since the collection was opened.
    pub fn current_schema(&self) -> CollectionSchema {
        let mut s = self.schema.clone();
        s.payload_indexes = self.read_state().pidx.keys();
        s
    }

    /// The payload keys with an index, sorted.
    pub fn payload_indexes(&self) -> Vec<String> {
        self.read_state().pidx.keys()
    }

    /// For an indexed payload `key`: the type of the first non-null value it indexed (`bool`,
    /// `integer`, `float` or `keyword`; `None` before any) and how many live points hold a
    /// non-null value. Read from the index (no payload is parsed); `None` if `key` has no index.
    pub fn payload_index_info(&self, key: &str) -> Option<(Option<&'static str>, usize)> {
        let st = self.read_state();
        st.pidx.info(key, &st.live)
    }

    /// Starts indexing payload key `key` (a dotted path): the index is built over the stored
    /// points and recorded in `schema.json` (crash-safely) before this returns; `false` if the key
    /// was already indexed.
    pub fn create_payload_index(&self, key: &str) -> Result<bool> {
        check_payload_key(key)?;
        let mut st = self.write_state();
        let mut keys = st.pidx.keys();
        if keys.iter().any(|k| k == key) {
            return Ok(false);
        }
        keys.push(key.to_string());
        keys.sort();
        let mut schema = self.schema.clone();
        schema.payload_indexes = keys;
        schema.save(&self.dir)?;
        let State { pidx, payloads, .. } = &mut *st;
        pidx.add_key(key, payloads);
        Ok(true)
    }

    /// Stops indexing payload key `key` (recorded in `schema.json`); `false` if it was not indexed.
    pub fn delete_payload_index(&self, key: &str) -> Result<bool> {
        let mut st = self.write_state();
        let mut keys = st.pidx.keys();
        let before = keys.len();
        keys.retain(|k| k != key);
        if keys.len() == before {
            return Ok(false);
        }
        let mut schema = self.schema.clone();
        schema.payload_indexes = keys;
        schema.save(&self.dir)?;
        st.pidx.remove_key(key);
        Ok(true)
    }

    /// Forces every acknowledged write to stable storage (a collection with `fsync: false`
    /// acknowledges writes once the OS has them; call this before a clean shutdown).
    pub fn flush(&self) -> Result<()> {
        self.wal.lock().unwrap_or_else(PoisonError::into_inner).sync()
    }

    /// Up to `limit` points in id order from `start` (inclusive; `None`: the first), passing
    /// `filter`, and the id the next page starts at (Qdrant's `next_page_offset`). Vectors are
    /// copied only `with_vectors`.
    pub fn scroll_from(
        &self,
        start: Option<PointId>,
        limit: usize,
        filter: Option<&Filter>,
        with_vectors: bool,
    ) -> (Vec<Point>, Option<PointId>) {
        let st = self.read_state();
        let mut ids: Vec<(PointId, u32)> = match filter {
            Some(f) => matching(&st, f, 0)
                .map(|s| (st.ids[s as usize], s))
                .filter(|(id, _)| start.is_none_or(|a| *id >= a))
                .collect(),
            None => st
                .slot_of
                .iter()
                .filter(|(id, _)| start.is_none_or(|a| **id >= a))
                .map(|(id, &s)| (*id, s))
                .collect(),
        };
        let next = if ids.len() > limit {
            ids.select_nth_unstable_by_key(limit, |p| p.0);
            let next = ids[limit].0;
            ids.truncate(limit);
            Some(next)
        } else {
            None
        };
        ids.sort_unstable_by_key(|p| p.0);
        let page = ids
            .into_iter()
            .map(|(id, slot)| Point {
                id,
                vectors: if with_vectors { gather_rows(&self.schema, &st, &[slot]) } else { Vec::new() },
                payload: st.payloads[slot as usize].clone(),
            })
            .collect();
        (page, next)
    }

    /// Up to `limit` points in id order after `after` (exclusive), and the cursor for the next page.
    pub fn scroll(
        &self,
        after: Option<PointId>,
        limit: usize,
        filter: Option<&Filter>,
    ) -> (Vec<Point>, Option<PointId>) {
        let mut ids: Vec<PointId> = {
            let st = self.read_state();
            st.slot_of
                .iter()
                .filter(|(id, &s)| {
                    after.is_none_or(|a| **id > a)
                        && filter.is_none_or(|f| f.matches(**id, &st.payloads[s as usize]))
                })
                .map(|(id, _)| *id)
                .collect()
        };
        ids.sort_unstable();
        let next = if ids.len() > limit { Some(ids[limit - 1]) } else { None };
        let page = ids.into_iter().take(limit).filter_map(|id| self.get(id)).collect();
        (page, next.filter(|_| limit > 0))
    }

    /// The `k` most similar points to `query` in vector field `field` (`None`: the only field),
    /// among those passing `filter`, with the default graph beam ([`DEFAULT_EF`]).
    pub fn search(
        &self,
        query: &[f32],
        field: Option<&str>,
        k: usize,
        filter: Option<&Filter>,
    ) -> Result<Vec<ScoredPoint>> {
        self.search_ef(query, field, k, filter, DEFAULT_EF)
    }

    /// [`Collection::search`] with graph beam `ef`: sealed segments are searched through their
    /// graphs (admitting live points that pass the filter), the unsealed points exactly.
    pub fn search_ef(
        &self,
        query: &[f32],
        field: Option<&str>,
        k: usize,
        filter: Option<&Filter>,
        ef: usize,
    ) -> Result<Vec<ScoredPoint>> {
        self.search_with(query, field, k, filter, &SearchOptions { ef, with_payload: true })
    }

    /// [`Collection::search`] with options (graph beam, whether hits carry their payloads).
    pub fn search_with(
        &self,
        query: &[f32],
        field: Option<&str>,
        k: usize,
        filter: Option<&Filter>,
        opts: &SearchOptions,
    ) -> Result<Vec<ScoredPoint>> {
        let ef = opts.ef;
        let f = self.schema.field(field)?;
        let spec = &self.schema.vectors[f];
        crate::point::check_vector(query, spec.dim, &format!("query for {}", spec.label()))?;
        let metric = self.metrics[f];
        let mut q = query.to_vec();
        if metric == Metric::Cosine {
            let norm = q.iter().map(|x| x * x).sum::<f32>().sqrt();
            if norm == 0.0 {
                return Err(Error::ZeroVector { what: "query".into() });
            }
            q.iter_mut().for_each(|x| *x /= norm);
        }
        let kern = Kernels::get();
        let st = self.read_state();
        let mut top = TopK::new(k);
        let dim = spec.dim;
        // Exact key (lower is better) of a slot's vector, and offering a key to the top k.
        let exact = |slot: usize| -> f32 {
            let x = &st.vectors[f][slot * dim..(slot + 1) * dim];
            match metric {
                Metric::L2 => (kern.l2_sq)(&q, x),
                _ => -(kern.dot)(&q, x) * st.inv_norms[f][slot],
            }
        };
        let offer = |top: &mut TopK, key: f32, slot: u32| {
            if key <= top.threshold() {
                top.push(key, slot);
            }
        };
        // Offers a graph's answers: as scored, or (a graph on f16 rows) re-scored exactly from
        // the f32 rows, each prefetched before the scoring starts.
        let offer_graph = |top: &mut TopK, hits: Vec<(f32, u32)>, approx: bool| {
            if !approx {
                for (score, slot) in hits {
                    offer(top, -score, slot);
                }
                return;
            }
            for &(_, slot) in &hits {
                prefetch(&st.vectors[f][slot as usize * dim..(slot as usize + 1) * dim]);
            }
            for (_, slot) in hits {
                offer(top, exact(slot as usize), slot);
            }
        };
        if !st.segments.is_empty() && k > 0 {
            let single = filter
                .and_then(|fl| fl.single_match())
                .and_then(|(k, v)| Some((k.to_string(), crate::payload_index::Key::of(v)?)));
            // Admitted slots (filter and liveness), once, split per segment below.
            let all_have_sub =
                st.segments.iter().all(|seg| single.as_ref().is_some_and(|key| seg.subs.contains_key(key)));
            let admitted: Option<Vec<u32>> = match filter {
                _ if all_have_sub => None, // every segment answers from its value graph
                Some(fl) => Some(matching(&st, fl, 0).collect()),
                None if st.dead_sealed > 0 => {
                    Some((0..st.sealed_end).filter(|&s| st.live[s as usize]).collect())
                }
                None => None,
            };
            for seg in &st.segments {
                let flat = matches!(seg.graphs[f], crate::segment::Graph::Flat(_));
                if let Some(sub) = single.as_ref().and_then(|k| seg.subs.get(k)).filter(|_| !flat) {
                    // The value's own graph: only liveness is left to filter.
                    let live = (st.dead_sealed > 0).then(|| {
                        IdFilter::from_ids(
                            (0..sub.slots.len() as u32).filter(|&l| st.live[sub.slots[l as usize] as usize]),
                        )
                    });
                    let hits = sub.search(f, query, k, ef, live.as_ref())?.unwrap_or_default();
                    offer_graph(&mut top, hits, sub.graphs[f].approx_scores());
                    continue;
                }
                let local: Vec<u32> = match &admitted {
                    None if !flat => {
                        let hits = seg.search(f, query, k, ef, None)?.unwrap_or_default();
                        offer_graph(&mut top, hits, seg.graphs[f].approx_scores());
                        continue;
                    }
                    // No filter and no deletes: every row (a flat field scans them all).
                    None => (0..seg.slots.len() as u32).collect(),
                    Some(adm) => adm.iter().filter_map(|&s| seg.local(s)).collect(),
                };
                if let (true, Some(codes)) =
                    (!flat && local.len() <= EXACT_MAX_ADMITTED, seg.codes.get(f).and_then(Option::as_ref))
                {
                    // Few admitted points: scan their SQ8 codes (a quarter of the f32 bytes; each
                    // prefetched a few rows ahead), then re-score the best few exactly.
                    const AHEAD: usize = 8;
                    let est = quarry_quant::Quantizer::estimator(&codes.sq, &q);
                    let mut pre = TopK::new(k * RESCORE_FACTOR + RESCORE_EXTRA);
                    for (i, &l) in local.iter().enumerate() {
                        if let Some(&next) = local.get(i + AHEAD) {
                            prefetch(codes.code(next));
                        }
                        let key = quarry_quant::Estimator::key(&est, codes.code(l));
                        if key <= pre.threshold() {
                            pre.push(key, l);
                        }
                    }
                    for (_, l) in pre.into_sorted() {
                        let slot = seg.slots[l as usize];
                        offer(&mut top, exact(slot as usize), slot);
                    }
                    continue;
                }
                if flat || local.len() <= EXACT_MAX_ADMITTED {
                    // Few admitted points (or a flat field): an exact scan of them beats a filtered
                    // graph walk. The rows are scattered, so each is prefetched a few rows ahead.
                    const AHEAD: usize = 4;
                    let row_of = |i: usize| seg.slots[local[i] as usize] as usize;
                    for i in 0..local.len().min(AHEAD) {
                        prefetch(&st.vectors[f][row_of(i) * dim..(row_of(i) + 1) * dim]);
                    }
                    for i in 0..local.len() {
                        if i + AHEAD < local.len() {
                            let r = row_of(i + AHEAD);
                            prefetch(&st.vectors[f][r * dim..(r + 1) * dim]);
                        }
                        let slot = row_of(i);
                        offer(&mut top, exact(slot), slot as u32);
                    }
                    continue;
                }
                let admit = IdFilter::from_ids(local);
                let hits = seg.search(f, query, k, ef, Some(&admit))?.unwrap_or_default();
                offer_graph(&mut top, hits, seg.graphs[f].approx_scores());
            }
        }
        let sealed_end = st.sealed_end;
        let slots: Box<dyn Iterator<Item = u32>> = match filter {
            Some(fl) => Box::new(matching(&st, fl, sealed_end)),
            None => Box::new((sealed_end..st.ids.len() as u32).filter(|&s| st.live[s as usize])),
        };
        for slot in slots {
            offer(&mut top, exact(slot as usize), slot);
        }
        Ok(top
            .into_sorted()
            .into_iter()
            .map(|(key, slot)| ScoredPoint {
                id: st.ids[slot as usize],
                score: -key,
                payload: if opts.with_payload { st.payloads[slot as usize].clone() } else { Map::new() },
            })
            .collect())
    }
}
