//! Collections on object storage (`quarry_store::objects`): a writer node writes every
//! collection through to the store, and read-only nodes rebuild the collections from the store
//! alone.
//!
//! Layout under `collections/<name>/` (docs/FORMAT.md, "Objects on object storage"):
//! `schema.json`; `segments/<id>/…` (a sealed segment's files, uploaded once); `manifest/<n>` (the
//! bytes of `manifest.qman` at generation `n`, created with put-if-absent after every file it
//! names is uploaded); `wal/<first seq>` (one object per group commit).
//!
//! **Writer** ([`Replica`]): a group commit is acknowledged only after its batch object exists,
//! so an acknowledged write survives the loss of the node. A seal uploads the new segment's
//! files, then commits the manifest version, then removes log batches that the *previous*
//! version already covered (a reader still on that version finds every record it needs), then
//! versions older than the newest [`RETAINED_VERSIONS`] and the segments no retained version
//! names. If
//! object storage fails, the collection refuses further writes until the database is reopened;
//! reopening sends the log records the store lacks.
//!
//! **Readers** ([`materialize`]): the schema, the newest manifest version, its segments' files
//! (kept when already present: they never change) and the log records after its checkpoint are
//! written into a local folder, which then opens as an ordinary collection. The files an index
//! reads a range at a time (SPANN's posting lists and rows) are not downloaded: they are read by
//! byte range through the node's block cache (`quarry_store::cache`), so a node serves a
//! collection many times larger than its disk cache. Every file is
//! validated when opened, as on local disk. `Database::refresh` repeats this when the newest
//! version or the log changed.

use crate::manifest::{Manifest, MANIFEST_FILE};
use quarry_core::{Error, Result};
use quarry_store::cache::CachedObjects;
use quarry_store::commit::{Commit, LogObjects, ManifestChain};
use quarry_store::objects::Objects;
use quarry_store::source::ObjectSource;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

/// Manifest versions kept in the store (and the segments they name): a reader still on the
/// version before the newest finds every object it needs.
pub const RETAINED_VERSIONS: usize = 2;

/// A read-only node's block cache of byte ranges (`quarry serve --cache-size`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RangeCache {
    /// Most bytes the cache folder holds (least recently used blocks are evicted).
    pub bytes: u64,
    /// Block size: the unit fetched and cached.
    pub block: u64,
    /// Most requests in flight for one read (adjacent missing blocks are one request).
    pub in_flight: usize,
}

impl Default for RangeCache {
    fn default() -> Self {
        RangeCache { bytes: 2 << 30, block: 16 << 10, in_flight: 32 }
    }
}

/// The object-key prefix of collection `name`.
pub fn prefix(name: &str) -> String {
    format!("collections/{name}/")
}

/// What a reader last materialized of a collection: its newest manifest version and log batches.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Signature {
    /// Newest manifest version (0: none yet).
    pub version: u64,
    /// First sequence numbers of the log batches.
    pub batches: Vec<u64>,
}

/// A collection's write-through to object storage (see the module docs).
#[derive(Debug)]
pub(crate) struct Replica {
    objects: Arc<dyn Objects>,
    prefix: String,
    chain: ManifestChain,
    log: LogObjects,
    /// Why writes stopped, after a failed upload.
    failed: Mutex<Option<String>>,
    /// Checkpoint of the manifest version committed before the newest one.
    previous_checkpoint: Mutex<u64>,
}

/// The files under `dir`, recursively, sorted (hidden ones left out).
pub(crate) fn files_under(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).map_err(|e| Error::io("listing", &d, e))? {
            let e = e.map_err(|e| Error::io("listing", &d, e))?;
            let kind = e.file_type().map_err(|err| Error::io("listing", e.path(), err))?;
            if kind.is_dir() {
                stack.push(e.path());
            } else if !e.file_name().to_string_lossy().starts_with('.') {
                out.push(e.path());
            }
        }
    }
    out.sort();
    Ok(out)
}

impl Replica {
    /// The write-through of collection `name` to `objects`.
    pub(crate) fn new(objects: Arc<dyn Objects>, name: &str) -> Replica {
        let prefix = prefix(name);
        Replica {
            chain: ManifestChain::new(objects.clone(), &prefix),
            log: LogObjects::new(objects.clone(), &prefix),
            objects,
            prefix,
            failed: Mutex::new(None),
            previous_checkpoint: Mutex::new(0),
        }
    }

    fn check(&self) -> Result<()> {
        match &*self.failed.lock().unwrap_or_else(PoisonError::into_inner) {
            Some(why) => Err(Error::Poisoned(format!(
                "writes to {} stopped after object storage failed ({why}); reopen the database to resend what it lacks",
                self.objects.location()
            ))),
            None => Ok(()),
        }
    }

    fn fail<T>(&self, r: Result<T>) -> Result<T> {
        if let Err(e) = &r {
            *self.failed.lock().unwrap_or_else(PoisonError::into_inner) = Some(e.to_string());
        }
        r
    }

    /// Uploads the collection's `schema.json` from `dir` (at creation and after schema changes).
    pub(crate) fn upload_schema(&self, dir: &Path) -> Result<()> {
        let path = dir.join("schema.json");
        let bytes = std::fs::read(&path).map_err(|e| Error::io("reading", &path, e))?;
        self.fail(self.objects.put(&format!("{}schema.json", self.prefix), &bytes))
    }

    /// Writes a group commit's records (`first`, `first + 1`, …) as one batch object; the
    /// writes may be acknowledged once this returns.
    pub(crate) fn log_batch(&self, first: u64, records: &[Vec<u8>]) -> Result<()> {
        self.check()?;
        let r = self.log.append(first, records).and_then(|made| {
            if made {
                Ok(())
            } else {
                Err(Error::Conflict(format!(
                    "another writer wrote log records from {first} to {}: one writer per collection",
                    self.objects.location()
                )))
            }
        });
        self.fail(r)
    }

    /// After a seal wrote `manifest` into `dir`: uploads the segment files the store lacks, then
    /// commits the manifest version, then removes the log batches the previous version covered.
    pub(crate) fn checkpoint(&self, dir: &Path, manifest: &Manifest) -> Result<()> {
        self.check()?;
        let r = self.checkpoint_inner(dir, manifest);
        self.fail(r)
    }

    fn checkpoint_inner(&self, dir: &Path, manifest: &Manifest) -> Result<()> {
        for s in &manifest.segments {
            let seg_prefix = format!("{}segments/{:08}/", self.prefix, s.id);
            let present = self.objects.list(&seg_prefix)?;
            let local = crate::segment_file::segment_dir(dir, s.id);
            let files = files_under(&local)?;
            // A segment counts as uploaded when every one of its files is (they are written
            // before its manifest version, and never change).
            for f in files {
                let rel =
                    f.strip_prefix(&local).map_err(|_| Error::InvalidArgument(format!("{}", f.display())))?;
                let key = format!("{seg_prefix}{}", rel.to_string_lossy());
                if present.contains(&key) {
                    continue;
                }
                let bytes = std::fs::read(&f).map_err(|e| Error::io("reading", &f, e))?;
                self.objects.put(&key, &bytes)?;
            }
        }
        let path = dir.join(MANIFEST_FILE);
        let bytes = std::fs::read(&path).map_err(|e| Error::io("reading", &path, e))?;
        match self.chain.commit(manifest.generation, &bytes)? {
            Commit::Won => {}
            Commit::Lost => {
                return Err(Error::Conflict(format!(
                    "manifest version {} of {} was written by another writer: one writer per collection",
                    manifest.generation,
                    self.objects.location()
                )))
            }
        }
        let mut prev = self.previous_checkpoint.lock().unwrap_or_else(PoisonError::into_inner);
        self.log.remove_before(*prev + 1)?;
        *prev = manifest.checkpoint_seq;
        drop(prev);
        self.collect_garbage(dir)
    }

    /// Removes manifest versions older than the newest [`RETAINED_VERSIONS`], then every
    /// segment object that none of the retained versions names.
    fn collect_garbage(&self, dir: &Path) -> Result<()> {
        let versions = self.chain.versions()?;
        let kept = &versions[versions.len().saturating_sub(RETAINED_VERSIONS)..];
        let mut named = std::collections::HashSet::new();
        let scratch = dir.join(".gc");
        for &n in kept {
            let body = self.chain.read(n)?;
            std::fs::create_dir_all(&scratch).map_err(|e| Error::io("creating", &scratch, e))?;
            quarry_store::write_atomic(&scratch.join(MANIFEST_FILE), |w| w.write_all(&body))?;
            let m = Manifest::load(&scratch)?
                .ok_or_else(|| Error::corrupt(scratch.join(MANIFEST_FILE), "manifest", "vanished"))?;
            named.extend(m.segments.iter().map(|s| s.id));
        }
        let _ = std::fs::remove_dir_all(&scratch);
        let seg_dir = format!("{}segments/", self.prefix);
        for key in self.objects.list(&seg_dir)? {
            let id = key[seg_dir.len()..].split('/').next().and_then(|d| d.parse::<u64>().ok());
            if id.is_some_and(|id| !named.contains(&id)) {
                self.objects.delete(&key)?;
            }
        }
        self.chain.collect_garbage(RETAINED_VERSIONS)?;
        Ok(())
    }

    /// Brings the store up to this node's state when the collection opens: the schema, the
    /// manifest version if the store's is older, and the log records after the store's last
    /// batch. A store ahead of this node (another writer, or a lost local disk) is a conflict.
    pub(crate) fn sync(&self, dir: &Path, manifest: &Manifest, wal: &quarry_store::Wal) -> Result<()> {
        self.upload_schema(dir)?;
        let remote = self.chain.versions()?.last().copied().unwrap_or(0);
        if remote > manifest.generation {
            return Err(Error::Conflict(format!(
                "{} holds manifest version {remote}, newer than this node's {}: another writer wrote it; serve it read-only or start from a copy of the store",
                self.objects.location(),
                manifest.generation
            )));
        }
        if remote < manifest.generation && manifest.generation > 0 {
            self.checkpoint_inner(dir, manifest)?;
        }
        *self.previous_checkpoint.lock().unwrap_or_else(PoisonError::into_inner) = manifest.checkpoint_seq;
        // The store's log ends where its last batch ends.
        let batches = self.log.batches()?;
        let remote_next = match batches.last() {
            Some(&first) => first + self.log.read_from(first)?.len() as u64,
            None => manifest.checkpoint_seq + 1,
        };
        let local_next = wal.next_seq();
        if remote_next > local_next {
            return Err(Error::Conflict(format!(
                "{} holds log records up to {} but this node only up to {}: another writer wrote them, or this node lost them",
                self.objects.location(),
                remote_next - 1,
                local_next - 1
            )));
        }
        let from = remote_next.max(manifest.checkpoint_seq + 1);
        let missing = wal.records_from(from)?;
        if let Some(&(first, _)) = missing.first() {
            if first != from {
                return Err(Error::corrupt(wal.path(), "log", format!("record {from} is missing locally")));
            }
            let payloads: Vec<Vec<u8>> = missing.into_iter().map(|(_, p)| p).collect();
            self.log_batch(first, &payloads)?;
        }
        Ok(())
    }
}

/// The collections stored in `objects` (those with a `schema.json`).
pub fn remote_collections(objects: &dyn Objects) -> Result<Vec<String>> {
    let mut names: Vec<String> = objects
        .list("collections/")?
        .iter()
        .filter_map(|k| k.strip_prefix("collections/")?.strip_suffix("/schema.json").map(str::to_string))
        .filter(|n| !n.contains('/'))
        .collect();
    names.sort();
    Ok(names)
}

/// The newest manifest version and log batches of collection `name` (two listings).
pub fn signature(objects: &Arc<dyn Objects>, name: &str) -> Result<Signature> {
    let p = prefix(name);
    Ok(Signature {
        version: ManifestChain::new(objects.clone(), &p).versions()?.last().copied().unwrap_or(0),
        batches: LogObjects::new(objects.clone(), &p).batches()?,
    })
}

/// Whether segment file `rel` (a path inside a segment) is read a range at a time, so a reader
/// with a block cache leaves it in object storage: a SPANN index's posting lists and rows.
fn read_by_range(rel: &str, keys: &[String], seg_prefix: &str) -> bool {
    use quarry_ann::spann::{META_FILE, POSTINGS_FILE, VECTORS_FILE};
    let Some((folder, file)) = rel.rsplit_once('/') else { return false };
    (file == POSTINGS_FILE || file == VECTORS_FILE)
        && keys.iter().any(|k| k.strip_prefix(seg_prefix) == Some(&format!("{folder}/{META_FILE}")))
}

/// Writes collection `name` from `objects` into folder `dir` (see the module docs) and returns
/// what it wrote. With a block cache (`ranges`), the files that indexes read a range at a time
/// (SPANN posting lists and rows) are not downloaded: they are attached
/// (`quarry_store::source`) and read by byte range through the cache.
pub fn materialize(
    objects: &Arc<dyn Objects>,
    name: &str,
    dir: &Path,
    ranges: Option<&Arc<CachedObjects>>,
) -> Result<Signature> {
    let p = prefix(name);
    let schema = objects
        .get(&format!("{p}schema.json"))?
        .ok_or_else(|| Error::NotFound(format!("collection {name:?} in {}", objects.location())))?;
    std::fs::create_dir_all(dir).map_err(|e| Error::io("creating", dir, e))?;
    quarry_store::write_atomic(&dir.join("schema.json"), |w| w.write_all(&schema))?;
    let chain = ManifestChain::new(objects.clone(), &p);
    let (version, checkpoint) = match chain.latest()? {
        Some((n, body)) => {
            quarry_store::write_atomic(&dir.join(MANIFEST_FILE), |w| w.write_all(&body))?;
            let m = Manifest::load(dir)?
                .ok_or_else(|| Error::corrupt(dir.join(MANIFEST_FILE), "manifest", "vanished"))?;
            for s in &m.segments {
                let seg_prefix = format!("{p}segments/{:08}/", s.id);
                let keys = objects.list(&seg_prefix)?;
                if keys.is_empty() {
                    return Err(Error::corrupt(
                        format!("{}/{seg_prefix}", objects.location()),
                        "segment",
                        format!(
                            "manifest version {n} names segment {} but the store has none of its files",
                            s.id
                        ),
                    ));
                }
                let local = crate::segment_file::segment_dir(dir, s.id);
                for key in &keys {
                    let rel = &key[seg_prefix.len()..];
                    let path = local.join(rel);
                    let size = objects.size(key)?;
                    if let Some(cache) = ranges.filter(|_| read_by_range(rel, &keys, &seg_prefix)) {
                        let size =
                            size.ok_or_else(|| Error::NotFound(format!("{key} in {}", objects.location())))?;
                        let _ = std::fs::remove_file(&path);
                        quarry_store::source::attach(
                            &path,
                            Arc::new(ObjectSource::new(cache.clone(), key, size)),
                        );
                        continue;
                    }
                    if path.exists() && std::fs::metadata(&path).ok().map(|m| m.len()) == size {
                        continue; // immutable: already here
                    }
                    let bytes = objects
                        .get(key)?
                        .ok_or_else(|| Error::NotFound(format!("{key} in {}", objects.location())))?;
                    if let Some(parent) = path.parent() {
                        std::fs::create_dir_all(parent).map_err(|e| Error::io("creating", parent, e))?;
                    }
                    quarry_store::write_atomic(&path, |w| w.write_all(&bytes))?;
                }
            }
            (n, m.checkpoint_seq)
        }
        None => {
            let _ = std::fs::remove_file(dir.join(MANIFEST_FILE));
            (0, 0)
        }
    };
    let log = LogObjects::new(objects.clone(), &p);
    let batches = log.batches()?;
    let records = log.read_from(checkpoint + 1)?;
    if let Some(&(first, _)) = records.first() {
        if first != checkpoint + 1 {
            return Err(Error::corrupt(
                format!("{}/{p}wal/", objects.location()),
                "log",
                format!("the log resumes at record {first} but manifest version {version} covers records up to {checkpoint} only"),
            ));
        }
    }
    let payloads: Vec<Vec<u8>> = records.into_iter().map(|(_, r)| r).collect();
    let bytes = quarry_store::wal::encode_log_from(checkpoint + 1, &payloads)?;
    quarry_store::write_atomic(&dir.join(crate::collection::WAL_FILE), |w| w.write_all(&bytes))?;
    Ok(Signature { version, batches })
}
