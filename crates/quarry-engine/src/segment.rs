//! Sealed segments: an HNSW graph per vector field over a run of slots, built from the points in
//! memory once enough have arrived ([`CollectionSchema::seal_threshold`]) or when the collection
//! is optimised (which merges every sealed segment and the unsealed tail into one). A segment is
//! derived data persisted for fast reopening (`segment_file`, named by the manifest), and searches combine the
//! segments' graph searches (admitting only live slots that pass the filter) with an exact scan
//! of the slots not yet sealed.
//!
//! [`CollectionSchema::seal_threshold`]: crate::CollectionSchema

use quarry_ann::{HnswIndex, HnswParams, HnswSearch};
use quarry_core::{IdFilter, Matrix, Metric, Result};
use quarry_quant::sq::SqQuantizer;
use quarry_quant::{encode_all, Quantizer};

/// One sealed run of slots.
#[derive(Debug)]
pub(crate) struct Segment {
    /// Folder id on disk (`segments/<id>`; value graphs: 0).
    pub(crate) id: u64,
    /// Local row → slot (ascending): the live slots when the segment was built.
    pub(crate) slots: Vec<u32>,
    /// One graph per vector field, rows in `slots` order.
    pub(crate) graphs: Vec<HnswIndex>,
    /// Slot − `first` → local row (`u32::MAX`: not in the segment), for O(1) mapping.
    local_of: Vec<u32>,
    first: u32,
    /// Per (payload key, value): a graph over the segment's points with that value.
    pub(crate) subs: std::collections::HashMap<(String, crate::payload_index::Key), Segment>,
    /// Per vector field: SQ8 codes of the rows (unit rows under cosine), for exact scans of few
    /// admitted rows (codes first, then the best few re-scored from the f32 rows).
    pub(crate) codes: Vec<Option<Codes>>,
}

/// SQ8 codes of a segment's rows for one vector field.
#[derive(Debug)]
pub(crate) struct Codes {
    pub(crate) sq: SqQuantizer,
    /// `rows × len` bytes, in row order.
    pub(crate) codes: Vec<u8>,
    pub(crate) len: usize,
}

impl Codes {
    /// Codes of `vectors` (row-major, dimension `dim`; normalised first under cosine).
    pub(crate) fn build(vectors: &[f32], dim: usize, metric: Metric) -> Result<Codes> {
        let mut rows = vectors.to_vec();
        if metric == Metric::Cosine {
            for r in rows.chunks_mut(dim) {
                let n = r.iter().map(|x| x * x).sum::<f32>().sqrt();
                if n > 0.0 {
                    r.iter_mut().for_each(|x| *x /= n);
                }
            }
        }
        let m = Matrix::new(rows, dim)?;
        let sq = SqQuantizer::train(&m, metric, 8)?;
        let codes = encode_all(&sq, &m);
        let len = sq.code_len();
        Ok(Codes { sq, codes, len })
    }

    /// The code of local row `row`.
    #[inline]
    pub(crate) fn code(&self, row: u32) -> &[u8] {
        &self.codes[row as usize * self.len..(row as usize + 1) * self.len]
    }
}

impl Segment {
    /// Builds graphs over `slots` whose vectors (per field, row-major in `slots` order) are
    /// `vectors[f]` of dimension `dims[f]` under `metrics[f]`.
    pub(crate) fn build(
        slots: Vec<u32>,
        vectors: Vec<Vec<f32>>,
        dims: &[usize],
        metrics: &[Metric],
    ) -> Result<Segment> {
        let params = HnswParams { m: 16, ef_construction: 200, ..HnswParams::default() };
        let graphs = vectors
            .into_iter()
            .zip(dims.iter().zip(metrics))
            .map(|(v, (&d, &m))| HnswIndex::build(&Matrix::new(v, d)?, m, params))
            .collect::<Result<Vec<_>>>()?;
        Ok(Segment::from_parts(slots, graphs))
    }

    /// A segment over `slots` with ready `graphs` (rows in `slots` order), no value graphs, id 0.
    pub(crate) fn from_parts(slots: Vec<u32>, graphs: Vec<HnswIndex>) -> Segment {
        let first = slots.first().copied().unwrap_or(0);
        let span = slots.last().map_or(0, |&l| (l - first) as usize + 1);
        let mut local_of = vec![u32::MAX; span];
        for (i, &s) in slots.iter().enumerate() {
            local_of[(s - first) as usize] = i as u32;
        }
        Segment {
            id: 0,
            slots,
            graphs,
            local_of,
            first,
            subs: std::collections::HashMap::new(),
            codes: Vec::new(),
        }
    }

    /// Adds SQ8 codes for every field from the rows' vectors (`vectors[f]` row-major).
    pub(crate) fn attach_codes(
        &mut self,
        vectors: &[Vec<f32>],
        dims: &[usize],
        metrics: &[Metric],
    ) -> Result<()> {
        self.codes = vectors
            .iter()
            .zip(dims.iter().zip(metrics))
            .map(|(v, (&d, &m))| if v.is_empty() { Ok(None) } else { Codes::build(v, d, m).map(Some) })
            .collect::<Result<Vec<_>>>()?;
        Ok(())
    }

    /// Fewest points of a value for it to get its own graph.
    pub(crate) const SUB_MIN: usize = 4096;

    /// Local row of `slot`, if the segment holds it.
    pub(crate) fn local(&self, slot: u32) -> Option<u32> {
        let i = slot.checked_sub(self.first)? as usize;
        self.local_of.get(i).copied().filter(|&l| l != u32::MAX)
    }

    /// The `k` best `(score, slot)` of field `f` for query `q` (unnormalised; the graph prepares
    /// it), admitting only local rows in `admit` (`None`: all), with beam `ef`.
    pub(crate) fn search(
        &self,
        f: usize,
        q: &[f32],
        k: usize,
        ef: usize,
        admit: Option<&IdFilter>,
    ) -> Result<Vec<(f32, u32)>> {
        let hits = self.graphs[f].search_with(q, k, &HnswSearch::ef(ef.max(k)), admit)?;
        Ok(hits.into_iter().map(|h| (h.score, self.slots[h.id as usize])).collect())
    }
}
