//! Sealed segments: per vector field, an index of the field's family ([`quarry_ann::AnyIndex`],
//! named by the field's `index` spec: `flat`, `hnsw`, `hnsw+rabitq4`, `spann+sq8`, ...) over a run
//! of slots, built from the points in memory once enough have arrived
//! ([`CollectionSchema::seal_threshold`]) or when the collection is optimised (which merges every
//! sealed segment and the unsealed tail into one). The index's row file is the only copy of the
//! segment's vectors: graph walks, exact re-scoring, exact scans of a few admitted rows and
//! reading vectors back all use it, memory-mapped (`on_disk`) or on the heap. A segment is
//! persisted in its folder (`segment_file`, named by the manifest) and never changes; deletes are
//! tombstones passed to searches as an admitted set.
//!
//! [`CollectionSchema::seal_threshold`]: crate::CollectionSchema

use crate::multivector::{MultiField, MultiQuery, TokenStore};
use quarry_ann::{AnyIndex, Effort, IndexSpec, Residency};
use quarry_core::{IdFilter, Matrix, Metric, Result};
use std::path::Path;

/// How one vector field is indexed in sealed segments (from the schema).
#[derive(Debug, Clone)]
pub(crate) struct FieldIndex {
    pub(crate) spec: IndexSpec,
    pub(crate) metric: Metric,
    /// Dimension of the index's rows (a multi-vector field's MUVERA encodings, or its vectors).
    pub(crate) dim: usize,
    pub(crate) residency: Residency,
    /// A multi-vector field's settings.
    pub(crate) multi: Option<MultiField>,
}

impl FieldIndex {
    /// Metric of the index: a multi-vector field's index ranks by inner product (MUVERA
    /// encodings, or its vectors, stored unit length under cosine).
    fn index_metric(&self) -> Metric {
        match self.multi {
            Some(_) => Metric::InnerProduct,
            None => self.metric,
        }
    }
}

/// One field's rows for a run of slots: row-major values, and for a multi-vector field where
/// each slot's vectors start (`slots + 1` entries, in vectors).
#[derive(Debug, Clone, Default)]
pub(crate) struct FieldRows {
    pub(crate) data: Vec<f32>,
    pub(crate) offsets: Option<Vec<u32>>,
}

impl FieldRows {
    /// The values of row `i` (a multi-vector field: its vectors, concatenated).
    pub(crate) fn row(&self, i: usize, dim: usize) -> &[f32] {
        match &self.offsets {
            Some(o) => &self.data[o[i] as usize * dim..o[i + 1] as usize * dim],
            None => &self.data[i * dim..(i + 1) * dim],
        }
    }
}

/// One sealed run of slots.
#[derive(Debug)]
pub(crate) struct Segment {
    /// Folder id on disk (`segments/<id>`; value graphs: 0).
    pub(crate) id: u64,
    /// Local row → slot (ascending): the live slots when the segment was built.
    pub(crate) slots: Vec<u32>,
    /// One index per vector field, rows in `slots` order (a multi-vector field's MUVERA
    /// encodings, or every vector of its per-token index, in `slots` order).
    pub(crate) indexes: Vec<AnyIndex>,
    /// Per field: a multi-vector field's vectors by local row.
    pub(crate) tokens: Vec<Option<TokenStore>>,
    /// Slot − `first` → local row (`u32::MAX`: not in the segment), for O(1) mapping.
    local_of: Vec<u32>,
    first: u32,
    /// Per (payload key, value): a segment over this one's points with that value.
    pub(crate) subs: std::collections::HashMap<(String, crate::payload_index::Key), Segment>,
}

impl Segment {
    /// Builds every field's index over `slots` (vectors `vectors[f]`, row-major in `slots`
    /// order) into `dir/<prefix>-<f>/` and opens them; a multi-vector field also keeps its
    /// vectors in `dir/<prefix>-<f>-tokens/`.
    pub(crate) fn build_into(
        dir: &Path,
        prefix: &str,
        slots: Vec<u32>,
        vectors: &[FieldRows],
        fields: &[FieldIndex],
    ) -> Result<Segment> {
        let mut indexes = Vec::with_capacity(fields.len());
        let mut tokens = Vec::with_capacity(fields.len());
        for (f, (fi, v)) in fields.iter().zip(vectors).enumerate() {
            let folder = dir.join(format!("{prefix}-{f}"));
            let rows = match (&fi.multi, &v.offsets) {
                (Some(m), Some(offsets)) => {
                    let tdir = dir.join(format!("{prefix}-{f}-tokens"));
                    TokenStore::save(&tdir, m.dim, &v.data, offsets)?;
                    tokens.push(Some(TokenStore::open(&tdir, m.dim, slots.len(), fi.residency)?));
                    m.index_rows(&v.data, offsets)?
                }
                (None, None) => {
                    tokens.push(None);
                    v.data.clone()
                }
                _ => {
                    return Err(quarry_core::Error::InvalidArgument(
                        "field rows do not match the field's kind".into(),
                    ))
                }
            };
            quarry_ann::build_into(&fi.spec, &Matrix::new(rows, fi.dim)?, fi.index_metric(), &folder)?;
            indexes.push(AnyIndex::open(&fi.spec, &folder, fi.residency)?);
        }
        Ok(Segment::from_parts(slots, indexes, tokens))
    }

    /// A segment over `slots` with opened `indexes` (rows in `slots` order) and multi-vector
    /// `tokens`, no value graphs, id 0.
    pub(crate) fn from_parts(
        slots: Vec<u32>,
        indexes: Vec<AnyIndex>,
        tokens: Vec<Option<TokenStore>>,
    ) -> Segment {
        let first = slots.first().copied().unwrap_or(0);
        let span = slots.last().map_or(0, |&l| (l - first) as usize + 1);
        let mut local_of = vec![u32::MAX; span];
        for (i, &s) in slots.iter().enumerate() {
            local_of[(s - first) as usize] = i as u32;
        }
        Segment { id: 0, slots, indexes, tokens, local_of, first, subs: std::collections::HashMap::new() }
    }

    /// Fewest points of a value for it to get its own graph.
    pub(crate) const SUB_MIN: usize = 4096;

    /// The first slot of the run.
    pub(crate) fn first_slot(&self) -> u32 {
        self.first
    }

    /// The last slot of the run (the first, for an empty run).
    pub(crate) fn last_slot(&self) -> u32 {
        self.slots.last().copied().unwrap_or(self.first)
    }

    /// Local row of `slot`, if the segment holds it.
    pub(crate) fn local(&self, slot: u32) -> Option<u32> {
        let i = slot.checked_sub(self.first)? as usize;
        self.local_of.get(i).copied().filter(|&l| l != u32::MAX)
    }

    /// Whether field `f` is scanned exactly (a `flat` index) rather than searched approximately.
    pub(crate) fn is_flat(&self, f: usize) -> bool {
        self.indexes[f].spec().base == quarry_ann::Base::Flat
    }

    /// The `k` best `(score, slot)` of field `f` for `query` (as given; the index prepares it)
    /// among local rows in `admit` (`None`: all), exact scores.
    pub(crate) fn search(
        &self,
        f: usize,
        query: &[f32],
        k: usize,
        effort: &Effort,
        admit: Option<&IdFilter>,
    ) -> Result<Vec<(f32, u32)>> {
        let hits = self.indexes[f].search(query, k, effort, admit)?;
        Ok(hits.into_iter().map(|h| (h.score, self.slots[h.id as usize])).collect())
    }

    /// The `k` best `(score, slot)` of field `f` among local rows `local`, scored exactly.
    pub(crate) fn search_rows(
        &self,
        f: usize,
        query: &[f32],
        local: &[u32],
        k: usize,
    ) -> Result<Vec<(f32, u32)>> {
        let hits = self.indexes[f].search_ids(query, local, k)?;
        Ok(hits.into_iter().map(|h| (h.score, self.slots[h.id as usize])).collect())
    }

    /// The `k` best `(score, slot)` of multi-vector field `f` for query `q` by exact MaxSim:
    /// candidates from the field's index, or every admitted local row when `exact`; `admit`
    /// limits candidates to admitted local rows.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn search_multi(
        &self,
        f: usize,
        multi: &MultiField,
        q: &MultiQuery<'_>,
        k: usize,
        effort: &Effort,
        admit: Option<&[u32]>,
        exact: bool,
    ) -> Result<Vec<(f32, u32)>> {
        let query = q.vectors;
        let Some(tokens) = self.tokens[f].as_ref() else { return Ok(Vec::new()) };
        let cands = match (exact, admit) {
            (true, Some(a)) => a.to_vec(),
            (true, None) => (0..self.slots.len() as u32).collect(),
            (false, _) => multi.candidates(&self.indexes[f], tokens, q, k, effort, admit)?,
        };
        let mut hits: Vec<(f32, u32)> = cands
            .into_iter()
            .filter_map(|l| Some((tokens.maxsim(query, l)?, self.slots[l as usize])))
            .collect();
        hits.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        hits.truncate(k);
        Ok(hits)
    }

    /// Bytes this segment holds in memory (codes, links, heap rows; mapped rows excluded).
    pub(crate) fn resident_bytes(&self) -> usize {
        self.indexes.iter().map(AnyIndex::resident_bytes).sum::<usize>()
            + self.tokens.iter().flatten().map(TokenStore::resident_bytes).sum::<usize>()
            + self.slots.len() * 4
            + self.local_of.len() * 4
            + self.subs.values().map(Segment::resident_bytes).sum::<usize>()
    }
}
