//! The serialised form of an [`SqQuantizer`] (parameters only, not codes), little-endian:
//!
//! | bytes      | field                                             |
//! |------------|---------------------------------------------------|
//! | 2          | tag `b"SQ"`                                       |
//! | 2          | version (u16, currently 1)                        |
//! | 1          | bits per dimension (8 or 4)                       |
//! | 1          | metric (0 inner product, 1 cosine, 2 L2)          |
//! | 4          | dim (u32, ≥ 1)                                    |
//! | 4·dim      | vmin (f32)                                        |
//! | 4·dim      | vmax (f32)                                        |
//!
//! Reading checks the tag, version, bits, metric, the exact length and every range.

use super::SqQuantizer;
use crate::Quantizer;
use quarry_core::{Error, Metric, Result};

/// Family tag.
const TAG: [u8; 2] = *b"SQ";
/// The version this code writes and reads.
const VERSION: u16 = 1;
/// Bytes before the ranges.
const HEADER: usize = 10;

fn metric_code(m: Metric) -> u8 {
    match m {
        Metric::InnerProduct => 0,
        Metric::Cosine => 1,
        Metric::L2 => 2,
    }
}

fn metric_from_code(c: u8) -> Option<Metric> {
    [Metric::InnerProduct, Metric::Cosine, Metric::L2].get(c as usize).copied()
}

fn bad(msg: String) -> Error {
    Error::InvalidArgument(format!("SQ parameters: {msg}"))
}

/// Serialises `sq`.
pub(super) fn to_bytes(sq: &SqQuantizer) -> Vec<u8> {
    let dim = sq.dim();
    let mut out = Vec::with_capacity(HEADER + 8 * dim);
    out.extend_from_slice(&TAG);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.push(sq.bits);
    out.push(metric_code(sq.metric));
    // The dimension of a trained quantizer came from a Matrix held in memory; it fits in u32
    // for any vector count the rest of the engine supports.
    out.extend_from_slice(&(dim as u32).to_le_bytes());
    for v in sq.vmin.iter().chain(&sq.vmax) {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// Reads what [`to_bytes`] wrote; anything malformed is an `InvalidArgument`.
pub(super) fn from_bytes(bytes: &[u8]) -> Result<SqQuantizer> {
    let Some(header) = bytes.get(..HEADER) else {
        return Err(bad(format!("{} bytes is shorter than the {HEADER}-byte header", bytes.len())));
    };
    if header[..2] != TAG {
        return Err(bad(format!("tag {:?} is not \"SQ\"", &header[..2])));
    }
    let version = u16::from_le_bytes([header[2], header[3]]);
    if version != VERSION {
        return Err(bad(format!("unsupported version {version} (this build reads {VERSION})")));
    }
    let bits = header[4];
    if bits != 8 && bits != 4 {
        return Err(bad(format!("bits per dimension {bits} is neither 8 nor 4")));
    }
    let metric =
        metric_from_code(header[5]).ok_or_else(|| bad(format!("unknown metric code {}", header[5])))?;
    let dim = u32::from_le_bytes([header[6], header[7], header[8], header[9]]) as usize;
    if dim == 0 {
        return Err(bad("dimension 0".into()));
    }
    let expected = dim.checked_mul(8).and_then(|b| b.checked_add(HEADER));
    if expected != Some(bytes.len()) {
        return Err(bad(format!(
            "{} bytes, but dimension {dim} needs {HEADER} + 8·{dim} bytes",
            bytes.len()
        )));
    }
    let values: Vec<f32> =
        bytes[HEADER..].chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    let (vmin, vmax) = values.split_at(dim);
    SqQuantizer::from_ranges(metric, bits, vmin.to_vec(), vmax.to_vec()).map_err(|e| match e {
        Error::InvalidArgument(m) => bad(m),
        other => other,
    })
}
