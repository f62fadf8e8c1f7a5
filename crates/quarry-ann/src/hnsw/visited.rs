//! Epoch-tagged visited sets: marking is one store, clearing is one increment.

use std::cell::RefCell;

/// Visited marks for ids `0..n`; an id is visited when its tag equals the current epoch.
#[derive(Debug, Default)]
pub(crate) struct Visited {
    tags: Vec<u16>,
    epoch: u16,
}

impl Visited {
    /// Starts a new walk over `n` ids.
    pub(crate) fn reset(&mut self, n: usize) {
        if self.tags.len() < n {
            self.tags.resize(n, 0);
        }
        self.epoch = self.epoch.wrapping_add(1);
        if self.epoch == 0 {
            self.tags.fill(0);
            self.epoch = 1;
        }
    }

    /// Marks `id`; returns true if it was not yet visited in this walk.
    #[inline]
    pub(crate) fn insert(&mut self, id: u32) -> bool {
        let t = &mut self.tags[id as usize];
        if *t == self.epoch {
            false
        } else {
            *t = self.epoch;
            true
        }
    }
}

thread_local! {
    static POOL: RefCell<Visited> = RefCell::new(Visited::default());
}

/// Runs `f` with this thread's visited set, reset for `n` ids.
pub(crate) fn with_visited<R>(n: usize, f: impl FnOnce(&mut Visited) -> R) -> R {
    POOL.with(|v| match v.try_borrow_mut() {
        Ok(mut v) => {
            v.reset(n);
            f(&mut v)
        }
        // Re-entrant use on one thread (not expected): fall back to a fresh set.
        Err(_) => {
            let mut fresh = Visited::default();
            fresh.reset(n);
            f(&mut fresh)
        }
    })
}
