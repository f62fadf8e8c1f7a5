//! A collection's schema: its named dense vector fields (dimension, metric, index spec), the
//! payload size limit, the durability of its writes, and for text collections the text settings
//! ([`TextSettings`]). Stored as `schema.json` in the
//! collection's folder, written crash-safely.

use quarry_core::{Error, Metric, Result};
use quarry_store::Durability;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// A text collection's settings ([`crate::text::TextSpec`]; without the `text` feature, kept as
/// JSON and refused by [`CollectionSchema::check`]).
#[cfg(feature = "text")]
pub type TextSettings = crate::text_spec::TextSpec;
/// A text collection's settings: without the `text` feature, kept as JSON and refused by
/// [`CollectionSchema::check`].
#[cfg(not(feature = "text"))]
pub type TextSettings = serde_json::Value;

/// One dense vector field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VectorField {
    /// Field name ("" is the default, unnamed vector).
    pub name: String,
    /// Dimension (≥ 1).
    pub dim: usize,
    /// `cosine`, `ip` or `l2`.
    pub metric: String,
    /// Index of sealed segments, an index spec ([`quarry_ann::IndexSpec`]): `flat`, `hnsw` or
    /// `spann`, optionally with codes (`+sq8`, `+sq4`, `+pq`, `+rabitq`, `+rabitq4`, ...).
    pub index: String,
    /// Where sealed segments keep this field's f32 rows: `false` (default) loaded into memory,
    /// `true` memory-mapped from their files, resident only where read (Qdrant's `on_disk`).
    /// Codes, graph links and SPANN heads are in memory either way.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub on_disk: bool,
}

/// How messages name vector field `name`: `vector "name"`, or just `vector` for the default
/// unnamed field (never `vector ""`).
pub fn vector_label(name: &str) -> String {
    if name.is_empty() {
        "vector".to_string()
    } else {
        format!("vector {name:?}")
    }
}

impl VectorField {
    /// How messages name this field (see [`vector_label`]).
    pub fn label(&self) -> String {
        vector_label(&self.name)
    }

    /// The parsed index spec, checked against the dimension.
    pub fn index_spec(&self) -> Result<quarry_ann::IndexSpec> {
        let spec: quarry_ann::IndexSpec =
            self.index.parse().map_err(|e| Error::InvalidArgument(format!("{}: {e}", self.label())))?;
        spec.check_dim(self.dim).map_err(|e| Error::InvalidArgument(format!("{}: {e}", self.label())))?;
        Ok(spec)
    }

    /// Where sealed segments keep the rows ([`VectorField::on_disk`]).
    pub fn residency(&self) -> quarry_ann::Residency {
        if self.on_disk {
            quarry_ann::Residency::Disk
        } else {
            quarry_ann::Residency::Memory
        }
    }

    /// The parsed metric.
    pub fn metric(&self) -> Result<Metric> {
        self.metric.parse::<Metric>().map_err(|e| Error::InvalidArgument(format!("{}: {e}", self.label())))
    }
}

/// A collection's schema.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CollectionSchema {
    /// Vector fields (at least one; names unique).
    pub vectors: Vec<VectorField>,
    /// Largest accepted payload, in bytes of its JSON (default 64 KiB).
    #[serde(default = "default_payload_limit")]
    pub max_payload_bytes: usize,
    /// `true` (default): every acknowledged write is fsynced; `false`: written to the OS only.
    #[serde(default = "default_fsync")]
    pub fsync: bool,
    /// Payload keys (dotted paths) with an index: filters matching them are answered from it.
    #[serde(default)]
    pub payload_indexes: Vec<String>,
    /// Unsealed points that trigger building a graph segment over them (0: only
    /// [`crate::Collection::optimize`] builds segments).
    #[serde(default = "default_seal")]
    pub seal_threshold: usize,
    /// Also build, in each sealed segment, a graph per frequent value (≥ 4,096 points) of each
    /// indexed payload key: a filter on one such value then searches that graph unfiltered
    /// (faster mid-selectivity filtered search, for more build time and memory).
    #[serde(default)]
    pub payload_graphs: bool,
    /// Text settings (a text collection: documents carry text, indexed for BM25 and embedded by a
    /// model into the single vector field); none for a vector collection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<TextSettings>,
}

fn default_seal() -> usize {
    50_000
}

fn default_payload_limit() -> usize {
    64 << 10
}

fn default_fsync() -> bool {
    true
}

impl CollectionSchema {
    /// A schema with one unnamed vector field.
    pub fn single(dim: usize, metric: Metric, index: &str) -> CollectionSchema {
        CollectionSchema {
            vectors: vec![VectorField {
                name: String::new(),
                dim,
                metric: metric.to_string(),
                index: index.into(),
                on_disk: false,
            }],
            max_payload_bytes: default_payload_limit(),
            fsync: true,
            payload_indexes: Vec::new(),
            seal_threshold: default_seal(),
            payload_graphs: false,
            text: None,
        }
    }

    /// Checks the schema; errors name the field.
    pub fn check(&self) -> Result<()> {
        match &self.text {
            None if self.vectors.is_empty() => {
                return Err(Error::InvalidArgument("a collection needs at least one vector field".into()));
            }
            #[cfg(not(feature = "text"))]
            Some(_) => {
                return Err(Error::InvalidArgument(
                    "a text collection: this build of quarry-engine has no text support (cargo feature `text`)".into(),
                ));
            }
            #[cfg(feature = "text")]
            Some(t) => {
                t.check()?;
                let want = usize::from(t.model.is_some());
                if self.vectors.len() != want {
                    return Err(Error::InvalidArgument(format!(
                        "a text collection {} has {want} vector field(s) (found {})",
                        if want == 1 { "with a model" } else { "without a model (BM25 only)" },
                        self.vectors.len()
                    )));
                }
            }
            None => {}
        }
        for (i, f) in self.vectors.iter().enumerate() {
            if f.dim == 0 || f.dim > 65_536 {
                return Err(Error::InvalidArgument(format!(
                    "{}: dimension {} must be in 1..=65536",
                    f.label(),
                    f.dim
                )));
            }
            f.metric()?;
            f.index_spec()?;
            if self.vectors[..i].iter().any(|g| g.name == f.name) {
                return Err(Error::InvalidArgument(format!("{} is declared twice", f.label())));
            }
        }
        Ok(())
    }

    /// Durability of writes.
    pub fn durability(&self) -> Durability {
        if self.fsync {
            Durability::Fsync
        } else {
            Durability::Buffered
        }
    }

    /// Index of field `name` (`None` or "" with a single field: that field).
    pub fn field(&self, name: Option<&str>) -> Result<usize> {
        match name {
            None if self.vectors.len() == 1 => Ok(0),
            None => Err(Error::InvalidArgument(format!(
                "the collection has {} vector fields: name one",
                self.vectors.len()
            ))),
            Some(n) => self
                .vectors
                .iter()
                .position(|f| f.name == n)
                .ok_or_else(|| Error::InvalidArgument(format!("unknown vector field {n:?}"))),
        }
    }

    /// Writes `schema.json` into `dir` crash-safely.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let text = serde_json::to_vec_pretty(self).map_err(|e| Error::InvalidArgument(e.to_string()))?;
        quarry_store::write_atomic(&dir.join("schema.json"), |w| std::io::Write::write_all(w, &text))
    }

    /// Reads `schema.json` from `dir`.
    pub fn load(dir: &Path) -> Result<CollectionSchema> {
        let path = dir.join("schema.json");
        let text = std::fs::read(&path).map_err(|e| Error::io("reading", &path, e))?;
        let s: CollectionSchema =
            serde_json::from_slice(&text).map_err(|e| Error::corrupt(&path, "schema", e.to_string()))?;
        s.check()?;
        Ok(s)
    }
}
