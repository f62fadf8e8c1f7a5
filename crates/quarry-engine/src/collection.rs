//! A collection: its schema, its write-ahead log, its sealed segments and the unsealed tail. A
//! write is validated whole, logged (and fsynced, by default), then applied under the log's lock,
//! so the in-memory order is the log order and a write is visible to every read that starts after
//! it is acknowledged. Opening loads the segments the manifest (a checkpoint of the log) names and
//! replays only the later log records.
//!
//! The rest of `Collection` lives beside this file: `writes` (upserts, deletes, payload changes,
//! payload indexes), `reads` (get, scroll, count), `search`, `seal` (segments built in the
//! background, merges, optimize), `snapshot`.

use crate::id::PointId;
use crate::point::{Op, Point};
use crate::schema::CollectionSchema;
use crate::segment::FieldIndex;
pub(crate) use crate::snapshot::read_snapshot;
pub use crate::snapshot::{SNAPSHOT_MAGIC, SNAPSHOT_VERSION};
use crate::state::State;
use quarry_core::{Error, Metric, Result};
use quarry_store::Wal;
use serde_json::{Map, Value};
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
    /// Re-score candidates of compressed graphs (`hnsw+<codes>`) exactly from their rows (the
    /// default). `false` ranks by the codes alone and returns their estimated scores, reading no
    /// row from disk (Qdrant's `params.quantization.rescore: false`): the fast path when rows
    /// are `on_disk` and memory is short. Other index families always give exact scores.
    pub rescore: bool,
    /// Multi-vector fields: candidates re-ranked by exact MaxSim per segment (MUVERA), or nearest
    /// vectors per query vector (the per-token heuristic); `None`: the field's setting.
    pub candidates: Option<usize>,
}

impl Default for SearchOptions {
    fn default() -> Self {
        SearchOptions { ef: DEFAULT_EF, with_payload: true, rescore: true, candidates: None }
    }
}

/// A collection of points with a schema.
#[derive(Debug)]
pub struct Collection {
    pub(crate) name: String,
    pub(crate) dir: PathBuf,
    pub(crate) schema: CollectionSchema,
    pub(crate) metrics: Vec<Metric>,
    /// How each vector field is indexed in sealed segments.
    pub(crate) fields: Vec<FieldIndex>,
    pub(crate) state: RwLock<State>,
    pub(crate) wal: Mutex<Wal>,
    /// Held while a segment is built (one at a time).
    pub(crate) sealing: Mutex<()>,
    /// Operations waiting for the next group commit.
    pub(crate) queue: Mutex<Vec<(Op, Ticket)>>,
    /// A background seal is scheduled or running.
    pub(crate) seal_pending: std::sync::atomic::AtomicBool,
    /// This collection, for background sealing threads.
    pub(crate) me: std::sync::Weak<Collection>,
    /// Opens the log file (fault injection in tests), also after a checkpoint rewrites it.
    pub(crate) opener: Option<Opener>,
    /// The manifest last written (guarded by `sealing` for writes).
    pub(crate) manifest: Mutex<crate::manifest::Manifest>,
    /// The error of the last background seal, if it failed (the points stay in the log).
    pub(crate) seal_error: Mutex<Option<String>>,
    /// Write-through to object storage (a writer node; `crate::remote`).
    pub(crate) replica: std::sync::OnceLock<std::sync::Arc<crate::remote::Replica>>,
    /// A read-only node's copy of a collection on object storage: writes are refused.
    pub(crate) read_only: std::sync::atomic::AtomicBool,
}

/// Opens a collection's log file (the default opens the real file; tests inject faults).
pub type StoreOpener =
    std::sync::Arc<dyn Fn(&Path) -> std::io::Result<Box<dyn quarry_store::LogStore>> + Send + Sync>;

/// A [`StoreOpener`] kept by a collection.
pub(crate) struct Opener(pub(crate) StoreOpener);

impl std::fmt::Debug for Opener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Opener")
    }
}

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
    /// An error on a read-only node's copy of a collection.
    pub(crate) fn check_writable(&self) -> Result<()> {
        if self.read_only.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(Error::InvalidArgument(format!(
                "collection {:?} is served read-only from object storage here: send writes to the writer node",
                self.name
            )));
        }
        Ok(())
    }

    /// Sends this collection's writes through to `objects` from now on, after bringing the store
    /// up to this node's state (`remote::Replica::sync`).
    pub fn replicate_to(&self, objects: std::sync::Arc<dyn quarry_store::objects::Objects>) -> Result<()> {
        let r = std::sync::Arc::new(crate::remote::Replica::new(objects, &self.name));
        {
            let wal = self.wal.lock().unwrap_or_else(PoisonError::into_inner);
            let manifest = self.manifest.lock().unwrap_or_else(PoisonError::into_inner).clone();
            r.sync(&self.dir, &manifest, &wal)?;
            self.replica
                .set(r)
                .map_err(|_| Error::Conflict(format!("collection {:?} already writes through", self.name)))?;
        }
        Ok(())
    }

    /// Opens the collection in `dir` (schema and log), replaying the log; the log file is opened
    /// through `opener` when given (tests inject faults there).
    pub fn open(name: &str, dir: &Path, opener: Option<&StoreOpener>) -> Result<std::sync::Arc<Collection>> {
        let schema = CollectionSchema::load(dir)?;
        let metrics = schema.vectors.iter().map(|f| f.metric()).collect::<Result<Vec<_>>>()?;
        let fields = schema
            .vectors
            .iter()
            .zip(&metrics)
            .map(|(f, &metric)| {
                Ok(FieldIndex {
                    spec: f.index_spec()?,
                    metric,
                    dim: f.index_dim(),
                    residency: f.residency(),
                    multi: crate::multivector::MultiField::of(f)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let manifest = crate::manifest::Manifest::load(dir)?.unwrap_or_default();
        let path = dir.join(WAL_FILE);
        let (wal, records) = match opener {
            Some(open) => Wal::open_with(&path, schema.durability(), &|p| open(p))?,
            None => Wal::open(&path, schema.durability())?,
        };
        let indexed = schema.payload_indexes.clone();
        let state = RwLock::new(State {
            tail: vec![Vec::new(); fields.len()],
            tail_inv: vec![Vec::new(); fields.len()],
            tail_off: fields.iter().map(|f| if f.multi.is_some() { vec![0] } else { Vec::new() }).collect(),
            cosine: metrics.iter().map(|&m| m == Metric::Cosine).collect(),
            pidx: crate::payload_index::PayloadIndex::new(&indexed),
            ..State::default()
        });
        let c = std::sync::Arc::new_cyclic(|me| Collection {
            name: name.to_string(),
            dir: dir.to_path_buf(),
            schema,
            metrics,
            fields,
            state,
            wal: Mutex::new(wal),
            sealing: Mutex::new(()),
            queue: Mutex::new(Vec::new()),
            seal_pending: std::sync::atomic::AtomicBool::new(false),
            me: me.clone(),
            opener: opener.cloned().map(Opener),
            manifest: Mutex::new(manifest.clone()),
            seal_error: Mutex::new(None),
            replica: std::sync::OnceLock::new(),
            read_only: std::sync::atomic::AtomicBool::new(false),
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
            st.shrink_to_fit();
            st.ids.len() - st.sealed_end as usize
        };
        // The segment files and log read while opening were freed: give their pages back.
        quarry_store::release_free_heap();
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
    /// first slots in manifest order, tombstoned rows are dead, and the indexes are opened from
    /// disk (their row files are the segments' vectors; nothing is copied into the tail).
    fn load_segments(&self, st: &mut State, manifest: &crate::manifest::Manifest) -> Result<()> {
        for entry in &manifest.segments {
            let loaded = crate::segment_file::load(&self.dir, entry.id, &self.fields)?;
            if loaded.ids.len() as u64 != entry.points {
                return Err(Error::corrupt(
                    crate::segment_file::segment_dir(&self.dir, entry.id),
                    "points",
                    format!("{} points, the manifest says {}", loaded.ids.len(), entry.points),
                ));
            }
            if let Some(&row) = entry.dead.iter().find(|&&r| r as u64 >= entry.points) {
                return Err(Error::corrupt(
                    self.dir.join(crate::manifest::MANIFEST_FILE),
                    "segments",
                    format!("segment {}: tombstone {row} beyond its {} rows", entry.id, entry.points),
                ));
            }
            let base = st.ids.len() as u32;
            let n = loaded.ids.len() as u32;
            let src = st.payloads.add_source(loaded.payload_bytes);
            for (id, (off, len)) in loaded.ids.into_iter().zip(loaded.payload_ranges) {
                self.append_sealed(st, id, src, off, len);
            }
            st.sealed_end = base + n;
            for &row in &entry.dead {
                st.kill_slot(base + row);
            }
            let mut seg = crate::segment::Segment::from_parts(
                (base..base + n).collect(),
                loaded.indexes,
                loaded.tokens,
            );
            seg.id = entry.id;
            for (key, rows, parts) in loaded.subs {
                let (indexes, tokens) = parts.into_iter().unzip();
                seg.subs.insert(
                    key,
                    crate::segment::Segment::from_parts(
                        rows.iter().map(|r| base + r).collect(),
                        indexes,
                        tokens,
                    ),
                );
            }
            st.segments.push(std::sync::Arc::new(seg));
        }
        st.dead_sealed = st.dead_in_segments();
        Ok(())
    }

    /// Opens the log file at `path` through the opener (or as a plain file).
    pub(crate) fn open_store(&self, path: &Path) -> std::io::Result<Box<dyn quarry_store::LogStore>> {
        match &self.opener {
            Some(Opener(open)) => open(path),
            None => {
                let f = std::fs::OpenOptions::new().read(true).write(true).open(path)?;
                Ok(Box::new(f))
            }
        }
    }

    pub(crate) fn write_state(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn read_state(&self) -> std::sync::RwLockReadGuard<'_, State> {
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
                let slot = st.slot(&id)?;
                let payload = new_payload(&st.payloads.get(slot))?;
                Some(Point { id, vectors: st.gather_point(&self.schema, slot, false), payload })
            })
            .collect()
    }

    /// Appends a point of a loaded segment: its id and where its payload JSON is (`len` bytes
    /// at `off` in payload source `src`, checked when read), no vectors (they are in the
    /// segment's indexes).
    fn append_sealed(&self, st: &mut State, id: PointId, src: u32, off: u64, len: u32) {
        let slot = st.push_id(id);
        st.payloads.push_range(src, off, len);
        if st.pidx.has_keys() {
            let map = st.payloads.get(slot);
            st.pidx.add(slot, &map);
        }
    }

    /// Applies a logged operation. Upserted vectors join the unsealed tail (as given; read back
    /// normalised under cosine, as Qdrant stores them); points without vectors are a loaded segment's, whose
    /// vectors are in its indexes.
    pub(crate) fn apply(&self, st: &mut State, op: Op) {
        match op {
            Op::Upsert(points) => {
                for p in points {
                    let slot = st.push_id(p.id);
                    for (f, v) in p.vectors.iter().enumerate() {
                        if let Some(m) = &self.fields[f].multi {
                            // A multi-vector field keeps its vectors as compared: unit length
                            // under cosine, the same bits in the tail and in segments.
                            let start = st.tail[f].len();
                            st.tail[f].extend_from_slice(v);
                            if self.metrics[f] == Metric::Cosine {
                                crate::multivector::normalise_rows(&mut st.tail[f][start..], m.dim);
                            }
                            let end = (st.tail[f].len() / m.dim) as u32;
                            st.tail_off[f].push(end);
                            st.tail_inv[f].push(1.0);
                            continue;
                        }
                        // As the segments' flat rows normalise (f64 norm), so rows read back
                        // are the same bits before and after sealing.
                        let inv = match self.metrics[f] {
                            Metric::Cosine => quarry_core::unit_scale(
                                v.iter().map(|&x| x as f64 * x as f64).sum::<f64>().sqrt(),
                            )
                            .unwrap_or(1.0),
                            _ => 1.0,
                        };
                        st.tail[f].extend_from_slice(v);
                        st.tail_inv[f].push(inv);
                    }
                    st.pidx.add(slot, &p.payload);
                    st.payloads.push(&p.payload);
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
                    st.kill(&id);
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
    pub(crate) fn commit(&self, op: Op) -> Result<()> {
        self.check_writable()?;
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
            // With object storage, a write is acknowledged only once its batch is stored there.
            let logged = wal.append(&refs).and_then(|last| match self.replica.get() {
                Some(r) => r.log_batch(last + 1 - encoded.len() as u64, &encoded),
                None => Ok(()),
            });
            match logged {
                Ok(()) => {
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
}
