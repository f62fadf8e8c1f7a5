//! The ids one SPANN search has already offered (entries are replicated across posting lists):
//! an open-addressing hash set of `u32` sized to the entries of the lists the search probes, so
//! it stays in the core's cache whatever the collection's size. An array tagged per id (as a
//! graph walk uses) costs two bytes per stored vector, touched at random: with many searches in
//! flight, each waiting on object storage between its reads, those arrays leave the cache and
//! every offer becomes a miss to memory.

use std::cell::RefCell;

const EMPTY: u32 = u32::MAX;

/// A set of ids, cleared per search (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct SeenIds {
    slots: Vec<u32>,
    len: usize,
    /// Whether `u32::MAX` (the empty slot's mark) is in the set.
    has_max: bool,
}

impl SeenIds {
    /// Empties the set, with room for about `expected` ids before it grows.
    pub(crate) fn reset(&mut self, expected: usize) {
        // At most 16 M slots (64 MB) up front; a search that offers more ids grows the table.
        let cap = (expected.saturating_mul(2)).next_power_of_two().clamp(1024, 1 << 24);
        // A table up to 4× the size needed is reused (cleared), not allocated again.
        if (cap..=4 * cap).contains(&self.slots.len()) {
            self.slots.fill(EMPTY);
        } else {
            self.slots = vec![EMPTY; cap];
        }
        self.len = 0;
        self.has_max = false;
    }

    #[inline]
    fn home(&self, id: u32) -> usize {
        // Fibonacci hashing: the top bits of id × 2^32/φ.
        let bits = self.slots.len().trailing_zeros();
        ((u64::from(id).wrapping_mul(0x9E37_79B9_7F4A_7C15)) >> (64 - bits)) as usize
    }

    /// Adds `id`; true if it was not in the set yet.
    #[inline]
    pub(crate) fn insert(&mut self, id: u32) -> bool {
        if id == EMPTY {
            return !std::mem::replace(&mut self.has_max, true);
        }
        if self.slots.is_empty() || 2 * (self.len + 1) > self.slots.len() {
            self.grow();
        }
        let mask = self.slots.len() - 1;
        let mut i = self.home(id);
        loop {
            let s = self.slots[i];
            if s == id {
                return false;
            }
            if s == EMPTY {
                self.slots[i] = id;
                self.len += 1;
                return true;
            }
            i = (i + 1) & mask;
        }
    }

    /// Doubles the table (at most half full), re-inserting the ids.
    fn grow(&mut self) {
        let old = std::mem::take(&mut self.slots);
        self.slots = vec![EMPTY; (old.len() * 2).max(1024)];
        self.len = 0;
        for id in old.into_iter().filter(|&id| id != EMPTY) {
            let mask = self.slots.len() - 1;
            let mut i = self.home(id);
            while self.slots[i] != EMPTY {
                i = (i + 1) & mask;
            }
            self.slots[i] = id;
            self.len += 1;
        }
    }
}

thread_local! {
    static POOL: RefCell<SeenIds> = RefCell::new(SeenIds::default());
}

/// Runs `f` with this thread's set, emptied, with room for about `expected` ids.
pub(crate) fn with_seen<R>(expected: usize, f: impl FnOnce(&mut SeenIds) -> R) -> R {
    POOL.with(|s| match s.try_borrow_mut() {
        Ok(mut s) => {
            s.reset(expected);
            f(&mut s)
        }
        Err(_) => {
            let mut fresh = SeenIds::default();
            fresh.reset(expected);
            f(&mut fresh)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The set answers as a `HashSet` does, through growth and resets.
        #[test]
        fn agrees_with_a_hash_set(batches in prop::collection::vec(
            (0usize..3000, prop::collection::vec(prop_oneof![0u32..500, any::<u32>(), Just(u32::MAX)], 0..4000)),
            1..4,
        )) {
            let mut seen = SeenIds::default();
            for (expected, ids) in batches {
                seen.reset(expected);
                let mut oracle = std::collections::HashSet::new();
                for id in ids {
                    prop_assert_eq!(seen.insert(id), oracle.insert(id), "id {}", id);
                }
            }
        }
    }
}
