//! The SPANN update log `postings.delta` (spec: docs/FORMAT.md, "SPANN update log"): every change
//! since the build, appended as checksummed records and made durable in batches that end with a
//! commit record. Inserted vectors (rows records), entries appended to a list, a list rewritten
//! by a split or merge (with its new head), deletes. Opening replays the committed records into
//! [`Delta`]'s per-list chunk tables; a torn or garbled tail after the last commit is cut off,
//! but a damaged record followed by a valid commit record is corruption in the middle of
//! acknowledged updates, and opening refuses it rather than drop them.
//! Entry payloads are checked against their CRC32C on first read, like the base posting lists.

use super::rows::read_at;
use quarry_core::{Error, Result};
use quarry_linalg::AlignedVec;
use quarry_store::checksum;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Magic of the update log.
pub(crate) const MAGIC: [u8; 8] = *b"QRYSPDLT";
/// Version of the update log.
pub(crate) const VERSION: u32 = 1;
/// File header bytes.
const HEADER: u64 = 64;
/// Record header bytes.
const REC: usize = 40;
/// Record magic.
const REC_MAGIC: [u8; 4] = *b"QDRC";
/// A list whose head was merged away (no head, no entries).
pub(crate) const DEAD: u32 = u32::MAX;

/// Record kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Kind {
    /// `count` f32 rows of the inserted vectors with ids `head..head+count` (`head` = first id).
    Rows = 1,
    /// `count` entries appended to list `list`.
    Append = 2,
    /// List `list` replaced by `count` entries with head id `head` ([`DEAD`]: removed); `list`
    /// may be one past the last list (a new list).
    Replace = 3,
    /// `count` deleted ids (u32 each).
    Delete = 4,
    /// Everything since the previous commit is durable; `head` = ids, `list` = lists after it.
    Commit = 5,
}

/// A run of entries in the log.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Chunk {
    /// Offset of the entry bytes.
    pub(crate) offset: u64,
    /// Entries.
    pub(crate) count: u32,
    /// CRC32C of the entry bytes.
    pub(crate) crc: u32,
}

/// What one list is now: the base list (unless rewritten) plus chunks from the log.
#[derive(Debug, Clone, Default)]
pub(crate) struct ListState {
    /// Whether the base posting file's list is still part of it.
    pub(crate) base: bool,
    /// Appended or rewritten runs, in order.
    pub(crate) chunks: Vec<Chunk>,
}

/// A record read back by [`Delta::open`], to be applied by the index.
#[derive(Debug, Clone)]
pub(crate) enum Replayed {
    /// Rows of inserted vectors `first..first+count` at `offset` (payload CRC `crc`).
    Rows { first: u32, count: u32, offset: u64, crc: u32 },
    /// Entries appended to `list`.
    Append { list: u32, chunk: Chunk },
    /// `list` rewritten with head `head`.
    Replace { list: u32, head: u32, chunk: Chunk },
    /// Deleted ids.
    Delete(Vec<u32>),
}

/// The open update log: appends records and remembers where rows live.
#[derive(Debug)]
pub(crate) struct Delta {
    path: PathBuf,
    file: File,
    /// Bytes of one posting entry (id + payload).
    entry: usize,
    dim: usize,
    /// End of the last record written (committed or pending).
    end: u64,
    /// Rows records: `(first id, count, offset)`, ascending.
    rows: Vec<(u32, u32, u64)>,
    /// Chunks already checked against their CRC (by offset).
    verified: std::sync::Mutex<std::collections::HashSet<u64>>,
    read_bytes: AtomicU64,
}

fn bad(path: &Path, at: u64, msg: impl Into<String>) -> Error {
    Error::corrupt(path, format!("update log offset {at}"), msg.into())
}

/// Offset of the first valid commit record (magic, kind and header checksum) at or after
/// `from`, scanning byte by byte: only called when a record is damaged.
fn committed_after(file: &File, from: u64, len: u64) -> Result<Option<u64>> {
    if from >= len {
        return Ok(None);
    }
    let mut rest = vec![0u8; (len - from) as usize];
    if read_at(file, &mut rest, from).is_err() {
        return Ok(None);
    }
    let found = rest.windows(REC).position(|r| {
        r[..4] == REC_MAGIC
            && r[4] == Kind::Commit as u8
            && checksum(&r[..36]).to_le_bytes() == [r[36], r[37], r[38], r[39]]
    });
    Ok(found.map(|p| from + p as u64))
}

impl Delta {
    /// Path of the log in an index folder.
    pub(crate) fn path_in(dir: &Path) -> PathBuf {
        dir.join(super::format::DELTA_FILE)
    }

    /// Opens (or, when `create`, creates) the log of a folder whose posting file's header CRC is
    /// `base_crc`, replaying its committed records; a log of another build is refused.
    pub(crate) fn open(
        dir: &Path,
        base_crc: u32,
        entry: usize,
        dim: usize,
        create: bool,
    ) -> Result<Option<(Delta, Vec<Replayed>)>> {
        Delta::open_with(dir, base_crc, entry, dim, create, true)
    }

    /// [`Delta::open`] without creating or truncating anything (for checks).
    pub(crate) fn open_read_only(
        dir: &Path,
        base_crc: u32,
        entry: usize,
        dim: usize,
    ) -> Result<Option<(Delta, Vec<Replayed>)>> {
        Delta::open_with(dir, base_crc, entry, dim, false, false)
    }

    fn open_with(
        dir: &Path,
        base_crc: u32,
        entry: usize,
        dim: usize,
        create: bool,
        writable: bool,
    ) -> Result<Option<(Delta, Vec<Replayed>)>> {
        let path = Delta::path_in(dir);
        if !path.exists() {
            if !create {
                return Ok(None);
            }
            let mut h = [0u8; HEADER as usize];
            h[..8].copy_from_slice(&MAGIC);
            h[8..12].copy_from_slice(&VERSION.to_le_bytes());
            h[12..16].copy_from_slice(&base_crc.to_le_bytes());
            h[16..20].copy_from_slice(&(entry as u32).to_le_bytes());
            h[20..24].copy_from_slice(&(dim as u32).to_le_bytes());
            let c = checksum(&h[..60]);
            h[60..64].copy_from_slice(&c.to_le_bytes());
            quarry_store::write_atomic(&path, |w| std::io::Write::write_all(w, &h))?;
        }
        let file = OpenOptions::new()
            .read(true)
            .write(writable)
            .open(&path)
            .map_err(|e| Error::io("opening", &path, e))?;
        let len = file.metadata().map_err(|e| Error::io("reading the size of", &path, e))?.len();
        let mut h = [0u8; HEADER as usize];
        if len < HEADER || read_at(&file, &mut h, 0).is_err() {
            return Err(bad(&path, 0, "shorter than its header"));
        }
        if h[..8] != MAGIC || checksum(&h[..60]).to_le_bytes() != h[60..64] {
            return Err(bad(&path, 0, "not a SPANN update log (magic or header checksum)"));
        }
        let word = |at: usize| u32::from_le_bytes([h[at], h[at + 1], h[at + 2], h[at + 3]]);
        if word(8) != VERSION {
            return Err(bad(&path, 8, format!("version {} (this build reads {VERSION})", word(8))));
        }
        if word(12) != base_crc || word(16) as usize != entry || word(20) as usize != dim {
            return Err(bad(
                &path,
                12,
                "written for another build of this index (posting file, entry size or dimension)",
            ));
        }
        let mut d = Delta {
            path,
            file,
            entry,
            dim,
            end: HEADER,
            rows: Vec::new(),
            verified: Default::default(),
            read_bytes: AtomicU64::new(0),
        };
        let mut out = Vec::new();
        let mut pending = Vec::new();
        let mut at = HEADER;
        let mut rec = [0u8; REC];
        while at + REC as u64 <= len && read_at(&d.file, &mut rec, at).is_ok() {
            let w = |o: usize| u32::from_le_bytes([rec[o], rec[o + 1], rec[o + 2], rec[o + 3]]);
            if rec[..4] != REC_MAGIC || checksum(&rec[..36]) != w(36) {
                break;
            }
            let payload = u64::from_le_bytes(rec[24..32].try_into().unwrap_or_default());
            let body = at + REC as u64;
            if body.checked_add(payload).is_none_or(|e| e > len) {
                break;
            }
            let (list, head, count, crc) = (w(8), w(12), w(16), w(20));
            let chunk = Chunk { offset: body, count, crc };
            match rec[4] {
                1 => pending.push(Replayed::Rows { first: head, count, offset: body, crc }),
                2 => pending.push(Replayed::Append { list, chunk }),
                3 => pending.push(Replayed::Replace { list, head, chunk }),
                4 => {
                    let mut ids = vec![0u8; payload as usize];
                    if read_at(&d.file, &mut ids, body).is_err() || checksum(&ids) != crc {
                        break;
                    }
                    pending.push(Replayed::Delete(
                        ids.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
                    ));
                }
                5 => {
                    for r in pending.drain(..) {
                        if let Replayed::Rows { first, count, offset, .. } = r {
                            d.rows.push((first, count, offset));
                        }
                        out.push(r);
                    }
                    d.end = body + payload;
                }
                _ => break,
            }
            at = body + payload;
        }
        // Parsing stopped before the end: a torn tail, or damage with acknowledged (committed)
        // updates after it, which must not be cut off.
        if at < len {
            if let Some(later) = committed_after(&d.file, at + 1, len)? {
                return Err(bad(
                    &d.path,
                    at,
                    format!(
                        "damaged record, but a valid commit record follows at offset {later}: the log \
                         is corrupted, not torn; refusing to drop acknowledged updates"
                    ),
                ));
            }
        }
        // Cut a torn or uncommitted tail so new records follow the last commit.
        if d.end < len && writable {
            d.file.set_len(d.end).map_err(|e| Error::io("truncating the torn tail of", &d.path, e))?;
            d.file.sync_all().map_err(|e| Error::io("syncing", &d.path, e))?;
        }
        Ok(Some((d, out)))
    }

    /// Appends one record (not yet durable: see [`Delta::commit`]); returns its chunk.
    pub(crate) fn append(
        &mut self,
        kind: Kind,
        list: u32,
        head: u32,
        count: u32,
        payload: &[u8],
    ) -> Result<Chunk> {
        let crc = checksum(payload);
        let mut rec = [0u8; REC];
        rec[..4].copy_from_slice(&REC_MAGIC);
        rec[4] = kind as u8;
        rec[8..12].copy_from_slice(&list.to_le_bytes());
        rec[12..16].copy_from_slice(&head.to_le_bytes());
        rec[16..20].copy_from_slice(&count.to_le_bytes());
        rec[20..24].copy_from_slice(&crc.to_le_bytes());
        rec[24..32].copy_from_slice(&(payload.len() as u64).to_le_bytes());
        let c = checksum(&rec[..36]);
        rec[36..40].copy_from_slice(&c.to_le_bytes());
        let at = self.end;
        write_at(&self.file, &rec, at).map_err(|e| Error::io("writing", &self.path, e))?;
        write_at(&self.file, payload, at + REC as u64).map_err(|e| Error::io("writing", &self.path, e))?;
        self.end = at + (REC + payload.len()) as u64;
        let chunk = Chunk { offset: at + REC as u64, count, crc };
        if kind == Kind::Rows {
            self.rows.push((head, count, chunk.offset));
        }
        Ok(chunk)
    }

    /// Writes a commit record and syncs the file: every record before it is durable.
    pub(crate) fn commit(&mut self, ids: u32, lists: u32) -> Result<()> {
        self.append(Kind::Commit, lists, ids, 0, &[])?;
        self.file.sync_data().map_err(|e| Error::io("syncing", &self.path, e))
    }

    /// Checks the payload CRC of every replayed record (rows, appended and rewritten runs).
    pub(crate) fn verify(&self, records: &[Replayed]) -> Result<()> {
        let mut buf = AlignedVec::new();
        for r in records {
            match r {
                Replayed::Rows { count, offset, crc, .. } => {
                    buf.resize_zeroed(*count as usize * self.dim * 4);
                    read_at(&self.file, buf.as_mut_slice(), *offset)
                        .map_err(|e| Error::io("reading", &self.path, e))?;
                    if checksum(buf.as_slice()) != *crc {
                        return Err(bad(&self.path, *offset, "checksum mismatch in inserted rows"));
                    }
                }
                Replayed::Append { chunk, .. } | Replayed::Replace { chunk, .. } => {
                    self.read_chunk(chunk, &mut buf)?
                }
                Replayed::Delete(_) => {}
            }
        }
        Ok(())
    }

    /// Heap bytes of the row table.
    pub(crate) fn memory_bytes(&self) -> usize {
        self.rows.capacity() * 16
    }

    /// Reads inserted row `id` (it must be in a rows record) into `out`.
    pub(crate) fn read_row(&self, id: u32, out: &mut [f32]) -> Result<()> {
        let i = self.rows.partition_point(|&(first, _, _)| first <= id);
        let Some(&(first, count, offset)) = i.checked_sub(1).and_then(|i| self.rows.get(i)) else {
            return Err(Error::InvalidArgument(format!("row {id} is not in the update log")));
        };
        if id - first >= count || out.len() != self.dim {
            return Err(Error::InvalidArgument(format!("row {id} is not in the update log")));
        }
        let at = offset + (id - first) as u64 * (self.dim * 4) as u64;
        read_at(&self.file, bytemuck::cast_slice_mut(out), at)
            .map_err(|e| Error::io("reading", &self.path, e))
    }

    /// Reads a chunk's entry bytes into `buf`, checking its CRC on first read.
    pub(crate) fn read_chunk(&self, c: &Chunk, buf: &mut AlignedVec<u8>) -> Result<()> {
        let len = c.count as usize * self.entry;
        buf.resize_zeroed(len);
        read_at(&self.file, buf.as_mut_slice(), c.offset).map_err(|e| Error::io("reading", &self.path, e))?;
        self.read_bytes.fetch_add(len as u64, Ordering::Relaxed);
        let mut seen = self.verified.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if !seen.contains(&c.offset) {
            if checksum(buf.as_slice()) != c.crc {
                return Err(bad(&self.path, c.offset, "checksum mismatch: the update log is corrupted"));
            }
            seen.insert(c.offset);
        }
        Ok(())
    }
}

#[cfg(unix)]
fn write_at(file: &File, buf: &[u8], at: u64) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    file.write_all_at(buf, at)
}

#[cfg(not(unix))]
fn write_at(file: &File, buf: &[u8], at: u64) -> std::io::Result<()> {
    use std::io::{Seek, SeekFrom};
    let mut f = file.try_clone()?;
    f.seek(SeekFrom::Start(at))?;
    f.write_all(buf)
}
