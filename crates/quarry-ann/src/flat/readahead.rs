//! Adaptive read-ahead of memory-mapped rows. Re-scoring reads a handful of scattered rows per
//! query; when they are not in the page cache each is a page fault that waits for the device, one
//! after the other. Asking the kernel for all of a query's rows first (`MADV_WILLNEED`) turns
//! those waits into reads in flight together. The hint costs a system call per row, wasted when
//! the rows are cached, so it is given only while re-scoring is slow: an exponential moving
//! average of the re-scoring time per query above [`SLOW_NANOS`] means rows are coming from the
//! device.

use std::sync::atomic::{AtomicU32, Ordering};

/// Mean re-scoring time (ns per query) above which rows are taken to come from the device: a
/// cached row costs ~0.1 µs to score, a page fault served by an SSD tens of µs.
pub(crate) const SLOW_NANOS: u32 = 30_000;

/// The moving average of re-scoring time (approximate under concurrent updates: a hint).
#[derive(Debug, Default)]
pub(crate) struct ReadAhead {
    mean_nanos: AtomicU32,
}

impl Clone for ReadAhead {
    fn clone(&self) -> Self {
        ReadAhead::default()
    }
}

impl ReadAhead {
    /// Whether re-scoring has recently been slow (rows faulted in from the device).
    #[inline]
    pub(crate) fn wanted(&self) -> bool {
        self.mean_nanos.load(Ordering::Relaxed) > SLOW_NANOS
    }

    /// Adds one query's re-scoring time to the average (weight 1/8).
    #[inline]
    pub(crate) fn record(&self, nanos: u128) {
        let x = nanos.min(u32::MAX as u128) as u64;
        let old = self.mean_nanos.load(Ordering::Relaxed) as u64;
        let new = old - old / 8 + x / 8;
        self.mean_nanos.store(new.min(u32::MAX as u64) as u32, Ordering::Relaxed);
    }
}
