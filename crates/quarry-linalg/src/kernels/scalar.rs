//! Portable kernels: the reference every SIMD path is tested against, and the fallback.
//!
//! Eight independent accumulators keep the loops free of a serial dependency chain, so even the
//! portable build runs several lanes at once; the reduction order is fixed.

use super::{check_many, Isa, Kernels};
use half::f16;

/// The scalar kernel table.
pub const KERNELS: Kernels = Kernels {
    isa: Isa::Scalar,
    dot,
    l2_sq,
    dot_f16,
    l2_sq_f16,
    dot_many,
    l2_many,
    dot_many_f16,
    l2_many_f16,
};

#[inline(always)]
fn fold8(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32) -> f32 {
    let mut acc = [0.0f32; 8];
    let ca = a.chunks_exact(8);
    let cb = b.chunks_exact(8);
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for j in 0..8 {
            acc[j] += f(x[j], y[j]);
        }
    }
    let mut tail = 0.0;
    for (x, y) in ra.iter().zip(rb) {
        tail += f(*x, *y);
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail
}

/// Inner product.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    fold8(a, b, |x, y| x * y)
}

/// Squared L2 distance.
pub fn l2_sq(a: &[f32], b: &[f32]) -> f32 {
    fold8(a, b, |x, y| (x - y) * (x - y))
}

fn widen(b: &[f16], buf: &mut [f32; 64]) -> usize {
    for (o, h) in buf.iter_mut().zip(b) {
        *o = h.to_f32();
    }
    b.len().min(64)
}

fn fold_f16(a: &[f32], b: &[f16], f: fn(&[f32], &[f32]) -> f32) -> f32 {
    let mut buf = [0.0f32; 64];
    let mut sum = 0.0;
    for (qa, qb) in a.chunks(64).zip(b.chunks(64)) {
        let n = widen(qb, &mut buf);
        sum += f(qa, &buf[..n]);
    }
    sum
}

/// Inner product with an f16-stored operand.
pub fn dot_f16(a: &[f32], b: &[f16]) -> f32 {
    fold_f16(a, b, dot)
}

/// Squared L2 with an f16-stored operand.
pub fn l2_sq_f16(a: &[f32], b: &[f16]) -> f32 {
    fold_f16(a, b, l2_sq)
}

/// Inner product of `q` with each row.
pub fn dot_many(q: &[f32], rows: &[f32], out: &mut [f32]) {
    check_many(q.len(), rows.len(), out.len());
    for (o, r) in out.iter_mut().zip(rows.chunks_exact(q.len())) {
        *o = dot(q, r);
    }
}

/// Squared L2 of `q` to each row.
pub fn l2_many(q: &[f32], rows: &[f32], out: &mut [f32]) {
    check_many(q.len(), rows.len(), out.len());
    for (o, r) in out.iter_mut().zip(rows.chunks_exact(q.len())) {
        *o = l2_sq(q, r);
    }
}

/// Inner product of `q` with each f16 row.
pub fn dot_many_f16(q: &[f32], rows: &[f16], out: &mut [f32]) {
    check_many(q.len(), rows.len(), out.len());
    for (o, r) in out.iter_mut().zip(rows.chunks_exact(q.len())) {
        *o = dot_f16(q, r);
    }
}

/// Squared L2 of `q` to each f16 row.
pub fn l2_many_f16(q: &[f32], rows: &[f16], out: &mut [f32]) {
    check_many(q.len(), rows.len(), out.len());
    for (o, r) in out.iter_mut().zip(rows.chunks_exact(q.len())) {
        *o = l2_sq_f16(q, r);
    }
}
