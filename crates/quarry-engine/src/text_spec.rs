//! What makes a collection a text collection: [`TextSpec`] in its schema (the text key, the
//! model, BM25 parameters, the analyzer, how long documents are split into passages, how files
//! are cut into chunks). Kept apart
//! from the text collection itself so the schema needs nothing else of the text layer.

use quarry_core::{Error, Result};
use quarry_text::{Analyzer, AnalyzerConfig, Bm25Params};
use serde::{Deserialize, Serialize};

/// How documents longer than the model's window are embedded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum PassageMode {
    /// Overlapping passages; a document's dense score is its best passage's (default).
    #[default]
    Max,
    /// The first window only (the text is truncated, as sentence-transformers does).
    Truncate,
}

/// Passage splitting of long documents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PassageSpec {
    /// `max` or `truncate`.
    pub mode: PassageMode,
    /// Tokens shared by consecutive passages.
    pub overlap: usize,
}

impl Default for PassageSpec {
    fn default() -> Self {
        PassageSpec { mode: PassageMode::Max, overlap: 32 }
    }
}

/// A text collection's settings (stored in its schema).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TextSpec {
    /// Payload key holding a document's text (default `text`).
    #[serde(default = "default_key")]
    pub key: String,
    /// Sentence model (a folder, or a name found by `quarry_text::locate`); none: BM25 only.
    #[serde(default)]
    pub model: Option<String>,
    /// BM25 parameters.
    #[serde(default)]
    pub bm25: Bm25Params,
    /// Analysis of documents and queries for BM25.
    #[serde(default)]
    pub analyzer: AnalyzerConfig,
    /// Passage splitting of long documents.
    #[serde(default)]
    pub passages: PassageSpec,
    /// Prepended to query texts before embedding (e.g. `"query: "` for e5 models).
    #[serde(default)]
    pub query_prefix: String,
    /// Prepended to document texts before embedding (e.g. `"passage: "` for e5 models).
    #[serde(default)]
    pub document_prefix: String,
    /// How files ingested as documents are cut into chunks (`quarry ingest --files`).
    #[serde(default)]
    pub chunking: quarry_docs::ChunkSpec,
}

fn default_key() -> String {
    "text".into()
}

impl TextSpec {
    /// Text settings with `model` (or none: BM25 only) and every other setting at its default.
    pub fn new(model: Option<String>) -> TextSpec {
        TextSpec {
            key: default_key(),
            model,
            bm25: Bm25Params::default(),
            analyzer: AnalyzerConfig::default(),
            passages: PassageSpec::default(),
            query_prefix: String::new(),
            document_prefix: String::new(),
            chunking: quarry_docs::ChunkSpec::default(),
        }
    }

    /// Checks the settings (BM25 ranges, analyzer, key).
    pub fn check(&self) -> Result<()> {
        if self.key.is_empty() {
            return Err(Error::InvalidArgument("text key must not be empty".into()));
        }
        self.bm25.check()?;
        self.chunking.check()?;
        Analyzer::new(&self.analyzer)?;
        Ok(())
    }
}
