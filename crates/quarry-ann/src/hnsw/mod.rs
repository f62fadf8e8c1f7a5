//! HNSW: the in-memory hierarchical navigable small-world graph (Malkov & Yashunin, "Efficient and
//! robust approximate nearest neighbor search using Hierarchical Navigable Small World graphs",
//! IEEE TPAMI 42(4), 2020, arXiv 1603.09320; hnswlib for the details the paper leaves open).
//!
//! Vectors live in an embedded [`crate::FlatIndex`] (aligned rows, validation, cosine
//! normalisation, and the exact scan used when a filter is very selective). The graph stores
//! neighbour ids in fixed-stride arrays of atomics: level 0 for every node in one contiguous block,
//! upper levels per node. Building inserts in parallel with one lock per node (readers of a node's
//! list take its lock during the build; searches afterwards read without locks).
//!
//! Files: `params` (build and search parameters), `graph` (link storage), `visited` (epoch-tagged
//! visited sets), `beam` (the sorted, bounded beam of unrestricted walks), `walk_codes` (the 8-bit codes the walk ranks by), `builder` (level sampling, insertion, the neighbour heuristic, deletes and
//! re-inserts), `order` (insertion orders and the LID estimator), `repair` (reachability after
//! inserts), `search` (beam search, filters, the `VectorIndex` impls), `format` (the versioned,
//! checksummed file and memory-mapped opening), `tests`.

mod beam;
mod builder;
mod format;
mod graph;
mod order;
mod params;
mod repair;
pub(crate) mod search;
#[cfg(test)]
mod tests;
pub(crate) mod visited;
mod walk_codes;

pub(crate) use builder::splitmix;
pub use builder::HnswIndex;
pub use format::{MAGIC, VERSION};
pub use order::{corpus_lid, lid_mle, InsertionOrder, LID_K};
pub use params::{HnswParams, HnswSearch};
pub use search::HnswSearcher;
pub use walk_codes::MIN_ROWS as WALK_CODES_MIN_ROWS;
