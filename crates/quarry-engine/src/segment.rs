//! Sealed segments: an index per vector field over a run of slots (per the field's index spec: an
//! HNSW graph on the rows — kept as f16 when that ranks like f32, the candidates then re-scored
//! by the collection from its f32 vectors —, an HNSW graph walked on SQ8 codes with exact re-scoring, or none for
//! `flat`, whose segments are scanned exactly), built from the points in
//! memory once enough have arrived ([`CollectionSchema::seal_threshold`]) or when the collection
//! is optimised (which merges every sealed segment and the unsealed tail into one). A segment is
//! derived data persisted for fast reopening (`segment_file`, named by the manifest), and searches combine the
//! segments' graph searches (admitting only live slots that pass the filter) with an exact scan
//! of the slots not yet sealed.
//!
//! [`CollectionSchema::seal_threshold`]: crate::CollectionSchema

use quarry_ann::{HnswIndex, HnswParams, HnswSearch, QuantHnswIndex, QuantParams, QuantSpec, Storage};
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
    /// One index per vector field, rows in `slots` order.
    pub(crate) graphs: Vec<Graph>,
    /// Slot − `first` → local row (`u32::MAX`: not in the segment), for O(1) mapping.
    local_of: Vec<u32>,
    first: u32,
    /// Per (payload key, value): a graph over the segment's points with that value.
    pub(crate) subs: std::collections::HashMap<(String, crate::payload_index::Key), Segment>,
    /// Per vector field: SQ8 codes of the rows (unit rows under cosine), for exact scans of few
    /// admitted rows (codes first, then the best few re-scored from the f32 rows).
    pub(crate) codes: Vec<Option<Codes>>,
}

/// How sealed segments index a vector field: the field's `index` spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexKind {
    /// `hnsw`: an HNSW graph (M=16, efc=200) on the rows: f16 rows when they rank like the f32
    /// ones (see `hnsw_storage`), the candidates then re-scored from the f32 vectors; f32 rows
    /// otherwise.
    Hnsw,
    /// `hnsw+sq8`: the same graph walked on 8-bit scalar codes, the beam re-scored exactly.
    HnswSq8,
    /// `flat`: no graph; every search scans the segment's admitted rows exactly.
    Flat,
}

impl IndexKind {
    /// Parses an index spec (`hnsw`, `hnsw+sq8`, `flat`; case-insensitive).
    pub fn parse(spec: &str) -> Result<IndexKind> {
        match spec.trim().to_ascii_lowercase().as_str() {
            "hnsw" => Ok(IndexKind::Hnsw),
            "hnsw+sq8" => Ok(IndexKind::HnswSq8),
            "flat" => Ok(IndexKind::Flat),
            other => Err(quarry_core::Error::InvalidArgument(format!(
                "index spec {other:?}: use hnsw, hnsw+sq8 or flat"
            ))),
        }
    }
}

/// A segment's index of one vector field.
#[derive(Debug)]
pub(crate) enum Graph {
    Hnsw(Box<HnswIndex>),
    Sq8(Box<QuantHnswIndex>),
    /// No graph over this many rows: scanned exactly.
    Flat(usize),
}

impl Graph {
    /// Builds the index of `kind` over `rows` (dimension `dim`).
    fn build(kind: IndexKind, rows: Vec<f32>, dim: usize, metric: Metric) -> Result<Graph> {
        let params = HnswParams { m: 16, ef_construction: 200, ..HnswParams::default() };
        Ok(match kind {
            IndexKind::Flat => Graph::Flat(rows.len() / dim.max(1)),
            IndexKind::Hnsw => {
                let storage = hnsw_storage(&rows, dim, metric);
                Graph::Hnsw(Box::new(HnswIndex::build(
                    &Matrix::new(rows, dim)?,
                    metric,
                    HnswParams { storage, ..params },
                )?))
            }
            IndexKind::HnswSq8 => Graph::Sq8(Box::new(QuantHnswIndex::from_hnsw(
                HnswIndex::build(&Matrix::new(rows, dim)?, metric, params)?,
                QuantParams::new(QuantSpec::Sq { bits: 8 }),
            )?)),
        })
    }

    /// Whether the scores this graph answers are approximate (f16 rows), so that the caller
    /// re-scores its candidates from the f32 vectors.
    pub(crate) fn approx_scores(&self) -> bool {
        matches!(self, Graph::Hnsw(g) if g.params().storage == Storage::F16)
    }

    /// Rows indexed.
    pub(crate) fn rows(&self) -> usize {
        match self {
            Graph::Hnsw(g) => quarry_core::VectorIndex::len(g.as_ref()),
            Graph::Sq8(g) => quarry_core::VectorIndex::len(g.graph()),
            Graph::Flat(n) => *n,
        }
    }
}

/// Row storage of an `hnsw` graph over `rows` (dimension `dim`) under `metric`: f16 when f16
/// copies rank like the f32 rows, so the graph walk reads half the bytes (the caller re-scores
/// the candidates exactly); f32 otherwise.
///
/// f16 keeps every component within 2⁻¹¹ of its own magnitude, so a row moves by at most 2⁻¹¹ of
/// its norm. That is harmless when rows are far apart compared with their norms, and blurs them
/// when they share a large common offset. So f16 is chosen when every value fits (below 16,384 in
/// magnitude; f16 overflows at 65,504; cosine rows are unit vectors, stored normalised) and the
/// median distance between sampled pairs of rows (unit rows under cosine) is at least
/// [`F16_MIN_SPREAD`] of the larger norm.
pub(crate) fn hnsw_storage(rows: &[f32], dim: usize, metric: Metric) -> Storage {
    let n = rows.len() / dim.max(1);
    let cosine = metric == Metric::Cosine;
    if n < 2 || (!cosine && rows.iter().any(|x| !x.is_finite() || x.abs() > 16_384.0)) {
        return Storage::F32;
    }
    let row = |i: usize| &rows[i * dim..(i + 1) * dim];
    let norm = |r: &[f32]| r.iter().map(|x| x * x).sum::<f32>().sqrt();
    // Up to 1,024 pairs (i, j ≠ i), spread over the rows by a fixed stride.
    let pairs = n.min(1024);
    let mut ratios: Vec<f32> = (0..pairs)
        .map(|p| {
            let i = p * n / pairs;
            let j = (i + 1 + (p * 7919) % (n - 1)) % n;
            let (a, b) = (row(i), row(j));
            let (na, nb) = (norm(a), norm(b));
            if na == 0.0 || nb == 0.0 {
                // A zero row (never under cosine) is as far from another row as that row's norm.
                return if na.max(nb) > 0.0 { 1.0 } else { 0.0 };
            }
            // Unit rows under cosine (what the graph stores), the rows themselves otherwise.
            let (sa, sb) = if cosine { (1.0 / na, 1.0 / nb) } else { (1.0, 1.0) };
            let d = a.iter().zip(b).map(|(x, y)| (x * sa - y * sb) * (x * sa - y * sb)).sum::<f32>().sqrt();
            d / if cosine { 1.0 } else { na.max(nb) }
        })
        .collect();
    ratios.sort_by(f32::total_cmp);
    if ratios[ratios.len() / 2] >= F16_MIN_SPREAD {
        Storage::F16
    } else {
        Storage::F32
    }
}

/// Smallest median (distance between two rows) / (larger norm) for f16 rows: the f16 error of a
/// distance is then at most 2⁻¹¹ / 0.2 ≈ 0.5% of it, and typically √dim times less. Sentence
/// embeddings measure about 1 (random unit rows are ~√2 apart; even strongly anisotropic models,
/// whose random pairs have cosine 0.9, measure 0.45).
pub(crate) const F16_MIN_SPREAD: f32 = 0.2;

/// Candidates an approximate-score graph hands back per result wanted, for exact re-scoring
/// (never more than the beam already holds).
pub(crate) const APPROX_CANDIDATES: usize = 2;

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
    /// Builds the indexes (`kinds[f]`) over `slots` whose vectors (per field, row-major in `slots`
    /// order) are `vectors[f]` of dimension `dims[f]` under `metrics[f]`.
    pub(crate) fn build(
        slots: Vec<u32>,
        vectors: Vec<Vec<f32>>,
        dims: &[usize],
        metrics: &[Metric],
        kinds: &[IndexKind],
    ) -> Result<Segment> {
        let graphs = vectors
            .into_iter()
            .enumerate()
            .map(|(f, v)| Graph::build(kinds[f], v, dims[f], metrics[f]))
            .collect::<Result<Vec<_>>>()?;
        Ok(Segment::from_parts(slots, graphs))
    }

    /// A segment over `slots` with ready `graphs` (rows in `slots` order), no value graphs, id 0.
    pub(crate) fn from_parts(slots: Vec<u32>, graphs: Vec<Graph>) -> Segment {
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
    /// it), admitting only local rows in `admit` (`None`: all), with beam `ef`; `None` for a
    /// `flat` field (the caller scans it exactly). A graph with approximate scores
    /// ([`Graph::approx_scores`]) hands back up to `k × APPROX_CANDIDATES` candidates (at most the
    /// beam) whose scores the caller must replace with exact ones.
    pub(crate) fn search(
        &self,
        f: usize,
        q: &[f32],
        k: usize,
        ef: usize,
        admit: Option<&IdFilter>,
    ) -> Result<Option<Vec<(f32, u32)>>> {
        let search = HnswSearch::ef(ef.max(k));
        let wanted = match self.graphs[f].approx_scores() {
            true => (k * APPROX_CANDIDATES).min(ef.max(k)),
            false => k,
        };
        let hits = match &self.graphs[f] {
            Graph::Hnsw(g) => g.search_with(q, wanted, &search, admit)?,
            Graph::Sq8(g) => g.search_with(q, k, &search, g.params().rerank, admit)?,
            Graph::Flat(_) => return Ok(None),
        };
        Ok(Some(hits.into_iter().map(|h| (h.score, self.slots[h.id as usize])).collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rows spread like embeddings get f16 under every metric: the graph's scores stay within
    /// 1e-3 of exact, and the segment hands back twice k candidates (capped by the beam) for
    /// re-scoring. Rows sharing a large offset (whatever the metric), or holding values f16
    /// cannot hold, keep f32 and exact scores.
    #[test]
    fn graphs_walk_f16_rows_when_they_rank_like_f32() {
        let dim = 24;
        let mut s = 7u64;
        let rows: Vec<f32> = (0..600 * dim)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5
            })
            .collect();
        let offset: Vec<f32> = rows.iter().map(|x| x + 1000.0).collect();
        let huge: Vec<f32> = rows.iter().enumerate().map(|(i, x)| if i == 5 { 1e6 } else { *x }).collect();
        let q: Vec<f32> = rows[..dim].iter().map(|x| x + 0.01).collect();
        for (metric, data, approx) in [
            (Metric::Cosine, &rows, true),
            (Metric::Cosine, &offset, false),
            (Metric::Cosine, &huge, true),
            (Metric::InnerProduct, &rows, true),
            (Metric::L2, &rows, true),
            (Metric::L2, &offset, false),
            (Metric::InnerProduct, &offset, false),
            (Metric::L2, &huge, false),
        ] {
            let label = format!("{metric:?}, first value {}", data[0]);
            assert_eq!(hnsw_storage(data, dim, metric) == Storage::F16, approx, "{label}");
            let g = Graph::build(IndexKind::Hnsw, data.clone(), dim, metric).expect("build");
            assert_eq!(g.approx_scores(), approx, "{label}");
            let seg = Segment::from_parts((0..600).collect(), vec![g]);
            let hits = seg.search(0, &q, 10, 64, None).expect("search").expect("a graph");
            assert_eq!(hits.len(), if approx { 20 } else { 10 }, "{label}");
            let short = seg.search(0, &q, 10, 12, None).expect("search").expect("a graph");
            assert_eq!(short.len(), if approx { 12 } else { 10 }, "{label}: at most the beam");
            if metric == Metric::Cosine && data[0] == rows[0] {
                let qn = q.iter().map(|x| x * x).sum::<f32>().sqrt();
                for (score, slot) in hits {
                    let r = &rows[slot as usize * dim..(slot as usize + 1) * dim];
                    let rn = r.iter().map(|x| x * x).sum::<f32>().sqrt();
                    let exact = q.iter().zip(r).map(|(a, b)| a * b).sum::<f32>() / (qn * rn);
                    assert!((score - exact).abs() < 1e-3, "f16 score {score} vs exact {exact}");
                }
            }
        }
    }
}
