//! Build and search parameters of the HNSW index, with hnswlib's defaults.

use super::order::InsertionOrder;
use crate::flat::Storage;

/// How the graph is built.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HnswParams {
    /// Links per node on upper levels; level 0 keeps up to `2 * m`.
    pub m: usize,
    /// Beam width while inserting.
    pub ef_construction: usize,
    /// Seed of the level sampler (the build is deterministic with one thread).
    pub seed: u64,
    /// Element type of the stored vectors.
    pub storage: Storage,
    /// Order in which [`super::HnswIndex::build`] inserts the rows (ids stay the row numbers).
    /// The default inserts them as given: on the dev sets the best order, `LidDescending`, gained
    /// under 1 point of recall@10 at ef = 10 (about 1 on SciFact) and nothing at ef = 40, while
    /// its LID pass roughly doubles the build time (docs/benchmarks/hnsw-insertion-order.md).
    pub insertion_order: InsertionOrder,
    /// Rank the walk by 8-bit codes of the rows (a quarter of the rows' bytes more memory) and
    /// re-score the best of the beam exactly, instead of reading f32 rows at every hop
    /// (`walk_codes.rs`; decision 0015). A search option more than a build one: not stored in the
    /// file; [`super::HnswIndex::open`] and `load` turn it on, `open_walking_rows` leaves it off.
    pub walk_codes: bool,
}

impl Default for HnswParams {
    fn default() -> Self {
        HnswParams {
            m: 16,
            ef_construction: 200,
            seed: 42,
            storage: Storage::F32,
            insertion_order: InsertionOrder::AsGiven,
            walk_codes: true,
        }
    }
}

/// How a query is answered.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HnswSearch {
    /// Beam width at level 0 (raised to at least k; to at least 3k when the walk ranks by codes,
    /// whose best 3k are re-scored).
    pub ef: usize,
    /// A filter admitting at most this fraction of the live points is answered by an exact scan
    /// over the admitted ids instead of a graph walk.
    pub exact_scan_fraction: f64,
}

impl Default for HnswSearch {
    fn default() -> Self {
        HnswSearch { ef: 64, exact_scan_fraction: 0.02 }
    }
}

impl HnswSearch {
    /// Search with beam width `ef` and the default filter policy.
    pub fn ef(ef: usize) -> Self {
        HnswSearch { ef, ..Self::default() }
    }
}
