//! Commits on object storage: a chain of immutable, numbered manifest versions written with
//! put-if-absent, a write-ahead log of one object per group commit, and a writer lease. All
//! three go through [`Objects`], so they work the same on local disk and on S3.
//!
//! * **Manifest chain** (`<prefix>manifest/<n>`, n zero-padded to 20 digits). Version `n + 1` is
//!   created only if absent, so when two writers race for the same version exactly one wins. The
//!   loser re-reads the newest version and retries ([`ManifestChain::commit_next`]) or fails
//!   clearly. Readers take the highest version. Old versions are removed only outside a
//!   retention window ([`ManifestChain::collect_garbage`]).
//! * **Log batches** (`<prefix>wal/<first seq>`). One object holds the records of one group
//!   commit, in order, and is created only if absent. A write is acknowledged after its batch
//!   object exists, so it survives the loss of the node that wrote it.
//! * **Lease** (`<prefix>lease/<epoch>`). It names the one writer and an expiry. A second
//!   writer is refused while the lease is live; taking over an expired lease creates the next
//!   epoch, again only if absent.
//!
//! Every object is framed: a 32-byte header (magic, version, body length, CRC32C of the body,
//! CRC32C of the header), then the body. Reading validates the header before the body is used
//! (docs/FORMAT.md, "Objects on object storage").

use crate::objects::Objects;
use quarry_core::{Error, Result};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Magic of manifest versions.
pub const MANIFEST_MAGIC: [u8; 8] = *b"QRYMANIF";
/// Magic of log batches.
pub const WAL_MAGIC: [u8; 8] = *b"QRYWALB\0";
/// Magic of leases.
pub const LEASE_MAGIC: [u8; 8] = *b"QRYLEASE";
/// Version of the object framing.
pub const OBJECT_VERSION: u32 = 1;
const HEADER: usize = 32;

/// Frames `body` as an object of kind `magic`.
pub fn encode_object(magic: [u8; 8], body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + body.len());
    out.extend_from_slice(&magic);
    out.extend_from_slice(&OBJECT_VERSION.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    out.extend_from_slice(&crate::checksum(body).to_le_bytes());
    let crc = crate::checksum(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(body);
    out
}

/// The body of object `key` framed as kind `magic`, after checking the header and checksums.
pub fn decode_object<'a>(magic: [u8; 8], key: &str, bytes: &'a [u8]) -> Result<&'a [u8]> {
    let bad = |what: String| Error::corrupt(key, "object header", what);
    if bytes.len() < HEADER {
        return Err(bad(format!("{} bytes, shorter than the {HEADER}-byte header", bytes.len())));
    }
    let u32_at = |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    if bytes[..8] != magic {
        return Err(bad(format!("magic {:?}, expected {:?}", &bytes[..8], String::from_utf8_lossy(&magic))));
    }
    if crate::checksum(&bytes[..28]) != u32_at(28) {
        return Err(bad("header checksum mismatch".into()));
    }
    if u32_at(8) != OBJECT_VERSION {
        return Err(bad(format!("version {}, this build reads {OBJECT_VERSION}", u32_at(8))));
    }
    let mut len = [0u8; 8];
    len.copy_from_slice(&bytes[16..24]);
    let len = u64::from_le_bytes(len);
    let body = &bytes[HEADER..];
    if body.len() as u64 != len {
        return Err(bad(format!("{} body bytes, the header says {len}", body.len())));
    }
    if crate::checksum(body) != u32_at(24) {
        return Err(Error::corrupt(key, "object body", "checksum mismatch"));
    }
    Ok(body)
}

fn numbered(key: &str, dir: &str) -> Option<u64> {
    key.strip_prefix(dir).filter(|n| n.len() == 20 && n.bytes().all(|b| b.is_ascii_digit()))?.parse().ok()
}

/// The outcome of a commit attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Commit {
    /// This writer created the version.
    Won,
    /// Another writer created it first.
    Lost,
}

/// How [`ManifestChain::commit_next`] makes the next body from the newest version.
pub type Update<'a> = dyn FnMut(Option<(u64, &[u8])>) -> Result<Vec<u8>> + 'a;

/// The manifest versions of one collection (see the module docs).
#[derive(Debug, Clone)]
pub struct ManifestChain {
    objects: Arc<dyn Objects>,
    dir: String,
}

impl ManifestChain {
    /// The chain under `prefix` (empty, or ending in `/`) of `objects`.
    pub fn new(objects: Arc<dyn Objects>, prefix: &str) -> ManifestChain {
        ManifestChain { objects, dir: format!("{prefix}manifest/") }
    }

    fn key(&self, n: u64) -> String {
        format!("{}{n:020}", self.dir)
    }

    /// Every version present, ascending.
    pub fn versions(&self) -> Result<Vec<u64>> {
        let mut v: Vec<u64> =
            self.objects.list(&self.dir)?.iter().filter_map(|k| numbered(k, &self.dir)).collect();
        v.sort_unstable();
        Ok(v)
    }

    /// Version `n`'s body; an error if it is missing or damaged.
    pub fn read(&self, n: u64) -> Result<Vec<u8>> {
        let key = self.key(n);
        let bytes = self.objects.get(&key)?.ok_or_else(|| {
            Error::NotFound(format!("manifest version {n} ({key} in {})", self.objects.location()))
        })?;
        Ok(decode_object(MANIFEST_MAGIC, &key, &bytes)?.to_vec())
    }

    /// The newest version and its body; none before the first commit.
    pub fn latest(&self) -> Result<Option<(u64, Vec<u8>)>> {
        match self.versions()?.last() {
            Some(&n) => Ok(Some((n, self.read(n)?))),
            None => Ok(None),
        }
    }

    /// Tries to create version `n` (≥ 1) with `body`.
    pub fn commit(&self, n: u64, body: &[u8]) -> Result<Commit> {
        if n == 0 {
            return Err(Error::InvalidArgument("manifest versions start at 1".into()));
        }
        let won = self.objects.put_if_absent(&self.key(n), &encode_object(MANIFEST_MAGIC, body))?;
        Ok(if won { Commit::Won } else { Commit::Lost })
    }

    /// Commits the next version: `update` gets the newest version (none before the first) and
    /// returns the new body; a lost race re-reads and calls `update` again, up to `tries` times,
    /// then fails with a conflict. Returns the version written.
    pub fn commit_next(&self, tries: usize, update: &mut Update<'_>) -> Result<u64> {
        for _ in 0..tries.max(1) {
            let latest = self.latest()?;
            let n = latest.as_ref().map_or(1, |(n, _)| n + 1);
            let body = update(latest.as_ref().map(|(n, b)| (*n, b.as_slice())))?;
            if self.commit(n, &body)? == Commit::Won {
                return Ok(n);
            }
        }
        Err(Error::Conflict(format!(
            "another writer committed to {}{} {} times in a row: giving up",
            self.objects.location(),
            self.dir,
            tries.max(1)
        )))
    }

    /// Removes every version older than the newest `keep` (at least 1 is kept); returns those
    /// removed. Objects a removed version alone names are the caller's to collect.
    pub fn collect_garbage(&self, keep: usize) -> Result<Vec<u64>> {
        let v = self.versions()?;
        let cut = v.len().saturating_sub(keep.max(1));
        for n in &v[..cut] {
            self.objects.delete(&self.key(*n))?;
        }
        Ok(v[..cut].to_vec())
    }
}

/// The write-ahead log as one object per group commit (see the module docs).
#[derive(Debug, Clone)]
pub struct LogObjects {
    objects: Arc<dyn Objects>,
    dir: String,
}

impl LogObjects {
    /// The log under `prefix` (empty, or ending in `/`) of `objects`.
    pub fn new(objects: Arc<dyn Objects>, prefix: &str) -> LogObjects {
        LogObjects { objects, dir: format!("{prefix}wal/") }
    }

    /// Writes `records` as the batch whose first record has sequence number `first`: true once it
    /// is durable (the writes are then acknowledged), false if a batch with that first sequence
    /// exists (another writer took those numbers: this writer must stop).
    pub fn append(&self, first: u64, records: &[Vec<u8>]) -> Result<bool> {
        if records.is_empty() {
            return Err(Error::InvalidArgument("a log batch needs at least one record".into()));
        }
        let mut body = Vec::new();
        body.extend_from_slice(&(records.len() as u32).to_le_bytes());
        for r in records {
            let len = u32::try_from(r.len())
                .map_err(|_| Error::InvalidArgument(format!("a log record of {} bytes", r.len())))?;
            body.extend_from_slice(&len.to_le_bytes());
            body.extend_from_slice(r);
        }
        self.objects.put_if_absent(&format!("{}{first:020}", self.dir), &encode_object(WAL_MAGIC, &body))
    }

    /// First sequence numbers of the batches present, ascending.
    pub fn batches(&self) -> Result<Vec<u64>> {
        let mut v: Vec<u64> =
            self.objects.list(&self.dir)?.iter().filter_map(|k| numbered(k, &self.dir)).collect();
        v.sort_unstable();
        Ok(v)
    }

    /// Every record with sequence number ≥ `from`, in order, as `(seq, bytes)`; an error if a
    /// batch is damaged or the batches leave a gap or overlap.
    pub fn read_from(&self, from: u64) -> Result<Vec<(u64, Vec<u8>)>> {
        let mut out = Vec::new();
        let mut next: Option<u64> = None;
        for first in self.batches()? {
            let key = format!("{}{first:020}", self.dir);
            if let Some(n) = next {
                if first != n {
                    return Err(Error::corrupt(
                        &key,
                        "log",
                        format!("batch starts at {first}, expected {n}"),
                    ));
                }
            }
            let bytes = self.objects.get(&key)?.ok_or_else(|| {
                Error::corrupt(&key, "log", "the batch was listed but is gone (removed concurrently?)")
            })?;
            let body = decode_object(WAL_MAGIC, &key, &bytes)?;
            let records = split_records(&key, body)?;
            next = Some(first + records.len() as u64);
            for (i, r) in records.into_iter().enumerate() {
                let seq = first + i as u64;
                if seq >= from {
                    out.push((seq, r));
                }
            }
        }
        Ok(out)
    }

    /// Removes the batches whose records all precede `seq` (after a checkpoint covers them).
    pub fn remove_before(&self, seq: u64) -> Result<usize> {
        let b = self.batches()?;
        let mut removed = 0;
        for w in b.windows(2) {
            if w[1] <= seq {
                self.objects.delete(&format!("{}{:020}", self.dir, w[0]))?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

fn split_records(key: &str, body: &[u8]) -> Result<Vec<Vec<u8>>> {
    let bad = |m: &str| Error::corrupt(key, "log batch", m.to_string());
    let n = crate::le::u32_at(body, 0).ok_or_else(|| bad("truncated count"))? as usize;
    let mut at = 4;
    let mut out = Vec::with_capacity(n.min(body.len() / 4));
    for _ in 0..n {
        let len = crate::le::u32_at(body, at).ok_or_else(|| bad("truncated record length"))? as usize;
        at += 4;
        let r = body.get(at..at + len).ok_or_else(|| bad("truncated record"))?;
        out.push(r.to_vec());
        at += len;
    }
    if at != body.len() {
        return Err(bad("bytes after the last record"));
    }
    Ok(out)
}

/// The single-writer lease of a collection (see the module docs).
#[derive(Debug)]
pub struct Lease {
    objects: Arc<dyn Objects>,
    dir: String,
    holder: String,
    ttl: Duration,
    epoch: u64,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

impl Lease {
    /// Takes the lease under `prefix` for `holder` for `ttl`: refused with a conflict naming the
    /// current holder while another holder's lease is live or another writer takes it first.
    pub fn acquire(objects: Arc<dyn Objects>, prefix: &str, holder: &str, ttl: Duration) -> Result<Lease> {
        let dir = format!("{prefix}lease/");
        let epochs: Vec<u64> = objects.list(&dir)?.iter().filter_map(|k| numbered(k, &dir)).collect();
        let last = epochs.iter().copied().max().unwrap_or(0);
        if last > 0 {
            let key = format!("{dir}{last:020}");
            if let Some(bytes) = objects.get(&key)? {
                let (who, until) = parse_lease(&key, decode_object(LEASE_MAGIC, &key, &bytes)?)?;
                if who != holder && until > now_ms() {
                    return Err(Error::Conflict(format!(
                        "{}: the writer lease is held by {who:?} for {} ms more; one writer at a time (the others serve reads)",
                        objects.location(),
                        until - now_ms()
                    )));
                }
            }
        }
        let mut lease = Lease { objects, dir, holder: holder.to_string(), ttl, epoch: last };
        lease.renew()?;
        Ok(lease)
    }

    /// Extends the lease by its time to live (a new epoch, created only if absent); a conflict
    /// if another writer took it meanwhile.
    pub fn renew(&mut self) -> Result<()> {
        let next = self.epoch + 1;
        let body = serde_like(&self.holder, now_ms() + self.ttl.as_millis() as u64);
        if !self
            .objects
            .put_if_absent(&format!("{}{next:020}", self.dir), &encode_object(LEASE_MAGIC, &body))?
        {
            return Err(Error::Conflict(format!(
                "{}: another writer took the lease (epoch {next}); stop writing",
                self.objects.location()
            )));
        }
        if self.epoch > 0 {
            // Older epochs are history: keep the previous one for readers in flight.
            let _ = self.objects.delete(&format!("{}{:020}", self.dir, self.epoch.saturating_sub(1)));
        }
        self.epoch = next;
        Ok(())
    }

    /// Gives the lease up (a clean shutdown): the next epoch records it as expired, so another
    /// writer may take it at once.
    pub fn release(self) -> Result<()> {
        let next = self.epoch + 1;
        let body = serde_like(&self.holder, 0);
        self.objects.put_if_absent(&format!("{}{next:020}", self.dir), &encode_object(LEASE_MAGIC, &body))?;
        Ok(())
    }

    /// The lease's epoch (increases with every renewal).
    pub fn epoch(&self) -> u64 {
        self.epoch
    }
}

/// `holder \n expiry-ms`.
fn serde_like(holder: &str, until: u64) -> Vec<u8> {
    format!("{}\n{until}", holder.replace('\n', " ")).into_bytes()
}

fn parse_lease(key: &str, body: &[u8]) -> Result<(String, u64)> {
    let text = std::str::from_utf8(body).map_err(|_| Error::corrupt(key, "lease", "not UTF-8"))?;
    let (who, until) = text.rsplit_once('\n').ok_or_else(|| Error::corrupt(key, "lease", "no expiry"))?;
    let until = until.parse().map_err(|_| Error::corrupt(key, "lease", format!("expiry {until:?}")))?;
    Ok((who.to_string(), until))
}
