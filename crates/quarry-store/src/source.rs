//! Where an index file's bytes come from: [`ByteSource`] is a file read by positioned reads —
//! a local file ([`FileSource`]), or an object read by byte range through a node's block cache
//! ([`ObjectSource`]). Index formats whose large files are read a range at a time (SPANN's
//! posting lists and re-scoring rows) open them with [`open`], so the same code serves a
//! folder on local disk and a read-only node whose bytes stay in object storage.
//!
//! A read-only node *attaches* such files ([`attach`]): the path stays absent on local disk,
//! and [`open`] of that path reads the object instead. Files that are memory-mapped (graphs,
//! flat rows, segment points) are always local: they are downloaded whole.

use crate::cache::{CachedObjects, RangeBytes};
use quarry_core::{Error, Result};
use std::collections::HashMap;
use std::fmt::Debug;
use std::fs::File;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, PoisonError, RwLock};

/// A file read by positioned reads (see the module docs).
pub trait ByteSource: Send + Sync + Debug {
    /// Reads exactly `buf.len()` bytes at offset `at`.
    fn read_exact_at(&self, buf: &mut [u8], at: u64) -> std::io::Result<()>;
    /// Length in bytes.
    fn len(&self) -> u64;
    /// True when empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Reads `len` bytes at offset `at` as shared bytes. Bytes already at hand (a range of an
    /// object announced by [`ByteSource::will_need`]) are handed over without a copy.
    fn read_shared(&self, at: u64, len: usize) -> std::io::Result<RangeBytes> {
        let mut buf = vec![0u8; len];
        self.read_exact_at(&mut buf, at)?;
        Ok(RangeBytes::owned(buf))
    }
    /// Says that `ranges` are about to be read: a local file asks the OS to start reading them
    /// (`POSIX_FADV_WILLNEED`), an object fetches the missing ones together (merged, in
    /// parallel). A hint: failures are left for the reads themselves to report.
    fn will_need(&self, ranges: &[Range<u64>]);
    /// The local file, when the bytes are one (it can then be memory-mapped).
    fn as_file(&self) -> Option<&File>;
    /// Whether the bytes come from object storage (reads are slow: ask for them together).
    fn is_remote(&self) -> bool {
        self.as_file().is_none()
    }
}

/// A local file.
#[derive(Debug)]
pub struct FileSource {
    file: File,
    len: u64,
}

impl FileSource {
    /// Opens `path` read-only.
    pub fn open(path: &Path) -> Result<FileSource> {
        let file = File::open(path).map_err(|e| Error::io("opening", path, e))?;
        let len = file.metadata().map_err(|e| Error::io("reading", path, e))?.len();
        Ok(FileSource { file, len })
    }
}

impl ByteSource for FileSource {
    #[cfg(unix)]
    fn read_exact_at(&self, buf: &mut [u8], at: u64) -> std::io::Result<()> {
        use std::os::unix::fs::FileExt;
        self.file.read_exact_at(buf, at)
    }
    #[cfg(not(unix))]
    fn read_exact_at(&self, buf: &mut [u8], at: u64) -> std::io::Result<()> {
        use std::io::{Read, Seek, SeekFrom};
        let mut f = self.file.try_clone()?;
        f.seek(SeekFrom::Start(at))?;
        f.read_exact(buf)
    }
    fn len(&self) -> u64 {
        self.len
    }
    fn will_need(&self, ranges: &[Range<u64>]) {
        #[cfg(target_os = "linux")]
        {
            use std::os::unix::io::AsRawFd;
            for r in ranges.iter().filter(|r| r.end > r.start) {
                // SAFETY: posix_fadvise only reads its arguments; a bad range is an error code.
                unsafe {
                    libc::posix_fadvise(
                        self.file.as_raw_fd(),
                        r.start as libc::off_t,
                        (r.end - r.start) as libc::off_t,
                        libc::POSIX_FADV_WILLNEED,
                    );
                }
            }
        }
        #[cfg(not(target_os = "linux"))]
        let _ = ranges;
    }
    fn as_file(&self) -> Option<&File> {
        Some(&self.file)
    }
}

/// An immutable object read by byte range through a block cache.
#[derive(Debug)]
pub struct ObjectSource {
    cache: Arc<CachedObjects>,
    key: String,
    len: u64,
    /// Unique per source (names its announced ranges).
    id: u64,
}

impl ObjectSource {
    /// Object `key` of `cache`'s store, `len` bytes long (its size in the store).
    pub fn new(cache: Arc<CachedObjects>, key: &str, len: u64) -> ObjectSource {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let id = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        ObjectSource { cache, key: key.to_string(), len, id }
    }

    /// Takes the bytes announced on this thread for `len` bytes at `at`, if there are.
    fn take_announced(&self, at: u64, len: usize) -> Option<RangeBytes> {
        ANNOUNCED.with(|a| {
            let mut a = a.borrow_mut();
            let i = a.iter().position(|(id, o, b)| *id == self.id && *o == at && b.len() == len)?;
            Some(a.swap_remove(i).2)
        })
    }
}

thread_local! {
    /// Ranges announced by `will_need` on this thread and not read yet: (source, offset, bytes).
    /// A query announces, then reads, on one thread; a few dozen ranges at most, so a list.
    static ANNOUNCED: std::cell::RefCell<Vec<(u64, u64, RangeBytes)>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

impl ByteSource for ObjectSource {
    fn read_exact_at(&self, buf: &mut [u8], at: u64) -> std::io::Result<()> {
        let bytes = self.read_shared(at, buf.len())?;
        buf.copy_from_slice(&bytes);
        Ok(())
    }
    fn read_shared(&self, at: u64, len: usize) -> std::io::Result<RangeBytes> {
        if let Some(bytes) = self.take_announced(at, len) {
            return Ok(bytes);
        }
        let end = at.checked_add(len as u64).filter(|&e| e <= self.len).ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::UnexpectedEof, format!("{}: read past the end", self.key))
        })?;
        let got = self
            .cache
            .read_ranges(&self.key, std::slice::from_ref(&(at..end)))
            .map_err(std::io::Error::other)?;
        match got.into_iter().next() {
            Some(bytes) if bytes.len() == len => Ok(bytes),
            other => Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("{}: {} bytes read of {len}", self.key, other.map_or(0, |b| b.len())),
            )),
        }
    }
    fn len(&self) -> u64 {
        self.len
    }
    /// Reads the ranges now, together, and keeps them for this thread's reads that follow
    /// (whatever the cache evicts meanwhile); what an earlier announcement left unread is
    /// dropped.
    fn will_need(&self, ranges: &[Range<u64>]) {
        let id = self.id;
        ANNOUNCED.with(|a| a.borrow_mut().retain(|k| k.0 != id));
        let Ok(got) = self.cache.read_ranges(&self.key, ranges) else { return };
        ANNOUNCED.with(|a| {
            let mut a = a.borrow_mut();
            a.extend(ranges.iter().zip(got).map(|(r, bytes)| (id, r.start, bytes)));
        });
    }
    fn as_file(&self) -> Option<&File> {
        None
    }
}

type Attached = HashMap<PathBuf, Arc<dyn ByteSource>>;
static ATTACHED: LazyLock<RwLock<Attached>> = LazyLock::new(|| RwLock::new(HashMap::new()));

/// Serves `path` from `source` from now on (see the module docs); the path stays absent locally.
pub fn attach(path: &Path, source: Arc<dyn ByteSource>) {
    ATTACHED.write().unwrap_or_else(PoisonError::into_inner).insert(path.to_path_buf(), source);
}

/// Forgets every attached path under folder `dir`.
pub fn detach_under(dir: &Path) {
    ATTACHED.write().unwrap_or_else(PoisonError::into_inner).retain(|p, _| !p.starts_with(dir));
}

/// The source attached at `path`, if any.
pub fn attached(path: &Path) -> Option<Arc<dyn ByteSource>> {
    ATTACHED.read().unwrap_or_else(PoisonError::into_inner).get(path).cloned()
}

/// Whether `path` exists locally or is attached.
pub fn exists(path: &Path) -> bool {
    path.exists() || attached(path).is_some()
}

/// Opens `path`: the attached source if there is one, else the local file.
pub fn open(path: &Path) -> Result<Arc<dyn ByteSource>> {
    match attached(path) {
        Some(s) => Ok(s),
        None => Ok(Arc::new(FileSource::open(path)?)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::{LocalObjects, Objects};

    #[test]
    fn attached_objects_read_like_local_files() {
        let root = std::env::temp_dir().join(format!("quarry-source-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let store: Arc<dyn Objects> = Arc::new(LocalObjects::open(&root.join("store")).expect("store"));
        let bytes: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
        store.put("a/file", &bytes).expect("put");
        std::fs::write(root.join("local"), &bytes).expect("write");
        let cache =
            Arc::new(CachedObjects::open(store, &root.join("cache"), 1 << 20, 4096, 4).expect("cache"));
        let path = root.join("attached/file");
        attach(&path, Arc::new(ObjectSource::new(cache.clone(), "a/file", bytes.len() as u64)));
        assert!(exists(&path) && !path.exists());
        let (remote, local) = (open(&path).expect("remote"), open(&root.join("local")).expect("local"));
        assert!(remote.is_remote() && !local.is_remote());
        assert_eq!((remote.len(), local.len()), (100_000, 100_000));
        for (at, len) in [(0u64, 10usize), (4090, 20), (50_000, 30_000), (99_990, 10)] {
            let (mut a, mut b) = (vec![0u8; len], vec![0u8; len]);
            remote.read_exact_at(&mut a, at).expect("remote read");
            local.read_exact_at(&mut b, at).expect("local read");
            assert_eq!(a, b, "range {at}+{len}");
        }
        assert!(remote.read_exact_at(&mut [0u8; 20], 99_990).is_err(), "past the end");
        // Announced ranges are fetched together: one request per run of adjacent missing blocks,
        // and the reads that follow on this thread take the announced bytes.
        let before = cache.stats.requests.load(std::sync::atomic::Ordering::Relaxed);
        remote.will_need(&[20_000..30_000, 30_000..34_000, 88_000..88_100]);
        let after = cache.stats.requests.load(std::sync::atomic::Ordering::Relaxed);
        assert_eq!(after - before, 2, "two runs of missing blocks");
        let mut a = vec![0u8; 14_000];
        remote.read_exact_at(&mut a, 20_000).expect("cached read");
        assert_eq!(
            cache.stats.requests.load(std::sync::atomic::Ordering::Relaxed),
            after,
            "served from cache"
        );
        assert_eq!(&a[..], &bytes[20_000..34_000]);
        detach_under(&root.join("attached"));
        assert!(!exists(&path));
        let _ = std::fs::remove_dir_all(&root);
    }
}
