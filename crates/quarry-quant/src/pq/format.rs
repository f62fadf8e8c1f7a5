//! The serialised form of a [`PqQuantizer`] (trained parameters only, not codes).
//!
//! All integers little-endian:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 2 | tag `b"PQ"` |
//! | 2 | 1 | version, `1` |
//! | 3 | 1 | metric: 0 = L2, 1 = inner product, 2 = cosine |
//! | 4 | 1 | nbits: 8 or 4 |
//! | 5 | 3 | reserved, zero |
//! | 8 | 4 | dim (u32) |
//! | 12 | 4 | m (u32), `1 <= m <= dim` |
//! | 16 | `4 * 2^nbits * dim` | codebooks as f32: subspace `j` is a row-major `2^nbits x width_j` block, subspaces in order |
//!
//! The length must match exactly and every centroid value must be finite.

use super::product::{check_shape, PqQuantizer};
use quarry_core::{Error, Metric, Result};

const TAG: &[u8; 2] = b"PQ";
const VERSION: u8 = 1;
const HEADER: usize = 16;

fn metric_code(m: Metric) -> u8 {
    match m {
        Metric::L2 => 0,
        Metric::InnerProduct => 1,
        Metric::Cosine => 2,
    }
}

fn bad(msg: impl Into<String>) -> Error {
    Error::InvalidArgument(format!("PQ parameters: {}", msg.into()))
}

/// Serialises `pq` (see the module docs).
pub(super) fn write(pq: &PqQuantizer) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + 4 * pq.centroids.len());
    out.extend_from_slice(TAG);
    out.push(VERSION);
    out.push(metric_code(pq.metric));
    out.push(pq.nbits);
    out.extend_from_slice(&[0, 0, 0]);
    // dim and m fit in u32: from_bytes enforces it, and training data of 2^32 dimensions is
    // not representable in memory alongside 2^nbits centroids.
    out.extend_from_slice(&(pq.dim as u32).to_le_bytes());
    out.extend_from_slice(&(pq.m as u32).to_le_bytes());
    for v in &pq.centroids {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// Reads what [`write()`] produced, validating every field.
pub(super) fn read(bytes: &[u8]) -> Result<PqQuantizer> {
    if bytes.len() < HEADER {
        return Err(bad(format!("{} bytes, shorter than the {HEADER}-byte header", bytes.len())));
    }
    if &bytes[0..2] != TAG {
        return Err(bad(format!("tag {:?} is not \"PQ\"", &bytes[0..2])));
    }
    if bytes[2] != VERSION {
        return Err(bad(format!("unsupported version {} (expected {VERSION})", bytes[2])));
    }
    let metric = match bytes[3] {
        0 => Metric::L2,
        1 => Metric::InnerProduct,
        2 => Metric::Cosine,
        other => return Err(bad(format!("unknown metric code {other}"))),
    };
    let nbits = bytes[4];
    if bytes[5..8] != [0, 0, 0] {
        return Err(bad("reserved header bytes are not zero"));
    }
    let u32_at = |at: usize| u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    let dim = u32_at(8) as usize;
    let m = u32_at(12) as usize;
    check_shape(dim, m, nbits).map_err(|e| bad(e.to_string()))?;
    let floats = (1usize << nbits).checked_mul(dim);
    let expected = floats.and_then(|f| f.checked_mul(4)).and_then(|b| b.checked_add(HEADER));
    let (Some(floats), Some(expected)) = (floats, expected) else {
        return Err(bad(format!("dim {dim} is too large")));
    };
    if bytes.len() != expected {
        return Err(bad(format!(
            "{} bytes, expected {expected} for dim {dim}, m {m}, nbits {nbits}",
            bytes.len()
        )));
    }
    let mut centroids = Vec::with_capacity(floats);
    for (i, c) in bytes[HEADER..].chunks_exact(4).enumerate() {
        let v = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        if !v.is_finite() {
            return Err(bad(format!("centroid value {i} is not finite ({v})")));
        }
        centroids.push(v);
    }
    Ok(PqQuantizer::from_parts(dim, metric, m, nbits, centroids))
}
