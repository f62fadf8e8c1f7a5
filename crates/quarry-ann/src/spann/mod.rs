//! SPANN: a memory+disk index (Chen et al., "SPANN: Highly-efficient Billion-scale Approximate
//! Nearest Neighbor Search", NeurIPS 2021, arXiv 2111.08566; defaults and details from
//! microsoft/SPTAG). Posting-list heads (real vectors) and a graph over them stay in memory; the
//! posting lists (ids and vectors) live in one file on disk and a query reads only the few lists
//! whose heads are close to it.
//!
//! Files: `params` (build and search parameters), `cluster` (hierarchical balanced k-means
//! choosing the heads), `builder` (closure assignment with the RNG rule and the posting cap),
//! `postings` (the posting file: page-aligned lists, positioned reads, an LRU cache of hot lists),
//! `search` (head search, query-aware pruning, de-duplicated list scans, the `VectorIndex`
//! impls), `format` (the index folder), `tests`.
//!
//! `heads` (head codes: the head search reads only codes), `update` (SPFresh inserts, splits,
//! re-assignment, deletes, merges) and `delta` (the durable update log they write).
//!
//! `compact` writes an updated index as fresh base files in another folder.
//!
//! Not yet: io_uring reads (a read-ahead hint asks the OS to fetch a query's lists in parallel),
//! compaction in place, rebuilding the head graph after updates without compaction (searches
//! scan the head codes meanwhile).

mod builder;
mod compact;
// Some accessors are used only by tests and by the coming update path (SPFresh).
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) mod cluster;
mod delta;
mod format;
mod heads;
mod params;
#[allow(dead_code)]
pub(crate) mod postings;
mod rows;
mod search;
mod seen;
#[cfg(test)]
mod tests;
mod update;

pub use builder::{SpannBuildStats, SpannIndex};
pub use format::{DELTA_FILE, HEADS_FILE, MAGIC, META_FILE, POSTINGS_FILE, VECTORS_FILE, VERSION};
pub use heads::{HeadSearch, SCAN_MAX_HEADS};
pub use params::{SpannParams, SpannSearch};
pub use search::SpannSearcher;
