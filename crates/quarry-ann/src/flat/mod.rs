//! Exact (brute-force) search: every stored vector is compared with the query.
//!
//! Vectors live in one 64-byte aligned, contiguous block (f32, or f16 widened on the fly), so the
//! scan runs at memory bandwidth. Single queries split the rows across the rayon pool; batches
//! tile queries × row blocks so each block is read from memory once per group of queries.

mod builder;
mod format;
mod gemm;
mod params;
pub(crate) mod readahead;
mod search;
#[cfg(test)]
mod tests;

pub use builder::FlatIndex;
pub(crate) use format::{
    bitmap_bytes, bitmap_filter, metric_code, metric_from_code, storage_code, storage_from_code,
};
pub use format::{MAGIC, VERSION};
pub use params::{FlatParams, Storage};
pub(crate) use search::prefetch_line;
