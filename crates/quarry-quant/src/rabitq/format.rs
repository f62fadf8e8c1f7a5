//! Serialisation of a trained [`RaBitQuantizer`] (parameters only, not codes).
//!
//! Layout, all little-endian (version 1):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 2 | tag `b"RQ"` |
//! | 2 | 1 | version (1) |
//! | 3 | 1 | bits per dimension, 1..=8 |
//! | 4 | 1 | metric: 0 inner product, 1 cosine, 2 L2 |
//! | 5 | 3 | reserved, zero |
//! | 8 | 4 | `dim` (u32, ≥ 1) |
//! | 12 | 4 | `D` = `dim` rounded up to a multiple of 64 (u32) |
//! | 16 | 8 | seed (u64) |
//! | 24 | 4 | `eps0` (f32, finite, ≥ 0) |
//! | 28 | 4 | length `R` of the rotation bytes (u32) |
//! | 32 | 4·dim | centroid (f32, finite) |
//! | 32 + 4·dim | R | the rotation ([`Rotation::to_bytes`]) |

use super::{RaBitQuantizer, Rotation};
use quarry_core::{Error, Metric, Result};

const TAG: &[u8; 2] = b"RQ";
const VERSION: u8 = 1;
const HEADER: usize = 32;

fn metric_code(m: Metric) -> u8 {
    match m {
        Metric::InnerProduct => 0,
        Metric::Cosine => 1,
        Metric::L2 => 2,
    }
}

/// Writes the layout above.
pub(super) fn to_bytes(q: &RaBitQuantizer) -> Vec<u8> {
    let rotation = q.rotation.to_bytes();
    let mut out = Vec::with_capacity(HEADER + 4 * q.dim + rotation.len());
    out.extend_from_slice(TAG);
    out.extend_from_slice(&[VERSION, q.bits, metric_code(q.metric), 0, 0, 0]);
    out.extend_from_slice(&(q.dim as u32).to_le_bytes());
    out.extend_from_slice(&(q.padded as u32).to_le_bytes());
    out.extend_from_slice(&q.seed.to_le_bytes());
    out.extend_from_slice(&q.eps0.to_le_bytes());
    out.extend_from_slice(&(rotation.len() as u32).to_le_bytes());
    for c in &q.centroid {
        out.extend_from_slice(&c.to_le_bytes());
    }
    out.extend_from_slice(&rotation);
    out
}

fn bad(message: impl Into<String>) -> Error {
    Error::InvalidArgument(format!("RaBitQ parameters: {}", message.into()))
}

fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}

/// Reads and validates the layout above; never panics on malformed input.
pub(super) fn from_bytes(b: &[u8]) -> Result<RaBitQuantizer> {
    if b.len() < HEADER {
        return Err(bad(format!("{} bytes is shorter than the {HEADER}-byte header", b.len())));
    }
    if &b[0..2] != TAG {
        return Err(bad(format!("tag {:?} is not \"RQ\"", &b[0..2])));
    }
    if b[2] != VERSION {
        return Err(bad(format!("unsupported version {} (this build reads {VERSION})", b[2])));
    }
    let bits = b[3];
    if !(1..=8).contains(&bits) {
        return Err(bad(format!("bits per dimension {bits} not in 1..=8")));
    }
    let metric = match b[4] {
        0 => Metric::InnerProduct,
        1 => Metric::Cosine,
        2 => Metric::L2,
        m => return Err(bad(format!("unknown metric code {m}"))),
    };
    if b[5..8] != [0, 0, 0] {
        return Err(bad("reserved header bytes are not zero"));
    }
    let dim = u32_at(b, 8) as usize;
    let padded = u32_at(b, 12) as usize;
    if dim == 0 {
        return Err(bad("dimension 0"));
    }
    if padded != dim.div_ceil(64) * 64 {
        return Err(bad(format!("padded dimension {padded} does not match dimension {dim}")));
    }
    let seed = u64::from_le_bytes([b[16], b[17], b[18], b[19], b[20], b[21], b[22], b[23]]);
    let eps0 = f32::from_le_bytes([b[24], b[25], b[26], b[27]]);
    if !eps0.is_finite() || eps0 < 0.0 {
        return Err(bad(format!("eps0 {eps0} is not finite and non-negative")));
    }
    let rot_len = u32_at(b, 28) as usize;
    let expected = dim
        .checked_mul(4)
        .and_then(|c| c.checked_add(HEADER))
        .and_then(|c| c.checked_add(rot_len))
        .ok_or_else(|| bad("section lengths overflow"))?;
    if b.len() != expected {
        return Err(bad(format!(
            "{} bytes, expected {expected} for dimension {dim} and a {rot_len}-byte rotation",
            b.len()
        )));
    }
    let centroid: Vec<f32> = b[HEADER..HEADER + 4 * dim]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    if let Some(i) = centroid.iter().position(|c| !c.is_finite()) {
        return Err(bad(format!("centroid component {i} is not finite")));
    }
    let rotation = Rotation::from_bytes(&b[HEADER + 4 * dim..])?;
    if rotation.padded_dim() != padded {
        return Err(bad(format!(
            "rotation of dimension {} for padded dimension {padded}",
            rotation.padded_dim()
        )));
    }
    Ok(RaBitQuantizer::from_parts(metric, bits, seed, eps0, centroid, rotation))
}
