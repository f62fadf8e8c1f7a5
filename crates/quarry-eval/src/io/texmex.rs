//! TEXMEX vector files (SIFT/GIST/BIGANN): `.fvecs`, `.ivecs`, `.bvecs`.
//!
//! Each record is `[i32 d][d values]`, little-endian, with `d` repeated in every record: f32 values in
//! `.fvecs`, i32 in `.ivecs` (ground-truth ids), u8 in `.bvecs`. File size = `n * (4 + d * size)`.
//! Readers check that `d > 0`, that every record repeats the first record's `d` and that the size
//! divides evenly; errors name the record and its byte offset. An empty file is rejected, since it has
//! no dimension.

use std::io::Write;
use std::path::Path;

use quarry_core::{Error, Matrix, Result};

use super::{read_file, write_atomic};

/// Splits `bytes` into records of `4 + d * elem_size` bytes, checks them, and decodes every value with
/// `decode` (which receives exactly `elem_size` bytes). Returns the values and `d`.
fn parse_records<T>(
    bytes: &[u8],
    path: &Path,
    elem_size: usize,
    decode: impl Fn(&[u8]) -> T,
) -> Result<(Vec<T>, usize)> {
    let Some(first) = bytes.first_chunk::<4>() else {
        let message = if bytes.is_empty() {
            "empty file: there are no records, so the dimension is unknown".to_string()
        } else {
            format!("truncated: {} bytes, but a record starts with a 4-byte dimension", bytes.len())
        };
        return Err(Error::malformed(path, "record 0 at byte 0", message));
    };
    let dim = i32::from_le_bytes(*first);
    if dim <= 0 {
        return Err(Error::malformed(
            path,
            "record 0 at byte 0",
            format!("dimension {dim} is not positive (is this really a TEXMEX file, little-endian?)"),
        ));
    }
    let d = dim as usize;
    let record_size = d.checked_mul(elem_size).and_then(|n| n.checked_add(4)).ok_or_else(|| {
        Error::malformed(path, "record 0 at byte 0", format!("dimension {dim} is too large"))
    })?;

    let records = bytes.chunks_exact(record_size);
    let rest = records.remainder();
    let mut values = Vec::with_capacity((bytes.len() / record_size) * d);
    for (i, record) in records.enumerate() {
        let (head, body) = record.split_at(4);
        let this = i32::from_le_bytes([head[0], head[1], head[2], head[3]]);
        if this != dim {
            return Err(Error::malformed(
                path,
                format!("record {i} at byte {}", i * record_size),
                format!("dimension {this} differs from the first record's {dim}"),
            ));
        }
        values.extend(body.chunks_exact(elem_size).map(&decode));
    }
    if !rest.is_empty() {
        let n = bytes.len() / record_size;
        let offset = n * record_size;
        let location = format!("record {n} at byte {offset}");
        // A different dimension in the partial record explains the mismatch better than the size.
        if let Some(head) = rest.first_chunk::<4>() {
            let this = i32::from_le_bytes(*head);
            if this != dim {
                return Err(Error::malformed(
                    path,
                    location,
                    format!("dimension {this} differs from the first record's {dim}"),
                ));
            }
        }
        return Err(Error::malformed(
            path,
            location,
            format!(
                "truncated: {} bytes left but a record of dimension {dim} takes {record_size}; \
                 the file size {} is not a multiple of {record_size}",
                rest.len(),
                bytes.len()
            ),
        ));
    }
    Ok((values, d))
}

fn into_matrix(values: Vec<f32>, dim: usize, path: &Path) -> Result<Matrix> {
    Matrix::new(values, dim).map_err(|e| Error::malformed(path, "data", e.to_string()))
}

/// Parses `.fvecs` bytes (`path` only names the file in errors). Values are returned as stored.
pub fn parse_fvecs(bytes: &[u8], path: &Path) -> Result<Matrix> {
    let (values, dim) = parse_records(bytes, path, 4, |b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))?;
    into_matrix(values, dim, path)
}

/// Parses `.ivecs` bytes into row-major values and the dimension.
pub fn parse_ivecs(bytes: &[u8], path: &Path) -> Result<(Vec<i32>, usize)> {
    parse_records(bytes, path, 4, |b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// Parses `.bvecs` bytes, converting each byte to f32.
pub fn parse_bvecs(bytes: &[u8], path: &Path) -> Result<Matrix> {
    let (values, dim) = parse_records(bytes, path, 1, |b| f32::from(b[0]))?;
    into_matrix(values, dim, path)
}

/// Reads an `.fvecs` file.
pub fn read_fvecs(path: &Path) -> Result<Matrix> {
    parse_fvecs(&read_file(path)?, path)
}

/// Reads an `.ivecs` file into row-major values and the dimension.
pub fn read_ivecs(path: &Path) -> Result<(Vec<i32>, usize)> {
    parse_ivecs(&read_file(path)?, path)
}

/// Reads a `.bvecs` file, converting each byte to f32.
pub fn read_bvecs(path: &Path) -> Result<Matrix> {
    parse_bvecs(&read_file(path)?, path)
}

fn dim_header(dim: usize) -> Result<[u8; 4]> {
    i32::try_from(dim)
        .ok()
        .filter(|&d| d > 0)
        .map(i32::to_le_bytes)
        .ok_or_else(|| Error::InvalidArgument(format!("dimension {dim} cannot be stored in a TEXMEX file")))
}

/// Writes `m` as `.fvecs`, crash-safely (see [`super::write_atomic`]).
pub fn write_fvecs(path: &Path, m: &Matrix) -> Result<()> {
    let head = dim_header(m.dim())?;
    write_atomic(path, |w: &mut dyn Write| {
        for row in m.iter() {
            w.write_all(&head)?;
            for v in row {
                w.write_all(&v.to_le_bytes())?;
            }
        }
        Ok(())
    })
}

/// Writes row-major `data` (rows of `dim` ids) as `.ivecs`, crash-safely. Errors if `dim` is 0 or does
/// not divide `data.len()`.
pub fn write_ivecs(path: &Path, data: &[i32], dim: usize) -> Result<()> {
    let head = dim_header(dim)?;
    if !data.len().is_multiple_of(dim) {
        return Err(Error::InvalidArgument(format!("{} ids do not split into rows of {dim}", data.len())));
    }
    write_atomic(path, |w: &mut dyn Write| {
        for row in data.chunks_exact(dim) {
            w.write_all(&head)?;
            for v in row {
                w.write_all(&v.to_le_bytes())?;
            }
        }
        Ok(())
    })
}
