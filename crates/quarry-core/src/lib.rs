//! Quarry's core vocabulary: the types every other crate speaks.
//!
//! This crate holds nouns and traits only — no I/O, no SIMD, no threads:
//! [`Metric`] (the one sign convention), [`Hit`], [`SearchParams`], [`VectorIndex`], [`IdFilter`],
//! the validated dense [`Matrix`] of f32 rows, and the shared [`Error`] type.

mod error;
mod filter;
mod hit;
mod index;
mod json_hint;
mod matrix;
mod metric;

pub use error::{Error, Result};
pub use filter::IdFilter;
pub use hit::{sort_hits, Hit};
pub use index::{SearchParams, VectorIndex, VectorIndexMut};
pub use json_hint::{non_finite_hint, NON_FINITE_HINT};
pub use matrix::{check_finite, Matrix};
pub use metric::{unit_scale, Metric};

/// Dense internal id of a stored vector: its row offset inside one index.
pub type DocId = u32;
