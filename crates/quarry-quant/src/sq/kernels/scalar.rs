//! Portable SQ kernels: the reference the SIMD paths are tested against, and the fallback.
//!
//! Eight independent accumulators with a fixed reduction order, like the f32 scalar kernels.

use super::{check_many, SqKernels};
use quarry_linalg::Isa;

/// The scalar table.
pub(crate) const KERNELS: SqKernels =
    SqKernels { isa: Isa::Scalar, dot_u8, dot_u4, many_u8, many_u4, dot_u8_i16, many_u8_i16 };

/// `Σ w_j·codes_j` in integers over 8-bit codes; needs `w.len() >= codes.len()` and the sum
/// bound of [`super::i16_weight_bound`].
pub(crate) fn dot_u8_i16(w: &[i16], codes: &[u8]) -> i32 {
    w[..codes.len()].iter().zip(codes).map(|(&x, &c)| x as i32 * c as i32).sum()
}

/// [`dot_u8_i16`] over each `stride`-byte code's first `packed` bytes.
pub(crate) fn many_u8_i16(w: &[i16], codes: &[u8], packed: usize, stride: usize, out: &mut [i32]) {
    check_many(packed, stride);
    for (o, c) in out.iter_mut().zip(codes.chunks_exact(stride)) {
        *o = dot_u8_i16(w, &c[..packed]);
    }
}

#[inline(always)]
fn reduce(acc: [f32; 8], tail: f32) -> f32 {
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail
}

/// `Σ w_j·codes_j` over 8-bit codes; needs `w.len() >= codes.len()`.
pub(crate) fn dot_u8(w: &[f32], codes: &[u8]) -> f32 {
    let w = &w[..codes.len()];
    let mut acc = [0.0f32; 8];
    let (cw, cc) = (w.chunks_exact(8), codes.chunks_exact(8));
    let (rw, rc) = (cw.remainder(), cc.remainder());
    for (x, c) in cw.zip(cc) {
        for j in 0..8 {
            acc[j] += x[j] * c[j] as f32;
        }
    }
    let tail: f32 = rw.iter().zip(rc).map(|(x, &c)| x * c as f32).sum();
    reduce(acc, tail)
}

/// `Σ w_j·code_j` over packed 4-bit codes (dimension `2k` in the low nibble of byte `k`,
/// `2k+1` in the high nibble); needs `w.len() >= 2 * codes.len()`.
pub(crate) fn dot_u4(w: &[f32], codes: &[u8]) -> f32 {
    let w = &w[..2 * codes.len()];
    let mut acc = [0.0f32; 8];
    let (cw, cc) = (w.chunks_exact(8), codes.chunks_exact(4));
    let (rw, rc) = (cw.remainder(), cc.remainder());
    for (x, c) in cw.zip(cc) {
        for k in 0..4 {
            acc[2 * k] += x[2 * k] * (c[k] & 0x0F) as f32;
            acc[2 * k + 1] += x[2 * k + 1] * (c[k] >> 4) as f32;
        }
    }
    let tail: f32 =
        rw.chunks_exact(2).zip(rc).map(|(x, &c)| x[0] * (c & 0x0F) as f32 + x[1] * (c >> 4) as f32).sum();
    reduce(acc, tail)
}

/// [`dot_u8`] over each `stride`-byte code's first `packed` bytes.
pub(crate) fn many_u8(w: &[f32], codes: &[u8], packed: usize, stride: usize, out: &mut [f32]) {
    check_many(packed, stride);
    for (o, c) in out.iter_mut().zip(codes.chunks_exact(stride)) {
        *o = dot_u8(w, &c[..packed]);
    }
}

/// [`dot_u4`] over each `stride`-byte code's first `packed` bytes.
pub(crate) fn many_u4(w: &[f32], codes: &[u8], packed: usize, stride: usize, out: &mut [f32]) {
    check_many(packed, stride);
    for (o, c) in out.iter_mut().zip(codes.chunks_exact(stride)) {
        *o = dot_u4(w, &c[..packed]);
    }
}
