//! [`SentenceEncoder`]: a BERT-family sentence-embedding model (all-MiniLM-L6-v2, bge-small,
//! e5-small style) loaded from a local folder and run with candle on the CPU.
//!
//! Inputs are tokenized as sentence-transformers does: truncated at the model's
//! `max_seq_length` and padded only to the longest text of their batch (the `tokenizer.json` of
//! some packaged models pads and truncates to a fixed length; that setting is replaced). Texts are
//! sorted by length before batching so that batches hold texts of similar length (little
//! padding), and the results are returned in input order.

use crate::config::{Pooling, SentenceConfig};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config as BertConfig};
use quarry_core::{Error, Matrix, Result};
use std::path::{Path, PathBuf};
use tokenizers::{Tokenizer, TruncationParams};

/// A sentence-embedding model ready to encode texts.
pub struct SentenceEncoder {
    model: BertModel,
    fast: crate::bert::FastBert,
    tokenizer: Tokenizer,
    /// The tokenizer without truncation (passage splitting).
    splitter: Tokenizer,
    config: SentenceConfig,
    dim: usize,
    pad_id: u32,
    dir: PathBuf,
}

impl std::fmt::Debug for SentenceEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SentenceEncoder")
            .field("dir", &self.dir)
            .field("dim", &self.dim)
            .field("config", &self.config)
            .finish()
    }
}

fn candle_err(what: &str) -> impl Fn(candle_core::Error) -> Error + '_ {
    move |e| Error::InvalidArgument(format!("{what}: {e}"))
}

impl SentenceEncoder {
    /// Loads the model in folder `dir`: `config.json` (a BERT config), `tokenizer.json`,
    /// `model.safetensors`, and the sentence-transformers module files when present.
    pub fn load(dir: &Path) -> Result<SentenceEncoder> {
        let cfg_path = dir.join("config.json");
        let text = std::fs::read(&cfg_path).map_err(|e| Error::io("reading", &cfg_path, e))?;
        let bert: BertConfig = serde_json::from_slice(&text)
            .map_err(|e| Error::malformed(&cfg_path, "BERT config", e.to_string()))?;
        let config = SentenceConfig::load(dir, bert.max_position_embeddings)?;
        let tok_path = dir.join("tokenizer.json");
        let mut tokenizer = Tokenizer::from_file(&tok_path)
            .map_err(|e| Error::malformed(&tok_path, "tokenizer", e.to_string()))?;
        let pad_id = tokenizer.get_padding().map_or(bert.pad_token_id as u32, |p| p.pad_id);
        tokenizer.with_padding(None);
        let mut splitter = tokenizer.clone();
        splitter
            .with_truncation(None)
            .map_err(|e| Error::malformed(&tok_path, "truncation", e.to_string()))?;
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: config.max_seq_length,
                ..TruncationParams::default()
            }))
            .map_err(|e| Error::malformed(&tok_path, "truncation", e.to_string()))?;
        let weights = dir.join("model.safetensors");
        if !weights.exists() {
            return Err(Error::malformed(
                &weights,
                "weights",
                "missing (a model.safetensors file is needed)",
            ));
        }
        // SAFETY: the weights file is memory-mapped read-only; it must not be modified while the
        // model is loaded (as with every mmap-based loader).
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[&weights], DType::F32, &Device::Cpu) }
            .map_err(|e| Error::malformed(&weights, "safetensors", e.to_string()))?;
        let model = BertModel::load(vb, &bert)
            .map_err(|e| Error::malformed(&weights, "BERT weights", e.to_string()))?;
        let fast = crate::bert::FastBert::load(&weights, &bert)?;
        Ok(SentenceEncoder {
            model,
            fast,
            tokenizer,
            splitter,
            config,
            dim: bert.hidden_size,
            pad_id,
            dir: dir.to_path_buf(),
        })
    }

    /// Dimension of the sentence vectors.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The model's settings.
    pub fn config(&self) -> &SentenceConfig {
        &self.config
    }

    /// Token ids of `text` as the model sees it (special tokens added, truncated).
    pub fn token_ids(&self, text: &str) -> Result<Vec<u32>> {
        Ok(self.tokenize(text)?.get_ids().to_vec())
    }

    /// Byte ranges of the model's tokens in `text` (no special tokens, no truncation): what
    /// chunking counts, so a chunk of `n` tokens is `n` tokens to the model.
    pub fn token_spans(&self, text: &str) -> Result<Vec<std::ops::Range<usize>>> {
        let enc = self
            .splitter
            .encode(text, false)
            .map_err(|e| Error::InvalidArgument(format!("tokenizing: {e}")))?;
        Ok(enc
            .get_offsets()
            .iter()
            .map(|&(a, b)| a..b)
            .filter(|r| r.start < r.end && text.is_char_boundary(r.start) && text.is_char_boundary(r.end))
            .collect())
    }

    /// Splits `text` into passages that each fit the model's window (`max_seq_length` tokens with
    /// the special tokens), consecutive passages sharing `overlap` tokens; a text that fits is one
    /// passage (itself). Passage 0 is what [`SentenceEncoder::encode`] sees of the whole text
    /// (truncation keeps the first window). Passages are cut at token boundaries of the text the
    /// model sees (lowercased first if the model lowercases).
    pub fn passages(&self, text: &str, overlap: usize) -> Result<Vec<String>> {
        let t = if self.config.do_lower_case { text.to_lowercase() } else { text.to_string() };
        let enc = self
            .splitter
            .encode(t.as_str(), false)
            .map_err(|e| Error::InvalidArgument(format!("tokenizing: {e}")))?;
        let offsets = enc.get_offsets();
        let window = self.config.max_seq_length.saturating_sub(2).max(1);
        if offsets.len() <= window {
            return Ok(vec![text.to_string()]);
        }
        let stride = window.saturating_sub(overlap).max(1);
        let mut out = Vec::new();
        let mut start = 0;
        loop {
            let end = (start + window).min(offsets.len());
            let (a, b) = (offsets[start].0, offsets[end - 1].1);
            out.push(t.get(a..b).unwrap_or_default().to_string());
            if end == offsets.len() {
                break;
            }
            start += stride;
        }
        Ok(out)
    }

    /// Sentence vectors of `texts` (one row each, input order), `batch_size` texts per forward
    /// pass, on [`crate::bert::FastBert`] (packed tokens, no padding).
    pub fn encode(&self, texts: &[&str], batch_size: usize) -> Result<Matrix> {
        let ids: Vec<Vec<u32>> = texts.iter().map(|t| self.token_ids(t)).collect::<Result<_>>()?;
        let h = self.dim;
        let mut out = vec![0f32; texts.len() * h];
        self.forward_sorted(&ids, batch_size, |i, rows| {
            self.pool(rows, rows.len() / h, &mut out[i * h..(i + 1) * h])
        })?;
        Matrix::new(out, h)
    }

    /// Runs `ids` (one token list per text) through [`crate::bert::FastBert`] in batches of
    /// `batch_size` texts of similar length (longest first), calling `each(text, its token
    /// states)` with `len × dim` rows.
    fn forward_sorted(
        &self,
        ids: &[Vec<u32>],
        batch_size: usize,
        mut each: impl FnMut(usize, &[f32]),
    ) -> Result<()> {
        let mut order: Vec<usize> = (0..ids.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(ids[i].len()));
        let h = self.dim;
        for chunk in order.chunks(batch_size.max(1)) {
            let batch: Vec<&[u32]> = chunk.iter().map(|&i| ids[i].as_slice()).collect();
            let tokens = self.fast.forward(&batch)?;
            let mut row = 0;
            for (&i, s) in chunk.iter().zip(&batch) {
                each(i, &tokens[row * h..(row + s.len()) * h]);
                row += s.len();
            }
        }
        Ok(())
    }

    /// The tokenizer's encoding of `text` as the model sees it (lowercased first if the model
    /// lowercases; special tokens added, truncated).
    fn tokenize(&self, text: &str) -> Result<tokenizers::Encoding> {
        let t = if self.config.do_lower_case { text.to_lowercase() } else { text.to_string() };
        self.tokenizer.encode(t, true).map_err(|e| Error::InvalidArgument(format!("tokenizing: {e}")))
    }

    /// Token vectors of `texts` for late interaction (MaxSim): per text, the model's last hidden
    /// state of each of its tokens (special tokens such as `[CLS]` and `[SEP]` left out, unless a
    /// text has no other token), each scaled to unit length, row-major (`tokens × dim`), in input
    /// order; `batch_size` texts per forward pass. A sentence model's token states are not a
    /// trained late-interaction model (ColBERT's projection and query augmentation are absent),
    /// but they are what this encoder has.
    pub fn encode_tokens(&self, texts: &[&str], batch_size: usize) -> Result<Vec<Vec<f32>>> {
        let mut ids = Vec::with_capacity(texts.len());
        let mut special = Vec::with_capacity(texts.len());
        for t in texts {
            let enc = self.tokenize(t)?;
            ids.push(enc.get_ids().to_vec());
            special.push(enc.get_special_tokens_mask().to_vec());
        }
        let h = self.dim;
        let mut out = vec![Vec::new(); texts.len()];
        self.forward_sorted(&ids, batch_size, |i, rows| {
            let len = rows.len() / h;
            let keep: Vec<usize> = (0..len).filter(|&t| special[i].get(t) != Some(&1)).collect();
            let keep = if keep.is_empty() { (0..len.min(1)).collect() } else { keep };
            let mut v = Vec::with_capacity(keep.len() * h);
            for t in keep {
                let r = &rows[t * h..(t + 1) * h];
                let n = r.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
                v.extend(r.iter().map(|x| x / n));
            }
            out[i] = v;
        })?;
        Ok(out)
    }

    /// Pools the `len` token vectors `rows` of one text into `dst` (then normalises it if the
    /// model does).
    fn pool(&self, rows: &[f32], len: usize, dst: &mut [f32]) {
        let h = self.dim;
        match self.config.pooling {
            Pooling::Cls => dst.copy_from_slice(&rows[..h]),
            Pooling::Max => {
                dst.iter_mut().for_each(|v| *v = f32::NEG_INFINITY);
                for r in rows.chunks(h) {
                    dst.iter_mut().zip(r).for_each(|(a, b)| *a = a.max(*b));
                }
            }
            Pooling::Mean | Pooling::MeanSqrtLen => {
                dst.iter_mut().for_each(|v| *v = 0.0);
                for r in rows.chunks(h) {
                    dst.iter_mut().zip(r).for_each(|(a, b)| *a += b);
                }
                let div = if self.config.pooling == Pooling::Mean { len as f32 } else { (len as f32).sqrt() };
                dst.iter_mut().for_each(|v| *v /= div.max(1.0));
            }
        }
        if self.config.normalize {
            let n = dst.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
            dst.iter_mut().for_each(|x| *x /= n);
        }
    }

    /// [`SentenceEncoder::encode`] through candle's `BertModel` with padded batches: the
    /// reference the fast path is tested against.
    pub fn encode_reference(&self, texts: &[&str], batch_size: usize) -> Result<Matrix> {
        let batch_size = batch_size.max(1);
        let ids: Vec<Vec<u32>> = texts.iter().map(|t| self.token_ids(t)).collect::<Result<_>>()?;
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(ids[i].len()));
        let mut out = vec![0f32; texts.len() * self.dim];
        for chunk in order.chunks(batch_size) {
            let rows = self.forward(chunk.iter().map(|&i| ids[i].as_slice()).collect())?;
            for (r, &i) in chunk.iter().enumerate() {
                out[i * self.dim..(i + 1) * self.dim]
                    .copy_from_slice(&rows[r * self.dim..(r + 1) * self.dim]);
            }
        }
        Matrix::new(out, self.dim)
    }

    /// One forward pass over a batch of token id lists; row-major sentence vectors.
    fn forward(&self, batch: Vec<&[u32]>) -> Result<Vec<f32>> {
        let b = batch.len();
        let len = batch.iter().map(|s| s.len()).max().unwrap_or(0).max(1);
        let mut input = vec![self.pad_id; b * len];
        let mut mask = vec![0u32; b * len];
        for (r, s) in batch.iter().enumerate() {
            input[r * len..r * len + s.len()].copy_from_slice(s);
            mask[r * len..r * len + s.len()].iter_mut().for_each(|m| *m = 1);
        }
        let dev = &Device::Cpu;
        let input = Tensor::from_vec(input, (b, len), dev).map_err(candle_err("input tensor"))?;
        let mask_t = Tensor::from_vec(mask, (b, len), dev).map_err(candle_err("mask tensor"))?;
        let types = input.zeros_like().map_err(candle_err("type ids"))?;
        let hidden =
            self.model.forward(&input, &types, Some(&mask_t)).map_err(candle_err("model forward"))?;
        let maskf = mask_t
            .to_dtype(DType::F32)
            .map_err(candle_err("mask"))?
            .unsqueeze(2)
            .map_err(candle_err("mask"))?;
        let pooled = match self.config.pooling {
            Pooling::Cls => hidden.narrow(1, 0, 1).and_then(|t| t.squeeze(1)),
            Pooling::Mean | Pooling::MeanSqrtLen => {
                let sum =
                    hidden.broadcast_mul(&maskf).and_then(|t| t.sum(1)).map_err(candle_err("pooling"))?;
                let count = maskf.sum(1).map_err(candle_err("pooling"))?;
                let count = if self.config.pooling == Pooling::Mean {
                    count
                } else {
                    count.sqrt().map_err(candle_err("pooling"))?
                };
                sum.broadcast_div(&count)
            }
            Pooling::Max => {
                // Padding positions get a large negative value before the maximum.
                let neg = ((maskf.clone() - 1.0).map_err(candle_err("pooling"))? * 1e9)
                    .map_err(candle_err("pooling"))?;
                hidden.broadcast_add(&neg).and_then(|t| t.max(1))
            }
        }
        .map_err(candle_err("pooling"))?;
        let mut rows: Vec<f32> =
            pooled.flatten_all().and_then(|t| t.to_vec1()).map_err(candle_err("output"))?;
        if self.config.normalize {
            for r in rows.chunks_mut(self.dim) {
                let n = r.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
                r.iter_mut().for_each(|x| *x /= n);
            }
        }
        Ok(rows)
    }
}
