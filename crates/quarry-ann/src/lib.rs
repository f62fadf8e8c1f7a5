//! Vector indexes behind [`quarry_core::VectorIndex`].
//!
//! Each index lives in its own folder with the same file names (`params`, `builder`, `search`,
//! `tests`). [`flat`] is the exact scan — the oracle every approximate index is checked against
//! and the exact re-scoring stage of later pipelines; [`hnsw`] is the in-memory graph index;
//! [`quant`] puts compressed codes in front of either (`flat+sq8`, `hnsw+rabitq`, ...); [`spann`]
//! keeps posting lists on disk; [`any`] opens any of them from one spec string; [`fde`] turns
//! multi-vector token sets into MUVERA encodings any of them can index.
//!
//! ```
//! use quarry_ann::{FlatIndex, FlatParams};
//! use quarry_core::{Matrix, Metric, SearchParams, VectorIndex};
//!
//! # fn main() -> quarry_core::Result<()> {
//! let base = Matrix::new(vec![1.0, 0.0, 0.0, 1.0, 0.7, 0.7], 2)?; // three 2-d vectors
//! let index = FlatIndex::build(&base, Metric::Cosine, FlatParams::default())?;
//! let hits = index.search(&[0.9, 0.1], &SearchParams::top(2))?; // score-descending, ties by id
//! assert_eq!(hits.iter().map(|h| h.id).collect::<Vec<_>>(), vec![0, 2]);
//!
//! // A graph index over the same vectors, filtered, saved and reopened (memory-mapped).
//! use quarry_ann::{HnswIndex, HnswParams};
//! use quarry_core::IdFilter;
//! use std::sync::Arc;
//! let hnsw = HnswIndex::build(&base, Metric::Cosine, HnswParams::default())?;
//! let only = Arc::new(IdFilter::from_ids([1, 2]));
//! let hits = hnsw.search(&[0.9, 0.1], &SearchParams::top(2).with_filter(only))?;
//! assert_eq!(hits.iter().map(|h| h.id).collect::<Vec<_>>(), vec![2, 1]);
//! let path = std::env::temp_dir().join(format!("doc-{}.qhnsw", std::process::id()));
//! hnsw.save(&path)?;
//! let reopened = HnswIndex::open(&path)?;
//! assert_eq!(reopened.search(&[0.9, 0.1], &SearchParams::top(1))?[0].id, 0);
//! # std::fs::remove_file(&path).ok();
//! # Ok(())
//! # }
//! ```

pub mod any;
pub mod fde;
pub mod flat;
pub mod hnsw;
pub mod quant;
pub mod spann;

pub use any::{build_into, AnyIndex, Base, Effort, IndexSpec, Residency};
pub use flat::{FlatIndex, FlatParams, Storage};
pub use hnsw::{HnswIndex, HnswParams, HnswSearch, HnswSearcher, InsertionOrder};
pub use quant::{QuantFlatIndex, QuantHnswIndex, QuantParams, QuantSpec};
