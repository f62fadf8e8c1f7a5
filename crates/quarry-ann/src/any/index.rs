//! [`AnyIndex`]: an index of any family ([`IndexSpec`]) built into a folder and opened from it,
//! with one search call and one view of its exact rows.
//!
//! Every family keeps its f32 rows in one flat file inside its folder (`vectors.qflat`, or the
//! rows section of `graph.qhnsw`), and that file is the only copy: the graph walk (plain
//! `hnsw`), exact re-scoring of code candidates, exact scans of a few admitted ids and reading a
//! vector back all use it. Opened with [`Residency::Disk`] the rows stay memory-mapped (resident
//! only where read, in the page cache); with [`Residency::Memory`] they are copied to the heap
//! (huge pages). Codes, graph links and SPANN's heads are always loaded.
//!
//! Folder layout by base: `flat` → `vectors.qflat` (+ `codes.qcodes` with codes); `hnsw` →
//! `graph.qhnsw` (+ `codes.qcodes`); `spann` → the SPANN folder (`spann.meta`, `heads.qhnsw`,
//! `postings.qpost`, `vectors.qflat`). Each file has its own magic, version and checksums
//! (docs/FORMAT.md).

use super::spec::{Base, IndexSpec};
use crate::quant::{FLAT_FILE, HNSW_FILE};
use crate::spann::{SpannParams, SpannSearch, VECTORS_FILE};
use crate::{FlatIndex, FlatParams, HnswIndex, HnswParams, HnswSearch, QuantFlatIndex, QuantHnswIndex};
use quarry_core::{DocId, Error, Hit, IdFilter, Matrix, Metric, Result, SearchParams, VectorIndex};
use std::path::Path;

/// Where an opened index keeps its f32 rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Residency {
    /// Copied to the heap (huge pages where the OS gives them): no page faults while searching.
    #[default]
    Memory,
    /// Memory-mapped from the file: resident only where read (Qdrant's `on_disk`).
    Disk,
}

/// How much work a search does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Effort {
    /// Graph beam (`hnsw`, SPANN's head search); for SPANN also the most posting lists read.
    pub ef: usize,
    /// Code candidates re-scored exactly per result (`None`: the codes' default; 0 with RaBitQ:
    /// by error bound).
    pub rerank: Option<usize>,
    /// Re-score candidates exactly from the rows (the default). `false`: a compressed graph
    /// (`hnsw+<codes>`) returns the codes' ranking with their estimated scores and reads no row,
    /// which is what keeps it fast when the rows are on a device and the cache is small (Qdrant's
    /// `rescore: false`); every other family ignores it (exact ones need no re-scoring; flat
    /// codes and SPANN always re-score).
    pub rescore: bool,
}

impl Default for Effort {
    fn default() -> Self {
        Effort { ef: 100, rerank: None, rescore: true }
    }
}

/// The family-specific index inside an [`AnyIndex`] (one per segment field, never moved in a
/// hot path: the size difference between variants costs nothing).
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
enum Inner {
    Flat(FlatIndex),
    FlatCodes(QuantFlatIndex),
    Hnsw(HnswIndex),
    HnswCodes(QuantHnswIndex),
    /// SPANN and its exact rows (`vectors.qflat`, mapped; `None` when they stay in object
    /// storage and are read by range through the SPANN index).
    Spann(Box<(crate::spann::SpannIndex, Option<FlatIndex>)>),
}

/// An index of any family, opened from its folder.
#[derive(Debug)]
pub struct AnyIndex {
    spec: IndexSpec,
    inner: Inner,
}

/// Builds the index `spec` over `vectors` under `metric` into folder `dir` (created; written
/// crash-safely file by file). `threads` bound nothing here: builds use the current rayon pool.
pub fn build_into(spec: &IndexSpec, vectors: &Matrix, metric: Metric, dir: &Path) -> Result<()> {
    spec.check_dim(vectors.dim())?;
    std::fs::create_dir_all(dir).map_err(|e| Error::io("creating the index folder", dir, e))?;
    let graph = HnswParams { m: 16, ef_construction: 200, ..HnswParams::default() };
    let qp = spec.quant_params(vectors.dim());
    match (spec.base, qp) {
        (Base::Flat, None) => {
            FlatIndex::build(vectors, metric, FlatParams::default())?.save(&dir.join(FLAT_FILE))
        }
        (Base::Flat, Some(qp)) => {
            QuantFlatIndex::build(vectors, metric, FlatParams::default(), qp)?.save(dir)
        }
        (Base::Hnsw, None) => HnswIndex::build(vectors, metric, graph)?.save(&dir.join(HNSW_FILE)),
        (Base::Hnsw, Some(qp)) => QuantHnswIndex::build(vectors, metric, graph, qp)?.save(dir),
        (Base::Spann, qp) => {
            let params = SpannParams { codes: qp.map(|p| p.spec), ..SpannParams::default() };
            crate::spann::SpannIndex::build(vectors, metric, params, dir, 0).map(|_| ())
        }
    }
}

impl AnyIndex {
    /// Opens the index `spec` saved by [`build_into`] in `dir`, its rows kept per `residency`.
    /// Everything loaded is validated (magic, version, checksums, shapes); rows copied to memory
    /// are checksummed too, rows left on disk are not (that would read them all: run
    /// [`AnyIndex::verify`] to check them).
    pub fn open(spec: &IndexSpec, dir: &Path, residency: Residency) -> Result<AnyIndex> {
        // Files in object storage are never read whole at open: their ranges are checked as read.
        let remote = spec.base == Base::Spann
            && quarry_store::source::attached(&dir.join(crate::spann::POSTINGS_FILE)).is_some();
        let heap = residency == Residency::Memory && !remote;
        if heap {
            AnyIndex::verify(spec, dir)?;
        }
        let inner = match (spec.base, spec.codes.is_some()) {
            (Base::Flat, false) => {
                let mut f = FlatIndex::open(&dir.join(FLAT_FILE))?;
                if heap {
                    f.move_to_heap();
                }
                Inner::Flat(f)
            }
            (Base::Flat, true) => {
                let mut q = QuantFlatIndex::open(dir)?;
                if heap {
                    q.flat.move_to_heap();
                }
                // Only re-scored rows are read: no read-around.
                q.flat.advise_random();
                Inner::FlatCodes(q)
            }
            (Base::Hnsw, false) => {
                let path = dir.join(HNSW_FILE);
                // In memory the walk ranks by 8-bit codes (trained after the copy, one pass over
                // the heap rows); on disk it reads its rows, so nothing is read at open and no
                // codes take heap memory.
                let mut h = HnswIndex::open_walking_rows(&path)?;
                if heap {
                    h.flat.move_to_heap();
                    h.set_walk_codes(true)?;
                }
                Inner::Hnsw(h)
            }
            (Base::Hnsw, true) => {
                let mut q = QuantHnswIndex::open(dir)?;
                if heap {
                    q.hnsw.flat.move_to_heap();
                }
                Inner::HnswCodes(q)
            }
            (Base::Spann, _) => {
                let s = crate::spann::SpannIndex::open(dir, 0)?;
                // Rows kept in object storage are not mapped: they are read by range when asked
                // for (f32 posting lists answer searches without them).
                let rows = if quarry_store::source::attached(&dir.join(VECTORS_FILE)).is_some() {
                    None
                } else {
                    let mut rows = FlatIndex::open(&dir.join(VECTORS_FILE))?;
                    if rows.rows() != s.n || rows.dim() != s.dim {
                        return Err(Error::corrupt(
                            dir.join(VECTORS_FILE),
                            "header",
                            format!(
                                "{} rows of dimension {}, the index has {} of {}",
                                rows.rows(),
                                rows.dim(),
                                s.n,
                                s.dim
                            ),
                        ));
                    }
                    if heap {
                        rows.move_to_heap();
                    }
                    rows.advise_random();
                    Some(rows)
                };
                Inner::Spann(Box::new((s, rows)))
            }
        };
        let index = AnyIndex { spec: *spec, inner };
        if let Some(want) = spec.codes {
            let got = match &index.inner {
                Inner::FlatCodes(q) => Some(q.params().spec),
                Inner::HnswCodes(q) => Some(q.params().spec),
                Inner::Spann(b) => b.0.params().codes,
                _ => None,
            };
            let same = match (want, got) {
                (crate::QuantSpec::Pq { m: 0, nbits }, Some(crate::QuantSpec::Pq { nbits: b, .. })) => {
                    nbits == b
                }
                (w, Some(g)) => w == g,
                (_, None) => false,
            };
            if !same {
                return Err(Error::corrupt(dir, "codes", format!("the folder's codes are not {spec}")));
            }
        }
        Ok(index)
    }

    /// Checks every checksum of the index's files (reads them whole).
    pub fn verify(spec: &IndexSpec, dir: &Path) -> Result<()> {
        match (spec.base, spec.codes.is_some()) {
            (Base::Flat, false) => FlatIndex::verify(&dir.join(FLAT_FILE)),
            (Base::Flat, true) => QuantFlatIndex::verify(dir),
            (Base::Hnsw, false) => HnswIndex::verify(&dir.join(HNSW_FILE)),
            (Base::Hnsw, true) => QuantHnswIndex::verify(dir),
            (Base::Spann, _) => crate::spann::SpannIndex::verify(dir),
        }
    }

    /// Wraps an opened HNSW index (for folders of an earlier layout).
    pub fn from_hnsw(index: HnswIndex) -> AnyIndex {
        AnyIndex { spec: IndexSpec::plain(Base::Hnsw), inner: Inner::Hnsw(index) }
    }

    /// Wraps an opened HNSW index with codes (for folders of an earlier layout).
    pub fn from_quant_hnsw(index: QuantHnswIndex) -> AnyIndex {
        let spec = IndexSpec { base: Base::Hnsw, codes: Some(index.params().spec) };
        AnyIndex { spec, inner: Inner::HnswCodes(index) }
    }

    /// Wraps a flat index (for folders of an earlier layout).
    pub fn from_flat(index: FlatIndex) -> AnyIndex {
        AnyIndex { spec: IndexSpec::plain(Base::Flat), inner: Inner::Flat(index) }
    }

    /// The index's spec.
    pub fn spec(&self) -> IndexSpec {
        self.spec
    }

    /// The exact rows (ids `0..rows`; normalised under cosine), mapped or on the heap; `None`
    /// for a SPANN index whose rows stay in object storage (read by range instead).
    pub fn rows(&self) -> Option<&FlatIndex> {
        match &self.inner {
            Inner::Flat(f) => Some(f),
            Inner::FlatCodes(q) => Some(&q.flat),
            Inner::Hnsw(h) => Some(&h.flat),
            Inner::HnswCodes(q) => Some(&q.hnsw.flat),
            Inner::Spann(b) => b.1.as_ref(),
        }
    }

    /// Rows indexed (ids are `0..rows`).
    pub fn row_count(&self) -> usize {
        match (&self.inner, self.rows()) {
            (Inner::Spann(b), None) => b.0.n,
            (_, rows) => rows.map_or(0, FlatIndex::rows),
        }
    }

    /// Stored vector `id` (normalised under cosine).
    pub fn vector(&self, id: DocId) -> Option<Vec<f32>> {
        match (&self.inner, self.rows()) {
            (Inner::Spann(b), None) => b.0.vector(id),
            (_, rows) => rows?.vector(id),
        }
    }

    /// Whether a graph or list search answers with exact scores (f16 rows do not: their
    /// candidates are re-scored exactly by [`AnyIndex::search`] itself; SPANN rows are f32).
    fn exact_scores(&self) -> bool {
        self.rows().is_none_or(|r| r.storage() == crate::Storage::F32)
    }

    /// The `k` best ids for `query` among those in `filter` (`None`: all), with exact scores
    /// (score descending, ties by id). Each family uses its own path: a scan (over codes, then
    /// re-scored), a graph walk, or SPANN's posting lists.
    pub fn search(
        &self,
        query: &[f32],
        k: usize,
        effort: &Effort,
        filter: Option<&IdFilter>,
    ) -> Result<Vec<Hit>> {
        let hnsw = HnswSearch::ef(effort.ef.max(k));
        if let (Inner::HnswCodes(q), false) = (&self.inner, effort.rescore) {
            return q.search_estimated(query, k, &hnsw, filter);
        }
        let hits = match &self.inner {
            Inner::Flat(f) => {
                let mut p = SearchParams::top(k);
                if let Some(fl) = filter {
                    p = p.with_filter(std::sync::Arc::new(fl.clone()));
                }
                f.search(query, &p)?
            }
            Inner::FlatCodes(q) => {
                q.search_with(query, k, effort.rerank.unwrap_or(q.params().rerank), filter)?
            }
            Inner::Hnsw(h) => h.search_with(query, k, &hnsw, filter)?,
            Inner::HnswCodes(q) => {
                q.search_with(query, k, &hnsw, effort.rerank.unwrap_or(q.params().rerank), filter)?
            }
            Inner::Spann(b) => {
                let s = &b.0;
                let search = SpannSearch {
                    max_postings: effort.ef.max(1),
                    head_ef: effort.ef.max(SpannSearch::default().head_ef),
                    rerank: effort.rerank.unwrap_or_else(|| {
                        s.params().codes.map_or(0, |c| match c {
                            crate::QuantSpec::RaBitQ { .. } => 0,
                            c => c.default_rerank(),
                        })
                    }),
                    // While rows come from the device (re-scoring is slow), the lists a query
                    // probes are asked for together too: parallel reads instead of one by one.
                    readahead: s.is_remote() || s.rows.as_ref().is_some_and(|r| r.wants_readahead()),
                    ..SpannSearch::default()
                };
                s.search_with(query, k, &search, filter)?
            }
        };
        if self.exact_scores() {
            return Ok(hits);
        }
        let ids: Vec<DocId> = hits.iter().map(|h| h.id).collect();
        self.search_ids(query, &ids, k)
    }

    /// The `k` best of `ids` for `query`, scored exactly from the rows (ids out of range are an
    /// error; deleted ids are the caller's to leave out).
    pub fn search_ids(&self, query: &[f32], ids: &[DocId], k: usize) -> Result<Vec<Hit>> {
        let rows = match (&self.inner, self.rows()) {
            (Inner::Spann(b), None) => return b.0.score_ids(query, ids, k),
            (_, Some(rows)) => rows,
            (_, None) => return Err(Error::InvalidArgument("this index has no rows".into())),
        };
        if let Some(&bad) = ids.iter().find(|&&id| id as usize >= rows.rows()) {
            return Err(Error::InvalidArgument(format!(
                "id {bad} is not in an index of {} rows",
                rows.rows()
            )));
        }
        let q = rows.prepare(query, || "query".into())?;
        const AHEAD: usize = 4;
        for &id in ids.iter().take(AHEAD) {
            rows.prefetch(id as usize);
        }
        let kern = quarry_linalg::Kernels::get();
        let mut top = quarry_linalg::TopK::new(k);
        for (i, &id) in ids.iter().enumerate() {
            if let Some(&next) = ids.get(i + AHEAD) {
                rows.prefetch(next as usize);
            }
            let key = rows.key(kern, q.as_slice(), id as usize);
            if key <= top.threshold() {
                top.push(key, id);
            }
        }
        Ok(FlatIndex::hits(top))
    }

    /// Bytes held in memory: codes, links, heads, id maps, and the rows when on the heap
    /// (mapped rows are counted by the OS as page cache where read).
    pub fn resident_bytes(&self) -> usize {
        let rows = |f: &FlatIndex| if f.is_mapped() { 0 } else { f.memory_bytes() };
        match &self.inner {
            Inner::Flat(f) => rows(f),
            Inner::FlatCodes(q) => q.resident_bytes(),
            Inner::Hnsw(h) => h.memory_bytes() - if h.flat.is_mapped() { h.flat.memory_bytes() } else { 0 },
            Inner::HnswCodes(q) => q.resident_bytes(),
            Inner::Spann(b) => b.0.resident_bytes() + b.1.as_ref().map_or(0, rows),
        }
    }
}

impl VectorIndex for AnyIndex {
    fn dim(&self) -> usize {
        match &self.inner {
            Inner::Spann(b) => b.0.dim,
            _ => self.rows().map_or(0, FlatIndex::dim),
        }
    }

    fn len(&self) -> usize {
        match &self.inner {
            Inner::Spann(b) => b.0.len(),
            Inner::Flat(f) => f.len(),
            Inner::FlatCodes(q) => q.len(),
            Inner::Hnsw(h) => h.len(),
            Inner::HnswCodes(q) => q.len(),
        }
    }

    fn metric(&self) -> Metric {
        match &self.inner {
            Inner::Spann(b) => b.0.metric,
            _ => self.rows().map_or(Metric::L2, |r| r.metric()),
        }
    }

    fn memory_bytes(&self) -> usize {
        self.resident_bytes()
    }

    fn search(&self, query: &[f32], params: &SearchParams) -> Result<Vec<Hit>> {
        AnyIndex::search(self, query, params.k, &Effort::default(), params.filter.as_deref())
    }

    fn search_batch(&self, queries: &Matrix, params: &SearchParams) -> Result<Vec<Vec<Hit>>> {
        use rayon::prelude::*;
        (0..queries.rows())
            .into_par_iter()
            .map(|i| VectorIndex::search(self, queries.row(i), params))
            .collect()
    }
}
