//! Quarry's ranking steps, generic over the document id type, shared by every front end: the
//! engine's text collections (hybrid and multi-query search), the server's Qdrant `query` with
//! `prefetch` (`rrf`, `dbsf`), the CLI's `quarry fuse` and the Python package. No other crate
//! fuses ranked lists.
//!
//! Files: `anncur` (cross-encoder k-NN through a CUR decomposition), `calibrate` (relevance probabilities and a calibrated cut-off), `feedback` (Rocchio
//! and RM3), `fusion` (reciprocal rank fusion, weighted combination,
//! distribution-based score fusion, CombSUM and CombMNZ over per-list normalised scores),
//! `hubness` (k-occurrence skewness; QB-Norm and DBNorm re-scoring), `route` (routing among
//! expert retrievers by pilot embeddings).

pub mod anncur;
pub mod calibrate;
pub mod feedback;
pub mod fusion;
pub mod hubness;
pub mod route;

pub use fusion::{fuse, Fusion, Norm};
