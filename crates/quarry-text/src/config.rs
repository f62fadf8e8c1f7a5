//! A sentence-transformers model folder's settings: the transformer's `config.json`, the
//! tokenizer, `sentence_bert_config.json` (maximum sequence length, lower-casing), `modules.json`
//! (which modules follow the transformer) and the pooling module's `config.json` (mean, CLS, max
//! or mean-sqrt-len pooling). Missing optional files fall back to sentence-transformers'
//! defaults (mean pooling, no normalisation, the model's position limit).

use quarry_core::{Error, Result};
use serde_json::Value;
use std::path::Path;

/// How token vectors become one sentence vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pooling {
    /// Mean of the non-padding token vectors.
    Mean,
    /// The first token's vector (`[CLS]`).
    Cls,
    /// Per-dimension maximum over the non-padding tokens.
    Max,
    /// Sum of the non-padding token vectors divided by the square root of their count.
    MeanSqrtLen,
}

/// Settings of a sentence-embedding model folder.
#[derive(Debug, Clone, PartialEq)]
pub struct SentenceConfig {
    /// Longest input in tokens (special tokens included); longer texts are truncated.
    pub max_seq_length: usize,
    /// Lower-case texts before tokenizing.
    pub do_lower_case: bool,
    /// Pooling of token vectors.
    pub pooling: Pooling,
    /// Whether the sentence vector is L2-normalised (a `Normalize` module follows pooling).
    pub normalize: bool,
}

fn read_json(path: &Path) -> Result<Option<Value>> {
    if !path.exists() {
        return Ok(None);
    }
    let text = std::fs::read(path).map_err(|e| Error::io("reading", path, e))?;
    serde_json::from_slice(&text).map(Some).map_err(|e| Error::malformed(path, "JSON", e.to_string()))
}

impl SentenceConfig {
    /// Reads the settings of the model folder `dir`; `position_limit` is the transformer's
    /// `max_position_embeddings`.
    pub fn load(dir: &Path, position_limit: usize) -> Result<SentenceConfig> {
        let st = read_json(&dir.join("sentence_bert_config.json"))?;
        let max_seq_length = st
            .as_ref()
            .and_then(|v| v.get("max_seq_length"))
            .and_then(Value::as_u64)
            .map_or(position_limit, |m| (m as usize).min(position_limit));
        let do_lower_case =
            st.as_ref().and_then(|v| v.get("do_lower_case")).and_then(Value::as_bool).unwrap_or(false);
        let modules = read_json(&dir.join("modules.json"))?;
        let module_list: Vec<(String, String)> = modules
            .as_ref()
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .map(|m| {
                        let ty = m.get("type").and_then(Value::as_str).unwrap_or_default().to_string();
                        let path = m.get("path").and_then(Value::as_str).unwrap_or_default().to_string();
                        (ty, path)
                    })
                    .collect()
            })
            .unwrap_or_default();
        let normalize = module_list.iter().any(|(ty, _)| ty.ends_with(".Normalize"));
        let pooling_dir = module_list
            .iter()
            .find(|(ty, _)| ty.ends_with(".Pooling"))
            .map_or_else(|| "1_Pooling".to_string(), |(_, p)| p.clone());
        let pool = read_json(&dir.join(&pooling_dir).join("config.json"))?;
        let flag = |k: &str| pool.as_ref().and_then(|v| v.get(k)).and_then(Value::as_bool).unwrap_or(false);
        let pooling = if flag("pooling_mode_cls_token") {
            Pooling::Cls
        } else if flag("pooling_mode_max_tokens") {
            Pooling::Max
        } else if flag("pooling_mode_mean_sqrt_len_tokens") {
            Pooling::MeanSqrtLen
        } else {
            Pooling::Mean
        };
        if max_seq_length < 2 {
            return Err(Error::malformed(
                dir.join("sentence_bert_config.json"),
                "max_seq_length",
                "must be at least 2",
            ));
        }
        Ok(SentenceConfig { max_seq_length, do_lower_case, pooling, normalize })
    }
}
