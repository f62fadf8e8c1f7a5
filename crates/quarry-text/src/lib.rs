//! Quarry's text layer: sentence-embedding models run in pure Rust with candle and tokenizers,
//! text analysis (tantivy's tokenizers) and BM25, passage splitting.
//!
//! * [`analyzer`]: [`Analyzer`] (tokenize, lowercase, stop words, stemming) from an
//!   [`AnalyzerConfig`].
//! * [`bm25`]: [`Bm25Index`], an inverted index scored with BM25 (k1, b configurable), exact
//!   collection-wide statistics under deletes.
//! * [`config`]: a sentence-transformers model folder's settings (pooling, normalisation,
//!   sequence length).
//! * [`encoder`]: [`SentenceEncoder`], loading a model folder and encoding texts in batches.
//! * [`cross`]: [`CrossEncoder`], a BERT sequence-classification re-ranker of (query, passage)
//!   pairs.
//! * `bert`: the BERT forward pass used for encoding (packed tokens, fused bias, AVX-512 GEMM).
//! * [`locate`]: finding a model folder (a path, `QUARRY_MODELS`, Quarry's cache, the Hugging
//!   Face cache).

pub mod analyzer;
mod bert;
pub mod bm25;
pub mod config;
pub mod cross;
pub mod encoder;
pub mod locate;

pub use analyzer::{Analyzer, AnalyzerConfig, StopWords};
pub use bm25::{Bm25Index, Bm25Params};
pub use config::{Pooling, SentenceConfig};
pub use cross::CrossEncoder;
pub use encoder::SentenceEncoder;
