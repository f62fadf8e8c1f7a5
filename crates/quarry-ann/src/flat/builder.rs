//! `FlatIndex` construction: validation, cosine normalisation and aligned storage.

use super::params::{FlatParams, Storage};
use half::f16;
use quarry_core::{check_finite, DocId, Error, IdFilter, Matrix, Metric, Result};
use quarry_linalg::AlignedVec;

/// The rows, in the element type chosen by [`FlatParams::storage`].
#[derive(Debug, Clone)]
pub(super) enum Rows {
    F32(AlignedVec<f32>),
    F16(AlignedVec<f16>),
}

/// Exact-search index: all vectors in one contiguous aligned block, compared exhaustively.
#[derive(Debug, Clone)]
pub struct FlatIndex {
    pub(super) dim: usize,
    pub(super) metric: Metric,
    pub(super) rows: Rows,
    /// Rows stored (deleted ones included).
    pub(super) len: usize,
    /// Tombstoned ids: never returned.
    pub(crate) deleted: IdFilter,
    /// When to ask the kernel for mapped rows ahead of re-scoring them.
    pub(crate) readahead: super::readahead::ReadAhead,
}

impl FlatIndex {
    /// An empty index for `dim`-dimensional vectors.
    pub fn new(dim: usize, metric: Metric, params: FlatParams) -> Result<Self> {
        if dim == 0 {
            return Err(Error::InvalidArgument("vector dimension must be at least 1".into()));
        }
        let rows = match params.storage {
            Storage::F32 => Rows::F32(AlignedVec::new()),
            Storage::F16 => Rows::F16(AlignedVec::new()),
        };
        Ok(FlatIndex { dim, metric, rows, len: 0, deleted: IdFilter::new(), readahead: Default::default() })
    }

    /// Builds an index holding `vectors` (ids `0..rows`).
    pub fn build(vectors: &Matrix, metric: Metric, params: FlatParams) -> Result<Self> {
        let mut index = FlatIndex::new(vectors.dim(), metric, params)?;
        index.add(vectors)?;
        Ok(index)
    }

    /// Builds an index from f16 rows. With f16 storage and a non-normalising metric the values are
    /// kept bit for bit.
    pub fn build_f16(rows: &[f16], dim: usize, metric: Metric, params: FlatParams) -> Result<Self> {
        let mut index = FlatIndex::new(dim, metric, params)?;
        if !rows.len().is_multiple_of(dim) {
            return Err(Error::InvalidArgument(format!(
                "{} values do not split into rows of {dim}",
                rows.len()
            )));
        }
        if rows.len() / dim > DocId::MAX as usize {
            return Err(Error::InvalidArgument(format!("a flat index holds at most {} vectors", DocId::MAX)));
        }
        if params.storage == Storage::F16 && !metric.normalizes() {
            for (i, r) in rows.chunks_exact(dim).enumerate() {
                if let Some(c) = r.iter().position(|h| !h.is_finite()) {
                    return Err(Error::NonFinite {
                        what: format!("vector {i}"),
                        component: c,
                        value: r[c].to_f32(),
                    });
                }
            }
            if let Rows::F16(store) = &mut index.rows {
                store.extend_from_slice(rows);
            }
            index.len = rows.len() / dim;
            return Ok(index);
        }
        let widened: Vec<f32> = rows.iter().map(|h| h.to_f32()).collect();
        index.add(&Matrix::new(widened, dim)?)?;
        Ok(index)
    }

    /// Appends `vectors`, returning the id of the first. Every row is validated first, so a bad
    /// row leaves the index unchanged. Cosine rows are stored normalised.
    pub fn add(&mut self, vectors: &Matrix) -> Result<DocId> {
        if vectors.dim() != self.dim {
            return Err(Error::DimensionMismatch {
                expected: self.dim,
                got: vectors.dim(),
                context: "vectors added to a flat index".into(),
            });
        }
        let first = self.len;
        let total = first + vectors.rows();
        if total > DocId::MAX as usize {
            return Err(Error::InvalidArgument(format!("a flat index holds at most {} vectors", DocId::MAX)));
        }
        for (i, r) in vectors.iter().enumerate() {
            check_finite(r, || format!("vector {}", first + i))?;
        }
        // Validate zero norms before touching the store, so a bad row leaves the index unchanged.
        let mut inv_norms = Vec::new();
        if self.metric.normalizes() {
            inv_norms.reserve(vectors.rows());
            for (i, r) in vectors.iter().enumerate() {
                let n = r.iter().map(|&x| x as f64 * x as f64).sum::<f64>().sqrt();
                match quarry_core::unit_scale(n) {
                    Some(scale) => inv_norms.push(scale),
                    None => return Err(Error::ZeroVector { what: format!("vector {}", first + i) }),
                }
            }
        }
        let start = first * self.dim;
        match &mut self.rows {
            Rows::F32(store) => {
                store.extend_from_slice(vectors.as_slice());
                if !inv_norms.is_empty() {
                    for (r, inv) in store.as_mut_slice()[start..].chunks_exact_mut(self.dim).zip(&inv_norms) {
                        r.iter_mut().for_each(|x| *x = (*x as f64 * inv) as f32);
                    }
                }
            }
            Rows::F16(store) => {
                let scale = |i: usize| inv_norms.get(i / self.dim).copied().unwrap_or(1.0);
                let halves: Vec<f16> = vectors
                    .as_slice()
                    .iter()
                    .enumerate()
                    .map(|(i, &x)| f16::from_f32((x as f64 * scale(i)) as f32))
                    .collect();
                if let Some(c) = halves.iter().position(|h| !h.is_finite()) {
                    return Err(Error::InvalidArgument(format!(
                        "value {} of vector {} overflows f16 storage; use f32 storage",
                        vectors.as_slice()[c],
                        first + c / self.dim
                    )));
                }
                store.extend_from_slice(&halves);
            }
        }
        self.len = total;
        Ok(first as DocId)
    }

    /// Overwrites stored vector `id` (validated and, for cosine, normalised like `add`).
    pub(crate) fn set_row(&mut self, id: DocId, vector: &[f32]) -> Result<()> {
        let i = id as usize;
        if i >= self.len {
            return Err(Error::InvalidArgument(format!(
                "id {id} is not in an index of {} vectors",
                self.len
            )));
        }
        let mut scratch = FlatIndex::new(self.dim, self.metric, FlatParams { storage: self.storage() })?;
        scratch.add(&Matrix::new(vector.to_vec(), self.dim).map_err(|_| Error::DimensionMismatch {
            expected: self.dim,
            got: vector.len(),
            context: format!("vector {id}"),
        })?)?;
        let span = i * self.dim..(i + 1) * self.dim;
        match (&mut self.rows, scratch.rows) {
            (Rows::F32(dst), Rows::F32(src)) => dst.as_mut_slice()[span].copy_from_slice(src.as_slice()),
            (Rows::F16(dst), Rows::F16(src)) => dst.as_mut_slice()[span].copy_from_slice(src.as_slice()),
            _ => unreachable!("scratch index has the same storage"),
        }
        Ok(())
    }

    /// An index serving `n` rows from a file mapping (see `AlignedVec::from_mmap`).
    pub(crate) fn from_mapped(
        map: memmap2::MmapMut,
        n: usize,
        dim: usize,
        metric: Metric,
        storage: Storage,
    ) -> std::result::Result<Self, String> {
        let len = n.checked_mul(dim).ok_or("size overflows")?;
        let rows = match storage {
            Storage::F32 => Rows::F32(AlignedVec::from_mmap(map, len)?),
            Storage::F16 => Rows::F16(AlignedVec::from_mmap(map, len)?),
        };
        Ok(FlatIndex { dim, metric, rows, len: n, deleted: IdFilter::new(), readahead: Default::default() })
    }

    /// Copies memory-mapped rows onto the heap (no-op for heap rows).
    pub fn move_to_heap(&mut self) {
        match &mut self.rows {
            Rows::F32(r) if r.is_mapped() => *r = AlignedVec::from_slice(r.as_slice()),
            Rows::F16(r) if r.is_mapped() => *r = AlignedVec::from_slice(r.as_slice()),
            _ => {}
        }
    }

    /// The stored rows as little-endian bytes (the on-disk vector section).
    pub(crate) fn raw_bytes(&self) -> &[u8] {
        match &self.rows {
            Rows::F32(r) => bytemuck::cast_slice(r.as_slice()),
            Rows::F16(r) => bytemuck::cast_slice(r.as_slice()),
        }
    }

    /// The storage element type.
    pub fn storage(&self) -> Storage {
        self.storage_of()
    }

    /// Rows stored, deleted ones included (ids are `0..rows`).
    pub fn rows(&self) -> usize {
        self.len
    }

    /// Whether the rows are memory-mapped from a file (opened with `open`) rather than on the
    /// heap: mapped rows are resident only where they have been read.
    pub fn is_mapped(&self) -> bool {
        match &self.rows {
            Rows::F32(r) => r.is_mapped(),
            Rows::F16(r) => r.is_mapped(),
        }
    }

    fn storage_of(&self) -> Storage {
        match self.rows {
            Rows::F32(_) => Storage::F32,
            Rows::F16(_) => Storage::F16,
        }
    }

    /// Rows `start..end` in place (row-major, normalised for cosine), or `None` if the range is
    /// out of bounds or the rows are stored as f16.
    pub fn rows_f32(&self, start: usize, end: usize) -> Option<&[f32]> {
        if start > end || end > self.len {
            return None;
        }
        match &self.rows {
            Rows::F32(s) => s.as_slice().get(start * self.dim..end * self.dim),
            Rows::F16(_) => None,
        }
    }

    /// Stored vector `id` as f32 (normalised for cosine), or `None` if out of range.
    pub fn vector(&self, id: DocId) -> Option<Vec<f32>> {
        let i = id as usize;
        if i >= self.len {
            return None;
        }
        let span = i * self.dim..(i + 1) * self.dim;
        Some(match &self.rows {
            Rows::F32(s) => s.as_slice()[span].to_vec(),
            Rows::F16(s) => s.as_slice()[span].iter().map(|h| h.to_f32()).collect(),
        })
    }
}
