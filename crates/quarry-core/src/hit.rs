//! A search result and the engine's deterministic result order.

use crate::DocId;

/// One ranked result: the internal id and its score under the index's metric (higher is better).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Hit {
    /// Dense internal id (row offset).
    pub id: DocId,
    /// Score: inner product, cosine, or negative squared L2 (see [`crate::Metric::score`]).
    pub score: f32,
}

/// Sorts hits into the engine's canonical order: score descending, then id ascending.
///
/// NaN never reaches hits (inputs are validated), but `total_cmp` keeps the order total regardless.
pub fn sort_hits(hits: &mut [Hit]) {
    hits.sort_unstable_by(|a, b| b.score.total_cmp(&a.score).then(a.id.cmp(&b.id)));
}
