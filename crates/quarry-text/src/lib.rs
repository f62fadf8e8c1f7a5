//! Quarry's text layer (issue 7, in progress): sentence-embedding models run in pure Rust with
//! candle and tokenizers.
//!
//! * [`config`]: a sentence-transformers model folder's settings (pooling, normalisation,
//!   sequence length).
//! * [`encoder`]: [`SentenceEncoder`], loading a model folder and encoding texts in batches.
//! * `bert`: the BERT forward pass used for encoding (packed tokens, fused bias, AVX-512 GEMM).
//! * [`fusion`]: reciprocal rank fusion and weighted / CombSUM / CombMNZ fusion of ranked lists.
//! * [`locate`]: finding a model folder (a path, `QUARRY_MODELS`, Quarry's cache, the Hugging
//!   Face cache).

mod bert;
pub mod config;
pub mod encoder;
pub mod fusion;
pub mod locate;

pub use config::{Pooling, SentenceConfig};
pub use encoder::SentenceEncoder;
