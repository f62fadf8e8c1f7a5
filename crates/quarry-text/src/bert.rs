//! [`FastBert`]: the BERT encoder forward pass written for CPU inference of sentence embeddings.
//!
//! The same arithmetic as the reference (candle's `BertModel`, itself checked against
//! sentence-transformers), arranged for speed: the tokens of a whole batch are packed into one
//! `tokens × hidden` matrix with no padding (every per-token layer — the Q/K/V projections (one
//! fused matrix), the attention output, the feed-forward pair — is one large matrix product with
//! the bias folded in, on the `gemm` crate's AVX-512/AVX2 kernels), attention runs per sentence
//! over its own tokens only (so no mask is needed), and the element-wise steps (GELU with the
//! exact erf, residual + LayerNorm) run in place on all threads with no temporary tensors.

use quarry_core::{Error, Result};
use rayon::prelude::*;
use std::collections::HashMap;
use std::path::Path;

struct Layer {
    /// Q, K and V weights stacked: `3·hidden × hidden` (rows are output features).
    qkv_w: Vec<f32>,
    qkv_b: Vec<f32>,
    o_w: Vec<f32>,
    o_b: Vec<f32>,
    ln1_w: Vec<f32>,
    ln1_b: Vec<f32>,
    i_w: Vec<f32>,
    i_b: Vec<f32>,
    out_w: Vec<f32>,
    out_b: Vec<f32>,
    ln2_w: Vec<f32>,
    ln2_b: Vec<f32>,
}

/// A BERT encoder's weights, ready for [`FastBert::forward`].
pub(crate) struct FastBert {
    hidden: usize,
    heads: usize,
    inter: usize,
    eps: f32,
    max_pos: usize,
    vocab: usize,
    word: Vec<f32>,
    pos: Vec<f32>,
    type0: Vec<f32>,
    /// Segment-B embedding (sentence pairs: cross-encoders), when the model has two types.
    type1: Option<Vec<f32>>,
    emb_ln_w: Vec<f32>,
    emb_ln_b: Vec<f32>,
    layers: Vec<Layer>,
}

/// Rows up to which [`linear`] skips the GEMM (whose packing of the whole weight matrix costs
/// more than the product for a short single text) for per-row dot products against the weights.
const SMALL_ROWS: usize = 32;

/// [`linear`] for a few rows: tasks take blocks of 64 output features (a block of weight rows
/// stays in cache) and compute every input row's dot product with them (quarry-linalg's
/// runtime-dispatched kernels), then the blocks are placed with the bias added.
fn linear_small(x: &[f32], t: usize, k: usize, w: &[f32], n: usize, b: &[f32], out: &mut Vec<f32>) {
    const BLOCK: usize = 64;
    let kern = quarry_linalg::Kernels::get();
    let blocks: Vec<Vec<f32>> = (0..n.div_ceil(BLOCK))
        .into_par_iter()
        .map(|c| {
            let (j0, j1) = (c * BLOCK, ((c + 1) * BLOCK).min(n));
            let bn = j1 - j0;
            let mut o = vec![0f32; t * bn];
            for (r, dst) in o.chunks_mut(bn).enumerate() {
                (kern.dot_many)(&x[r * k..(r + 1) * k], &w[j0 * k..j1 * k], dst);
            }
            o
        })
        .collect();
    out.clear();
    out.resize(t * n, 0.0);
    for (c, o) in blocks.iter().enumerate() {
        let j0 = c * BLOCK;
        let bn = o.len() / t.max(1);
        for (r, src) in o.chunks(bn).enumerate() {
            let dst = &mut out[r * n + j0..r * n + j0 + bn];
            for ((d, v), bias) in dst.iter_mut().zip(src).zip(&b[j0..j0 + bn]) {
                *d = v + bias;
            }
        }
    }
}

/// `out = x · wᵀ + b` for `x` of `t × k` and `w` of `n × k` (rows are output features).
fn linear(x: &[f32], t: usize, k: usize, w: &[f32], n: usize, b: &[f32], out: &mut Vec<f32>) {
    // The unsafe GEMM below relies on these shapes: checked in every build, not only debug.
    assert!(
        x.len() == t * k && w.len() == n * k && b.len() == n,
        "linear: shapes x {} (t {t} × k {k}), w {} (n {n} × k), b {}",
        x.len(),
        w.len(),
        b.len()
    );
    if t <= SMALL_ROWS {
        return linear_small(x, t, k, w, n, b, out);
    }
    out.clear();
    out.reserve(t * n);
    for _ in 0..t {
        out.extend_from_slice(b);
    }
    if t == 0 {
        return;
    }
    let par = gemm::Parallelism::Rayon(rayon::current_num_threads());
    // SAFETY: `out` holds t×n, `x` t×k and `w` n×k f32 values; the strides describe row-major
    // out (row stride n), row-major x (row stride k), and wᵀ read from row-major w (element
    // (l, j) of wᵀ is w[j·k + l]). dst = 1·dst + 1·x·wᵀ adds the product to the bias rows.
    unsafe {
        gemm::gemm(
            t,
            n,
            k,
            out.as_mut_ptr(),
            1,
            n as isize,
            true,
            x.as_ptr(),
            1,
            k as isize,
            w.as_ptr(),
            k as isize,
            1,
            1.0f32,
            1.0f32,
            false,
            false,
            false,
            par,
        );
    }
}

/// Row-wise `x = LayerNorm(x + r)` with weights `w`, `b`.
fn add_layer_norm(x: &mut [f32], r: &[f32], w: &[f32], b: &[f32], eps: f32) {
    let h = w.len();
    x.par_chunks_mut(h).zip(r.par_chunks(h)).for_each(|(row, res)| {
        row.iter_mut().zip(res).for_each(|(a, b)| *a += b);
        layer_norm_row(row, w, b, eps);
    });
}

fn layer_norm_row(row: &mut [f32], w: &[f32], b: &[f32], eps: f32) {
    let n = row.len() as f32;
    let mean = row.iter().sum::<f32>() / n;
    let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
    let inv = 1.0 / (var + eps).sqrt();
    for ((v, wi), bi) in row.iter_mut().zip(w).zip(b) {
        *v = (*v - mean) * inv * wi + bi;
    }
}

impl FastBert {
    /// Reads the weights of `model.safetensors` for `config` (names with or without a `bert.`
    /// prefix, as Hugging Face checkpoints store them).
    pub(crate) fn load(
        weights: &Path,
        config: &candle_transformers::models::bert::Config,
    ) -> Result<FastBert> {
        let bad = |m: String| Error::malformed(weights, "weights", m);
        let tensors: HashMap<String, candle_core::Tensor> =
            candle_core::safetensors::load(weights, &candle_core::Device::Cpu)
                .map_err(|e| bad(e.to_string()))?;
        let prefix =
            if tensors.contains_key("bert.embeddings.word_embeddings.weight") { "bert." } else { "" };
        let get = |name: &str, len: usize| -> Result<Vec<f32>> {
            let key = format!("{prefix}{name}");
            let t = tensors.get(&key).ok_or_else(|| bad(format!("missing tensor {key}")))?;
            let v: Vec<f32> = t
                .to_dtype(candle_core::DType::F32)
                .and_then(|t| t.flatten_all())
                .and_then(|t| t.to_vec1())
                .map_err(|e| bad(format!("{key}: {e}")))?;
            if v.len() != len {
                return Err(bad(format!("{key}: {} values, expected {len}", v.len())));
            }
            Ok(v)
        };
        let (h, i, v, p) =
            (config.hidden_size, config.intermediate_size, config.vocab_size, config.max_position_embeddings);
        if config.num_attention_heads == 0 || h % config.num_attention_heads != 0 {
            return Err(bad(format!(
                "hidden size {h} is not a multiple of {} heads",
                config.num_attention_heads
            )));
        }
        let types = get("embeddings.token_type_embeddings.weight", config.type_vocab_size * h)?;
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        for l in 0..config.num_hidden_layers {
            let n = |s: &str| format!("encoder.layer.{l}.{s}");
            let mut qkv_w = get(&n("attention.self.query.weight"), h * h)?;
            qkv_w.extend(get(&n("attention.self.key.weight"), h * h)?);
            qkv_w.extend(get(&n("attention.self.value.weight"), h * h)?);
            let mut qkv_b = get(&n("attention.self.query.bias"), h)?;
            qkv_b.extend(get(&n("attention.self.key.bias"), h)?);
            qkv_b.extend(get(&n("attention.self.value.bias"), h)?);
            layers.push(Layer {
                qkv_w,
                qkv_b,
                o_w: get(&n("attention.output.dense.weight"), h * h)?,
                o_b: get(&n("attention.output.dense.bias"), h)?,
                ln1_w: get(&n("attention.output.LayerNorm.weight"), h)?,
                ln1_b: get(&n("attention.output.LayerNorm.bias"), h)?,
                i_w: get(&n("intermediate.dense.weight"), i * h)?,
                i_b: get(&n("intermediate.dense.bias"), i)?,
                out_w: get(&n("output.dense.weight"), h * i)?,
                out_b: get(&n("output.dense.bias"), h)?,
                ln2_w: get(&n("output.LayerNorm.weight"), h)?,
                ln2_b: get(&n("output.LayerNorm.bias"), h)?,
            });
        }
        Ok(FastBert {
            hidden: h,
            heads: config.num_attention_heads,
            inter: i,
            eps: config.layer_norm_eps as f32,
            max_pos: p,
            vocab: v,
            word: get("embeddings.word_embeddings.weight", v * h)?,
            pos: get("embeddings.position_embeddings.weight", p * h)?,
            type0: types[..h].to_vec(),
            type1: (config.type_vocab_size >= 2).then(|| types[h..2 * h].to_vec()),
            emb_ln_w: get("embeddings.LayerNorm.weight", h)?,
            emb_ln_b: get("embeddings.LayerNorm.bias", h)?,
            layers,
        })
    }

    /// Token vectors of the last layer for each sequence of `batch` (token ids, each at most
    /// the position limit long), packed: `Σ lengths × hidden`, sequences one after another.
    pub(crate) fn forward(&self, batch: &[&[u32]]) -> Result<Vec<f32>> {
        let typed: Vec<(&[u32], usize)> = batch.iter().map(|s| (*s, s.len())).collect();
        self.forward_typed(&typed)
    }

    /// [`FastBert::forward`] for sentence pairs: each sequence is `(ids, split)`, tokens from
    /// `split` on belong to segment B (token type 1).
    pub(crate) fn forward_typed(&self, batch: &[(&[u32], usize)]) -> Result<Vec<f32>> {
        if batch.iter().any(|(s, split)| *split < s.len()) && self.type1.is_none() {
            return Err(Error::InvalidArgument("this model has one token type: no sentence pairs".into()));
        }
        let typed = batch;
        let batch: Vec<&[u32]> = typed.iter().map(|b| b.0).collect();
        let h = self.hidden;
        let lens: Vec<usize> = batch.iter().map(|s| s.len()).collect();
        if let Some(&l) = lens.iter().find(|&&l| l > self.max_pos) {
            return Err(Error::InvalidArgument(format!(
                "{l} tokens, the model takes at most {}",
                self.max_pos
            )));
        }
        let total: usize = lens.iter().sum();
        let mut x = vec![0f32; total * h];
        let mut row = 0;
        for &(s, split) in typed {
            for (p, &id) in s.iter().enumerate() {
                let id = id as usize;
                if id >= self.vocab {
                    return Err(Error::InvalidArgument(format!("token id {id} outside the vocabulary")));
                }
                let dst = &mut x[row * h..(row + 1) * h];
                let (w, pe) = (&self.word[id * h..(id + 1) * h], &self.pos[p * h..(p + 1) * h]);
                let ty = match (&self.type1, p >= split) {
                    (Some(t1), true) => t1,
                    _ => &self.type0,
                };
                for j in 0..h {
                    dst[j] = w[j] + pe[j] + ty[j];
                }
                row += 1;
            }
        }
        x.par_chunks_mut(h).for_each(|r| layer_norm_row(r, &self.emb_ln_w, &self.emb_ln_b, self.eps));
        let (mut qkv, mut ctx, mut tmp, mut inter) =
            (Vec::new(), vec![0f32; total * h], Vec::new(), Vec::new());
        let d = h / self.heads;
        let scale = 1.0 / (d as f32).sqrt();
        for layer in &self.layers {
            linear(&x, total, h, &layer.qkv_w, 3 * h, &layer.qkv_b, &mut qkv);
            // Attention per sequence over its own tokens.
            let mut parts: Vec<(&mut [f32], usize, usize)> = Vec::with_capacity(lens.len());
            let (mut rest, mut start) = (ctx.as_mut_slice(), 0);
            for &l in &lens {
                let (mine, tail) = rest.split_at_mut(l * h);
                parts.push((mine, start, l));
                rest = tail;
                start += l;
            }
            let qkv_ref = &qkv;
            parts.into_par_iter().for_each(|(out, start, l)| {
                let mut scores = vec![0f32; l * l];
                let base = &qkv_ref[start * 3 * h..(start + l) * 3 * h];
                // The unsafe GEMMs below read and write inside these bounds only.
                assert!(out.len() == l * h && self.heads * d <= h, "attention: shapes");
                for head in 0..self.heads {
                    let off = head * d;
                    // SAFETY: `base` holds l rows of 3h values; Q, K, V of this head start at
                    // columns off, h + off, 2h + off and span d ≤ h columns, so every element
                    // read (row < l, column < 3h) is inside it. `scores` holds l×l values and
                    // `out` l rows of h values, of which columns off..off + d are written.
                    unsafe {
                        // scores = Q·Kᵀ · scale (Q: l×d, row stride 3h; Kᵀ element (c, j) = K[j, c]).
                        gemm::gemm(
                            l,
                            l,
                            d,
                            scores.as_mut_ptr(),
                            1,
                            l as isize,
                            false,
                            base.as_ptr().add(off),
                            1,
                            3 * h as isize,
                            base.as_ptr().add(h + off),
                            3 * h as isize,
                            1,
                            0.0f32,
                            scale,
                            false,
                            false,
                            false,
                            gemm::Parallelism::None,
                        );
                    }
                    for row in scores.chunks_mut(l) {
                        let max = row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
                        let mut sum = 0.0;
                        for v in row.iter_mut() {
                            *v = (*v - max).exp();
                            sum += *v;
                        }
                        let inv = 1.0 / sum;
                        row.iter_mut().for_each(|v| *v *= inv);
                    }
                    // SAFETY: as above; the product P·V (l×d) is written at out[i·h + off + c].
                    unsafe {
                        gemm::gemm(
                            l,
                            d,
                            l,
                            out.as_mut_ptr().add(off),
                            1,
                            h as isize,
                            false,
                            scores.as_ptr(),
                            1,
                            l as isize,
                            base.as_ptr().add(2 * h + off),
                            1,
                            3 * h as isize,
                            0.0f32,
                            1.0f32,
                            false,
                            false,
                            false,
                            gemm::Parallelism::None,
                        );
                    }
                }
            });
            linear(&ctx, total, h, &layer.o_w, h, &layer.o_b, &mut tmp);
            add_layer_norm(&mut x, &tmp, &layer.ln1_w, &layer.ln1_b, self.eps);
            linear(&x, total, h, &layer.i_w, self.inter, &layer.i_b, &mut inter);
            inter.par_chunks_mut(4096).for_each(|c| {
                for v in c {
                    *v = 0.5 * *v * (1.0 + libm::erff(*v * std::f32::consts::FRAC_1_SQRT_2));
                }
            });
            linear(&inter, total, self.inter, &layer.out_w, h, &layer.out_b, &mut tmp);
            add_layer_norm(&mut x, &tmp, &layer.ln2_w, &layer.ln2_b, self.eps);
        }
        Ok(x)
    }
}
