//! The embedded database: a folder of collections (`<dir>/collections/<name>/`), opened like
//! SQLite. Creating a collection writes its schema and an empty log crash-safely before it is
//! returned; unknown collection names are errors that name them.
//!
//! One process at a time: opening takes an exclusive advisory lock on `<dir>/LOCK` (holding the
//! PID), kept for the life of the [`Database`] and released by the OS if the process dies. A second
//! opener, in this process or another, gets [`Error::Conflict`] naming the folder and the holder.

use crate::collection::{Collection, StoreOpener};
use crate::remote::RangeCache;
use crate::schema::CollectionSchema;
#[cfg(feature = "text")]
use crate::text::{TextCollection, TextSpec};
use quarry_core::{Error, Result};
#[cfg(feature = "text")]
use quarry_text::SentenceEncoder;
use std::collections::BTreeMap;
#[cfg(feature = "text")]
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

/// A read-only node's object store and what was last read of each collection.
/// A read-only node's object store, what was last read of each collection, and the block cache
/// that range-read files go through.
type Mirror = (
    Arc<dyn quarry_store::objects::Objects>,
    Mutex<BTreeMap<String, crate::remote::Signature>>,
    Arc<quarry_store::cache::CachedObjects>,
);

/// An open database.
pub struct Database {
    dir: PathBuf,
    collections: RwLock<BTreeMap<String, Arc<Collection>>>,
    opener: Option<StoreOpener>,
    /// Text views opened so far (their BM25 index is built once).
    #[cfg(feature = "text")]
    texts: Mutex<HashMap<String, Arc<TextCollection>>>,
    /// Sentence models loaded so far, by folder.
    #[cfg(feature = "text")]
    models: Mutex<HashMap<PathBuf, Arc<SentenceEncoder>>>,
    /// Cross-encoder re-rankers loaded so far, by folder.
    #[cfg(feature = "text")]
    rerankers: Mutex<HashMap<PathBuf, Arc<quarry_text::CrossEncoder>>>,
    /// A writer node's object store: every collection writes through to it.
    replica_to: Option<Arc<dyn quarry_store::objects::Objects>>,
    /// A read-only node's object store, and what was last read of each collection.
    mirror_of: Option<Mirror>,
    /// A read-only node: collections it could not read, with the reason.
    mirror_errors: Mutex<BTreeMap<String, String>>,
    /// The locked `LOCK` file; declared last, so it is released after the collections close.
    _lock: std::fs::File,
}

/// Prefix of a collection folder being created or restored (removed on open if a crash left it).
const RESTORING: &str = ".creating-";

/// The lock file in a database folder (see the module doc).
pub const LOCK_FILE: &str = "LOCK";

/// Takes the exclusive lock of database folder `dir` and writes this process's PID into it.
fn lock_folder(dir: &Path) -> Result<std::fs::File> {
    use std::io::{Read, Seek, Write};
    let path = dir.join(LOCK_FILE);
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| Error::io("opening", &path, e))?;
    match f.try_lock() {
        Ok(()) => {
            let pid = std::process::id();
            f.set_len(0)
                .and_then(|()| f.rewind())
                .and_then(|()| f.write_all(format!("{pid}\n").as_bytes()))
                .map_err(|e| Error::io("writing", &path, e))?;
            Ok(f)
        }
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut held = String::new();
            let _ = f.read_to_string(&mut held);
            let holder = match held.trim().parse::<u32>() {
                Ok(pid) if pid == std::process::id() => format!("PID {pid}, this process"),
                Ok(pid) => format!("PID {pid}"),
                Err(_) => "a process whose PID is not recorded".to_string(),
            };
            Err(Error::Conflict(format!(
                "the database folder {} is in use by another open database ({holder}): one process \
                 opens a database folder at a time; stop that process, or send it the work (e.g. \
                 through its server)",
                dir.display()
            )))
        }
        Err(std::fs::TryLockError::Error(e)) => Err(Error::io("locking", &path, e)),
    }
}

impl Drop for Database {
    /// Closing waits for background seals to finish (their segments are then on disk).
    fn drop(&mut self) {
        #[cfg(feature = "text")]
        for t in self.texts.lock().unwrap_or_else(PoisonError::into_inner).values() {
            t.wait_for_sealing();
        }
        for c in self.collections.read().unwrap_or_else(PoisonError::into_inner).values() {
            c.wait_for_sealing();
        }
    }
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("dir", &self.dir)
            .field("collections", &self.collection_names())
            .finish()
    }
}

fn check_name(name: &str) -> Result<()> {
    check_name_of("collection", name)
}

/// Checks `name` (of a `what`: a collection, a group) is 1-64 ASCII letters, digits, '_' or '-'
/// and does not start with '-': it is used as a file or folder name.
pub(crate) fn check_name_of(what: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && !name.starts_with('-');
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "{what} name {name:?}: use 1-64 ASCII letters, digits, '_' or '-' (not leading)"
        )))
    }
}

impl Database {
    /// Opens (creating if needed) the database in `dir`, opening every collection in it.
    pub fn open(dir: &Path) -> Result<Database> {
        Database::open_with(dir, None)
    }

    /// Opens the existing database in `dir`: an error naming the folder, and nothing created,
    /// if there is none (what read-only commands use).
    pub fn open_existing(dir: &Path) -> Result<Database> {
        if !dir.join("collections").is_dir() {
            return Err(Error::NotFound(format!(
                "no Quarry database in {} (it has no collections/ folder)",
                dir.display()
            )));
        }
        Database::open_with(dir, None)
    }

    /// [`Database::open`] with collection logs opened through `opener` (fault injection).
    pub fn open_with(dir: &Path, opener: Option<StoreOpener>) -> Result<Database> {
        let root = dir.join("collections");
        if !root.is_dir() {
            std::fs::create_dir_all(&root).map_err(|e| Error::io("creating", &root, e))?;
            quarry_store::sync_folder(dir)?;
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                quarry_store::sync_folder(parent)?;
            }
        }
        let lock = lock_folder(dir)?;
        let mut collections = BTreeMap::new();
        for entry in std::fs::read_dir(&root).map_err(|e| Error::io("listing", &root, e))? {
            let entry = entry.map_err(|e| Error::io("listing", &root, e))?;
            let name = entry.file_name().to_string_lossy().to_string();
            if name.starts_with(".deleted-") || name.starts_with(RESTORING) {
                // A deletion or a restore cut short by a crash: the collection was already gone,
                // or never acknowledged.
                let _ = std::fs::remove_dir_all(entry.path());
                continue;
            }
            if check_name(&name).is_err() || !entry.path().join("schema.json").exists() {
                continue;
            }
            let c = Collection::open(&name, &entry.path(), opener.as_ref())?;
            collections.insert(name, c);
        }
        Ok(Database {
            dir: dir.to_path_buf(),
            collections: RwLock::new(collections),
            opener,
            #[cfg(feature = "text")]
            texts: Mutex::new(HashMap::new()),
            #[cfg(feature = "text")]
            models: Mutex::new(HashMap::new()),
            #[cfg(feature = "text")]
            rerankers: Mutex::new(HashMap::new()),
            replica_to: None,
            mirror_of: None,
            mirror_errors: Mutex::new(BTreeMap::new()),
            _lock: lock,
        })
    }

    /// Opens the database in `dir` as a writer node of `objects`: every collection (those in
    /// `dir` now and those created later) writes through to the store, and a write is
    /// acknowledged only once it is stored there (`crate::remote`). Opening sends the store what
    /// it lacks; a store ahead of this node is a conflict.
    pub fn open_replicated(dir: &Path, objects: Arc<dyn quarry_store::objects::Objects>) -> Result<Database> {
        // A collection the store has and this node lacks (a new or replaced writer node) is
        // rebuilt from the store first.
        let root = dir.join("collections");
        std::fs::create_dir_all(&root).map_err(|e| Error::io("creating", &root, e))?;
        for name in crate::remote::remote_collections(objects.as_ref())? {
            if !root.join(&name).join("schema.json").exists() {
                let staging = root.join(format!("{RESTORING}{name}"));
                let _ = std::fs::remove_dir_all(&staging);
                crate::remote::materialize(&objects, &name, &staging, None)?;
                quarry_store::sync_folder(&staging)?;
                std::fs::rename(&staging, root.join(&name))
                    .map_err(|e| Error::io("renaming", &staging, e))?;
                quarry_store::sync_folder(&root)?;
            }
        }
        let mut db = Database::open_with(dir, None)?;
        for c in db.collections.read().unwrap_or_else(PoisonError::into_inner).values() {
            c.replicate_to(objects.clone())?;
        }
        db.replica_to = Some(objects);
        Ok(db)
    }

    /// Opens a read-only node of `objects` with the default block cache ([`RangeCache`]): see
    /// [`Database::open_mirror_with`].
    pub fn open_mirror(
        objects: Arc<dyn quarry_store::objects::Objects>,
        cache_dir: &Path,
    ) -> Result<Database> {
        Database::open_mirror_with(objects, cache_dir, RangeCache::default())
    }

    /// Opens a read-only node of `objects`: every collection stored there is rebuilt in
    /// `cache_dir` (which may start empty, and may be deleted between runs) and served from it;
    /// the files indexes read a range at a time (SPANN posting lists and rows) stay in the store
    /// and are read through a block cache in `cache_dir/blocks` of `cache.bytes`. Writes are
    /// refused. [`Database::refresh`] follows later writes.
    pub fn open_mirror_with(
        objects: Arc<dyn quarry_store::objects::Objects>,
        cache_dir: &Path,
        cache: RangeCache,
    ) -> Result<Database> {
        let root = cache_dir.join("collections");
        std::fs::create_dir_all(&root).map_err(|e| Error::io("creating", &root, e))?;
        let blocks = Arc::new(quarry_store::cache::CachedObjects::open(
            objects.clone(),
            &cache_dir.join("blocks"),
            cache.bytes,
            cache.block,
            cache.in_flight,
        )?);
        quarry_store::source::detach_under(&root);
        let mut seen = BTreeMap::new();
        let names = crate::remote::remote_collections(objects.as_ref())?;
        // Folders of collections the store no longer has.
        if let Ok(rd) = std::fs::read_dir(&root) {
            for e in rd.flatten() {
                let n = e.file_name().to_string_lossy().to_string();
                if !names.contains(&n) {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        let mut errors = BTreeMap::new();
        for name in &names {
            // A collection that cannot be read is reported and left out; the others are served.
            match crate::remote::materialize(&objects, name, &root.join(name), Some(&blocks)) {
                Ok(sig) => {
                    seen.insert(name.clone(), sig);
                }
                Err(e) => {
                    let _ = std::fs::remove_dir_all(root.join(name));
                    errors.insert(name.clone(), e.to_string());
                }
            }
        }
        let mut db = Database::open_with(cache_dir, None)?;
        *db.mirror_errors.lock().unwrap_or_else(PoisonError::into_inner) = errors;
        for c in db.collections.read().unwrap_or_else(PoisonError::into_inner).values() {
            c.read_only.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        db.mirror_of = Some((objects, Mutex::new(seen), blocks));
        Ok(db)
    }

    /// A read-only node's block cache (traffic counters, bytes held); `None` on other nodes.
    pub fn range_cache(&self) -> Option<&Arc<quarry_store::cache::CachedObjects>> {
        self.mirror_of.as_ref().map(|m| &m.2)
    }

    /// A read-only node: rebuilds every collection whose newest manifest version or log changed
    /// in the store (and adds new ones, drops deleted ones); returns how many changed. Queries
    /// keep using the previous copy until the new one is open. Nothing to do on other nodes.
    pub fn refresh(&self) -> Result<usize> {
        let Some((objects, seen, blocks)) = &self.mirror_of else { return Ok(0) };
        let names = crate::remote::remote_collections(objects.as_ref())?;
        let mut changed = 0;
        let root = self.dir.join("collections");
        for name in &names {
            let sig = crate::remote::signature(objects, name)?;
            if seen.lock().unwrap_or_else(PoisonError::into_inner).get(name) == Some(&sig) {
                continue;
            }
            // A collection that cannot be read now keeps its previous copy; the error is kept.
            let opened = crate::remote::materialize(objects, name, &root.join(name), Some(blocks))
                .and_then(|sig| Collection::open(name, &root.join(name), None).map(|c| (sig, c)));
            let (sig, c) = match opened {
                Ok(x) => x,
                Err(e) => {
                    self.mirror_errors
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .insert(name.clone(), e.to_string());
                    continue;
                }
            };
            self.mirror_errors.lock().unwrap_or_else(PoisonError::into_inner).remove(name);
            c.read_only.store(true, std::sync::atomic::Ordering::Relaxed);
            self.collections.write().unwrap_or_else(PoisonError::into_inner).insert(name.clone(), c);
            #[cfg(feature = "text")]
            self.texts.lock().unwrap_or_else(PoisonError::into_inner).remove(name);
            seen.lock().unwrap_or_else(PoisonError::into_inner).insert(name.clone(), sig);
            changed += 1;
        }
        let gone: Vec<String> = self.collection_names().into_iter().filter(|n| !names.contains(n)).collect();
        for name in gone {
            self.collections.write().unwrap_or_else(PoisonError::into_inner).remove(&name);
            #[cfg(feature = "text")]
            self.texts.lock().unwrap_or_else(PoisonError::into_inner).remove(&name);
            seen.lock().unwrap_or_else(PoisonError::into_inner).remove(&name);
            changed += 1;
        }
        Ok(changed)
    }

    /// A read-only node: the collections it could not read from the store, with the reason.
    pub fn mirror_errors(&self) -> BTreeMap<String, String> {
        self.mirror_errors.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Whether this is a read-only node of an object store.
    pub fn is_read_only(&self) -> bool {
        self.mirror_of.is_some()
    }

    fn check_writable(&self) -> Result<()> {
        if self.mirror_of.is_some() {
            return Err(Error::InvalidArgument(
                "this node serves object storage read-only: create, restore and delete collections on the writer node"
                    .into(),
            ));
        }
        Ok(())
    }

    /// The database folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Creates collection `name` with `schema`; an error if it exists or the schema is invalid.
    /// The collection's folder is written in full under a hidden name, then renamed into place and
    /// the parent folder fsynced: after a crash the collection is either whole or absent.
    pub fn create_collection(&self, name: &str, schema: CollectionSchema) -> Result<Arc<Collection>> {
        self.check_writable()?;
        check_name(name)?;
        schema.check()?;
        self.install(name, |staging| schema.save(staging))
    }

    /// Restores a snapshot file ([`Collection::snapshot`]) as a new collection `name` (an error
    /// if it exists or the file is damaged); its log is replayed like any collection's, and
    /// every record is checked against the schema first: a snapshot that does not pass leaves
    /// the database as it was.
    pub fn restore_snapshot(&self, path: &Path, name: &str) -> Result<Arc<Collection>> {
        self.check_writable()?;
        check_name(name)?;
        let (schema, log) = crate::collection::read_snapshot(path)?;
        self.install(name, |staging| {
            quarry_store::write_atomic(&staging.join(crate::collection::WAL_FILE), |w| {
                std::io::Write::write_all(w, &log)
            })?;
            schema.save(staging)?;
            // Replaying it once here checks every record before the collection becomes visible.
            Collection::open(name, staging, None).map(drop).map_err(|e| match e {
                Error::Corrupt { location, message, .. } => Error::corrupt(path, location, message),
                e => e,
            })
        })
    }

    /// Creates collection folder `name` by filling a hidden staging folder with `fill`, renaming
    /// it into place and fsyncing the parent, then opens it. On any failure the staging folder
    /// is removed and nothing changes.
    fn install(&self, name: &str, fill: impl FnOnce(&Path) -> Result<()>) -> Result<Arc<Collection>> {
        let mut map = self.collections.write().unwrap_or_else(PoisonError::into_inner);
        if map.contains_key(name) {
            return Err(Error::Conflict(format!("collection {name:?} already exists")));
        }
        let root = self.dir.join("collections");
        let dir = root.join(name);
        let staging = root.join(format!("{RESTORING}{name}"));
        let _ = std::fs::remove_dir_all(&staging);
        let made = std::fs::create_dir_all(&staging)
            .map_err(|e| Error::io("creating", &staging, e))
            .and_then(|()| fill(&staging))
            .and_then(|()| quarry_store::sync_folder(&staging))
            .and_then(|()| std::fs::rename(&staging, &dir).map_err(|e| Error::io("renaming", &staging, e)))
            .and_then(|()| quarry_store::sync_folder(&root));
        if let Err(e) = made {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(e);
        }
        let c = Collection::open(name, &dir, self.opener.as_ref())?;
        if let Some(objects) = &self.replica_to {
            c.replicate_to(objects.clone())?;
        }
        map.insert(name.to_string(), c.clone());
        Ok(c)
    }

    /// The open collection `name`.
    pub fn collection(&self, name: &str) -> Result<Arc<Collection>> {
        self.collections
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .cloned()
            .ok_or_else(|| Error::NotFound(format!("unknown collection {name:?}")))
    }

    /// Deletes collection `name` and its files; `false` if there is no such collection. The
    /// folder is first renamed to a hidden name (one atomic step: after a crash the collection is
    /// either whole or gone), then removed; leftovers of a crash are removed on the next open.
    /// Handles to the collection that callers still hold keep working in memory but write nowhere
    /// durable.
    pub fn delete_collection(&self, name: &str) -> Result<bool> {
        self.check_writable()?;
        let mut map = self.collections.write().unwrap_or_else(PoisonError::into_inner);
        let Some(c) = map.remove(name) else { return Ok(false) };
        #[cfg(feature = "text")]
        if let Some(t) = self.texts.lock().unwrap_or_else(PoisonError::into_inner).remove(name) {
            t.wait_for_sealing();
        }
        c.wait_for_sealing();
        let root = self.dir.join("collections");
        let stamp =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let gone = root.join(format!(".deleted-{name}-{stamp}"));
        std::fs::rename(root.join(name), &gone).map_err(|e| Error::io("renaming", root.join(name), e))?;
        quarry_store::sync_folder(&root)?;
        drop(map);
        std::fs::remove_dir_all(&gone).map_err(|e| Error::io("removing", &gone, e))?;
        if let Some(objects) = &self.replica_to {
            // The schema first: readers stop listing the collection, then its other objects go.
            let prefix = crate::remote::prefix(name);
            objects.delete(&format!("{prefix}schema.json"))?;
            for key in objects.list(&prefix)? {
                objects.delete(&key)?;
            }
        }
        Ok(true)
    }

    /// The sentence model `spec` names (feature `text`) (a folder or a name, see `quarry_text::locate`), loaded
    /// once per database.
    #[cfg(feature = "text")]
    pub fn model(&self, spec: &str) -> Result<Arc<SentenceEncoder>> {
        let dir = quarry_text::locate::model_dir(spec)?;
        let mut models = self.models.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(m) = models.get(&dir) {
            return Ok(m.clone());
        }
        let m = Arc::new(SentenceEncoder::load(&dir)?);
        models.insert(dir, m.clone());
        Ok(m)
    }

    /// The cross-encoder re-ranker `spec` names (feature `text`; a folder or a name), loaded once
    /// per database.
    #[cfg(feature = "text")]
    pub fn reranker(&self, spec: &str) -> Result<Arc<quarry_text::CrossEncoder>> {
        let dir = quarry_text::locate::model_dir(spec)?;
        let mut models = self.rerankers.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(m) = models.get(&dir) {
            return Ok(m.clone());
        }
        let m = Arc::new(quarry_text::CrossEncoder::load(&dir)?);
        models.insert(dir, m.clone());
        Ok(m)
    }

    /// Creates text collection `name`: one cosine vector field sized by `text`'s model (none
    /// without a model) indexed with `index` (`hnsw`, `hnsw+sq8`, `flat`), payloads up to 16 MiB
    /// (they hold the texts), and `text`'s settings.
    #[cfg(feature = "text")]
    pub fn create_text_collection(
        &self,
        name: &str,
        text: TextSpec,
        index: &str,
    ) -> Result<Arc<TextCollection>> {
        let mut schema = CollectionSchema::single(1, quarry_core::Metric::Cosine, index);
        match &text.model {
            Some(m) => schema.vectors[0].dim = self.model(m)?.dim(),
            None => schema.vectors.clear(),
        }
        schema.max_payload_bytes = 16 << 20;
        schema.text = Some(text);
        self.create_collection(name, schema)?;
        self.text_collection(name)
    }

    /// The text view of collection `name` (an error if it has no text settings); opened once.
    #[cfg(feature = "text")]
    pub fn text_collection(&self, name: &str) -> Result<Arc<TextCollection>> {
        let mut texts = self.texts.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(t) = texts.get(name) {
            return Ok(t.clone());
        }
        let docs = self.collection(name)?;
        let encoder = match docs.schema().text.as_ref().and_then(|t| t.model.as_deref()) {
            Some(m) => Some(self.model(m)?),
            None => None,
        };
        let t = Arc::new(TextCollection::open(docs, encoder)?);
        texts.insert(name.to_string(), t.clone());
        Ok(t)
    }

    /// Names of the collections.
    pub fn collection_names(&self) -> Vec<String> {
        self.collections.read().unwrap_or_else(PoisonError::into_inner).keys().cloned().collect()
    }
}
