//! Multi-vector (late-interaction) fields: how a sealed segment keeps each point's set of
//! vectors ([`TokenStore`]: every vector in one flat row file, and where each point's vectors
//! start), what its index is built over ([`MultiField::index_rows`]: MUVERA encodings or the
//! vectors themselves), and how a query's candidates are found and scored by exact MaxSim
//! ([`MultiField::candidates`], [`TokenStore::maxsim`]). Spec of the files: docs/FORMAT.md,
//! "Multi-vector field".

use quarry_ann::fde::{chamfer, FdeEncoder};
use quarry_ann::{AnyIndex, Effort, FlatIndex, FlatParams, Residency};
use quarry_core::{Error, IdFilter, Matrix, Metric, Result};
use quarry_store::framing::FIELDS_LEN;
use quarry_store::{le, write_framed, Framed};
use std::path::Path;
use std::sync::Arc;

/// Magic of a multi-vector field's offsets file.
pub const OFFSETS_MAGIC: [u8; 8] = *b"QRYMVOF\0";
/// Version of the offsets file.
pub const OFFSETS_VERSION: u32 = 1;
const TOKENS_FILE: &str = "tokens.flat";
const OFFSETS_FILE: &str = "offsets.qmv";

/// A query of a multi-vector field as segments search it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MultiQuery<'a> {
    /// The query's vectors (rows of the field's dimension), as compared (unit length under
    /// cosine).
    pub(crate) vectors: &'a [f32],
    /// Its MUVERA query encoding (`None`: the per-token heuristic).
    pub(crate) fde: Option<&'a [f32]>,
    /// Candidates per segment, overriding the field's setting.
    pub(crate) depth: Option<usize>,
}

/// A multi-vector field as the engine runs it (from its schema).
#[derive(Debug, Clone)]
pub(crate) struct MultiField {
    /// Values per vector.
    pub(crate) dim: usize,
    /// MUVERA's encoder (`None`: the per-token heuristic).
    pub(crate) encoder: Option<Arc<FdeEncoder>>,
    /// MUVERA candidates re-ranked per segment.
    pub(crate) rerank: usize,
    /// Nearest vectors per query vector (per-token heuristic).
    pub(crate) per_token: usize,
}

impl MultiField {
    /// The field's runtime settings from its schema entry (`None` for a one-vector field).
    pub(crate) fn of(field: &crate::schema::VectorField) -> Result<Option<MultiField>> {
        let Some(mv) = &field.multivector else { return Ok(None) };
        let encoder = match mv.muvera() {
            true => Some(Arc::new(FdeEncoder::new(field.dim, mv.fde_params())?)),
            false => None,
        };
        Ok(Some(MultiField { dim: field.dim, encoder, rerank: mv.rerank, per_token: mv.per_token }))
    }

    /// The rows a segment's index is built over for points holding `data` (concatenated
    /// vectors, point `i` owning rows `offsets[i]..offsets[i + 1]`): one MUVERA document
    /// encoding per point, or every vector.
    pub(crate) fn index_rows(&self, data: &[f32], offsets: &[u32]) -> Result<Vec<f32>> {
        use rayon::prelude::*;
        let Some(enc) = &self.encoder else { return Ok(data.to_vec()) };
        let d = self.dim;
        let rows: Vec<Vec<f32>> = offsets
            .par_windows(2)
            .map(|w| enc.encode_document(&data[w[0] as usize * d..w[1] as usize * d]))
            .collect::<Result<_>>()?;
        Ok(rows.concat())
    }

    /// The query as the index searches it: its MUVERA query encoding (`None` for the per-token
    /// heuristic, which searches each query vector).
    pub(crate) fn query_rows(&self, query: &[f32]) -> Result<Option<Vec<f32>>> {
        self.encoder.as_ref().map(|e| e.encode_query(query)).transpose()
    }

    /// Local rows (points) of a segment worth re-ranking for query `q` with `k` results: the
    /// best `q.depth` (default [`MultiField::rerank`], at least `k`) of the MUVERA index, or the
    /// owners of each query vector's `q.depth` (default [`MultiField::per_token`]) nearest
    /// vectors, widened until they are at least `k` points; `admit` limits both to admitted
    /// points. Ascending, no repeats.
    pub(crate) fn candidates(
        &self,
        index: &AnyIndex,
        tokens: &TokenStore,
        q: &MultiQuery<'_>,
        k: usize,
        effort: &Effort,
        admit: Option<&[u32]>,
    ) -> Result<Vec<u32>> {
        let mut out = Vec::new();
        match q.fde {
            Some(fde) => {
                // Never fewer candidates than results asked for.
                let depth = q.depth.unwrap_or(self.rerank).max(k).max(1);
                let effort = Effort { ef: effort.ef.max(depth), ..*effort };
                let filter = admit.map(|a| IdFilter::from_ids(a.iter().copied()));
                out.extend(index.search(fde, depth, &effort, filter.as_ref())?.into_iter().map(|h| h.id));
            }
            None => {
                let filter = admit.map(|a| {
                    IdFilter::from_ids(
                        a.iter().flat_map(|&l| tokens.range(l).unwrap_or(0..0)).map(|t| t as u32),
                    )
                });
                let available = admit.map_or(tokens.points(), <[u32]>::len);
                let mut per = q.depth.unwrap_or(self.per_token).max(1);
                // Widen until the owners number at least `k` (or every vector has been asked for).
                loop {
                    let effort = Effort { ef: effort.ef.max(per), ..*effort };
                    out.clear();
                    for v in q.vectors.chunks_exact(self.dim) {
                        for h in index.search(v, per, &effort, filter.as_ref())? {
                            out.extend(tokens.owner(h.id));
                        }
                    }
                    out.sort_unstable();
                    out.dedup();
                    if out.len() >= k.min(available) || per >= tokens.vector_count() {
                        break;
                    }
                    per = (per * 2).min(tokens.vector_count());
                }
            }
        }
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }
}

/// Scales every vector of `v` (rows of `dim`) to unit length as the flat rows do under cosine
/// (f64 norm): what a cosine multi-vector field stores and compares.
pub(crate) fn normalise_rows(v: &mut [f32], dim: usize) {
    for row in v.chunks_exact_mut(dim.max(1)) {
        let norm = row.iter().map(|&x| x as f64 * x as f64).sum::<f64>().sqrt();
        if let Some(inv) = quarry_core::unit_scale(norm) {
            row.iter_mut().for_each(|x| *x = (*x as f64 * inv) as f32);
        }
    }
}

/// Every vector of a segment's points in one flat row file, point `i` owning rows
/// `offsets[i]..offsets[i + 1]`.
#[derive(Debug)]
pub(crate) struct TokenStore {
    rows: FlatIndex,
    offsets: Vec<u32>,
}

impl TokenStore {
    /// Writes `data` (rows of `dim`) and `offsets` into folder `dir` (created), crash-safely.
    pub(crate) fn save(dir: &Path, dim: usize, data: &[f32], offsets: &[u32]) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io("creating", dir, e))?;
        let flat =
            FlatIndex::build(&Matrix::new(data.to_vec(), dim)?, Metric::InnerProduct, FlatParams::default())?;
        flat.save(&dir.join(TOKENS_FILE))?;
        let mut header = [0u8; FIELDS_LEN];
        header[0..8].copy_from_slice(&((offsets.len() - 1) as u64).to_le_bytes());
        header[8..16].copy_from_slice(&u64::from(offsets.last().copied().unwrap_or(0)).to_le_bytes());
        let body: Vec<u8> = offsets.iter().flat_map(|o| o.to_le_bytes()).collect();
        write_framed(&dir.join(OFFSETS_FILE), OFFSETS_MAGIC, OFFSETS_VERSION, &header, &[&body], 0)?;
        quarry_store::sync_folder(dir)
    }

    /// Opens the store in `dir` for `points` points of vectors of `dim` values, checking every
    /// checksum and that the offsets agree with the rows; rows stay mapped with
    /// [`Residency::Disk`], else are copied to the heap.
    pub(crate) fn open(dir: &Path, dim: usize, points: usize, residency: Residency) -> Result<TokenStore> {
        let path = dir.join(OFFSETS_FILE);
        let bad = |msg: String| Error::corrupt(&path, "offsets", msg);
        let mut file = Framed::open(&path, OFFSETS_MAGIC, OFFSETS_VERSION, "multi-vector offsets")?;
        let n = le::u64_at(&file.fields, 0).unwrap_or(u64::MAX);
        let total = le::u64_at(&file.fields, 8).unwrap_or(u64::MAX);
        if n != points as u64 {
            return Err(bad(format!("{n} points, the segment has {points}")));
        }
        let body = file.read(0, "offsets")?;
        if body.len() != (points + 1) * 4 {
            return Err(bad(format!("{} bytes of offsets for {points} points", body.len())));
        }
        let offsets: Vec<u32> =
            body.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        if offsets[0] != 0 || offsets.windows(2).any(|w| w[1] <= w[0]) || u64::from(offsets[points]) != total
        {
            return Err(bad("offsets do not start at 0 and rise to the vector count".into()));
        }
        let tpath = dir.join(TOKENS_FILE);
        FlatIndex::verify(&tpath)?;
        let mut rows = FlatIndex::open(&tpath)?;
        if rows.rows() as u64 != total || quarry_core::VectorIndex::dim(&rows) != dim {
            return Err(Error::corrupt(
                &tpath,
                "header",
                format!(
                    "{} vectors of dimension {}, expected {total} of {dim}",
                    rows.rows(),
                    quarry_core::VectorIndex::dim(&rows)
                ),
            ));
        }
        // The engine writes f32 rows compared by inner product; anything else is not its file.
        if rows.storage() != quarry_ann::Storage::F32
            || quarry_core::VectorIndex::metric(&rows) != Metric::InnerProduct
        {
            return Err(Error::corrupt(
                &tpath,
                "header",
                "multi-vector rows must be f32 with metric ip".to_string(),
            ));
        }
        if residency == Residency::Memory {
            rows.move_to_heap();
        }
        Ok(TokenStore { rows, offsets })
    }

    /// Points in the store.
    pub(crate) fn points(&self) -> usize {
        self.offsets.len() - 1
    }

    /// Vectors in the store.
    pub(crate) fn vector_count(&self) -> usize {
        self.offsets.last().copied().unwrap_or(0) as usize
    }

    /// The rows of point `local`.
    pub(crate) fn range(&self, local: u32) -> Option<std::ops::Range<usize>> {
        let a = *self.offsets.get(local as usize)? as usize;
        let b = *self.offsets.get(local as usize + 1)? as usize;
        Some(a..b)
    }

    /// The vectors of point `local`, concatenated.
    pub(crate) fn get(&self, local: u32) -> Option<&[f32]> {
        let r = self.range(local)?;
        self.rows.rows_f32(r.start, r.end)
    }

    /// The point owning vector row `row`.
    pub(crate) fn owner(&self, row: u32) -> Option<u32> {
        if row >= *self.offsets.last()? {
            return None;
        }
        Some(self.offsets.partition_point(|&o| o <= row) as u32 - 1)
    }

    /// Exact MaxSim of `query` (rows of the field's dimension) with point `local`.
    pub(crate) fn maxsim(&self, query: &[f32], local: u32) -> Option<f32> {
        Some(chamfer(query, self.get(local)?, quarry_core::VectorIndex::dim(&self.rows)))
    }

    /// Bytes held in memory (heap rows and offsets; mapped rows excluded).
    pub(crate) fn resident_bytes(&self) -> usize {
        self.offsets.len() * 4
            + if self.rows.is_mapped() {
                0
            } else {
                self.vector_count() * quarry_core::VectorIndex::dim(&self.rows) * 4
            }
    }
}
