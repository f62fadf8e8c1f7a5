//! `IdFilter`: a bitmap over dense internal ids — which ids a search may return.

use crate::DocId;

/// A set of internal ids as a bitmap, with its cardinality kept up to date.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IdFilter {
    words: Vec<u64>,
    count: usize,
}

impl IdFilter {
    /// The empty set (over any number of ids).
    pub fn new() -> Self {
        Self::default()
    }

    /// All ids `0..n`.
    pub fn all(n: usize) -> Self {
        let mut words = vec![u64::MAX; n / 64];
        if !n.is_multiple_of(64) {
            words.push((1u64 << (n % 64)) - 1);
        }
        IdFilter { words, count: n }
    }

    /// The set holding `ids`.
    pub fn from_ids(ids: impl IntoIterator<Item = DocId>) -> Self {
        let mut f = Self::new();
        for id in ids {
            f.insert(id);
        }
        f
    }

    /// Whether `id` is in the set.
    #[inline]
    pub fn contains(&self, id: DocId) -> bool {
        self.words.get(id as usize / 64).is_some_and(|w| w >> (id % 64) & 1 == 1)
    }

    /// Adds `id`; returns true if it was not there.
    pub fn insert(&mut self, id: DocId) -> bool {
        let w = id as usize / 64;
        if w >= self.words.len() {
            self.words.resize(w + 1, 0);
        }
        let bit = 1u64 << (id % 64);
        let fresh = self.words[w] & bit == 0;
        self.words[w] |= bit;
        self.count += fresh as usize;
        fresh
    }

    /// Removes `id`; returns true if it was there.
    pub fn remove(&mut self, id: DocId) -> bool {
        let Some(word) = self.words.get_mut(id as usize / 64) else { return false };
        let bit = 1u64 << (id % 64);
        let present = *word & bit != 0;
        *word &= !bit;
        self.count -= present as usize;
        present
    }

    /// Number of ids in the set.
    pub fn len(&self) -> usize {
        self.count
    }

    /// True when the set is empty.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The ids in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = DocId> + '_ {
        self.words.iter().enumerate().flat_map(|(w, &bits)| {
            let mut b = bits;
            std::iter::from_fn(move || {
                if b == 0 {
                    return None;
                }
                let t = b.trailing_zeros();
                b &= b - 1;
                Some((w * 64) as DocId + t)
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_operations() {
        let mut f = IdFilter::from_ids([3, 64, 200, 3]);
        assert_eq!(f.len(), 3);
        assert!(f.contains(64) && !f.contains(65) && !f.contains(10_000));
        assert_eq!(f.iter().collect::<Vec<_>>(), vec![3, 64, 200]);
        assert!(f.remove(64) && !f.remove(64) && !f.remove(99_999));
        assert_eq!(f.len(), 2);
        let all = IdFilter::all(130);
        assert_eq!((all.len(), all.iter().count()), (130, 130));
        assert!(all.contains(129) && !all.contains(130));
    }
}
