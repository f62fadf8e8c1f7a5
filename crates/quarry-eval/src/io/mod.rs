//! Vector and id file formats, and dispatchers that pick a reader by file extension.
//!
//! * [`texmex`]: `.fvecs`, `.ivecs`, `.bvecs` (SIFT/GIST/BIGANN layout).
//! * [`npy`]: NumPy `.npy` v1/v2/v3, C order, 1-D or 2-D, common numeric dtypes.
//! * [`jsonl`]: one `{"id", "vector", "payload"}` object per line.
//! * [`beir`]: a BEIR dataset folder (`corpus.jsonl`, `queries.jsonl`, `qrels/<split>.tsv`).
//!
//! Every parser is a pure function over bytes (`parse_*`), so fuzzers can call it, plus a `read_*`
//! wrapper that reads the file. Malformed input gives [`Error::Malformed`] naming the file and the
//! record, line or byte offset; no input makes a parser panic or allocate more than the input's size
//! suggests. Writers are crash-safe: see [`write_atomic`].

pub mod beir;
pub mod jsonl;
pub mod npy;
pub mod texmex;

#[cfg(test)]
mod tests;

use std::path::Path;

use quarry_core::{Error, Matrix, Result};

pub use beir::{
    parse_beir_corpus, parse_beir_queries, read_beir, read_beir_corpus, read_beir_queries, BeirDataset,
    BeirDoc, BeirQuery,
};
pub use jsonl::{parse_jsonl, read_jsonl, records_to_matrix, RecordId, VectorRecord};
pub use npy::{
    parse_npy, parse_npy_header, read_npy, read_npy_header, write_npy_f16, write_npy_f32, write_npy_i32,
    NpyArray, NpyData, NpyDtype, NpyHeader,
};
pub use quarry_store::atomic::write_atomic;
pub use texmex::{
    parse_bvecs, parse_fvecs, parse_ivecs, read_bvecs, read_fvecs, read_ivecs, write_fvecs, write_ivecs,
};

/// Extensions accepted by [`read_vectors`].
pub const VECTOR_EXTENSIONS: &str = ".fvecs, .bvecs, .npy, .jsonl";
/// Extensions accepted by [`read_id_rows`].
pub const ID_EXTENSIONS: &str = ".ivecs, .npy (int32, int64 or uint32)";

/// The lower-cased extension of `path`, without the dot ("" when there is none).
fn extension(path: &Path) -> String {
    path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase()
}

/// Reads a file of vectors, choosing the format by extension: `.fvecs`, `.bvecs` (bytes converted to
/// f32), `.npy` of any supported float or integer dtype (converted to f32; a 1-D array is one row) or
/// `.jsonl` (see [`jsonl`]). Values are returned as stored: NaN and infinities are not rejected here.
pub fn read_vectors(path: &Path) -> Result<Matrix> {
    match extension(path).as_str() {
        "fvecs" => read_fvecs(path),
        "bvecs" => read_bvecs(path),
        "npy" => {
            let array = read_npy(path)?;
            let cols = array.cols();
            if cols == 0 {
                return Err(Error::malformed(
                    path,
                    "header",
                    "array has zero columns, so it holds no vectors",
                ));
            }
            Matrix::new(array.data.into_f32(), cols)
                .map_err(|e| Error::malformed(path, "data", format!("cannot form vectors: {e}")))
        }
        "jsonl" => records_to_matrix(&read_jsonl(path)?, path),
        "ivecs" => Err(Error::InvalidArgument(format!(
            "{} holds integer ids (ground truth), not vectors: read it with read_id_rows",
            path.display()
        ))),
        _ => Err(unknown_extension(path, VECTOR_EXTENSIONS)),
    }
}

/// Returns the raw float16 values and the dimension when `path` is a `.npy` file of dtype float16, so an
/// index can keep them losslessly; `None` for any other supported vector file (use [`read_vectors`]).
/// Only the header is read when the file is not float16.
pub fn read_vectors_f16(path: &Path) -> Result<Option<(Vec<half::f16>, usize)>> {
    match extension(path).as_str() {
        "npy" => {
            if read_npy_header(path)?.dtype != NpyDtype::F16 {
                return Ok(None);
            }
            let array = read_npy(path)?;
            let cols = array.cols();
            match array.data {
                NpyData::F16(values) if cols > 0 => Ok(Some((values, cols))),
                NpyData::F16(_) => {
                    Err(Error::malformed(path, "header", "array has zero columns, so it holds no vectors"))
                }
                // The header was re-read: the file changed between the two reads.
                _ => Ok(None),
            }
        }
        "fvecs" | "bvecs" | "jsonl" => Ok(None),
        _ => Err(unknown_extension(path, VECTOR_EXTENSIONS)),
    }
}

/// Rows of neighbour ids (ground truth): `rows() x cols` ids, row-major.
///
/// Ids are stored as `u32`. A stored `-1` (the usual padding when a query has fewer than `cols`
/// neighbours) becomes [`IdRows::NONE`]; any other negative id, or an id above `u32::MAX - 1`, is
/// rejected as malformed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdRows {
    /// All ids, row-major.
    pub data: Vec<u32>,
    /// Ids per row (at least 1 when read from a file).
    pub cols: usize,
}

impl IdRows {
    /// Marks a missing neighbour (stored as `-1` in the file).
    pub const NONE: u32 = u32::MAX;

    /// Number of rows (0 when `cols` is 0).
    pub fn rows(&self) -> usize {
        self.data.len().checked_div(self.cols).unwrap_or(0)
    }

    /// Row `i`; panics if `i >= rows()`, like slice indexing (see [`IdRows::get`]).
    pub fn row(&self, i: usize) -> &[u32] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }

    /// Row `i`, or `None` when out of range.
    pub fn get(&self, i: usize) -> Option<&[u32]> {
        let start = i.checked_mul(self.cols)?;
        self.data.get(start..start.checked_add(self.cols)?)
    }

    /// Iterates over the rows.
    pub fn iter(&self) -> impl Iterator<Item = &[u32]> {
        self.data.chunks_exact(self.cols.max(1))
    }
}

/// Reads ground-truth neighbour ids from `.ivecs` or from a 1-D/2-D `.npy` of int32, int64 or uint32
/// (see [`IdRows`] for how negative ids are handled).
pub fn read_id_rows(path: &Path) -> Result<IdRows> {
    let (values, cols): (Vec<i64>, usize) = match extension(path).as_str() {
        "ivecs" => {
            let (data, dim) = read_ivecs(path)?;
            (data.into_iter().map(i64::from).collect(), dim)
        }
        "npy" => {
            let array = read_npy(path)?;
            let cols = array.cols();
            let values = match array.data {
                NpyData::I32(v) => v.into_iter().map(i64::from).collect(),
                NpyData::I64(v) => v,
                NpyData::U32(v) => {
                    v.into_iter().map(|x| if x == u32::MAX { -1 } else { i64::from(x) }).collect()
                }
                other => {
                    return Err(Error::malformed(
                        path,
                        "header",
                        format!(
                            "dtype {} cannot hold ids; expected int32, int64 or uint32",
                            other.dtype().name()
                        ),
                    ))
                }
            };
            (values, cols)
        }
        _ => return Err(unknown_extension(path, ID_EXTENSIONS)),
    };
    if cols == 0 {
        return Err(Error::malformed(path, "header", "array has zero columns, so it holds no ids"));
    }
    let mut data = Vec::with_capacity(values.len());
    for (i, &v) in values.iter().enumerate() {
        let id = match v {
            -1 => IdRows::NONE,
            v if (0..i64::from(u32::MAX)).contains(&v) => v as u32,
            v => {
                return Err(Error::malformed(
                    path,
                    format!("row {} column {}", i / cols, i % cols),
                    format!("id {v} is out of range: ids must be in 0..{} (or -1 for none)", u32::MAX - 1),
                ))
            }
        };
        data.push(id);
    }
    Ok(IdRows { data, cols })
}

fn unknown_extension(path: &Path, supported: &str) -> Error {
    Error::InvalidArgument(format!(
        "{}: unsupported file extension {:?}; supported: {supported}",
        path.display(),
        extension(path)
    ))
}

/// Reads a whole file, mapping failure to [`Error::Io`].
fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::io("reading", path, e))
}
