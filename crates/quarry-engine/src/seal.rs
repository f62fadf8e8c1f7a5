//! Sealing: the unsealed tail (or, merging, the newer segments and the tail) built into a new
//! segment folder in the background, named by a new manifest (a checkpoint), after which the log
//! records it covers are dropped and the tail's vectors leave RAM.

use crate::collection::{Collection, MAX_SEGMENTS};
use crate::id::PointId;
use crate::payload_index::Key;
use crate::segment::Segment;
use quarry_core::Result;
use serde_json::{Map, Value};
use std::sync::PoisonError;

impl Collection {
    /// Starts a background seal when `unsealed` points reach the schema's threshold (unless one
    /// is already scheduled).
    pub(crate) fn seal_in_background_if(&self, unsealed: usize) {
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
            let payloads: Vec<Map<String, Value>> = slots.iter().map(|&s| st.payloads.get(s)).collect();
            let vectors = st.gather(&self.schema, &slots, false);
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
        // Frequent payload values get their own graphs (schema `payload_graphs`).
        let mut groups = Vec::new();
        if self.schema.payload_graphs && !slots.is_empty() {
            let st = self.read_state();
            for key in &st.pidx.keys() {
                for (value, all) in st.pidx.value_groups(key) {
                    let mine: Vec<u32> =
                        all.into_iter().filter(|&s| s >= from && s < to && st.live[s as usize]).collect();
                    if mine.len() >= crate::segment::Segment::SUB_MIN && mine.len() < slots.len() {
                        let vecs = st.gather(&self.schema, &mine, false);
                        groups.push(((key.clone(), value), mine, vecs));
                    }
                }
            }
        }
        let mut manifest = self.manifest.lock().unwrap_or_else(PoisonError::into_inner).clone();
        let seg = if slots.is_empty() {
            None
        } else {
            let id = manifest.next_segment;
            let sdir = crate::segment_file::create(&self.dir, id)?;
            let mut seg = Segment::build_into(&sdir, "index", slots, &vectors, &self.fields)?;
            let mut sub_rows = Vec::new();
            for (j, (k, mine, vecs)) in groups.into_iter().enumerate() {
                let sub = Segment::build_into(&sdir, &format!("sub-{j}"), mine, &vecs, &self.fields)?;
                sub_rows.push((k, sub.slots.iter().filter_map(|&s| seg.local(s)).collect::<Vec<u32>>()));
                seg.subs.insert(sub_rows[j].0.clone(), sub);
            }
            let subs: Vec<(&(String, Key), Vec<u32>)> =
                sub_rows.iter().map(|(k, r)| (k, r.clone())).collect();
            let ranges = crate::segment_file::save_points(&sdir, self.fields.len(), &ids, &payloads, &subs)?;
            // Its payloads are read from the file from now on, not from the heap.
            let source = crate::segment_file::map_points(&sdir)?;
            seg.id = id;
            Some((std::sync::Arc::new(seg), source, ranges))
        };
        drop((ids, payloads, vectors));
        // The checkpoint: the new manifest names the segments and their tombstones at `seq`.
        manifest.generation += 1;
        manifest.checkpoint_seq = seq;
        manifest.segments.truncate(keep);
        for (e, d) in manifest.segments.iter_mut().zip(dead) {
            e.dead = d;
        }
        if let Some((seg, _, _)) = &seg {
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
            if let Some((seg, source, ranges)) = seg {
                let src = st.payloads.add_source(source);
                // Slots in `from..to` that are not in the new segment died before it was built.
                let mut kept = seg.slots.iter().copied().peekable();
                let dead: Vec<u32> = (from..to).filter(|&s| kept.next_if_eq(&s).is_none()).collect();
                st.payloads.repoint(&seg.slots, src, &ranges, dead.into_iter());
                st.segments.push(seg);
            }
            // The tail's rows up to `to` now live in the new segment's row files.
            let sealed = (to - st.sealed_end) as usize;
            for (f, field) in self.schema.vectors.iter().enumerate() {
                if st.tail_off[f].is_empty() {
                    st.tail[f].drain(..sealed * field.dim);
                } else {
                    // A multi-vector field: its first `sealed` points' vectors, and their offsets.
                    let cut = st.tail_off[f][sealed];
                    st.tail[f].drain(..cut as usize * field.dim);
                    st.tail_off[f].drain(..sealed);
                    st.tail_off[f].iter_mut().for_each(|o| *o -= cut);
                }
                st.tail_inv[f].drain(..sealed);
            }
            st.sealed_end = to;
            st.dead_sealed = st.dead_in_segments();
        }
        // On object storage: the new segment's files, then the manifest version.
        if let Some(r) = self.replica.get() {
            r.checkpoint(&self.dir, &manifest)?;
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
        self.check_writable()?;
        self.seal(Some(0))
    }

    /// Number of sealed graph segments.
    pub fn segment_count(&self) -> usize {
        self.read_state().segments.len()
    }
}
