//! The BM25 side of a text collection: the collection-wide index and the numbering of its
//! documents (rebuilt from the stored texts when the collection opens).

use crate::id::PointId;
use quarry_text::Bm25Index;
use std::collections::HashMap;

/// The BM25 side: the index and the document numbering.
#[derive(Debug)]
pub(crate) struct Lexical {
    pub(crate) index: Bm25Index,
    pub(crate) num_of: HashMap<PointId, u32>,
    pub(crate) id_of: Vec<PointId>,
}

impl Lexical {
    /// Indexes document `id` with `terms`, replacing its earlier version.
    pub(crate) fn put(&mut self, id: PointId, terms: &[String]) {
        if let Some(old) = self.num_of.remove(&id) {
            self.index.remove(old);
        }
        let n = self.index.insert_terms(terms);
        debug_assert_eq!(n as usize, self.id_of.len());
        self.id_of.push(id);
        self.num_of.insert(id, n);
    }

    /// Drops document `id` from the index.
    pub(crate) fn remove(&mut self, id: PointId) {
        if let Some(old) = self.num_of.remove(&id) {
            self.index.remove(old);
        }
    }
}
