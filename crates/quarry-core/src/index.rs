//! The index traits every vector index implements, and the search parameters they share.

use crate::{DocId, Hit, IdFilter, Matrix, Metric, Result};
use std::sync::Arc;

/// Per-query search parameters common to every index kind.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SearchParams {
    /// Number of results wanted. Fewer come back only when fewer live ids pass the filter.
    pub k: usize,
    /// Only ids in this set may be returned (`None`: any live id).
    pub filter: Option<Arc<IdFilter>>,
}

impl SearchParams {
    /// Parameters asking for the top `k`.
    pub fn top(k: usize) -> Self {
        SearchParams { k, filter: None }
    }

    /// The same parameters restricted to the ids in `filter`.
    pub fn with_filter(mut self, filter: Arc<IdFilter>) -> Self {
        self.filter = Some(filter);
        self
    }
}

/// A searchable collection of vectors addressed by dense internal ids.
///
/// Batch-first in the style of faiss: `search_batch` is the primary entry point and may use all
/// threads of the current rayon pool; `search` is the one-query convenience.
/// Results are always in canonical order (score descending, id ascending), never include deleted
/// ids, and honour [`SearchParams::filter`].
pub trait VectorIndex: Send + Sync {
    /// Vector dimension.
    fn dim(&self) -> usize;
    /// Number of live (not deleted) vectors.
    fn len(&self) -> usize;
    /// True when no live vectors are stored.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The metric results are scored with.
    fn metric(&self) -> Metric;
    /// Bytes of memory the index holds (vectors plus structures).
    fn memory_bytes(&self) -> usize;
    /// Top-k for one query. Errors on a wrong dimension or a non-finite/zero (cosine) query.
    fn search(&self, query: &[f32], params: &SearchParams) -> Result<Vec<Hit>>;
    /// Top-k for each row of `queries`.
    fn search_batch(&self, queries: &Matrix, params: &SearchParams) -> Result<Vec<Vec<Hit>>>;
}

/// An index whose vectors can be deleted (tombstoned) after it is built.
pub trait VectorIndexMut: VectorIndex {
    /// Marks `id` deleted so it is never returned; false if it already was. Errors on an unknown id.
    fn delete(&mut self, id: DocId) -> Result<bool>;
}
