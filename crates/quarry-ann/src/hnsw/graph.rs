//! Link storage: fixed-stride lists of atomics, `[count, id, id, ...]`, one per node and level.
//!
//! Level-0 lists of all nodes sit in one contiguous block (the search's hot data); upper-level
//! lists are allocated per node. Ids are `AtomicU32` read with relaxed ordering: concurrent inserts
//! hold the node's lock to write and to read a consistent list, while searches on a finished
//! index read without locks. No `unsafe` is needed.

use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::sync::{Mutex, MutexGuard};

/// Neighbour lists of every node.
#[derive(Debug)]
pub(crate) struct Graph {
    pub(crate) m: usize,
    pub(crate) m0: usize,
    level0: Vec<AtomicU32>,
    upper: Vec<Box<[AtomicU32]>>,
    pub(crate) levels: Vec<u8>,
    locks: Vec<Mutex<()>>,
}

impl Graph {
    /// Empty lists for nodes with the given levels.
    pub(crate) fn new(levels: Vec<u8>, m: usize) -> Self {
        let mut g = Graph {
            m,
            m0: 2 * m,
            level0: Vec::new(),
            upper: Vec::new(),
            levels: Vec::new(),
            locks: Vec::new(),
        };
        g.extend(&levels);
        g
    }

    /// Adds empty lists for new nodes.
    pub(crate) fn extend(&mut self, levels: &[u8]) {
        let stride0 = self.m0 + 1;
        self.level0.extend((0..levels.len() * stride0).map(|_| AtomicU32::new(0)));
        for &l in levels {
            self.upper.push((0..l as usize * (self.m + 1)).map(|_| AtomicU32::new(0)).collect());
            self.locks.push(Mutex::new(()));
        }
        self.levels.extend_from_slice(levels);
    }

    /// Rebuilds a graph from saved words: `level0` holds every node's `[count, ids...]` slot of
    /// `2m + 1` words, `upper` the slots of `m + 1` words of levels 1.. of each node in id order.
    /// Checks counts and ids so that a damaged file cannot cause out-of-range reads.
    pub(crate) fn from_raw(levels: Vec<u8>, m: usize, level0: &[u32], upper: &[u32]) -> Result<Self, String> {
        let n = levels.len();
        let mut g = Graph::new(levels, m);
        if level0.len() != g.level0.len() {
            return Err(format!("level-0 links hold {} words, {} expected", level0.len(), g.level0.len()));
        }
        let check = |slot: &[u32], level: usize, id: usize| -> Result<(), String> {
            let count = slot[0] as usize;
            if count > slot.len() - 1 {
                return Err(format!(
                    "node {id} has {count} links at level {level}, more than {}",
                    slot.len() - 1
                ));
            }
            if let Some(bad) = slot[1..=count].iter().find(|&&x| x as usize >= n) {
                return Err(format!("node {id} links to {bad}, which is not a node"));
            }
            Ok(())
        };
        for (id, slot) in level0.chunks_exact(g.m0 + 1).enumerate() {
            check(slot, 0, id)?;
        }
        let mut at = 0;
        for id in 0..n {
            let want = g.levels[id] as usize * (m + 1);
            let words = upper.get(at..at + want).ok_or("upper links are truncated")?;
            for (l, slot) in words.chunks_exact(m + 1).enumerate() {
                check(slot, l + 1, id)?;
            }
            for (a, &w) in g.upper[id].iter().zip(words) {
                a.store(w, Relaxed);
            }
            at += want;
        }
        if at != upper.len() {
            return Err(format!("upper links hold {} words, {at} expected", upper.len()));
        }
        for (a, &w) in g.level0.iter_mut().zip(level0) {
            *a.get_mut() = w;
        }
        Ok(g)
    }

    /// Calls `f` with every word of the slot of `id` at `level` (count first, unused tail included).
    pub(crate) fn raw_slot(&self, id: u32, level: usize, mut f: impl FnMut(u32)) {
        for a in self.slot(id, level) {
            f(a.load(Relaxed));
        }
    }

    /// Number of nodes.
    pub(crate) fn len(&self) -> usize {
        self.levels.len()
    }

    /// The slot `[count, ids...]` of `id` at `level`.
    #[inline]
    fn slot(&self, id: u32, level: usize) -> &[AtomicU32] {
        if level == 0 {
            let s = self.m0 + 1;
            &self.level0[id as usize * s..(id as usize + 1) * s]
        } else {
            let s = self.m + 1;
            &self.upper[id as usize][(level - 1) * s..level * s]
        }
    }

    /// Capacity of a list at `level`.
    pub(crate) fn cap(&self, level: usize) -> usize {
        if level == 0 {
            self.m0
        } else {
            self.m
        }
    }

    /// Calls `f` for each neighbour of `id` at `level` (no lock: for finished graphs, or callers
    /// holding the node's lock).
    #[inline]
    pub(crate) fn for_each(&self, id: u32, level: usize, mut f: impl FnMut(u32)) {
        let slot = self.slot(id, level);
        let n = (slot[0].load(Relaxed) as usize).min(slot.len() - 1);
        for a in &slot[1..=n] {
            f(a.load(Relaxed));
        }
    }

    /// The level-0 neighbours of `id`, read in place (no lock: for finished graphs).
    #[inline(always)]
    pub(crate) fn list0(&self, id: u32) -> &[AtomicU32] {
        let s = self.m0 + 1;
        let slot = &self.level0[id as usize * s..(id as usize + 1) * s];
        let n = (slot[0].load(Relaxed) as usize).min(s - 1);
        &slot[1..=n]
    }

    /// Asks the cache to start loading the list of `id` at level 0 (a hint; never faults): the
    /// walk asks for the next candidate's list while it scores the current one's neighbours.
    #[inline]
    pub(crate) fn prefetch0(&self, id: u32) {
        let s = self.m0 + 1;
        let at = id as usize * s;
        if let Some(first) = self.level0.get(at) {
            let p = first as *const AtomicU32 as *const u8;
            for l in 0..(s * 4).div_ceil(64) {
                crate::flat::prefetch_line(p.wrapping_add(l * 64));
            }
        }
    }

    /// Copies the neighbours of `id` at `level` into `out`.
    pub(crate) fn read(&self, id: u32, level: usize, out: &mut Vec<u32>) {
        out.clear();
        self.for_each(id, level, |x| out.push(x));
    }

    /// Copies the list under the node's lock (during concurrent inserts).
    pub(crate) fn read_locked(&self, id: u32, level: usize, out: &mut Vec<u32>) {
        let _g = self.lock(id);
        self.read(id, level, out);
    }

    /// Replaces the list (caller holds the node's lock, or `&mut` access).
    pub(crate) fn write(&self, id: u32, level: usize, list: &[u32]) {
        let slot = self.slot(id, level);
        let n = list.len().min(slot.len() - 1);
        for (a, &x) in slot[1..=n].iter().zip(list) {
            a.store(x, Relaxed);
        }
        slot[0].store(n as u32, Relaxed);
    }

    /// Locks node `id` (a poisoned lock is still usable: lists are always consistent).
    pub(crate) fn lock(&self, id: u32) -> MutexGuard<'_, ()> {
        self.locks[id as usize].lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Bytes held by the lists, levels and locks.
    pub(crate) fn memory_bytes(&self) -> usize {
        self.level0.capacity() * 4
            + self.upper.iter().map(|u| u.len() * 4 + std::mem::size_of::<Box<[AtomicU32]>>()).sum::<usize>()
            + self.levels.capacity()
            + self.locks.capacity() * std::mem::size_of::<Mutex<()>>()
    }
}
