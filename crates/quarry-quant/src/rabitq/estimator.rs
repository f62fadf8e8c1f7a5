//! [`RaBitQEstimator`]: a query prepared once (centred, rotated, and for 1-bit codes quantized
//! to 4-bit planes) that turns RaBitQ codes into estimated keys and lower bounds.

use super::kernels::{DotFn, PlanesFn};
use super::layout::{packed_len, Factors, FACTOR_BYTES};
use super::RaBitQuantizer;
use crate::Estimator;
use quarry_core::Metric;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::marker::PhantomData;

/// Bits of the randomized-rounding query for 1-bit codes.
pub(crate) const QUERY_BITS: u32 = 4;
/// Mixed into the quantizer seed for the query's rounding noise.
const ROUNDING_SALT: u64 = 0x5EED_0F2A_B170_0001;

/// How `<y, q'>` (`y = x_u + c_B`) is computed for one code.
#[derive(Debug)]
enum Inner {
    /// 1-bit codes: `<y, q_bar> = Δ·<xb, qu> + v_l·Σxb − Σq_bar/2` from bit-plane popcounts.
    OneBit { planes: Vec<u64>, delta: f32, low: f32, half_sum: f32, kernel: PlanesFn },
    /// B-bit codes: `<x_u, q'> + c_B·Σq'` with a packed-value kernel.
    Multi { shift: f32, kernel: DotFn },
}

/// A prepared query for [`RaBitQuantizer`] codes.
///
/// `key = s_a·add + g + k_r·rescale·<y, q'>` with the per-vector factors `add`, `rescale` read
/// from the code: under L2 `s_a = 1, g = |q_r − c|², k_r = −2`; under inner product and cosine
/// `s_a = −1, g = −<c, q_r>, k_r = −1`. The lower bound subtracts
/// `|k_r|·eps0·|q_r − c|·err` (`err` per vector).
#[derive(Debug)]
pub struct RaBitQEstimator<'a> {
    /// `q' = P^T (q_r − c)`, `D` floats.
    rotated: Vec<f32>,
    packed_len: usize,
    add_sign: f32,
    constant: f32,
    ip_scale: f32,
    bound_scale: f32,
    inner: Inner,
    _quantizer: PhantomData<&'a RaBitQuantizer>,
}

impl<'a> RaBitQEstimator<'a> {
    /// Prepares `q` (length `dim`; panics otherwise — a programming error).
    pub(crate) fn new(quant: &'a RaBitQuantizer, q: &[f32]) -> Self {
        assert_eq!(q.len(), quant.dim, "RaBitQ query of the wrong dimension");
        let (mut rotated, q_norm_sq, r_dot_c) = quant.centered(q);
        let c_dot_q = r_dot_c + quant.centroid_sq;
        quant.rotation.rotate(&mut rotated);
        let (add_sign, constant, ip_scale) = match quant.metric {
            Metric::L2 => (1.0, q_norm_sq as f32, -2.0f32),
            Metric::InnerProduct | Metric::Cosine => (-1.0, -c_dot_q as f32, -1.0f32),
        };
        let inner = if quant.bits == 1 {
            one_bit(&rotated, quant.seed ^ ROUNDING_SALT, quant.kernels.planes)
        } else {
            let sum: f64 = rotated.iter().map(|&x| x as f64).sum();
            Inner::Multi {
                shift: (quant.grid_offset() as f64 * sum) as f32,
                kernel: quant.kernels.dot_for(quant.bits),
            }
        };
        RaBitQEstimator {
            rotated,
            packed_len: packed_len(quant.padded, quant.bits),
            add_sign,
            constant,
            ip_scale,
            bound_scale: ip_scale.abs() * quant.eps0 * q_norm_sq.sqrt() as f32,
            inner,
            _quantizer: PhantomData,
        }
    }

    /// `(key, err factor)` of one code.
    #[inline]
    fn parts(&self, code: &[u8]) -> (f32, f32) {
        let f = Factors::read(code);
        let packed = &code[FACTOR_BYTES..FACTOR_BYTES + self.packed_len];
        let ip = match &self.inner {
            Inner::OneBit { planes, delta, low, half_sum, kernel } => {
                let (ip, count) = kernel(packed, planes);
                delta * ip as f32 + low * count as f32 - half_sum
            }
            Inner::Multi { shift, kernel } => kernel(packed, &self.rotated) + shift,
        };
        (self.add_sign * f.add + self.constant + self.ip_scale * f.rescale * ip, f.err)
    }

    /// The rotated centred query `q'` (`D` floats).
    #[cfg(test)]
    pub(crate) fn rotated(&self) -> &[f32] {
        &self.rotated
    }

    /// For 1-bit codes, the query planes (plane-major), `Δ` and `v_l`.
    #[cfg(test)]
    pub(crate) fn one_bit_parts(&self) -> Option<(&[u64], f32, f32)> {
        match &self.inner {
            Inner::OneBit { planes, delta, low, .. } => Some((planes, *delta, *low)),
            Inner::Multi { .. } => None,
        }
    }

    /// For 1-bit codes, the dequantized query `q_bar = Δ·qu + v_l` the popcount path uses.
    #[cfg(test)]
    pub(crate) fn quantized_query(&self) -> Option<Vec<f32>> {
        let Inner::OneBit { planes, delta, low, .. } = &self.inner else { return None };
        let words = self.rotated.len() / 64;
        Some(
            (0..self.rotated.len())
                .map(|i| {
                    let qu: u64 = (0..QUERY_BITS as usize)
                        .map(|j| ((planes[j * words + i / 64] >> (i % 64)) & 1) << j)
                        .sum();
                    delta * qu as f32 + low
                })
                .collect(),
        )
    }
}

/// Quantizes `q'` to `QUERY_BITS` bits with randomized rounding and lays it out as bit planes.
fn one_bit(rotated: &[f32], seed: u64, kernel: PlanesFn) -> Inner {
    let (low, high) =
        rotated.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), &x| (l.min(x), h.max(x)));
    let top = ((1u32 << QUERY_BITS) - 1) as f32;
    let delta = (high - low) / top;
    let inv_delta = 1.0 / delta;
    let words = rotated.len() / 64;
    let mut planes = vec![0u64; QUERY_BITS as usize * words];
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut sum_qu = 0u64;
    for (w, chunk) in rotated.chunks_exact(64).enumerate() {
        let mut word = [0u64; QUERY_BITS as usize];
        for (i, &x) in chunk.iter().enumerate() {
            // Non-negative, so the saturating cast is the floor (without a libm call).
            let qu =
                if delta > 0.0 { ((x - low) * inv_delta + rng.random::<f32>()).min(top) as u64 } else { 0 };
            sum_qu += qu;
            for (j, plane) in word.iter_mut().enumerate() {
                *plane |= ((qu >> j) & 1) << i;
            }
        }
        for (j, plane) in word.into_iter().enumerate() {
            planes[j * words + w] = plane;
        }
    }
    let delta = if delta > 0.0 { delta } else { 0.0 };
    let sum = delta as f64 * sum_qu as f64 + rotated.len() as f64 * low as f64;
    Inner::OneBit { planes, delta, low, half_sum: (0.5 * sum) as f32, kernel }
}

impl Estimator for RaBitQEstimator<'_> {
    #[inline]
    fn key(&self, code: &[u8]) -> f32 {
        self.parts(code).0
    }

    /// `(estimate, lower bound on the exact key)` with the quantizer's `eps0`.
    #[inline]
    fn key_and_bound(&self, code: &[u8]) -> (f32, f32) {
        let (key, err) = self.parts(code);
        (key, key - self.bound_scale * err)
    }
}
