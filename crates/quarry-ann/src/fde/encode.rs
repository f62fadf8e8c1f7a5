//! [`FdeEncoder`]: MUVERA fixed dimensional encodings of token sets (Dhulipala et al., NeurIPS
//! 2024, arXiv 2405.19504, §2; google/graph-mining `fixed_dimensional_encoding.cc` for details the
//! paper leaves open). Per repetition: SimHash bits of each token pick its bucket (plain binary
//! bucket index), a random ±1 projection maps the token, queries **sum** their tokens per bucket
//! and documents **average** them (an empty document bucket optionally takes the token whose bits
//! are nearest in Hamming distance); the repetitions are concatenated and optionally
//! Count-Sketched to a final dimension. `<F_q(Q), F_d(P)>` then approximates the Chamfer (MaxSim)
//! similarity `Σ_q max_p <q, p>`.
//!
//! Every random draw comes from SplitMix64 streams of the seed (Gaussians by Box–Muller), so an
//! encoding depends only on the parameters and never on a library's generator.

use super::params::{FdeParams, InnerProjection};
use crate::hnsw::splitmix;
use quarry_core::{Error, Result};

/// A uniform draw in (0, 1] from a SplitMix64 state.
fn unit(state: &mut u64) -> f64 {
    ((splitmix(state) >> 11) as f64 + 1.0) / (1u64 << 53) as f64
}

/// Standard normal draws by Box–Muller.
fn gaussians(state: &mut u64, n: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(n + 1);
    while out.len() < n {
        let (u1, u2) = (unit(state), unit(state));
        let r = (-2.0 * u1.ln()).sqrt();
        let t = 2.0 * std::f64::consts::PI * u2;
        out.push((r * t.cos()) as f32);
        out.push((r * t.sin()) as f32);
    }
    out.truncate(n);
    out
}

/// One repetition's random draws.
#[derive(Debug, Clone)]
pub(super) struct Repetition {
    /// `bits × dim` Gaussian rows: bit `b` of a token is `<g_b, x> > 0`.
    gauss: Vec<f32>,
    /// `d_proj × dim` signs (±1/sqrt(d_proj)), empty for the identity.
    proj: Vec<f32>,
}

/// Encodes token sets of one dimension into fixed-dimensional vectors.
#[derive(Debug, Clone)]
pub struct FdeEncoder {
    params: FdeParams,
    dim: usize,
    pub(super) reps: Vec<Repetition>,
    /// Final Count-Sketch: output coordinate and sign of each raw coordinate.
    pub(super) sketch: Option<(Vec<u32>, Vec<f32>)>,
}

/// Which side of the asymmetric encoding a token set is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Query,
    Document,
}

impl FdeEncoder {
    /// An encoder for tokens of `dim` coordinates; errors on invalid parameters.
    pub fn new(dim: usize, params: FdeParams) -> Result<FdeEncoder> {
        params.validate(dim)?;
        let bits = params.simhash_bits as usize;
        let reps = (0..params.repetitions)
            .map(|r| {
                let mut state = params.seed ^ (r as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                let gauss = gaussians(&mut state, bits * dim);
                let proj = match params.projection {
                    InnerProjection::Identity => Vec::new(),
                    InnerProjection::Random(p) => {
                        let scale = 1.0 / (p as f32).sqrt();
                        let mut out = Vec::with_capacity(p * dim);
                        while out.len() < p * dim {
                            let word = splitmix(&mut state);
                            for b in 0..64.min(p * dim - out.len()) {
                                out.push(if word >> b & 1 == 1 { scale } else { -scale });
                            }
                        }
                        out
                    }
                };
                Repetition { gauss, proj }
            })
            .collect();
        let raw = params.repetitions * (1usize << bits) * params.block_dim(dim);
        let sketch = params.final_dim.map(|f| {
            let mut state = params.seed ^ 0x5EED_F1A1_0000_0001;
            let idx = (0..raw).map(|_| (splitmix(&mut state) % f as u64) as u32).collect();
            let sign = (0..raw).map(|_| if splitmix(&mut state) & 1 == 1 { 1.0 } else { -1.0 }).collect();
            (idx, sign)
        });
        Ok(FdeEncoder { params, dim, reps, sketch })
    }

    /// The parameters.
    pub fn params(&self) -> FdeParams {
        self.params
    }

    /// Token dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Coordinates of every encoding.
    pub fn output_dim(&self) -> usize {
        self.params.output_dim(self.dim)
    }

    /// The query encoding of `tokens` (`n × dim`, row-major; at least one): per bucket, the sum
    /// of the projected tokens. Empty buckets stay zero.
    pub fn encode_query(&self, tokens: &[f32]) -> Result<Vec<f32>> {
        self.encode(tokens, Side::Query)
    }

    /// The document encoding of `tokens` (`n × dim`, row-major; at least one): per bucket, the
    /// mean of the projected tokens; with `fill_empty`, an empty bucket takes the projected token
    /// whose SimHash bits are nearest to the bucket's in Hamming distance (the first on ties).
    pub fn encode_document(&self, tokens: &[f32]) -> Result<Vec<f32>> {
        self.encode(tokens, Side::Document)
    }

    fn encode(&self, tokens: &[f32], side: Side) -> Result<Vec<f32>> {
        let d = self.dim;
        if tokens.is_empty() || !tokens.len().is_multiple_of(d) {
            return Err(Error::InvalidArgument(format!(
                "a token set needs at least one token of {d} values, got {} values",
                tokens.len()
            )));
        }
        if let Some(i) = tokens.iter().position(|x| !x.is_finite()) {
            return Err(Error::InvalidArgument(format!("token value {i} is not finite")));
        }
        let bits = self.params.simhash_bits as usize;
        let buckets = 1usize << bits;
        let width = self.params.block_dim(d);
        let mut raw = vec![0.0f32; self.params.repetitions * buckets * width];
        let n = tokens.len() / d;
        let mut keys = vec![0u32; n];
        let mut projected = vec![0.0f32; n * width];
        let mut counts = vec![0u32; buckets];
        // The scan kernels' dot product (SIMD): encodings may differ in the last bits between
        // instruction sets, which only moves candidates, never an exact score.
        let dot = quarry_linalg::Kernels::get().dot;
        for (r, rep) in self.reps.iter().enumerate() {
            for (t, x) in tokens.chunks_exact(d).enumerate() {
                let mut key = 0u32;
                for (b, g) in rep.gauss.chunks_exact(d).enumerate() {
                    key |= ((dot(g, x) > 0.0) as u32) << b;
                }
                keys[t] = key;
                let out = &mut projected[t * width..(t + 1) * width];
                if rep.proj.is_empty() {
                    out.copy_from_slice(x);
                } else {
                    for (o, row) in out.iter_mut().zip(rep.proj.chunks_exact(d)) {
                        *o = dot(row, x);
                    }
                }
            }
            let block = &mut raw[r * buckets * width..(r + 1) * buckets * width];
            counts.fill(0);
            for (t, &k) in keys.iter().enumerate() {
                counts[k as usize] += 1;
                let dst = &mut block[k as usize * width..(k as usize + 1) * width];
                for (o, &v) in dst.iter_mut().zip(&projected[t * width..(t + 1) * width]) {
                    *o += v;
                }
            }
            if side == Side::Document {
                for (k, &c) in counts.iter().enumerate() {
                    let dst = &mut block[k * width..(k + 1) * width];
                    if c > 1 {
                        let inv = 1.0 / c as f32;
                        dst.iter_mut().for_each(|v| *v *= inv);
                    } else if c == 0 && self.params.fill_empty {
                        let nearest = (0..n).min_by_key(|&t| (keys[t] ^ k as u32).count_ones()).unwrap_or(0);
                        dst.copy_from_slice(&projected[nearest * width..(nearest + 1) * width]);
                    }
                }
            }
        }
        Ok(match &self.sketch {
            None => raw,
            Some((idx, sign)) => {
                let mut out = vec![0.0f32; self.output_dim()];
                for ((&v, &i), &s) in raw.iter().zip(idx).zip(sign) {
                    out[i as usize] += s * v;
                }
                out
            }
        })
    }
}
