//! A collection's points as the engine sees them: one slot per point version, in log order; the
//! slots below `sealed_end` live in sealed segments (their vectors in the segments' mapped row
//! files, nowhere else), the rest in the unsealed tail, whose vectors are the only ones held in
//! RAM. Ids, liveness, payloads and payload indexes cover every slot.

use crate::filter::Filter;
use crate::id::PointId;
use crate::schema::CollectionSchema;
use crate::segment::{FieldRows, Segment};
use std::sync::Arc;

/// Points by slot; a replaced or deleted point's slot is dead.
#[derive(Debug, Default)]
pub(crate) struct State {
    /// Id → live slot (through `ids`).
    pub(crate) slot_of: crate::slot_map::SlotMap,
    pub(crate) ids: Vec<PointId>,
    pub(crate) live: Vec<bool>,
    /// Per field: the unsealed tail's vectors (slots `sealed_end..`) as given, row-major.
    pub(crate) tail: Vec<Vec<f32>>,
    /// Per field: 1 / norm of each tail row under cosine (f64, as the flat rows normalise), else 1.
    pub(crate) tail_inv: Vec<Vec<f64>>,
    /// Per field: where each tail point's vectors start in `tail` (in vectors), one more entry
    /// than tail points, for a multi-vector field (its vectors are stored unit length under
    /// cosine); empty for a one-vector field.
    pub(crate) tail_off: Vec<Vec<u32>>,
    /// Per field: whether the metric is cosine (rows read back are normalised).
    pub(crate) cosine: Vec<bool>,
    pub(crate) payloads: crate::payloads::Payloads,
    pub(crate) pidx: crate::payload_index::PayloadIndex,
    /// Sealed segments, consecutive runs of slots in order (slots below `sealed_end` are in one
    /// of them, or dead).
    pub(crate) segments: Vec<Arc<Segment>>,
    pub(crate) sealed_end: u32,
    /// Slots below `sealed_end` that died after sealing (0: segments need no liveness filter).
    pub(crate) dead_sealed: usize,
}

impl State {
    /// Releases the spare capacity of every per-slot list (after opening: lists grown by
    /// doubling hold up to twice their size).
    pub(crate) fn shrink_to_fit(&mut self) {
        self.slot_of.shrink_to_fit(&self.ids);
        self.ids.shrink_to_fit();
        self.live.shrink_to_fit();
        self.payloads.shrink_to_fit();
        self.pidx.shrink_to_fit();
        self.tail.iter_mut().for_each(Vec::shrink_to_fit);
        self.tail_inv.iter_mut().for_each(Vec::shrink_to_fit);
        self.tail_off.iter_mut().for_each(Vec::shrink_to_fit);
    }

    /// The live slot of `id`, if any.
    pub(crate) fn slot(&self, id: &PointId) -> Option<u32> {
        self.slot_of.get(&self.ids, id)
    }

    /// Appends a slot for `id` (its previous slot, if any, dies) and returns it; the caller
    /// appends its payload (and tail vectors).
    pub(crate) fn push_id(&mut self, id: PointId) -> u32 {
        let slot = self.ids.len() as u32;
        self.ids.push(id);
        self.live.push(true);
        if let Some(old) = self.slot_of.insert(&self.ids, slot) {
            self.live[old as usize] = false;
            self.dead_sealed += usize::from(old < self.sealed_end);
        }
        slot
    }

    /// Removes `id` (its slot dies); returns the slot it had.
    pub(crate) fn kill(&mut self, id: &PointId) -> Option<u32> {
        let slot = self.slot_of.remove(&self.ids, id)?;
        self.live[slot as usize] = false;
        self.dead_sealed += usize::from(slot < self.sealed_end);
        Some(slot)
    }

    /// Marks sealed `slot` dead (a tombstone read back), dropping its id if that is its live slot.
    pub(crate) fn kill_slot(&mut self, slot: u32) {
        self.live[slot as usize] = false;
        let id = self.ids[slot as usize];
        if self.slot(&id) == Some(slot) {
            self.slot_of.remove(&self.ids, &id);
        }
    }

    /// Live points.
    pub(crate) fn point_count(&self) -> usize {
        self.slot_of.len()
    }

    /// Every live slot, in no particular order.
    pub(crate) fn live_slots(&self) -> impl Iterator<Item = u32> + '_ {
        self.slot_of.slots()
    }

    /// Bytes of the id list, the id map and the liveness flags.
    pub(crate) fn id_bytes(&self) -> usize {
        self.ids.capacity() * std::mem::size_of::<PointId>()
            + self.slot_of.memory_bytes()
            + self.live.capacity()
    }

    /// Rows of sealed segments whose points have died since.
    pub(crate) fn dead_in_segments(&self) -> usize {
        self.segments.iter().map(|seg| seg.slots.iter().filter(|&&s| !self.live[s as usize]).count()).sum()
    }

    /// The segment holding sealed `slot`, if any (dead-at-seal slots are in none).
    pub(crate) fn segment_of(&self, slot: u32) -> Option<&Arc<Segment>> {
        if slot >= self.sealed_end {
            return None;
        }
        let i = self.segments.partition_point(|s| s.first_slot() <= slot);
        self.segments.get(i.checked_sub(1)?).filter(|s| s.local(slot).is_some())
    }

    /// The vector of `slot` in field `f` (dimension `dim`) as stored: from its segment's rows
    /// (normalised under cosine), or from the tail, normalised the same way (bit for bit) when
    /// `normalise` (else as given).
    pub(crate) fn vector(&self, f: usize, dim: usize, slot: u32, normalise: bool) -> Option<Vec<f32>> {
        if !self.tail_off[f].is_empty() {
            // A multi-vector field: its vectors, concatenated.
            if slot >= self.sealed_end {
                return self.tail_tokens(f, dim, slot).map(<[f32]>::to_vec);
            }
            let seg = self.segment_of(slot)?;
            return seg.tokens[f].as_ref()?.get(seg.local(slot)?).map(<[f32]>::to_vec);
        }
        if slot >= self.sealed_end {
            let i = (slot - self.sealed_end) as usize;
            let row = self.tail[f].get(i * dim..(i + 1) * dim)?;
            return Some(match normalise && self.cosine[f] {
                true => row.iter().map(|&x| (x as f64 * self.tail_inv[f][i]) as f32).collect(),
                false => row.to_vec(),
            });
        }
        let seg = self.segment_of(slot)?;
        seg.indexes[f].vector(seg.local(slot)?)
    }

    /// The vectors of unsealed `slot` in multi-vector field `f` (rows of `dim`), concatenated.
    pub(crate) fn tail_tokens(&self, f: usize, dim: usize, slot: u32) -> Option<&[f32]> {
        let i = (slot - self.sealed_end) as usize;
        let (a, b) = (*self.tail_off[f].get(i)? as usize, *self.tail_off[f].get(i + 1)? as usize);
        self.tail[f].get(a * dim..b * dim)
    }

    /// 1 / norm of unsealed `slot`'s row in field `f` (1 unless cosine).
    #[inline]
    pub(crate) fn tail_inv(&self, f: usize, slot: u32) -> f32 {
        self.tail_inv[f][(slot - self.sealed_end) as usize] as f32
    }

    /// The tail row of unsealed `slot` in field `f`.
    #[inline]
    pub(crate) fn tail_row(&self, f: usize, dim: usize, slot: u32) -> &[f32] {
        let i = (slot - self.sealed_end) as usize;
        &self.tail[f][i * dim..(i + 1) * dim]
    }

    /// Per vector field, the vectors of `slots` (in that order) row-major (a multi-vector
    /// field's with where each slot's start), unsealed ones normalised under cosine only when
    /// `normalise` (what a reader is shown; a new segment normalises them itself); slots without
    /// a vector (dead when sealed) get zeros (one zero vector in a multi-vector field), which
    /// callers never ask for.
    pub(crate) fn gather(&self, schema: &CollectionSchema, slots: &[u32], normalise: bool) -> Vec<FieldRows> {
        schema
            .vectors
            .iter()
            .enumerate()
            .map(|(f, field)| {
                let d = field.dim;
                if !self.tail_off[f].is_empty() {
                    let mut data = Vec::new();
                    let mut offsets = Vec::with_capacity(slots.len() + 1);
                    offsets.push(0u32);
                    for &s in slots {
                        match self.vector(f, d, s, normalise) {
                            Some(x) => data.extend_from_slice(&x),
                            None => data.resize(data.len() + d, 0.0),
                        }
                        offsets.push((data.len() / d) as u32);
                    }
                    return FieldRows { data, offsets: Some(offsets) };
                }
                let mut v = Vec::with_capacity(slots.len() * d);
                for &s in slots {
                    if s >= self.sealed_end && !(normalise && self.cosine[f]) {
                        v.extend_from_slice(self.tail_row(f, d, s));
                    } else {
                        match self.vector(f, d, s, normalise) {
                            Some(x) => v.extend_from_slice(&x),
                            None => v.resize(v.len() + d, 0.0),
                        }
                    }
                }
                FieldRows { data: v, offsets: None }
            })
            .collect()
    }

    /// The vectors of one slot, one entry per field ([`State::gather`] of one slot).
    pub(crate) fn gather_point(
        &self,
        schema: &CollectionSchema,
        slot: u32,
        normalise: bool,
    ) -> Vec<Vec<f32>> {
        self.gather(schema, &[slot], normalise).into_iter().map(|r| r.data).collect()
    }

    /// Live slots at or above `from` passing `filter`: index candidates (if an indexed key is in
    /// its `must` clause) or every slot, each checked against the whole filter.
    pub(crate) fn matching<'a>(
        &'a self,
        filter: &'a Filter,
        from: u32,
    ) -> Box<dyn Iterator<Item = u32> + 'a> {
        match self.pidx.candidates(filter, from) {
            // The index answered every condition: only liveness is left to check.
            Some((c, true)) => Box::new(c.into_iter().filter(move |&s| self.live[s as usize])),
            Some((c, false)) => Box::new(c.into_iter().filter(move |&s| {
                self.live[s as usize] && filter.matches(self.ids[s as usize], &self.payloads.get(s))
            })),
            None => Box::new((from..self.ids.len() as u32).filter(move |&s| {
                self.live[s as usize] && filter.matches(self.ids[s as usize], &self.payloads.get(s))
            })),
        }
    }
}
