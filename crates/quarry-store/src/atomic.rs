//! Crash-safe file writing shared by every writer in this crate.
//!
//! An [`AtomicFile`] writes to a temporary sibling of its destination; [`AtomicFile::commit`]
//! flushes, fsyncs and renames it over the destination, then fsyncs the directory. A reader sees
//! either the old file or the complete new one, never a torn file; dropping an uncommitted file
//! removes the temporary.

use quarry_core::{Error, Result};
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A file being written under a temporary name until [`AtomicFile::commit`].
pub struct AtomicFile {
    dest: PathBuf,
    tmp: PathBuf,
    out: Option<BufWriter<File>>,
}

impl AtomicFile {
    /// Starts writing `dest` (through a temporary file in the same directory).
    pub fn create(dest: &Path) -> Result<Self> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let name = dest
            .file_name()
            .ok_or_else(|| Error::InvalidArgument(format!("{} does not name a file", dest.display())))?;
        let tmp_name = format!(
            ".{}.tmp.{}.{}",
            name.to_string_lossy(),
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let tmp = dest.with_file_name(tmp_name);
        let file = File::create(&tmp).map_err(|e| Error::io("creating", &tmp, e))?;
        Ok(Self { dest: dest.to_path_buf(), tmp, out: Some(BufWriter::new(file)) })
    }

    /// The temporary path being written (for error messages).
    pub fn temp_path(&self) -> &Path {
        &self.tmp
    }

    /// Appends `bytes`.
    pub fn write_bytes(&mut self, bytes: &[u8]) -> Result<()> {
        self.write_all(bytes).map_err(|e| Error::io("writing", &self.tmp, e))
    }

    /// Flushes, fsyncs and renames the file into place, then fsyncs the directory.
    pub fn commit(mut self) -> Result<()> {
        let Some(out) = self.out.take() else {
            return Err(Error::InvalidArgument("file already committed".into()));
        };
        let result = (|| {
            let file = out.into_inner().map_err(|e| Error::io("writing", &self.tmp, e.into_error()))?;
            file.sync_all().map_err(|e| Error::io("syncing", &self.tmp, e))?;
            drop(file);
            fs::rename(&self.tmp, &self.dest).map_err(|e| Error::io("renaming into place", &self.dest, e))
        })();
        if result.is_err() {
            let _ = fs::remove_file(&self.tmp);
        }
        result?;
        sync_dir(&self.dest)
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self.out.as_mut() {
            Some(out) => out.write(buf),
            None => Err(std::io::Error::other("file already committed")),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.out.as_mut().map_or(Ok(()), |o| o.flush())
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.out.take().is_some() {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// Writes a whole file crash-safely; `fill` writes the contents.
pub fn write_atomic(path: &Path, fill: impl FnOnce(&mut dyn Write) -> std::io::Result<()>) -> Result<()> {
    let mut file = AtomicFile::create(path)?;
    fill(&mut file).map_err(|e| Error::io("writing", file.temp_path(), e))?;
    file.commit()
}

/// Persists the entries of folder `dir` (new, renamed or removed files) by fsyncing it (Unix;
/// elsewhere a no-op).
pub fn sync_folder(dir: &Path) -> Result<()> {
    if cfg!(unix) {
        File::open(dir).and_then(|d| d.sync_all()).map_err(|e| Error::io("syncing directory", dir, e))
    } else {
        Ok(())
    }
}

/// Persists a rename by syncing the directory that holds `dest` (Unix; elsewhere a no-op).
#[cfg(unix)]
fn sync_dir(dest: &Path) -> Result<()> {
    let dir = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    File::open(&dir).and_then(|d| d.sync_all()).map_err(|e| Error::io("syncing directory", &dir, e))
}

#[cfg(not(unix))]
fn sync_dir(_dest: &Path) -> Result<()> {
    Ok(())
}
