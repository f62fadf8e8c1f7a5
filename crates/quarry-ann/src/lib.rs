//! Vector indexes behind [`quarry_core::VectorIndex`].
//!
//! Each index lives in its own folder with the same file names (`params`, `builder`, `search`,
//! `tests`). Today: [`flat`], the exact scan — the oracle every approximate index is checked
//! against and the exact re-scoring stage of later pipelines.

pub mod flat;

pub use flat::{FlatIndex, FlatParams, Storage};
