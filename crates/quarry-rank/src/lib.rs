//! Quarry's ranking steps, generic over the document id type, shared by every front end: the
//! engine's text collections (hybrid and multi-query search), the server's Qdrant `query` with
//! `prefetch` (`rrf`, `dbsf`), the CLI's `quarry fuse` and the Python package. No other crate
//! fuses ranked lists.
//!
//! Files: `fusion` (reciprocal rank fusion, weighted combination, distribution-based score fusion,
//! CombSUM and CombMNZ over per-list normalised scores).

pub mod fusion;

pub use fusion::{fuse, Fusion, Norm};
