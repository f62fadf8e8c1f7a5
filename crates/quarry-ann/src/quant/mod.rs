//! Quantized indexes: compressed codes searched first, exact f32 re-scoring last (the quantizers
//! and their papers are in `quarry-quant`; specs `flat+sq8`, `flat+sq4`, `flat+pq`, `flat+rabitq`,
//! `hnsw+sq8`, `hnsw+sq4`, `hnsw+pq`, `hnsw+rabitq`).
//!
//! Files: `spec` (which codes and how they are re-scored), `codes` (the trained quantizer, the
//! code arena and graph keys read from codes), `rerank` (exact re-scoring, by count or by
//! RaBitQ error bound), `flat` (scan over codes), `hnsw` (graph walk on codes), `format` (the
//! folder of an exact index plus a codes file), `tests`.

pub(crate) mod codes;
mod flat;
mod format;
mod hnsw;
pub(crate) mod rerank;
mod spec;
#[cfg(test)]
mod tests;

pub use flat::{QuantFlatIndex, QuantFlatSearcher};
pub use format::{CODES_FILE, CODES_MAGIC, CODES_VERSION, FLAT_FILE, HNSW_FILE};
pub use hnsw::{QuantHnswIndex, QuantHnswSearcher};
pub use spec::{QuantParams, QuantSpec};
