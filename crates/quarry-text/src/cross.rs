//! [`CrossEncoder`]: a BERT sequence-classification re-ranker (one relevance logit per
//! `(query, passage)` pair, read jointly: Nogueira & Cho, "Passage Re-ranking with BERT", arXiv
//! 1901.04085), such as the MS MARCO MiniLM cross-encoders. Runs on [`crate::bert::FastBert`]
//! with the passage as token type 1, then `classifier(tanh(pooler(h[CLS])))`.

use crate::bert::FastBert;
use candle_transformers::models::bert::Config as BertConfig;
use quarry_core::{Error, Result};
use std::path::{Path, PathBuf};
use tokenizers::{Tokenizer, TruncationParams, TruncationStrategy};

/// A cross-encoder model folder (`config.json` of a `BertForSequenceClassification` with one
/// label, `tokenizer.json`, `model.safetensors` with the pooler and classifier).
pub struct CrossEncoder {
    fast: FastBert,
    tokenizer: Tokenizer,
    hidden: usize,
    pooler_w: Vec<f32>,
    pooler_b: Vec<f32>,
    classifier_w: Vec<f32>,
    classifier_b: f32,
    dir: PathBuf,
}

impl std::fmt::Debug for CrossEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CrossEncoder").field("dir", &self.dir).finish()
    }
}

impl CrossEncoder {
    /// Loads the model in `dir`; errors name the missing or malformed file.
    pub fn load(dir: &Path) -> Result<CrossEncoder> {
        let cfg_path = dir.join("config.json");
        let text = std::fs::read(&cfg_path).map_err(|e| Error::io("reading", &cfg_path, e))?;
        let cfg: serde_json::Value = serde_json::from_slice(&text)
            .map_err(|e| Error::malformed(&cfg_path, "config", e.to_string()))?;
        let labels = cfg.get("id2label").and_then(|l| l.as_object()).map_or(1, serde_json::Map::len);
        if labels != 1 {
            return Err(Error::malformed(
                &cfg_path,
                "id2label",
                format!("{labels} labels: a re-ranker has one"),
            ));
        }
        let bert: BertConfig = serde_json::from_value(cfg)
            .map_err(|e| Error::malformed(&cfg_path, "BERT config", e.to_string()))?;
        let tok_path = dir.join("tokenizer.json");
        let mut tokenizer = Tokenizer::from_file(&tok_path)
            .map_err(|e| Error::malformed(&tok_path, "tokenizer", e.to_string()))?;
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: bert.max_position_embeddings.min(512),
                strategy: TruncationStrategy::LongestFirst,
                ..TruncationParams::default()
            }))
            .map_err(|e| Error::malformed(&tok_path, "truncation", e.to_string()))?;
        let weights = dir.join("model.safetensors");
        let fast = FastBert::load(&weights, &bert)?;
        let h = bert.hidden_size;
        let tensors = candle_core::safetensors::load(&weights, &candle_core::Device::Cpu)
            .map_err(|e| Error::malformed(&weights, "weights", e.to_string()))?;
        let get = |names: &[&str], len: usize| -> Result<Vec<f32>> {
            let t = names.iter().find_map(|n| tensors.get(*n)).ok_or_else(|| {
                Error::malformed(&weights, "weights", format!("missing tensor {}", names[0]))
            })?;
            let v: Vec<f32> = t
                .to_dtype(candle_core::DType::F32)
                .and_then(|t| t.flatten_all())
                .and_then(|t| t.to_vec1())
                .map_err(|e| Error::malformed(&weights, names[0], e.to_string()))?;
            if v.len() != len {
                return Err(Error::malformed(
                    &weights,
                    names[0],
                    format!("{} values, expected {len}", v.len()),
                ));
            }
            Ok(v)
        };
        Ok(CrossEncoder {
            fast,
            tokenizer,
            hidden: h,
            pooler_w: get(&["bert.pooler.dense.weight", "pooler.dense.weight"], h * h)?,
            pooler_b: get(&["bert.pooler.dense.bias", "pooler.dense.bias"], h)?,
            classifier_w: get(&["classifier.weight"], h)?,
            classifier_b: get(&["classifier.bias"], 1)?[0],
            dir: dir.to_path_buf(),
        })
    }

    /// The relevance logit of each passage for `query` (higher is more relevant), in input order;
    /// `batch_size` pairs per forward pass (similar lengths together).
    pub fn score(&self, query: &str, passages: &[&str], batch_size: usize) -> Result<Vec<f32>> {
        let mut pairs: Vec<(Vec<u32>, usize)> = Vec::with_capacity(passages.len());
        for p in passages {
            let enc = self
                .tokenizer
                .encode((query, *p), true)
                .map_err(|e| Error::InvalidArgument(format!("tokenizing a pair: {e}")))?;
            let split = enc.get_type_ids().iter().position(|&t| t == 1).unwrap_or(enc.get_ids().len());
            pairs.push((enc.get_ids().to_vec(), split));
        }
        let mut order: Vec<usize> = (0..pairs.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(pairs[i].0.len()));
        let h = self.hidden;
        let mut out = vec![0f32; pairs.len()];
        for chunk in order.chunks(batch_size.max(1)) {
            let batch: Vec<(&[u32], usize)> =
                chunk.iter().map(|&i| (pairs[i].0.as_slice(), pairs[i].1)).collect();
            let states = self.fast.forward_typed(&batch)?;
            let mut row = 0;
            for (&i, (ids, _)) in chunk.iter().zip(&batch) {
                let cls = &states[row * h..(row + 1) * h];
                let mut logit = self.classifier_b;
                for j in 0..h {
                    let z: f32 =
                        self.pooler_w[j * h..(j + 1) * h].iter().zip(cls).map(|(w, x)| w * x).sum::<f32>()
                            + self.pooler_b[j];
                    logit += self.classifier_w[j] * z.tanh();
                }
                out[i] = logit;
                row += ids.len();
            }
        }
        Ok(out)
    }
}
