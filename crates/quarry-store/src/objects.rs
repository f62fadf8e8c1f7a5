//! Object storage under Quarry's durable state: a flat namespace of immutable objects named by
//! key, with create-only puts (put-if-absent) for commits. Two backends sit behind one trait,
//! [`Objects`]:
//!
//! * [`LocalObjects`], a folder on local disk. Each object is a file. Puts are crash-safe (write a
//!   temporary file, fsync it, rename it, fsync the folder). Put-if-absent hard-links the
//!   temporary file to its name, which fails if the name exists, so exactly one of several racing
//!   writers wins.
//! * `RemoteObjects` (feature `object-store`), which covers S3 and S3-compatible stores, GCS,
//!   Azure and in-memory stores through the `object_store` crate. Put-if-absent is a conditional
//!   PUT (`If-None-Match: *` on S3).
//!
//! [`open_url`] picks the backend: a plain path or `file://` for local disk; `s3://bucket/prefix`
//! (credentials, region and endpoint from the usual `AWS_*` environment variables, for example
//! `AWS_ENDPOINT_URL` and `AWS_ALLOW_HTTP=true` for a local S3-compatible server); `memory://`.
//!
//! Keys are `/`-separated paths of ASCII letters, digits, `.`, `_` and `-`. They may not start
//! with `/` and may not contain empty or `..` parts, so no key can leave its store.

use quarry_core::{Error, Result};
use std::io::Write;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// A store of immutable objects by key (see the module docs).
pub trait Objects: Send + Sync + std::fmt::Debug {
    /// The object `key`'s bytes; none if there is no such object.
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>>;
    /// Bytes `range` of object `key`. It is an error if the object is missing or shorter.
    fn get_range(&self, key: &str, range: Range<u64>) -> Result<Vec<u8>>;
    /// Several byte ranges of object `key`, one request each, sent together where the backend
    /// can (object storage: concurrently, so they cost one round trip); in order of `ranges`.
    fn get_ranges(&self, key: &str, ranges: &[Range<u64>]) -> Result<Vec<Vec<u8>>> {
        ranges.iter().map(|r| self.get_range(key, r.clone())).collect()
    }
    /// Object `key`'s size in bytes; none if there is no such object.
    fn size(&self, key: &str) -> Result<Option<u64>>;
    /// Writes object `key`, replacing any object of that name. Durable when it returns.
    fn put(&self, key: &str, bytes: &[u8]) -> Result<()>;
    /// Writes object `key` only if there is none: true if this call created it, false if it
    /// existed (the object is then left as it was). Durable when it returns true.
    fn put_if_absent(&self, key: &str, bytes: &[u8]) -> Result<bool>;
    /// Keys that start with `prefix`, sorted.
    fn list(&self, prefix: &str) -> Result<Vec<String>>;
    /// Removes object `key`. Removing a missing object is not an error.
    fn delete(&self, key: &str) -> Result<()>;
    /// Where the objects live, for messages (a folder or a URL).
    fn location(&self) -> String;
}

/// Checks that `key` is a valid object key (see the module docs).
pub fn check_key(key: &str) -> Result<()> {
    let ok = !key.is_empty()
        && key.len() <= 1024
        && key.split('/').all(|part| {
            !part.is_empty()
                && part != "."
                && part != ".."
                && part.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        });
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "object key {key:?}: use '/'-separated parts of ASCII letters, digits, '.', '_' or '-' (no empty or '..' parts)"
        )))
    }
}

/// Opens the object store named by `url`: a plain path or `file://…` for local disk,
/// `s3://bucket[/prefix]` or `memory://` with the `object-store` feature.
pub fn open_url(url: &str) -> Result<Arc<dyn Objects>> {
    if let Some(path) = url.strip_prefix("file://") {
        return Ok(Arc::new(LocalObjects::open(Path::new(path))?));
    }
    if url.contains("://") {
        #[cfg(feature = "object-store")]
        {
            return Ok(Arc::new(crate::objects_remote::RemoteObjects::open(url)?));
        }
        #[cfg(not(feature = "object-store"))]
        {
            return Err(Error::InvalidArgument(format!(
                "{url}: object storage needs Quarry built with the `object-store` feature"
            )));
        }
    }
    Ok(Arc::new(LocalObjects::open(Path::new(url))?))
}

/// Objects as files under a folder (see the module docs).
#[derive(Debug)]
pub struct LocalObjects {
    root: PathBuf,
}

/// Distinguishes temporary files of concurrent puts in one process.
static TEMP: AtomicU64 = AtomicU64::new(0);

impl LocalObjects {
    /// The store in folder `root`, which is created if it is missing.
    pub fn open(root: &Path) -> Result<LocalObjects> {
        std::fs::create_dir_all(root).map_err(|e| Error::io("creating", root, e))?;
        Ok(LocalObjects { root: root.to_path_buf() })
    }

    fn path(&self, key: &str) -> Result<PathBuf> {
        check_key(key)?;
        Ok(self.root.join(key))
    }

    /// Writes `bytes` to a new temporary file beside `path` and fsyncs it, creating the parent
    /// folders (fsynced) if needed.
    fn stage(&self, path: &Path, bytes: &[u8]) -> Result<PathBuf> {
        let dir = path.parent().unwrap_or(&self.root);
        if !dir.is_dir() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io("creating", dir, e))?;
            let mut d = dir;
            while let Some(parent) = d.parent() {
                crate::sync_folder(parent)?;
                if parent == self.root || !parent.starts_with(&self.root) {
                    break;
                }
                d = parent;
            }
        }
        let name = path.file_name().map_or_else(|| "object".into(), |n| n.to_string_lossy().to_string());
        let tmp =
            dir.join(format!(".{name}.tmp.{}.{}", std::process::id(), TEMP.fetch_add(1, Ordering::Relaxed)));
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(|e| Error::io("creating", &tmp, e))?;
        f.write_all(bytes).and_then(|()| f.sync_all()).map_err(|e| Error::io("writing", &tmp, e))?;
        Ok(tmp)
    }
}

/// Reads exactly `len` bytes of `file` at offset `at` into a new buffer (not zeroed first: the
/// reads fill its spare capacity).
fn read_exact_range(file: &std::fs::File, at: u64, len: usize) -> std::io::Result<Vec<u8>> {
    use std::io::{Read, Seek};
    // The capacity asked for up front is bounded: a range far past a small object's end is an
    // error below, not an allocation of its size.
    let mut buf = Vec::with_capacity(len.min(64 << 20));
    let mut f = file;
    f.seek(std::io::SeekFrom::Start(at))?;
    f.take(len as u64).read_to_end(&mut buf)?;
    if buf.len() != len {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            format!("{} bytes at offset {at}: the object is shorter", len),
        ));
    }
    Ok(buf)
}

impl Objects for LocalObjects {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let path = self.path(key)?;
        match std::fs::read(&path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("reading", &path, e)),
        }
    }

    fn get_range(&self, key: &str, range: Range<u64>) -> Result<Vec<u8>> {
        let path = self.path(key)?;
        if range.end < range.start {
            return Err(Error::InvalidArgument(format!("{key}: byte range {range:?} is reversed")));
        }
        let f = std::fs::File::open(&path).map_err(|e| Error::io("opening", &path, e))?;
        let len = usize::try_from(range.end - range.start)
            .map_err(|_| Error::InvalidArgument(format!("{key}: byte range {range:?} is too large")))?;
        read_exact_range(&f, range.start, len).map_err(|e| Error::io("reading a byte range of", &path, e))
    }

    fn get_ranges(&self, key: &str, ranges: &[Range<u64>]) -> Result<Vec<Vec<u8>>> {
        let path = self.path(key)?;
        let f = std::fs::File::open(&path).map_err(|e| Error::io("opening", &path, e))?;
        ranges
            .iter()
            .map(|r| {
                let len = usize::try_from(r.end.saturating_sub(r.start))
                    .ok()
                    .filter(|_| r.end >= r.start)
                    .ok_or_else(|| {
                        Error::InvalidArgument(format!("{key}: byte range {r:?} is reversed or too large"))
                    })?;
                read_exact_range(&f, r.start, len).map_err(|e| Error::io("reading a byte range of", &path, e))
            })
            .collect()
    }

    fn size(&self, key: &str) -> Result<Option<u64>> {
        let path = self.path(key)?;
        match std::fs::metadata(&path) {
            Ok(m) if m.is_file() => Ok(Some(m.len())),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("reading the size of", &path, e)),
        }
    }

    fn put(&self, key: &str, bytes: &[u8]) -> Result<()> {
        let path = self.path(key)?;
        let tmp = self.stage(&path, bytes)?;
        std::fs::rename(&tmp, &path).map_err(|e| Error::io("renaming", &tmp, e))?;
        crate::sync_folder(path.parent().unwrap_or(&self.root))
    }

    fn put_if_absent(&self, key: &str, bytes: &[u8]) -> Result<bool> {
        let path = self.path(key)?;
        let tmp = self.stage(&path, bytes)?;
        // link(2) fails if the name exists: of racing writers exactly one creates it, and the
        // object appears whole (its bytes were fsynced before the link).
        let made = match std::fs::hard_link(&tmp, &path) {
            Ok(()) => true,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => false,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(Error::io("linking", &path, e));
            }
        };
        std::fs::remove_file(&tmp).map_err(|e| Error::io("removing", &tmp, e))?;
        crate::sync_folder(path.parent().unwrap_or(&self.root))?;
        Ok(made)
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>> {
        let mut out = Vec::new();
        let mut stack = vec![self.root.clone()];
        while let Some(dir) = stack.pop() {
            let entries = match std::fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io("listing", &dir, e)),
            };
            for entry in entries {
                let entry = entry.map_err(|e| Error::io("listing", &dir, e))?;
                let name = entry.file_name().to_string_lossy().to_string();
                if name.starts_with('.') {
                    continue; // temporary files of puts in progress
                }
                let path = entry.path();
                let kind = entry.file_type().map_err(|e| Error::io("listing", &path, e))?;
                if kind.is_dir() {
                    stack.push(path);
                } else if let Ok(rel) = path.strip_prefix(&self.root) {
                    let key = rel.to_string_lossy().to_string();
                    if key.starts_with(prefix) {
                        out.push(key);
                    }
                }
            }
        }
        out.sort();
        Ok(out)
    }

    fn delete(&self, key: &str) -> Result<()> {
        let path = self.path(key)?;
        match std::fs::remove_file(&path) {
            Ok(()) => crate::sync_folder(path.parent().unwrap_or(&self.root)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io("removing", &path, e)),
        }
    }

    fn location(&self) -> String {
        self.root.display().to_string()
    }
}
