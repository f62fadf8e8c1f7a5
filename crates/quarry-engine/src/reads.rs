//! Reads of a collection's points: by id, pages in id order, counts and payload index facts.
//! Vectors of sealed points come from their segments' row files (normalised under cosine).

use crate::collection::Collection;
use crate::filter::Filter;
use crate::id::PointId;
use crate::point::Point;
use crate::schema::CollectionSchema;
use serde_json::{Map, Value};

impl Collection {
    /// The point with `id`, if present.
    pub fn get(&self, id: PointId) -> Option<Point> {
        let st = self.read_state();
        let slot = st.slot(&id)?;
        let vectors = st.gather_point(&self.schema, slot, true);
        Some(Point { id, vectors, payload: st.payloads.get(slot) })
    }

    /// The payload of the point with `id`, if present (no vector copies).
    pub fn payload(&self, id: PointId) -> Option<Map<String, Value>> {
        let st = self.read_state();
        st.slot(&id).map(|s| st.payloads.get(s))
    }

    /// Number of points (passing `filter`, if given).
    pub fn count(&self, filter: Option<&Filter>) -> usize {
        let st = self.read_state();
        match filter {
            None => st.point_count(),
            Some(f) => st.matching(f, 0).count(),
        }
    }

    /// Ids of the points passing `filter` (through the payload indexes where they answer).
    pub fn matching_ids(&self, filter: &Filter) -> Vec<PointId> {
        let st = self.read_state();
        st.matching(filter, 0).map(|s| st.ids[s as usize]).collect()
    }

    /// Calls `f` with every point's id and payload (under the read lock: `f` must not call back
    /// into this collection).
    pub fn for_each_payload(&self, mut f: impl FnMut(PointId, &Map<String, Value>)) {
        let st = self.read_state();
        for slot in st.live_slots() {
            f(st.ids[slot as usize], &st.payloads.get(slot));
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
            Some(f) => st
                .matching(f, 0)
                .map(|s| (st.ids[s as usize], s))
                .filter(|(id, _)| start.is_none_or(|a| *id >= a))
                .collect(),
            None => st
                .live_slots()
                .map(|s| (st.ids[s as usize], s))
                .filter(|(id, _)| start.is_none_or(|a| *id >= a))
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
                vectors: if with_vectors { st.gather_point(&self.schema, slot, true) } else { Vec::new() },
                payload: st.payloads.get(slot),
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
            st.live_slots()
                .map(|s| (st.ids[s as usize], s))
                .filter(|&(id, s)| {
                    after.is_none_or(|a| id > a) && filter.is_none_or(|f| f.matches(id, &st.payloads.get(s)))
                })
                .map(|(id, _)| id)
                .collect()
        };
        ids.sort_unstable();
        let next = if ids.len() > limit { Some(ids[limit - 1]) } else { None };
        let page = ids.into_iter().take(limit).filter_map(|id| self.get(id)).collect();
        (page, next.filter(|_| limit > 0))
    }

    /// Bytes the sealed segments hold in memory: codes, graph links, SPANN heads, rows loaded
    /// into memory (rows kept on disk are counted by the OS as page cache where read, not here).
    pub fn segment_resident_bytes(&self) -> usize {
        self.read_state().segments.iter().map(|s| s.resident_bytes()).sum()
    }

    /// Vectors held in RAM by the unsealed tail, in bytes.
    pub fn tail_bytes(&self) -> usize {
        self.read_state().tail.iter().map(|t| t.len() * 4).sum()
    }

    /// Bytes of the payloads held in memory (compact JSON, one box per slot).
    pub fn payload_bytes(&self) -> usize {
        self.read_state().payloads.memory_bytes()
    }

    /// Bytes of the per-point bookkeeping in memory: the id list, the id → slot map and the
    /// liveness flags.
    pub fn id_bytes(&self) -> usize {
        self.read_state().id_bytes()
    }
}
