//! Point id → live slot, stored as the slots alone: a hash table of `u32` whose entries are
//! hashed and compared through the collection's id list (`ids[slot]`). A `HashMap<PointId, u32>`
//! holds a 32-byte id beside each slot (48 bytes an entry with padding); this holds 4, so the
//! map of a 100k-point collection takes about 0.6 MB instead of 6.

use crate::id::PointId;
use hashbrown::HashTable;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;

/// The live slot of each point id (ids are read from the list passed to every call, in which
/// `ids[slot]` is the id of `slot`).
#[derive(Default)]
pub(crate) struct SlotMap {
    table: HashTable<u32>,
    hasher: RandomState,
}

impl std::fmt::Debug for SlotMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SlotMap({} ids)", self.table.len())
    }
}

impl SlotMap {
    /// The slot of `id`, if it is live.
    pub(crate) fn get(&self, ids: &[PointId], id: &PointId) -> Option<u32> {
        self.table.find(self.hasher.hash_one(id), |&s| ids[s as usize] == *id).copied()
    }

    /// Makes `slot` the live slot of its id `ids[slot]`; returns the slot it replaces.
    pub(crate) fn insert(&mut self, ids: &[PointId], slot: u32) -> Option<u32> {
        let id = ids[slot as usize];
        let hasher = &self.hasher;
        match self.table.find_entry(hasher.hash_one(id), |&s| ids[s as usize] == id) {
            Ok(mut e) => Some(std::mem::replace(e.get_mut(), slot)),
            Err(_) => {
                self.table.insert_unique(hasher.hash_one(id), slot, |&s| hasher.hash_one(ids[s as usize]));
                None
            }
        }
    }

    /// Removes `id`; returns its slot if it was live.
    pub(crate) fn remove(&mut self, ids: &[PointId], id: &PointId) -> Option<u32> {
        match self.table.find_entry(self.hasher.hash_one(id), |&s| ids[s as usize] == *id) {
            Ok(e) => Some(e.remove().0),
            Err(_) => None,
        }
    }

    /// Live ids.
    pub(crate) fn len(&self) -> usize {
        self.table.len()
    }

    /// Every live slot, in no particular order.
    pub(crate) fn slots(&self) -> impl Iterator<Item = u32> + '_ {
        self.table.iter().copied()
    }

    /// Releases spare capacity.
    pub(crate) fn shrink_to_fit(&mut self, ids: &[PointId]) {
        let hasher = &self.hasher;
        self.table.shrink_to_fit(|&s| hasher.hash_one(ids[s as usize]));
    }

    /// Bytes held (one slot and one control byte per bucket).
    pub(crate) fn memory_bytes(&self) -> usize {
        self.table.capacity() * 5
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_replace_remove_against_a_hash_map() {
        let mut ids = Vec::new();
        let mut map = SlotMap::default();
        let mut oracle = std::collections::HashMap::new();
        for i in 0..5000u64 {
            // Ids repeat (replacements) and mix numbers with uuids.
            let id = if i % 3 == 0 { PointId::Uuid((i % 700) as u128 * 77) } else { PointId::Num(i % 1100) };
            let slot = ids.len() as u32;
            ids.push(id);
            assert_eq!(map.insert(&ids, slot), oracle.insert(id, slot));
            if i % 7 == 0 {
                let gone = PointId::Num((i * 13) % 1100);
                assert_eq!(map.remove(&ids, &gone), oracle.remove(&gone));
            }
        }
        map.shrink_to_fit(&ids);
        assert_eq!(map.len(), oracle.len());
        for (id, &slot) in &oracle {
            assert_eq!(map.get(&ids, id), Some(slot));
        }
        assert_eq!(map.get(&ids, &PointId::Num(999_999)), None);
        let mut slots: Vec<u32> = map.slots().collect();
        slots.sort_unstable();
        let mut want: Vec<u32> = oracle.values().copied().collect();
        want.sort_unstable();
        assert_eq!(slots, want);
    }
}
