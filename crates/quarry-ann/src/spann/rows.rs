//! Exact f32 rows of a SPANN index with coded posting entries, read one at a time with positioned
//! reads from the folder's `vectors.qflat` (a flat index file), so re-scoring candidates does not
//! make the vectors resident.

use crate::flat::{FlatIndex, MAGIC, VERSION};
use quarry_core::{Error, Result};
use quarry_store::source::ByteSource;
use quarry_store::Framed;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A flat index file opened for positioned reads of single rows.
#[derive(Debug)]
pub(crate) struct RowFile {
    path: PathBuf,
    /// The file's bytes: a local file, or an object read by byte range.
    source: Arc<dyn ByteSource>,
    /// File offset of row 0.
    offset: u64,
    dim: usize,
    rows: usize,
    /// When to ask for a query's rows ahead of reading them (see `flat::readahead`).
    pub(crate) readahead: crate::flat::readahead::ReadAhead,
}

impl RowFile {
    /// Opens the flat index file `path`, which must hold `rows` f32 rows of `dim` components.
    pub(crate) fn open(path: &Path, rows: usize, dim: usize) -> Result<RowFile> {
        let framed = Framed::open(path, MAGIC, VERSION, "flat index")?;
        let s = framed.sections.first().copied().unwrap_or_default();
        if framed.fields[1] != crate::flat::storage_code(crate::flat::Storage::F32)
            || s.len != (rows * dim * 4) as u64
        {
            return Err(Error::corrupt(
                path,
                "header",
                format!("expected {rows} f32 rows of dimension {dim}"),
            ));
        }
        let source = framed.source().clone();
        if let Some(file) = source.as_file() {
            advise_random(file);
        }
        Ok(RowFile {
            path: path.to_path_buf(),
            source,
            offset: s.offset,
            dim,
            rows,
            readahead: Default::default(),
        })
    }

    /// Reads row `id` into `out` (length `dim`).
    pub(crate) fn read(&self, id: u32, out: &mut [f32]) -> Result<()> {
        if id as usize >= self.rows || out.len() != self.dim {
            return Err(Error::InvalidArgument(format!("row {id} of {} rows", self.rows)));
        }
        let at = self.offset + id as u64 * (self.dim * 4) as u64;
        let bytes: &mut [u8] = bytemuck::cast_slice_mut(out);
        self.source.read_exact_at(bytes, at).map_err(|e| Error::io("reading", &self.path, e))
    }

    /// Says that rows `ids` are about to be read, so they are fetched together (from disk by
    /// `POSIX_FADV_WILLNEED`; from object storage at once, adjacent ranges merged). A hint.
    pub(crate) fn will_need(&self, ids: impl Iterator<Item = u32>) {
        let row = (self.dim * 4) as u64;
        let mut ranges: Vec<std::ops::Range<u64>> = ids
            .filter(|&id| (id as usize) < self.rows)
            .map(|id| self.offset + id as u64 * row..self.offset + (id as u64 + 1) * row)
            .collect();
        ranges.sort_by_key(|r| r.start);
        if !ranges.is_empty() {
            self.source.will_need(&ranges);
        }
    }

    /// Whether re-scoring should announce its rows first: always from object storage, and from
    /// disk while reads are slow (see `flat::readahead`).
    pub(crate) fn wants_readahead(&self) -> bool {
        self.source.is_remote() || self.readahead.wanted()
    }

    /// Whether the rows are read from object storage.
    pub(crate) fn is_remote(&self) -> bool {
        self.source.is_remote()
    }

    /// Checks the file's checksums.
    pub(crate) fn verify(path: &Path) -> Result<()> {
        FlatIndex::verify(path)
    }
}

/// Reads exactly `buf.len()` bytes at offset `at` (a positioned read; no shared seek position).
#[cfg(unix)]
pub(crate) fn read_at(file: &File, buf: &mut [u8], at: u64) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    file.read_exact_at(buf, at)
}

/// Reads exactly `buf.len()` bytes at offset `at`.
#[cfg(not(unix))]
pub(crate) fn read_at(file: &File, buf: &mut [u8], at: u64) -> std::io::Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = file.try_clone()?;
    f.seek(SeekFrom::Start(at))?;
    f.read_exact(buf)
}

/// Tells the kernel that `file` is read at random (`POSIX_FADV_RANDOM`: a read fetches the pages
/// asked for, not a read-ahead window of up to the device's `read_ahead_kb`, which under a tight
/// memory cap evicts the pages that matter). A hint: failures are ignored.
pub(crate) fn advise_random(file: &File) {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::io::AsRawFd;
        // SAFETY: posix_fadvise only reads its arguments; a bad descriptor is an error code.
        unsafe {
            libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_RANDOM);
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = file;
}
