//! NEON kernels (aarch64): four 4-lane accumulators (16 floats per step), scalar tail, fixed
//! reduction order. f16 rows are widened in blocks through the scalar converter.

use super::{check_many, Isa, Kernels};
use half::f16;
use std::arch::aarch64::*;

/// The NEON kernel table; only handed out by [`Kernels::for_isa`] after feature detection.
pub(super) const KERNELS: Kernels =
    Kernels { isa: Isa::Neon, dot, l2_sq, dot_f16, l2_sq_f16, dot_many, l2_many, dot_many_f16, l2_many_f16 };

macro_rules! pair_kernel {
    ($name:ident, $l2:expr) => {
        #[inline]
        #[target_feature(enable = "neon")]
        unsafe fn $name(a: &[f32], b: &[f32]) -> f32 {
            let n = a.len().min(b.len());
            let (pa, pb) = (a.as_ptr(), b.as_ptr());
            let mut s = [vdupq_n_f32(0.0); 4];
            let mut i = 0;
            // SAFETY: each load reads 4 values at i + 4j with i + 16 <= n.
            unsafe {
                while i + 16 <= n {
                    for j in 0..4 {
                        let x = vld1q_f32(pa.add(i + 4 * j));
                        let y = vld1q_f32(pb.add(i + 4 * j));
                        s[j] = if $l2 {
                            let d = vsubq_f32(x, y);
                            vfmaq_f32(s[j], d, d)
                        } else {
                            vfmaq_f32(s[j], x, y)
                        };
                    }
                    i += 16;
                }
            }
            let mut tail = 0.0f32;
            while i < n {
                tail += if $l2 { (a[i] - b[i]) * (a[i] - b[i]) } else { a[i] * b[i] };
                i += 1;
            }
            vaddvq_f32(vaddq_f32(vaddq_f32(s[0], s[1]), vaddq_f32(s[2], s[3]))) + tail
        }
    };
}

pair_kernel!(dot_impl, false);
pair_kernel!(l2_impl, true);

// Reachable only through `KERNELS`, returned only when NEON is detected.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    // SAFETY: NEON present; the kernel reads min(len) values.
    unsafe { dot_impl(a, b) }
}
fn l2_sq(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    // SAFETY: as for `dot`.
    unsafe { l2_impl(a, b) }
}
fn widened(a: &[f32], b: &[f16], f: fn(&[f32], &[f32]) -> f32) -> f32 {
    let mut buf = [0.0f32; 64];
    let mut sum = 0.0;
    for (qa, qb) in a.chunks(64).zip(b.chunks(64)) {
        for (o, h) in buf.iter_mut().zip(qb) {
            *o = h.to_f32();
        }
        sum += f(qa, &buf[..qb.len()]);
    }
    sum
}
fn dot_f16(a: &[f32], b: &[f16]) -> f32 {
    assert_eq!(a.len(), b.len());
    widened(a, b, dot)
}
fn l2_sq_f16(a: &[f32], b: &[f16]) -> f32 {
    assert_eq!(a.len(), b.len());
    widened(a, b, l2_sq)
}
fn dot_many(q: &[f32], rows: &[f32], out: &mut [f32]) {
    check_many(q.len(), rows.len(), out.len());
    for (o, r) in out.iter_mut().zip(rows.chunks_exact(q.len())) {
        *o = dot(q, r);
    }
}
fn l2_many(q: &[f32], rows: &[f32], out: &mut [f32]) {
    check_many(q.len(), rows.len(), out.len());
    for (o, r) in out.iter_mut().zip(rows.chunks_exact(q.len())) {
        *o = l2_sq(q, r);
    }
}
fn dot_many_f16(q: &[f32], rows: &[f16], out: &mut [f32]) {
    check_many(q.len(), rows.len(), out.len());
    for (o, r) in out.iter_mut().zip(rows.chunks_exact(q.len())) {
        *o = dot_f16(q, r);
    }
}
fn l2_many_f16(q: &[f32], rows: &[f16], out: &mut [f32]) {
    check_many(q.len(), rows.len(), out.len());
    for (o, r) in out.iter_mut().zip(rows.chunks_exact(q.len())) {
        *o = l2_sq_f16(q, r);
    }
}
