//! The write-ahead log (spec: docs/FORMAT.md, "Write-ahead log"): a 32-byte header, then records
//! `[u32 payload length][u32 CRC32C of (seq, payload)][u64 seq][payload]` with consecutive
//! sequence numbers. [`Wal::append`] writes a batch of records with one write and (with
//! [`Durability::Fsync`]) one fsync before returning: group commit, and the caller acknowledges
//! only after it returns; the written bytes are read back and checked first. [`Wal::open`]
//! replays records up to the first torn one and cuts the file there, so later appends follow the
//! last valid record; a damaged record *followed by* valid ones is corruption, not a torn tail,
//! and opening fails rather than drop acknowledged writes. A failed write is cut back and the log
//! stays usable (e.g. once disk space is freed); after a failed fsync the log refuses appends until
//! it is reopened (the file's state is then unknown, so nothing more is acknowledged from it).
//! The file is reached through [`LogStore`], so tests can inject faults.

use crate::{checksum, checksum_append};
use quarry_core::{Error, Result};
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

/// Magic of a WAL file.
pub const MAGIC: [u8; 8] = *b"QRYWAL\0\0";
/// Version of the WAL format.
pub const VERSION: u32 = 1;
/// Header bytes.
pub const HEADER: u64 = 32;
/// Record header bytes (length, CRC, sequence number).
pub const RECORD_HEADER: usize = 16;
/// Largest payload accepted (a guard against reading a garbled length as a huge allocation).
pub const MAX_PAYLOAD: usize = 1 << 30;
/// Largest first sequence number a header may name: a file holds fewer than 2^60 records, so
/// numbering from here on never overflows (a larger one is a damaged or crafted header).
pub const MAX_FIRST_SEQ: u64 = 1 << 62;

/// When an append is durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// fsync before returning (the default): an acknowledged write survives power loss.
    #[default]
    Fsync,
    /// Written to the OS only: survives a process crash, not power loss.
    Buffered,
}

/// The file operations the log needs: a real [`File`], or a fault-injecting stand-in in tests.
pub trait LogStore: Send + Sync + std::fmt::Debug {
    /// Reads exactly `buf.len()` bytes at `at`.
    fn read_at(&self, buf: &mut [u8], at: u64) -> std::io::Result<()>;
    /// Writes all of `buf` at `at`.
    fn write_at(&self, buf: &[u8], at: u64) -> std::io::Result<()>;
    /// Makes written data durable (fdatasync).
    fn sync(&self) -> std::io::Result<()>;
    /// Truncates or extends the file.
    fn set_len(&self, len: u64) -> std::io::Result<()>;
    /// Current length.
    fn size(&self) -> std::io::Result<u64>;
}

impl LogStore for File {
    fn read_at(&self, buf: &mut [u8], at: u64) -> std::io::Result<()> {
        read_at(self, buf, at)
    }
    fn write_at(&self, buf: &[u8], at: u64) -> std::io::Result<()> {
        write_at(self, buf, at)
    }
    fn sync(&self) -> std::io::Result<()> {
        self.sync_data()
    }
    fn set_len(&self, len: u64) -> std::io::Result<()> {
        File::set_len(self, len)
    }
    fn size(&self) -> std::io::Result<u64> {
        self.metadata().map(|m| m.len())
    }
}

/// An open write-ahead log.
#[derive(Debug)]
pub struct Wal {
    path: PathBuf,
    file: Box<dyn LogStore>,
    end: u64,
    next_seq: u64,
    durability: Durability,
    /// A write or fsync failed: no more appends until reopened.
    poisoned: bool,
}

/// One replayed record: its sequence number and payload.
pub type Record = (u64, Vec<u8>);

impl Wal {
    /// Opens (creating if missing) the log at `path`, returning it and every valid record in
    /// order. A torn or garbled tail is cut off; a file that is not a WAL is an error.
    pub fn open(path: &Path, durability: Durability) -> Result<(Wal, Vec<Record>)> {
        Wal::open_with(path, durability, &|p| {
            let f = OpenOptions::new().read(true).write(true).open(p)?;
            Ok(Box::new(f) as Box<dyn LogStore>)
        })
    }

    /// [`Wal::open`] through `open_store`, which opens the (existing) file at a path.
    pub fn open_with(
        path: &Path,
        durability: Durability,
        open_store: &dyn Fn(&Path) -> std::io::Result<Box<dyn LogStore>>,
    ) -> Result<(Wal, Vec<Record>)> {
        let io = |what: &'static str| move |e| Error::io(what, path, e);
        if !path.exists() {
            let h = header(1);
            crate::write_atomic(path, |w| std::io::Write::write_all(w, &h))?;
        }
        let file = open_store(path).map_err(io("opening"))?;
        let len = file.size().map_err(io("reading the size of"))?;
        let mut h = [0u8; HEADER as usize];
        if len < HEADER || file.read_at(&mut h, 0).is_err() {
            return Err(Error::corrupt(path, "header", "shorter than the 32-byte WAL header"));
        }
        if h[..8] != MAGIC || checksum(&h[..28]).to_le_bytes() != h[28..32] {
            return Err(Error::corrupt(path, "header", "not a Quarry WAL (magic or header checksum)"));
        }
        let version = u32::from_le_bytes([h[8], h[9], h[10], h[11]]);
        if version != VERSION {
            return Err(Error::corrupt(
                path,
                "header",
                format!("version {version}, this build reads {VERSION}"),
            ));
        }
        let mut records = Vec::new();
        let mut at = HEADER;
        // Sequence number of the first record (0 in files written before checkpoints: 1).
        let mut next_seq = crate::le::u64_at(&h, 12).unwrap_or(0).max(1);
        if next_seq > MAX_FIRST_SEQ {
            return Err(Error::corrupt(
                path,
                "header",
                format!("first record number {next_seq} is out of range (at most 2^62)"),
            ));
        }
        while let Some((payload, end)) = record_at(file.as_ref(), at, len, next_seq) {
            records.push((next_seq, payload));
            next_seq += 1;
            at = end;
        }
        if at < len {
            // A torn tail holds no complete later record; one there means the damaged record is
            // in the middle of acknowledged writes: refuse rather than drop them.
            let later = (at + 1..len).find(|&p| {
                record_at(file.as_ref(), p, len, next_seq + 1).is_some()
                    || record_at(file.as_ref(), p, len, next_seq).is_some()
            });
            if let Some(later) = later {
                return Err(Error::corrupt(
                    path,
                    format!("record {next_seq} at byte {at}"),
                    format!(
                        "damaged, but valid records follow (from byte {later}): the log is corrupted, not torn; refusing to drop acknowledged writes"
                    ),
                ));
            }
            file.set_len(at).map_err(io("cutting the torn tail of"))?;
            file.sync().map_err(io("syncing"))?;
        }
        Ok((Wal { path: path.to_path_buf(), file, end: at, next_seq, durability, poisoned: false }, records))
    }

    /// Appends `payloads` as consecutive records with one write, then (with fsync durability)
    /// one fsync, then reads the bytes back and checks them; returns the last sequence number. On
    /// failure nothing is acknowledged: a failed or garbled write is cut back (the log stays
    /// usable if that works), a failed fsync makes the log refuse appends until reopened.
    pub fn append(&mut self, payloads: &[&[u8]]) -> Result<u64> {
        if self.poisoned {
            return Err(Error::Poisoned(format!(
                "the write-ahead log {} had a failed write or fsync and refuses writes; reopen the database (acknowledged writes are kept)",
                self.path.display()
            )));
        }
        let total: usize = payloads.iter().map(|p| RECORD_HEADER + p.len()).sum();
        let mut buf = Vec::with_capacity(total);
        let mut seq = self.next_seq;
        for p in payloads {
            if p.len() > MAX_PAYLOAD {
                return Err(Error::InvalidArgument(format!(
                    "a WAL record of {} bytes (at most {MAX_PAYLOAD})",
                    p.len()
                )));
            }
            frame(&mut buf, seq, p);
            seq += 1;
        }
        if let Err(e) = self.file.write_at(&buf, self.end) {
            self.cut_back();
            return Err(Error::io("appending to", &self.path, e));
        }
        if self.durability == Durability::Fsync {
            if let Err(e) = self.file.sync() {
                self.poisoned = true;
                return Err(Error::io("syncing", &self.path, e));
            }
        }
        let mut back = vec![0u8; buf.len()];
        if self.file.read_at(&mut back, self.end).is_err() || back != buf {
            self.cut_back();
            return Err(Error::io(
                "verifying",
                &self.path,
                std::io::Error::other(
                    "the log did not read back what was written; the write was not acknowledged",
                ),
            ));
        }
        self.end += buf.len() as u64;
        self.next_seq = seq;
        Ok(seq - 1)
    }

    /// Forces every appended record to stable storage (what a buffered log needs before a clean
    /// shutdown; with fsync durability each append already did this).
    pub fn sync(&mut self) -> Result<()> {
        if let Err(e) = self.file.sync() {
            self.poisoned = true;
            return Err(Error::io("syncing", &self.path, e));
        }
        Ok(())
    }

    /// Drops every record before sequence number `first` (a checkpoint has made them redundant;
    /// a `first` past the last record leaves an empty log whose next record is `first`): the later records are copied byte for byte into a new file whose header names `first`,
    /// which is fsynced and renamed over the log (then the folder is fsynced), and the log
    /// continues in the new file, opened through `open_store`. A crash at any point leaves either
    /// the old log or the new one, both valid. Returns the bytes dropped.
    pub fn truncate_before(
        &mut self,
        first: u64,
        open_store: &dyn Fn(&Path) -> std::io::Result<Box<dyn LogStore>>,
    ) -> Result<u64> {
        let mut h = [0u8; HEADER as usize];
        self.file.read_at(&mut h, 0).map_err(|e| Error::io("reading", &self.path, e))?;
        let mut seq = crate::le::u64_at(&h, 12).unwrap_or(0).max(1);
        if first <= seq {
            return Ok(0);
        }
        let mut at = HEADER;
        // (`first` past the last record: the log restarts empty at `first`.)
        while seq < first.min(self.next_seq) {
            let (_, end) = record_at(self.file.as_ref(), at, self.end, seq).ok_or_else(|| {
                Error::corrupt(
                    &self.path,
                    format!("record {seq} at byte {at}"),
                    "unreadable during a checkpoint",
                )
            })?;
            at = end;
            seq += 1;
        }
        let mut rest = vec![0u8; (self.end - at) as usize];
        self.file.read_at(&mut rest, at).map_err(|e| Error::io("reading", &self.path, e))?;
        let new_header = header(first);
        crate::write_atomic(&self.path, |w| {
            w.write_all(&new_header)?;
            w.write_all(&rest)
        })?;
        self.file = open_store(&self.path).map_err(|e| Error::io("reopening", &self.path, e))?;
        self.end = HEADER + rest.len() as u64;
        self.next_seq = self.next_seq.max(first);
        Ok(at - HEADER)
    }

    /// The records with sequence number ≥ `from` in the log, read back from its file (a node
    /// sending its acknowledged writes to object storage after a restart).
    pub fn records_from(&self, from: u64) -> Result<Vec<Record>> {
        let mut seq = self.first_seq()?;
        let mut at = HEADER;
        let mut out = Vec::new();
        while seq < self.next_seq {
            let (payload, end) = record_at(self.file.as_ref(), at, self.end, seq).ok_or_else(|| {
                Error::corrupt(
                    &self.path,
                    format!("record {seq} at byte {at}"),
                    "unreadable while reading the log back",
                )
            })?;
            if seq >= from {
                out.push((seq, payload));
            }
            at = end;
            seq += 1;
        }
        Ok(out)
    }

    /// Sequence number of the first record in the file.
    pub fn first_seq(&self) -> Result<u64> {
        let mut h = [0u8; HEADER as usize];
        self.file.read_at(&mut h, 0).map_err(|e| Error::io("reading", &self.path, e))?;
        Ok(crate::le::u64_at(&h, 12).unwrap_or(0).max(1))
    }

    /// Cuts the file back to the last acknowledged record after a failed write (poisoning the
    /// log if even that fails).
    fn cut_back(&mut self) {
        let ok = self.file.set_len(self.end).is_ok()
            && (self.durability == Durability::Buffered || self.file.sync().is_ok());
        if !ok {
            self.poisoned = true;
        }
    }

    /// Sequence number the next record gets.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Bytes in the file.
    pub fn len_bytes(&self) -> u64 {
        self.end
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// A WAL header whose first record has sequence number `first`.
fn header(first: u64) -> [u8; HEADER as usize] {
    let mut h = [0u8; HEADER as usize];
    h[..8].copy_from_slice(&MAGIC);
    h[8..12].copy_from_slice(&VERSION.to_le_bytes());
    h[12..20].copy_from_slice(&first.to_le_bytes());
    let c = checksum(&h[..28]);
    h[28..32].copy_from_slice(&c.to_le_bytes());
    h
}

/// Appends one framed record to `buf`.
fn frame(buf: &mut Vec<u8>, seq: u64, p: &[u8]) {
    let seq_bytes = seq.to_le_bytes();
    buf.extend_from_slice(&(p.len() as u32).to_le_bytes());
    buf.extend_from_slice(&checksum_append(checksum(&seq_bytes), p).to_le_bytes());
    buf.extend_from_slice(&seq_bytes);
    buf.extend_from_slice(p);
}

/// The bytes of a complete log file holding `payloads` as records 1, 2, … (used for snapshots,
/// which restore by replaying a log).
pub fn encode_log(payloads: &[Vec<u8>]) -> Result<Vec<u8>> {
    encode_log_from(1, payloads)
}

/// The bytes of a complete log file holding `payloads` as records `first`, `first + 1`, … (a
/// node rebuilding a collection's log from object storage).
pub fn encode_log_from(first: u64, payloads: &[Vec<u8>]) -> Result<Vec<u8>> {
    let first = first.max(1);
    let mut buf = header(first).to_vec();
    for (i, p) in payloads.iter().enumerate() {
        if p.len() > MAX_PAYLOAD {
            return Err(Error::InvalidArgument(format!(
                "a WAL record of {} bytes (at most {MAX_PAYLOAD})",
                p.len()
            )));
        }
        frame(&mut buf, first + i as u64, p);
    }
    Ok(buf)
}

/// The payload and end offset of a valid record with sequence number `seq` at `at`, if any.
fn record_at(file: &dyn LogStore, at: u64, len: u64, seq: u64) -> Option<(Vec<u8>, u64)> {
    let mut rec = [0u8; RECORD_HEADER];
    if at + RECORD_HEADER as u64 > len || file.read_at(&mut rec, at).is_err() {
        return None;
    }
    let n = u32::from_le_bytes([rec[0], rec[1], rec[2], rec[3]]) as usize;
    let crc = u32::from_le_bytes([rec[4], rec[5], rec[6], rec[7]]);
    let got = u64::from_le_bytes([rec[8], rec[9], rec[10], rec[11], rec[12], rec[13], rec[14], rec[15]]);
    let body = at + RECORD_HEADER as u64;
    if n > MAX_PAYLOAD || body + n as u64 > len || got != seq {
        return None;
    }
    let mut payload = vec![0u8; n];
    if file.read_at(&mut payload, body).is_err() || checksum_append(checksum(&rec[8..16]), &payload) != crc {
        return None;
    }
    Some((payload, body + n as u64))
}

#[cfg(unix)]
fn read_at(file: &File, buf: &mut [u8], at: u64) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    file.read_exact_at(buf, at)
}

#[cfg(unix)]
fn write_at(file: &File, buf: &[u8], at: u64) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    file.write_all_at(buf, at)
}

#[cfg(not(unix))]
fn read_at(file: &File, buf: &mut [u8], at: u64) -> std::io::Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = file.try_clone()?;
    f.seek(SeekFrom::Start(at))?;
    f.read_exact(buf)
}

#[cfg(not(unix))]
fn write_at(file: &File, buf: &[u8], at: u64) -> std::io::Result<()> {
    use std::io::{Seek, SeekFrom, Write};
    let mut f = file.try_clone()?;
    f.seek(SeekFrom::Start(at))?;
    f.write_all(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("quarry-wal-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        dir.join("wal.log")
    }

    #[test]
    fn round_trip_and_sequence_numbers() {
        let path = temp("rt");
        let (mut wal, recs) = Wal::open(&path, Durability::Fsync).expect("create");
        assert!(recs.is_empty());
        assert_eq!(wal.append(&[b"a", b"bb"]).expect("append"), 2);
        assert_eq!(wal.append(&[b""]).expect("append"), 3);
        drop(wal);
        let (wal, recs) = Wal::open(&path, Durability::Fsync).expect("reopen");
        assert_eq!(recs, vec![(1, b"a".to_vec()), (2, b"bb".to_vec()), (3, Vec::new())]);
        assert_eq!(wal.next_seq(), 4);
    }

    #[test]
    fn truncate_before_keeps_later_records_and_numbering() {
        let path = temp("trunc");
        let plain = |p: &Path| -> std::io::Result<Box<dyn LogStore>> {
            Ok(Box::new(OpenOptions::new().read(true).write(true).open(p)?))
        };
        let (mut wal, _) = Wal::open(&path, Durability::Fsync).expect("create");
        wal.append(&[b"1", b"2", b"3"]).expect("append");
        assert_eq!(wal.truncate_before(3, &plain).expect("truncate"), 2 * (RECORD_HEADER as u64 + 1));
        assert_eq!(wal.first_seq().expect("first"), 3);
        assert_eq!(wal.append(&[b"4"]).expect("append"), 4);
        assert_eq!(wal.truncate_before(2, &plain).expect("no-op"), 0, "earlier than the first record");
        drop(wal);
        let (mut wal, recs) = Wal::open(&path, Durability::Fsync).expect("reopen");
        assert_eq!(recs, vec![(3, b"3".to_vec()), (4, b"4".to_vec())]);
        // Past the last record: an empty log that numbers on from there.
        wal.truncate_before(10, &plain).expect("truncate all");
        assert_eq!(wal.len_bytes(), HEADER);
        assert_eq!(wal.append(&[b"10"]).expect("append"), 10);
        drop(wal);
        let (_, recs) = Wal::open(&path, Durability::Fsync).expect("reopen");
        assert_eq!(recs, vec![(10, b"10".to_vec())]);
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn torn_and_garbled_tails_are_cut_and_appends_follow() {
        let path = temp("torn");
        let (mut wal, _) = Wal::open(&path, Durability::Fsync).expect("create");
        wal.append(&[b"first", b"second"]).expect("append");
        let good = wal.len_bytes();
        wal.append(&[b"third"]).expect("append");
        drop(wal);
        // Torn: cut in the middle of the third record.
        let bytes = std::fs::read(&path).expect("read");
        std::fs::write(&path, &bytes[..bytes.len() - 2]).expect("write");
        let (mut wal, recs) = Wal::open(&path, Durability::Fsync).expect("reopen");
        assert_eq!(recs.len(), 2);
        assert_eq!(wal.len_bytes(), good);
        assert_eq!(wal.append(&[b"again"]).expect("append"), 3);
        drop(wal);
        // Garbled in the middle (valid records follow): corruption, refused with the offset.
        let mut bytes = std::fs::read(&path).expect("read");
        let second = HEADER as usize + RECORD_HEADER + 5 + RECORD_HEADER;
        bytes[second] ^= 0x40;
        std::fs::write(&path, &bytes).expect("write");
        let err = Wal::open(&path, Durability::Fsync).expect_err("corrupted, not torn");
        assert!(err.to_string().contains("refusing to drop acknowledged writes"), "{err}");
        // Garbled in the last record only: a torn tail, cut.
        let mut bytes = std::fs::read(&path).expect("read");
        bytes[second] ^= 0x40;
        let last = bytes.len() - 1;
        bytes[last] ^= 0x01;
        std::fs::write(&path, &bytes).expect("write");
        let (_, recs) = Wal::open(&path, Durability::Fsync).expect("reopen");
        assert_eq!(recs.len(), 2);
    }

    #[test]
    fn not_a_wal_is_an_error() {
        let path = temp("bad");
        std::fs::write(&path, b"definitely not a write-ahead log, just text").expect("write");
        let err = Wal::open(&path, Durability::Fsync).expect_err("refused");
        assert!(err.to_string().contains("not a Quarry WAL"), "{err}");
    }

    /// Found by the `wal_record` fuzz target: a header naming record u64::MAX followed by any
    /// byte overflowed the record numbering (a panic with overflow checks).
    #[test]
    fn a_first_record_number_near_the_end_of_u64_is_refused() {
        let path = temp("seq");
        for first in [u64::MAX, u64::MAX - 1, MAX_FIRST_SEQ + 1] {
            let mut bytes = header(first).to_vec();
            bytes.push(0);
            std::fs::write(&path, &bytes).expect("write");
            let err = Wal::open(&path, Durability::Fsync).expect_err("refused");
            assert!(err.to_string().contains("out of range"), "{err}");
            // With a well-framed record of that number too.
            let mut bytes = header(first).to_vec();
            frame(&mut bytes, first, b"x");
            std::fs::write(&path, &bytes).expect("write");
            assert!(Wal::open(&path, Durability::Fsync).is_err());
        }
        let mut bytes = header(MAX_FIRST_SEQ).to_vec();
        frame(&mut bytes, MAX_FIRST_SEQ, b"x");
        std::fs::write(&path, &bytes).expect("write");
        let (mut wal, recs) = Wal::open(&path, Durability::Fsync).expect("the largest first number");
        assert_eq!(recs, vec![(MAX_FIRST_SEQ, b"x".to_vec())]);
        assert_eq!(wal.append(&[b"y"]).expect("append"), MAX_FIRST_SEQ + 1);
    }
}
