//! The embedded database: a folder of collections (`<dir>/collections/<name>/`), opened like
//! SQLite. Creating a collection writes its schema and an empty log crash-safely before it is
//! returned; unknown collection names are errors that name them.

use crate::collection::{Collection, StoreOpener};
use crate::schema::CollectionSchema;
use crate::text::{TextCollection, TextSpec};
use quarry_core::{Error, Result};
use quarry_text::SentenceEncoder;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

/// An open database.
pub struct Database {
    dir: PathBuf,
    collections: RwLock<BTreeMap<String, Arc<Collection>>>,
    opener: Option<StoreOpener>,
    /// Text views opened so far (their BM25 index is built once).
    texts: Mutex<HashMap<String, Arc<TextCollection>>>,
    /// Sentence models loaded so far, by folder.
    models: Mutex<HashMap<PathBuf, Arc<SentenceEncoder>>>,
}

impl Drop for Database {
    /// Closing waits for background seals to finish (their segments are then on disk).
    fn drop(&mut self) {
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
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && !name.starts_with('-');
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "collection name {name:?}: use 1-64 ASCII letters, digits, '_' or '-' (not leading)"
        )))
    }
}

impl Database {
    /// Opens (creating if needed) the database in `dir`, opening every collection in it.
    pub fn open(dir: &Path) -> Result<Database> {
        Database::open_with(dir, None)
    }

    /// [`Database::open`] with collection logs opened through `opener` (fault injection).
    pub fn open_with(dir: &Path, opener: Option<StoreOpener>) -> Result<Database> {
        let root = dir.join("collections");
        std::fs::create_dir_all(&root).map_err(|e| Error::io("creating", &root, e))?;
        let mut collections = BTreeMap::new();
        for entry in std::fs::read_dir(&root).map_err(|e| Error::io("listing", &root, e))? {
            let entry = entry.map_err(|e| Error::io("listing", &root, e))?;
            let name = entry.file_name().to_string_lossy().to_string();
            if name.starts_with(".deleted-") {
                // A deletion cut short by a crash: the collection was already gone.
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
            texts: Mutex::new(HashMap::new()),
            models: Mutex::new(HashMap::new()),
        })
    }

    /// The database folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Creates collection `name` with `schema`; an error if it exists or the schema is invalid.
    pub fn create_collection(&self, name: &str, schema: CollectionSchema) -> Result<Arc<Collection>> {
        check_name(name)?;
        schema.check()?;
        let mut map = self.collections.write().unwrap_or_else(PoisonError::into_inner);
        if map.contains_key(name) {
            return Err(Error::InvalidArgument(format!("collection {name:?} already exists")));
        }
        let dir = self.dir.join("collections").join(name);
        std::fs::create_dir_all(&dir).map_err(|e| Error::io("creating", &dir, e))?;
        schema.save(&dir)?;
        let c = Collection::open(name, &dir, self.opener.as_ref())?;
        map.insert(name.to_string(), c.clone());
        Ok(c)
    }

    /// Restores a snapshot file ([`Collection::snapshot`]) as a new collection `name` (an error
    /// if it exists or the file is damaged); its log is replayed like any collection's.
    pub fn restore_snapshot(&self, path: &Path, name: &str) -> Result<Arc<Collection>> {
        check_name(name)?;
        let (schema, log) = crate::collection::read_snapshot(path)?;
        let mut map = self.collections.write().unwrap_or_else(PoisonError::into_inner);
        if map.contains_key(name) {
            return Err(Error::InvalidArgument(format!("collection {name:?} already exists")));
        }
        let dir = self.dir.join("collections").join(name);
        std::fs::create_dir_all(&dir).map_err(|e| Error::io("creating", &dir, e))?;
        quarry_store::write_atomic(&dir.join(crate::collection::WAL_FILE), |w| {
            std::io::Write::write_all(w, &log)
        })?;
        schema.save(&dir)?;
        let c = Collection::open(name, &dir, self.opener.as_ref())?;
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
        let mut map = self.collections.write().unwrap_or_else(PoisonError::into_inner);
        let Some(c) = map.remove(name) else { return Ok(false) };
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
        Ok(true)
    }

    /// The sentence model `spec` names (a folder or a name, see `quarry_text::locate`), loaded
    /// once per database.
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

    /// Creates text collection `name`: one cosine vector field sized by `text`'s model (none
    /// without a model) indexed with `index` (`hnsw`, `hnsw+sq8`, `flat`), payloads up to 16 MiB
    /// (they hold the texts), and `text`'s settings.
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
