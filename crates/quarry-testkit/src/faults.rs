//! A fault-injecting stand-in for a log file ([`quarry_store::LogStore`]): the Nth write fails,
//! is cut short (half written, then an error) or is silently garbled, or the Nth fsync fails.
//! Counters are shared through [`FaultPlan`] so a test can arm a fault and see what happened.

use quarry_store::LogStore;
use std::fs::File;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Which operation (1-based, counting every write or every fsync since the plan was made) fails
/// and how; 0 = never.
#[derive(Debug, Default)]
pub struct FaultPlan {
    /// This write returns an error without writing.
    pub fail_write: u64,
    /// This write writes half its bytes, then returns an error.
    pub short_write: u64,
    /// This write flips a byte of what it writes and reports success.
    pub garble_write: u64,
    /// This fsync returns an error.
    pub fail_sync: u64,
    /// Every fsync takes at least this long (a slow disk, so that writers pile up).
    pub sync_delay: std::time::Duration,
    writes: AtomicU64,
    syncs: AtomicU64,
}

impl FaultPlan {
    /// The `n`th write fails.
    pub fn failing_write(n: u64) -> FaultPlan {
        FaultPlan { fail_write: n, ..FaultPlan::default() }
    }
    /// The `n`th write is cut short.
    pub fn short_write(n: u64) -> FaultPlan {
        FaultPlan { short_write: n, ..FaultPlan::default() }
    }
    /// The `n`th write is silently garbled.
    pub fn garbled_write(n: u64) -> FaultPlan {
        FaultPlan { garble_write: n, ..FaultPlan::default() }
    }
    /// No faults; every fsync takes at least `delay`.
    pub fn slow_sync(delay: std::time::Duration) -> FaultPlan {
        FaultPlan { sync_delay: delay, ..FaultPlan::default() }
    }
    /// The `n`th fsync fails.
    pub fn failing_sync(n: u64) -> FaultPlan {
        FaultPlan { fail_sync: n, ..FaultPlan::default() }
    }

    /// Writes seen so far.
    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::SeqCst)
    }
    /// Fsyncs seen so far.
    pub fn syncs(&self) -> u64 {
        self.syncs.load(Ordering::SeqCst)
    }
}

/// A file that obeys a [`FaultPlan`].
#[derive(Debug)]
pub struct FaultyFile {
    inner: File,
    plan: Arc<FaultPlan>,
}

impl FaultyFile {
    /// Opens the existing file at `path` read-write under `plan`.
    pub fn open(path: &std::path::Path, plan: Arc<FaultPlan>) -> io::Result<FaultyFile> {
        let inner = std::fs::OpenOptions::new().read(true).write(true).open(path)?;
        Ok(FaultyFile { inner, plan })
    }
}

fn injected(what: &str) -> io::Error {
    io::Error::other(format!("injected fault: {what}"))
}

impl LogStore for FaultyFile {
    fn read_at(&self, buf: &mut [u8], at: u64) -> io::Result<()> {
        LogStore::read_at(&self.inner, buf, at)
    }
    fn write_at(&self, buf: &[u8], at: u64) -> io::Result<()> {
        let n = self.plan.writes.fetch_add(1, Ordering::SeqCst) + 1;
        if n == self.plan.fail_write {
            return Err(injected("write failed"));
        }
        if n == self.plan.short_write {
            LogStore::write_at(&self.inner, &buf[..buf.len() / 2], at)?;
            return Err(injected("short write"));
        }
        if n == self.plan.garble_write && !buf.is_empty() {
            let mut bad = buf.to_vec();
            let mid = bad.len() / 2;
            bad[mid] ^= 0x5A;
            return LogStore::write_at(&self.inner, &bad, at);
        }
        LogStore::write_at(&self.inner, buf, at)
    }
    fn sync(&self) -> io::Result<()> {
        let n = self.plan.syncs.fetch_add(1, Ordering::SeqCst) + 1;
        if n == self.plan.fail_sync {
            return Err(injected("fsync failed"));
        }
        std::thread::sleep(self.plan.sync_delay);
        self.inner.sync()
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        LogStore::set_len(&self.inner, len)
    }
    fn size(&self) -> io::Result<u64> {
        LogStore::size(&self.inner)
    }
}
