//! The read-side index trait every vector index implements, and its search parameters.

use crate::{Hit, Matrix, Metric, Result};

/// Per-query search parameters common to every index kind.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchParams {
    /// Number of results wanted. Fewer come back when the index holds fewer vectors.
    pub k: usize,
}

impl SearchParams {
    /// Parameters asking for the top `k`.
    pub fn top(k: usize) -> Self {
        SearchParams { k }
    }
}

/// A searchable collection of vectors addressed by dense internal ids `0..len()`.
///
/// Batch-first in the style of faiss: `search_batch` is the primary entry point and may use all
/// threads of the current rayon pool; `search` is the one-query convenience.
/// Results are always in canonical order (score descending, id ascending).
pub trait VectorIndex: Send + Sync {
    /// Vector dimension.
    fn dim(&self) -> usize;
    /// Number of stored vectors.
    fn len(&self) -> usize;
    /// True when no vectors are stored.
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
