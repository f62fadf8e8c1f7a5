//! The SPANN posting file, version 1 (spec: docs/FORMAT.md, "SPANN posting file"): every posting
//! list's entries `[u32 id][dim × f32]` stored contiguously, each list starting on a 4 KiB page so
//! reading one list touches the fewest pages; a table of `(offset, count, CRC32C)` per list.
//! Lists are read with positioned reads (threads share one handle, no seek lock on unix) and
//! checked against their own checksum. The LRU cache of decoded lists lives in `postings/cache.rs`.
//!
//! Framed by `quarry_store::framing`; header fields: metric, entry layout, dim, list count, total
//! entries; sections: list data (at 4096), list table.

use crate::flat::{metric_code, metric_from_code};
use quarry_core::{Error, Metric, Result};
use quarry_linalg::AlignedVec;
use quarry_store::framing::{Section, FIELDS_LEN};
use quarry_store::source::ByteSource;
use quarry_store::{checksum, le, write_framed, Framed};
use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

mod cache;
#[cfg(test)]
mod tests;

pub(crate) use cache::PostingList;
// Used by the SPANN searcher (being written); drop the allow once it is.
#[allow(unused_imports)]
pub(crate) use cache::PostingCache;

/// First bytes of every posting file.
pub(crate) const MAGIC: [u8; 8] = *b"QRYPOST\0";
/// The version this code writes and reads.
pub(crate) const VERSION: u32 = 1;
/// Page size every list is aligned to (absolute file offsets).
pub(crate) const PAGE: u64 = 4096;
/// Entry layout code: `[u32 id][dim × f32]`.
const LAYOUT_F32: u8 = 1;
/// Entry layout code: `[u32 id][code bytes]` (the code length is in the header).
const LAYOUT_CODES: u8 = 2;
/// Bytes per list-table row: offset u64, count u32, CRC32C u32.
const TABLE_ROW: usize = 16;

/// What [`write_postings`] wrote.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct PostingStats {
    /// Number of lists (empty ones included).
    pub lists: usize,
    /// Entries over all lists (replicas counted once per list).
    pub entries: u64,
    /// File size in bytes.
    pub bytes: u64,
    /// Longest list, in entries.
    pub max_len: usize,
    /// Mean list length, in entries (0 without lists).
    pub mean_len: f64,
}

/// Bytes of one entry: a u32 id and `dim` f32.
fn entry_bytes(dim: usize) -> Option<usize> {
    dim.checked_mul(4)?.checked_add(4)
}

/// Writes the posting file crash-safely: list `j` holds the ids `lists[j]` with their vectors
/// `row(id)` (each of length `dim`). Lists may be empty; an id may appear in several lists.
/// The list data is assembled in memory before writing (peak memory ≈ the file size).
pub(crate) fn write_postings(
    path: &Path,
    dim: usize,
    metric: Metric,
    lists: &[Vec<u32>],
    row: &dyn Fn(u32) -> Vec<f32>,
) -> Result<PostingStats> {
    let payload = dim.checked_mul(4).ok_or_else(|| Error::InvalidArgument(format!("dimension {dim}")))?;
    write_entries(path, dim, metric, (LAYOUT_F32, payload), lists, &|id, j, out| {
        let v = row(id);
        if v.len() != dim {
            return Err(Error::DimensionMismatch {
                expected: dim,
                got: v.len(),
                context: format!("row {id} of posting list {j}"),
            });
        }
        if cfg!(target_endian = "little") {
            out.extend_from_slice(bytemuck::cast_slice(&v));
        } else {
            v.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes()));
        }
        Ok(())
    })
}

/// Writes a posting file whose entries hold `code_len`-byte codes (`code(id, out)` fills one)
/// instead of f32 vectors; the vectors' dimension `dim` is recorded.
pub(crate) fn write_posting_codes(
    path: &Path,
    dim: usize,
    metric: Metric,
    code_len: usize,
    lists: &[Vec<u32>],
    code: &dyn Fn(u32, &mut [u8]),
) -> Result<PostingStats> {
    if !code_len.is_multiple_of(4) {
        return Err(Error::InvalidArgument(format!(
            "code length {code_len} must be a multiple of 4 (0: ids only)"
        )));
    }
    write_entries(path, dim, metric, (LAYOUT_CODES, code_len), lists, &|id, _, out| {
        let at = out.len();
        out.resize(at + code_len, 0);
        code(id, &mut out[at..]);
        Ok(())
    })
}

/// Appends one entry's payload (after its id) for `(id, list)` to the buffer.
type Fill<'a> = dyn Fn(u32, usize, &mut Vec<u8>) -> Result<()> + 'a;

fn write_entries(
    path: &Path,
    dim: usize,
    metric: Metric,
    (layout, payload): (u8, usize),
    lists: &[Vec<u32>],
    fill: &Fill<'_>,
) -> Result<PostingStats> {
    let dim32 = u32::try_from(dim).ok().filter(|&d| d > 0);
    let payload32 = u32::try_from(payload).ok();
    let (Some(dim32), Some(payload32)) = (dim32, payload32) else {
        return Err(Error::InvalidArgument(format!("posting dimension {dim} must be in 1..2^32")));
    };
    let entry = 4 + payload;
    let n_lists = u32::try_from(lists.len())
        .map_err(|_| Error::InvalidArgument(format!("{} posting lists, at most 2^32-1", lists.len())))?;
    let mut data: Vec<u8> = Vec::new();
    let mut table = Vec::with_capacity(lists.len() * TABLE_ROW);
    let (mut entries, mut max_len) = (0u64, 0usize);
    for (j, list) in lists.iter().enumerate() {
        let count = u32::try_from(list.len()).map_err(|_| {
            Error::InvalidArgument(format!("posting list {j} holds {} entries, at most 2^32-1", list.len()))
        })?;
        let start = data.len();
        data.reserve(list.len() * entry);
        for &id in list {
            data.extend_from_slice(&id.to_le_bytes());
            fill(id, j, &mut data)?;
        }
        table.extend_from_slice(&(PAGE + start as u64).to_le_bytes());
        table.extend_from_slice(&count.to_le_bytes());
        table.extend_from_slice(&checksum(&data[start..]).to_le_bytes());
        data.resize(data.len().next_multiple_of(PAGE as usize), 0);
        entries += u64::from(count);
        max_len = max_len.max(list.len());
    }
    let mut f = [0u8; FIELDS_LEN];
    f[0] = metric_code(metric);
    f[1] = layout;
    f[4..8].copy_from_slice(&dim32.to_le_bytes());
    f[8..12].copy_from_slice(&n_lists.to_le_bytes());
    f[12..16].copy_from_slice(&payload32.to_le_bytes());
    f[16..24].copy_from_slice(&entries.to_le_bytes());
    write_framed(path, MAGIC, VERSION, &f, &[&data, &table], PAGE)?;
    let mean_len = if lists.is_empty() { 0.0 } else { entries as f64 / lists.len() as f64 };
    // The data section is a whole number of pages, so the table follows it without padding.
    let bytes = PAGE + data.len() as u64 + table.len() as u64;
    Ok(PostingStats { lists: lists.len(), entries, bytes, max_len, mean_len })
}

/// Where one list lies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ListRef {
    /// Absolute file offset (a multiple of [`PAGE`]).
    offset: u64,
    /// Entries.
    count: u32,
    /// CRC32C of the list's entry bytes (padding excluded).
    crc: u32,
}

/// An opened posting file: the list table in memory, the lists read on demand.
#[derive(Debug)]
pub(crate) struct PostingFile {
    path: PathBuf,
    /// The file's bytes: a local file, or an object read by byte range.
    source: Arc<dyn ByteSource>,
    dim: usize,
    metric: Metric,
    entry: usize,
    /// Whether entries hold codes (`[u32 id][code]`) rather than f32 vectors.
    codes: bool,
    lists: Vec<ListRef>,
    entries: u64,
    read_bytes: AtomicU64,
    /// Lists whose checksum has already been checked since opening (one bit each).
    verified: Vec<AtomicU64>,
}

impl PostingFile {
    /// Opens `path`: checks the header, the list table's checksum, that every list is page-aligned,
    /// lies inside the data section after the previous one with length count × entry size, and
    /// that the counts add up to the header's total. List checksums are checked on read.
    pub(crate) fn open(path: &Path) -> Result<PostingFile> {
        if cfg!(target_endian = "big") {
            return Err(Error::InvalidArgument(
                "posting files are read on little-endian machines only".into(),
            ));
        }
        let mut framed = Framed::open(path, MAGIC, VERSION, "SPANN posting")?;
        let bad = |loc: &str, msg: String| Error::corrupt(path, loc, msg);
        let f = framed.fields;
        let metric =
            metric_from_code(f[0]).ok_or_else(|| bad("header", format!("unknown metric code {}", f[0])))?;
        let dim = le::u32_at(&f, 4).unwrap_or(0) as usize;
        let payload = le::u32_at(&f, 12).unwrap_or(0) as usize;
        let codes = match f[1] {
            LAYOUT_F32 if payload == 0 || payload == dim * 4 => false,
            LAYOUT_CODES if payload.is_multiple_of(4) => true,
            l => {
                return Err(bad(
                    "header",
                    format!("unknown entry layout code {l} with {payload}-byte entries"),
                ))
            }
        };
        let n_lists = le::u32_at(&f, 8).unwrap_or(0) as usize;
        let total = le::u64_at(&f, 16).unwrap_or(0);
        let entry = if codes { Some(4 + payload) } else { entry_bytes(dim) };
        let entry = entry.filter(|_| dim > 0).ok_or_else(|| bad("header", format!("dimension {dim}")))?;
        if framed.sections.len() != 2 {
            return Err(bad("header", format!("{} sections, expected 2", framed.sections.len())));
        }
        let data = framed.sections[0];
        if data.offset != PAGE {
            return Err(bad("section 1", format!("list data starts at {}, expected {PAGE}", data.offset)));
        }
        if framed.sections[1].len != (n_lists * TABLE_ROW) as u64 {
            return Err(bad("section 2", format!("list table length does not match {n_lists} lists")));
        }
        let table = framed.read(1, "list table")?;
        let lists = parse_table(&table, n_lists, entry as u64, data)
            .map_err(|(j, msg)| bad(&format!("posting list {j}"), msg))?;
        let sum: u64 = lists.iter().map(|l| u64::from(l.count)).sum();
        if sum != total {
            return Err(bad("header", format!("{total} entries in the header, {sum} in the list table")));
        }
        let source = framed.source().clone();
        if let Some(file) = source.as_file() {
            super::rows::advise_random(file);
        }
        Ok(PostingFile {
            path: path.to_path_buf(),
            source,
            dim,
            metric,
            entry,
            codes,
            lists,
            entries: total,
            read_bytes: AtomicU64::new(0),
            verified: (0..n_lists.div_ceil(64)).map(|_| AtomicU64::new(0)).collect(),
        })
    }

    /// Checks every checksum of a posting file: header, both sections, and each list.
    pub(crate) fn verify(path: &Path) -> Result<()> {
        Framed::open(path, MAGIC, VERSION, "SPANN posting")?.verify(0, "list data")?;
        let file = PostingFile::open(path)?;
        let mut buf = AlignedVec::new();
        (0..file.len()).try_for_each(|j| file.read(j, &mut buf))
    }

    /// The file's path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Vector dimension.
    pub(crate) fn dim(&self) -> usize {
        self.dim
    }

    /// The metric recorded at write time.
    pub(crate) fn metric(&self) -> Metric {
        self.metric
    }

    /// Number of lists.
    pub(crate) fn len(&self) -> usize {
        self.lists.len()
    }

    /// True without lists.
    pub(crate) fn is_empty(&self) -> bool {
        self.lists.is_empty()
    }

    /// Entries over all lists.
    pub(crate) fn total_entries(&self) -> u64 {
        self.entries
    }

    /// Bytes per entry (4 + 4·dim).
    pub(crate) fn entry_bytes(&self) -> usize {
        self.entry
    }

    /// Entries in list `j` (0 when `j` is out of range).
    pub(crate) fn count(&self, j: usize) -> usize {
        self.lists.get(j).map_or(0, |l| l.count as usize)
    }

    /// 4 KiB pages list `j` spans (what one read of it costs on disk).
    pub(crate) fn pages(&self, j: usize) -> u64 {
        ((self.count(j) * self.entry) as u64).div_ceil(PAGE)
    }

    /// Says that lists `lists` are about to be read, so they are fetched together while the
    /// first are scanned: from disk, the OS reads them in parallel (`POSIX_FADV_WILLNEED`);
    /// from object storage, the missing byte ranges are fetched at once, merged where adjacent.
    /// Empty lists are skipped; errors are left for the reads (it is only a hint).
    pub(crate) fn will_need(&self, lists: impl Iterator<Item = usize>) {
        let ranges: Vec<std::ops::Range<u64>> = lists
            .filter_map(|j| self.lists.get(j).filter(|l| l.count > 0))
            .map(|l| l.offset..l.offset + (l.count as usize * self.entry) as u64)
            .collect();
        if !ranges.is_empty() {
            self.source.will_need(&ranges);
        }
    }

    /// Whether the lists are read from object storage (each read is slow: ask for them together).
    pub(crate) fn is_remote(&self) -> bool {
        self.source.is_remote()
    }

    /// Bytes read by [`PostingFile::read`] since opening (for benchmarks).
    pub(crate) fn read_bytes_total(&self) -> u64 {
        self.read_bytes.load(Ordering::Relaxed)
    }

    /// Reads list `j`'s entry bytes into `buf` (resized to count × entry size) with one positioned
    /// read, checking its CRC32C on the list's first read since opening. `buf` is 64-byte aligned, so [`PostingFile::entries`] can view
    /// it in place.
    pub(crate) fn read(&self, j: usize, buf: &mut AlignedVec<u8>) -> Result<()> {
        let l = self.list_ref(j)?;
        let len = l.count as usize * self.entry;
        buf.resize_zeroed(len);
        self.read_at(buf.as_mut_slice(), l.offset)?;
        self.check(j, &l, buf.as_slice())
    }

    /// Reads list `j`'s entry bytes as shared bytes (checked like [`PostingFile::read`]): from
    /// object storage, the bytes the cache assembled, with no further copy.
    pub(crate) fn read_shared(&self, j: usize) -> Result<quarry_store::cache::RangeBytes> {
        let l = self.list_ref(j)?;
        let len = l.count as usize * self.entry;
        let bytes =
            self.source.read_shared(l.offset, len).map_err(|e| Error::io("reading", &self.path, e))?;
        self.check(j, &l, &bytes)?;
        Ok(bytes)
    }

    fn list_ref(&self, j: usize) -> Result<ListRef> {
        self.lists.get(j).copied().ok_or_else(|| {
            Error::InvalidArgument(format!("posting list {j} out of range ({} lists)", self.lists.len()))
        })
    }

    /// Counts the bytes of list `j` read, and checks its CRC32C on the list's first read since
    /// opening (then the list is in the page cache, and re-checking every read would cost as
    /// much as the scan itself); `verify` checks the whole file.
    fn check(&self, j: usize, l: &ListRef, bytes: &[u8]) -> Result<()> {
        self.read_bytes.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        let (word, bit) = (&self.verified[j / 64], 1u64 << (j % 64));
        if word.load(Ordering::Relaxed) & bit == 0 {
            if checksum(bytes) != l.crc {
                return Err(Error::corrupt(
                    &self.path,
                    format!("posting list {j}"),
                    "checksum mismatch: the file is corrupted",
                ));
            }
            word.fetch_or(bit, Ordering::Relaxed);
        }
        Ok(())
    }

    /// The entries `(id, vector)` of a buffer filled by [`PostingFile::read`], viewed in place
    /// (a trailing partial entry is ignored).
    /// `bytes` must be 4-byte aligned (an [`AlignedVec`] is); see [`PostingFile::aligned`].
    pub(crate) fn entries<'a>(&self, bytes: &'a [u8]) -> impl Iterator<Item = (u32, &'a [f32])> + 'a {
        debug_assert!(Self::aligned(bytes), "posting entries must be 4-byte aligned");
        let whole = &bytes[..bytes.len() / self.entry * self.entry];
        // The buffer is 64-byte aligned and `whole` a multiple of 4 bytes, so both casts succeed;
        // the file is little-endian and `open` refuses big-endian hosts.
        let ids: &[u32] = bytemuck::try_cast_slice(whole).unwrap_or(&[]);
        let vals: &[f32] = bytemuck::try_cast_slice(whole).unwrap_or(&[]);
        let words = self.entry / 4;
        ids.chunks_exact(words).zip(vals.chunks_exact(words)).map(|(i, v)| (i[0], &v[1..]))
    }

    /// Whether `bytes` can be viewed as f32 entries in place (4-byte aligned).
    pub(crate) fn aligned(bytes: &[u8]) -> bool {
        bytes.as_ptr().align_offset(4) == 0
    }

    /// Whether entries hold codes rather than f32 vectors.
    pub(crate) fn has_codes(&self) -> bool {
        self.codes
    }

    /// The entries `(id, code)` of a buffer filled by [`PostingFile::read`] from a file of codes.
    pub(crate) fn code_entries<'a>(&self, bytes: &'a [u8]) -> impl Iterator<Item = (u32, &'a [u8])> + 'a {
        bytes[..bytes.len() / self.entry * self.entry]
            .chunks_exact(self.entry)
            .map(|e| (u32::from_le_bytes([e[0], e[1], e[2], e[3]]), &e[4..]))
    }

    /// Reads and decodes list `j` (the loader to give [`PostingCache::get_or_load`]); f32 files
    /// only (lists of codes are scanned from the read buffer).
    pub(crate) fn load(&self, j: usize) -> Result<PostingList> {
        if self.codes {
            return Err(Error::InvalidArgument("lists of codes are not cached".into()));
        }
        thread_local! {
            static BUF: RefCell<AlignedVec<u8>> = RefCell::new(AlignedVec::new());
        }
        BUF.with(|cell| match cell.try_borrow_mut() {
            Ok(mut buf) => self.load_with(j, &mut buf),
            Err(_) => self.load_with(j, &mut AlignedVec::new()),
        })
    }

    fn load_with(&self, j: usize, buf: &mut AlignedVec<u8>) -> Result<PostingList> {
        self.read(j, buf)?;
        Ok(PostingList::from_entries(self.dim, self.count(j), self.entries(buf.as_slice())))
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        self.source.read_exact_at(buf, offset).map_err(|e| Error::io("reading", &self.path, e))
    }
}

/// Parses and checks the list table; an error names the list index.
fn parse_table(
    table: &[u8],
    n_lists: usize,
    entry: u64,
    data: Section,
) -> std::result::Result<Vec<ListRef>, (usize, String)> {
    let end = data.offset + data.len;
    let mut prev_end = data.offset;
    let mut lists = Vec::with_capacity(n_lists);
    for j in 0..n_lists {
        let at = j * TABLE_ROW;
        let l = ListRef {
            offset: le::u64_at(table, at).unwrap_or(u64::MAX),
            count: le::u32_at(table, at + 8).unwrap_or(0),
            crc: le::u32_at(table, at + 12).unwrap_or(0),
        };
        if !l.offset.is_multiple_of(PAGE) {
            return Err((j, format!("offset {} is not a multiple of {PAGE}", l.offset)));
        }
        if l.offset < prev_end {
            return Err((j, format!("offset {} overlaps the previous list (ends at {prev_end})", l.offset)));
        }
        match u64::from(l.count).checked_mul(entry).and_then(|len| l.offset.checked_add(len)) {
            Some(e) if e <= end => prev_end = e,
            _ => {
                return Err((
                    j,
                    format!(
                        "{} entries at offset {} lie outside the list data ({}..{end})",
                        l.count, l.offset, data.offset
                    ),
                ))
            }
        }
        lists.push(l);
    }
    Ok(lists)
}
