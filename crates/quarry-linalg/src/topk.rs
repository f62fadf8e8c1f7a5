//! `TopK`: keeps the k smallest `(distance, id)` pairs seen, ordered by distance then id.

use quarry_core::DocId;
use std::cmp::Ordering;
use std::collections::BinaryHeap;

#[derive(Debug, Clone, Copy)]
struct Entry {
    dist: f32,
    id: DocId,
}

impl PartialEq for Entry {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Entry {
    fn cmp(&self, o: &Self) -> Ordering {
        self.dist.total_cmp(&o.dist).then(self.id.cmp(&o.id))
    }
}

/// Bounded selection of the `k` best (smallest distance, then smallest id) candidates.
///
/// A max-heap whose top is the worst kept entry; [`TopK::threshold`] lets a scan skip candidates
/// cheaply before calling [`TopK::push`].
#[derive(Debug, Clone)]
pub struct TopK {
    k: usize,
    heap: BinaryHeap<Entry>,
}

impl TopK {
    /// An empty selection of capacity `k` (k = 0 keeps nothing).
    pub fn new(k: usize) -> Self {
        TopK { k, heap: BinaryHeap::with_capacity(k.saturating_add(1).min(1 << 16)) }
    }

    /// Capacity.
    pub fn k(&self) -> usize {
        self.k
    }

    /// Number of entries kept.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// True when nothing is kept.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// Distance a candidate must not exceed to possibly enter (+inf until full).
    #[inline]
    pub fn threshold(&self) -> f32 {
        if self.heap.len() < self.k {
            f32::INFINITY
        } else {
            self.heap.peek().map_or(f32::NEG_INFINITY, |e| e.dist)
        }
    }

    /// Offers a candidate; returns true if it was kept.
    #[inline]
    pub fn push(&mut self, dist: f32, id: DocId) -> bool {
        let e = Entry { dist, id };
        if self.heap.len() < self.k {
            self.heap.push(e);
            true
        } else if let Some(mut top) = self.heap.peek_mut() {
            if e < *top {
                *top = e;
                true
            } else {
                false
            }
        } else {
            false
        }
    }

    /// Offers `dists[i]` with id `first_id + i` for each i, skipping those above the threshold.
    #[inline]
    pub fn push_block(&mut self, dists: &[f32], first_id: DocId) {
        let mut thr = self.threshold();
        for (i, &d) in dists.iter().enumerate() {
            if d <= thr && self.push(d, first_id + i as DocId) {
                thr = self.threshold();
            }
        }
    }

    /// Adds every entry of `other`.
    pub fn merge(&mut self, other: TopK) {
        for e in other.heap {
            self.push(e.dist, e.id);
        }
    }

    /// The kept entries, best first: `(distance, id)`.
    pub fn into_sorted(self) -> Vec<(f32, DocId)> {
        self.heap.into_sorted_vec().into_iter().map(|e| (e.dist, e.id)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn equals_full_sort(d in prop::collection::vec(0u8..20, 0..200), k in 0usize..30, split in 0usize..200) {
            let dists: Vec<f32> = d.iter().map(|&x| x as f32).collect();
            let mut want: Vec<(f32, DocId)> = dists.iter().enumerate().map(|(i, &x)| (x, i as DocId)).collect();
            want.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            want.truncate(k);
            let split = split.min(dists.len());
            let mut a = TopK::new(k);
            a.push_block(&dists[..split], 0);
            let mut b = TopK::new(k);
            b.push_block(&dists[split..], split as DocId);
            a.merge(b);
            prop_assert_eq!(a.into_sorted(), want);
        }
    }
}
