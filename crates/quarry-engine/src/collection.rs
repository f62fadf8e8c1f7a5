//! A collection: its schema, its write-ahead log and the points in memory (the mutable segment,
//! searched by exact scan). A write is validated whole, logged (and fsynced, by default), then
//! applied under the log's lock, so the in-memory order is the log order and a write is visible to
//! every read that starts after it is acknowledged. Opening replays the log.
//!
//! Not yet (issue 6, next steps): sealing into immutable indexed segments with a manifest, payload
//! indexes, snapshots, group commit across concurrent writers.

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
type Ticket = std::sync::Arc<Mutex<Option<std::result::Result<(), String>>>>;

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

/// Asks the CPU to start loading every cache line of `row`.
#[inline]
fn prefetch_row(row: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    for line in row.chunks(16) {
        // SAFETY: prefetching is a hint; the pointer is valid (it is in `row`).
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(line.as_ptr().cast())
        };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = row;
}

/// Live slots passing `filter`: index candidates (if an indexed key is in its `must` clause)
/// or every slot, each checked against the whole filter.
fn matching<'a>(st: &'a State, filter: &'a Filter) -> Box<dyn Iterator<Item = u32> + 'a> {
    match st.pidx.candidates(filter) {
        // The index answered every condition: only liveness is left to check.
        Some((c, true)) => Box::new(c.into_iter().filter(move |&s| st.live[s as usize])),
        Some((c, false)) => Box::new(c.into_iter().filter(move |&s| {
            st.live[s as usize] && filter.matches(st.ids[s as usize], &st.payloads[s as usize])
        })),
        None => Box::new((0..st.ids.len() as u32).filter(move |&s| {
            st.live[s as usize] && filter.matches(st.ids[s as usize], &st.payloads[s as usize])
        })),
    }
}

/// A collection of points with a schema.
#[derive(Debug)]
pub struct Collection {
    name: String,
    dir: PathBuf,
    schema: CollectionSchema,
    metrics: Vec<Metric>,
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
}

/// Opens a collection's log file (the default opens the real file; tests inject faults).
pub type StoreOpener =
    std::sync::Arc<dyn Fn(&Path) -> std::io::Result<Box<dyn quarry_store::LogStore>> + Send + Sync>;

/// Magic of a collection snapshot file.
pub const SNAPSHOT_MAGIC: [u8; 8] = *b"QRYSNAP\0";
/// Version of the snapshot format.
pub const SNAPSHOT_VERSION: u32 = 1;

/// Reads a snapshot file: the schema and the log bytes, after checking magic, version, lengths
/// and the checksum (errors name the problem).
pub(crate) fn read_snapshot(path: &Path) -> Result<(CollectionSchema, Vec<u8>)> {
    let b = std::fs::read(path).map_err(|e| Error::io("reading", path, e))?;
    let bad = |m: &str| Error::malformed(path, "snapshot", m.to_string());
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
            state,
            wal: Mutex::new(wal),
            sealing: Mutex::new(()),
            queue: Mutex::new(Vec::new()),
            seal_pending: std::sync::atomic::AtomicBool::new(false),
            me: me.clone(),
        });
        {
            let mut st = c.write_state();
            for (seq, payload) in records {
                let op = Op::decode(&payload).map_err(|e| {
                    Error::malformed(dir.join(WAL_FILE), format!("record {seq}"), e.to_string())
                })?;
                c.apply(&mut st, op);
            }
        }
        Ok(c)
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
                r.map_err(Error::InvalidArgument)?;
                break {
                    let st = self.read_state();
                    st.ids.len() - st.sealed_end as usize
                };
            }
            let mut wal = self.wal.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(r) = outcome(&ticket) {
                drop(wal);
                r.map_err(Error::InvalidArgument)?;
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
                    let msg = e.to_string();
                    for (_, t) in &batch {
                        *t.lock().unwrap_or_else(PoisonError::into_inner) = Some(Err(msg.clone()));
                    }
                }
            }
        };
        let t = self.schema.seal_threshold;
        if t > 0 && unsealed >= t && !self.seal_pending.swap(true, std::sync::atomic::Ordering::AcqRel) {
            // Build the graph in the background: the write is acknowledged now.
            let me = self.me.clone();
            std::thread::spawn(move || {
                if let Some(c) = me.upgrade() {
                    let _ = c.seal(false);
                    c.seal_pending.store(false, std::sync::atomic::Ordering::Release);
                }
            });
        }
        Ok(())
    }

    /// Writes a consistent snapshot of the collection to one file (spec: docs/FORMAT.md,
    /// "Collection snapshot"), crash-safely, while writes continue: the schema and the log up to
    /// the last acknowledged record at the moment of the call (the log is append-only, so that
    /// prefix never changes). Returns the number of log bytes captured.
    pub fn snapshot(&self, path: &Path) -> Result<u64> {
        let (end, wal_path) = {
            let wal = self.wal.lock().unwrap_or_else(PoisonError::into_inner);
            (wal.len_bytes(), wal.path().to_path_buf())
        };
        let mut log = vec![0u8; end as usize];
        let f = std::fs::File::open(&wal_path).map_err(|e| Error::io("opening", &wal_path, e))?;
        std::io::Read::read_exact(&mut std::io::Read::take(f, end), &mut log)
            .map_err(|e| Error::io("reading", &wal_path, e))?;
        let schema = serde_json::to_vec(&self.schema).map_err(|e| Error::InvalidArgument(e.to_string()))?;
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

    /// Builds a graph segment over the unsealed live points (`merge`: over every live point,
    /// replacing all segments). The graphs are built without holding the state lock, so reads and
    /// writes go on meanwhile; points written during the build stay unsealed.
    fn seal(&self, merge: bool) -> Result<()> {
        let _one = self.sealing.lock().unwrap_or_else(PoisonError::into_inner);
        let (from, to, slots, vectors) = {
            let st = self.read_state();
            let from = if merge { 0 } else { st.sealed_end };
            let to = st.ids.len() as u32;
            let slots: Vec<u32> = (from..to).filter(|&s| st.live[s as usize]).collect();
            let vectors: Vec<Vec<f32>> = self
                .schema
                .vectors
                .iter()
                .enumerate()
                .map(|(f, field)| {
                    let mut v = Vec::with_capacity(slots.len() * field.dim);
                    for &s in &slots {
                        v.extend_from_slice(
                            &st.vectors[f][s as usize * field.dim..(s as usize + 1) * field.dim],
                        );
                    }
                    v
                })
                .collect();
            (from, to, slots, vectors)
        };
        if to == from || slots.is_empty() && !merge {
            return Ok(());
        }
        let dims: Vec<usize> = self.schema.vectors.iter().map(|f| f.dim).collect();
        // Frequent payload values get their own graphs (schema `payload_graphs`).
        let mut groups = Vec::new();
        if self.schema.payload_graphs {
            let st = self.read_state();
            for key in &self.schema.payload_indexes {
                for (value, all) in st.pidx.value_groups(key) {
                    let mine: Vec<u32> =
                        all.into_iter().filter(|&s| s >= from && s < to && st.live[s as usize]).collect();
                    if mine.len() >= crate::segment::Segment::SUB_MIN && mine.len() < slots.len() {
                        let vecs: Vec<Vec<f32>> = dims
                            .iter()
                            .enumerate()
                            .map(|(f, &d)| {
                                mine.iter()
                                    .flat_map(|&s| {
                                        st.vectors[f][s as usize * d..(s as usize + 1) * d].iter().copied()
                                    })
                                    .collect()
                            })
                            .collect();
                        groups.push(((key.clone(), value), mine, vecs));
                    }
                }
            }
        }
        let mut seg = crate::segment::Segment::build(slots, vectors, &dims, &self.metrics)?;
        for (k, mine, vecs) in groups {
            seg.subs.insert(k, crate::segment::Segment::build(mine, vecs, &dims, &self.metrics)?);
        }
        let seg = std::sync::Arc::new(seg);
        let mut st = self.write_state();
        // Slots that died during the build are caught by the liveness filter.
        let died = seg.slots.iter().filter(|&&s| !st.live[s as usize]).count();
        if merge {
            st.segments = vec![seg];
            st.dead_sealed = died;
        } else {
            st.segments.push(seg);
            st.dead_sealed += died;
        }
        st.sealed_end = to;
        Ok(())
    }

    /// Builds one graph segment over every live point (merging earlier segments), so searches
    /// use a single graph. Blocks until built; reads and writes continue meanwhile.
    pub fn optimize(&self) -> Result<()> {
        self.seal(true)
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

    /// Deletes every point passing `filter` durably; returns how many.
    pub fn delete_by_filter(&self, filter: &Filter) -> Result<usize> {
        let ids: Vec<PointId> = {
            let st = self.read_state();
            matching(&st, filter).map(|s| st.ids[s as usize]).collect()
        };
        self.delete(&ids)
    }

    /// The point with `id`, if present.
    pub fn get(&self, id: PointId) -> Option<Point> {
        let st = self.read_state();
        let slot = *st.slot_of.get(&id)? as usize;
        let vectors = self
            .schema
            .vectors
            .iter()
            .enumerate()
            .map(|(f, field)| st.vectors[f][slot * field.dim..(slot + 1) * field.dim].to_vec())
            .collect();
        Some(Point { id, vectors, payload: st.payloads[slot].clone() })
    }

    /// Number of points (passing `filter`, if given).
    pub fn count(&self, filter: Option<&Filter>) -> usize {
        let st = self.read_state();
        match filter {
            None => st.slot_of.len(),
            Some(f) => matching(&st, f).count(),
        }
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
        let f = self.schema.field(field)?;
        let spec = &self.schema.vectors[f];
        if query.len() != spec.dim {
            return Err(Error::DimensionMismatch {
                expected: spec.dim,
                got: query.len(),
                context: format!("query for field {:?}", spec.name),
            });
        }
        if let Some((i, x)) = query.iter().enumerate().find(|(_, x)| !x.is_finite()) {
            return Err(Error::NonFinite { what: "query".into(), component: i, value: *x });
        }
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
        if !st.segments.is_empty() && k > 0 {
            let single = filter
                .and_then(|fl| fl.single_match())
                .and_then(|(k, v)| Some((k.to_string(), crate::payload_index::Key::of(v)?)));
            // Admitted slots (filter and liveness), once, split per segment below.
            let all_have_sub =
                st.segments.iter().all(|seg| single.as_ref().is_some_and(|key| seg.subs.contains_key(key)));
            let admitted: Option<Vec<u32>> = match filter {
                _ if all_have_sub => None, // every segment answers from its value graph
                Some(fl) => Some(matching(&st, fl).collect()),
                None if st.dead_sealed > 0 => {
                    Some((0..st.sealed_end).filter(|&s| st.live[s as usize]).collect())
                }
                None => None,
            };
            for seg in &st.segments {
                if let Some(sub) = single.as_ref().and_then(|k| seg.subs.get(k)) {
                    // The value's own graph: only liveness is left to filter.
                    let live = (st.dead_sealed > 0).then(|| {
                        IdFilter::from_ids(
                            (0..sub.slots.len() as u32).filter(|&l| st.live[sub.slots[l as usize] as usize]),
                        )
                    });
                    for (score, slot) in sub.search(f, query, k, ef, live.as_ref())? {
                        offer(&mut top, -score, slot);
                    }
                    continue;
                }
                let Some(adm) = &admitted else {
                    for (score, slot) in seg.search(f, query, k, ef, None)? {
                        offer(&mut top, -score, slot);
                    }
                    continue;
                };
                let local: Vec<u32> = adm.iter().filter_map(|&s| seg.local(s)).collect();
                if local.len() <= EXACT_MAX_ADMITTED {
                    // Few admitted points: an exact scan of them beats a filtered graph walk. The
                    // rows are scattered, so each is prefetched a few rows ahead.
                    const AHEAD: usize = 4;
                    let row_of = |i: usize| seg.slots[local[i] as usize] as usize;
                    for i in 0..local.len().min(AHEAD) {
                        prefetch_row(&st.vectors[f][row_of(i) * dim..(row_of(i) + 1) * dim]);
                    }
                    for i in 0..local.len() {
                        if i + AHEAD < local.len() {
                            let r = row_of(i + AHEAD);
                            prefetch_row(&st.vectors[f][r * dim..(r + 1) * dim]);
                        }
                        let slot = row_of(i);
                        offer(&mut top, exact(slot), slot as u32);
                    }
                    continue;
                }
                let admit = IdFilter::from_ids(local);
                for (score, slot) in seg.search(f, query, k, ef, Some(&admit))? {
                    offer(&mut top, -score, slot);
                }
            }
        }
        let sealed_end = st.sealed_end;
        let slots: Box<dyn Iterator<Item = u32>> = match filter {
            Some(fl) => Box::new(matching(&st, fl).filter(move |&s| s >= sealed_end)),
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
                payload: st.payloads[slot as usize].clone(),
            })
            .collect())
    }
}
