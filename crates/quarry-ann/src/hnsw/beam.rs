//! The bounded beam of an unrestricted walk (any level, searches and the build's inserts alike):
//! one sorted array of at most `ef` entries
//! with a cursor at the nearest entry not yet expanded, in place of HNSW's two binary heaps
//! (candidates and results; Malkov & Yashunin, TPAMI 2020, Alg. 2). The array is the result set;
//! the unexpanded entries of it are the candidate set. A node pushed out of the top `ef` could
//! never be expanded by Alg. 2 either (its stopping rule ends the walk at the first candidate
//! worse than the `ef`-th result), so both walks expand the same nodes in the same order, up to
//! ties: equal keys keep their insertion order here, not the heaps' order by id.
//! Inserting is a binary search and a short move; expanding is a cursor step. The same layout is
//! used by the graph libraries that lead ann-benchmarks (the "linear pool" of glass / NGT).

use super::search::Cand;

/// Set on an id once its node was expanded.
const EXPANDED: u32 = 1 << 31;

/// At most `cap` nodes, nearest first, each marked once expanded.
#[derive(Debug)]
pub(crate) struct Beam {
    keys: Vec<f32>,
    ids: Vec<u32>,
    cap: usize,
    /// No entry before it is unexpanded.
    cursor: usize,
}

impl Beam {
    /// An empty beam keeping the `cap` (≥ 1) nearest nodes; ids must be below 2^31.
    pub(crate) fn new(cap: usize) -> Beam {
        let cap = cap.max(1);
        // The arrays grow as entries arrive: a huge `ef` reserves nothing up front.
        let reserve = cap.min(4096) + 1;
        Beam { keys: Vec::with_capacity(reserve), ids: Vec::with_capacity(reserve), cap, cursor: 0 }
    }

    /// Whether a node with key `d` would enter the beam.
    #[inline(always)]
    pub(crate) fn admits(&self, d: f32) -> bool {
        self.keys.len() < self.cap || self.keys.last().is_some_and(|&w| d < w)
    }

    /// Inserts node `id` with key `d` (after entries with an equal key) if it is among the `cap`
    /// nearest, dropping the farthest when full.
    #[inline]
    pub(crate) fn insert(&mut self, d: f32, id: u32) {
        // A NaN key (inf − inf from huge finite inputs) ranks last, as in the heaps' total order.
        let d = if d.is_nan() { f32::INFINITY } else { d };
        if !self.admits(d) {
            return;
        }
        let pos = self.keys.partition_point(|&x| x <= d);
        if self.keys.len() == self.cap {
            self.keys.pop();
            self.ids.pop();
        }
        self.keys.insert(pos, d);
        self.ids.insert(pos, id);
        if pos < self.cursor {
            self.cursor = pos;
        }
    }

    /// The nearest node not yet expanded, marking it expanded.
    #[inline]
    pub(crate) fn next(&mut self) -> Option<u32> {
        while self.cursor < self.ids.len() {
            let id = &mut self.ids[self.cursor];
            if *id & EXPANDED == 0 {
                let found = *id;
                *id |= EXPANDED;
                return Some(found);
            }
            self.cursor += 1;
        }
        None
    }

    /// The node [`Beam::next`] would return now, without marking it.
    #[inline]
    pub(crate) fn peek(&self) -> Option<u32> {
        self.ids[self.cursor.min(self.ids.len())..].iter().find(|&&id| id & EXPANDED == 0).copied()
    }

    /// The entries, nearest first.
    pub(crate) fn into_sorted(self) -> Vec<Cand> {
        self.keys.into_iter().zip(self.ids).map(|(d, id)| Cand { d, id: id & !EXPANDED }).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The beam keeps exactly the `cap` smallest keys of everything inserted, sorted.
        #[test]
        fn keeps_the_nearest(keys in proptest::collection::vec(-100i32..100, 0..200), cap in 1usize..40) {
            let mut beam = Beam::new(cap);
            for (i, &k) in keys.iter().enumerate() {
                beam.insert(k as f32, i as u32);
            }
            let got: Vec<f32> = beam.into_sorted().iter().map(|c| c.d).collect();
            let mut want: Vec<f32> = keys.iter().map(|&k| k as f32).collect();
            want.sort_by(f32::total_cmp);
            want.truncate(cap);
            prop_assert_eq!(got, want);
        }

        /// Expansion always takes the nearest unexpanded entry, also after nearer inserts.
        #[test]
        fn expands_nearest_first(keys in proptest::collection::vec(0i32..1000, 1..100), cap in 1usize..20) {
            let mut beam = Beam::new(cap);
            let mut expanded = Vec::new();
            for (i, &k) in keys.iter().enumerate() {
                beam.insert(k as f32, i as u32);
                if i % 3 == 2 {
                    let peeked = beam.peek();
                    let got = beam.next();
                    prop_assert_eq!(peeked, got);
                    if let Some(id) = got {
                        // Nothing unexpanded in the beam is nearer than what was just taken.
                        let d = keys[id as usize];
                        for c in Beam::snapshot(&beam) {
                            prop_assert!(c.1 || c.0 >= d as f32);
                        }
                        expanded.push(id);
                    }
                }
            }
            let mut seen = expanded.clone();
            seen.sort_unstable();
            seen.dedup();
            prop_assert_eq!(seen.len(), expanded.len());
        }
    }

    impl Beam {
        /// (key, expanded) of every entry.
        fn snapshot(&self) -> Vec<(f32, bool)> {
            self.keys.iter().zip(&self.ids).map(|(&d, &id)| (d, id & EXPANDED != 0)).collect()
        }
    }
}
