//! A collection's schema: its named dense vector fields (dimension, metric, index spec; sets of
//! vectors compared by MaxSim for multi-vector fields), the
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
    /// A multi-vector field (late interaction): each point holds a set of 1 to `max_vectors`
    /// vectors of `dim` values, compared by MaxSim (Chamfer). `None`: one vector per point.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multivector: Option<MultiVectorConfig>,
}

/// How a multi-vector field finds and scores its points ([`VectorField::multivector`]).
///
/// A query is a set of vectors too; a point's score is MaxSim (Chamfer similarity): the sum over
/// query vectors of their best similarity (inner product; cosine normalises every vector first)
/// with the point's vectors. Candidates come from the field's index (its `index` spec) and are
/// re-ranked by exact MaxSim.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MultiVectorConfig {
    /// The comparator: `max_sim` (the only one).
    #[serde(default = "default_comparator")]
    pub comparator: String,
    /// Most vectors one point may hold (default 1,024).
    #[serde(default = "default_max_vectors")]
    pub max_vectors: usize,
    /// Candidate generation: `muvera` (default; one fixed dimensional encoding per point, indexed
    /// by the field's index spec; MUVERA, Dhulipala et al., NeurIPS 2024) or `tokens` (the
    /// per-token heuristic: every vector indexed, a query vector's nearest vectors vote for
    /// their points).
    #[serde(default = "default_candidates")]
    pub candidates: String,
    /// `muvera`: candidates re-ranked by exact MaxSim per segment (default 200).
    #[serde(default = "default_rerank")]
    pub rerank: usize,
    /// `tokens`: nearest indexed vectors per query vector (default 10).
    #[serde(default = "default_per_token")]
    pub per_token: usize,
    /// `muvera`: the encoding's parameters.
    #[serde(default)]
    pub fde: FdeConfig,
}

/// MUVERA encoding parameters of a multi-vector field (see `quarry_ann::fde::FdeParams`). The
/// defaults (8 repetitions of 2 SimHash bits, no inner projection: 32 × the vectors' dimension,
/// 12,288 coordinates for 384-d vectors) re-rank to a higher recall on the token vectors measured
/// in decision 0016 than the paper's 20 × 5 bits × 16-d projection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FdeConfig {
    /// Repetitions (default 8).
    #[serde(default = "default_reps")]
    pub repetitions: usize,
    /// SimHash bits per repetition (default 2: 4 buckets).
    #[serde(default = "default_bits")]
    pub simhash_bits: u32,
    /// Inner projection dimension (default 0: none, the vectors' own coordinates).
    #[serde(default = "default_proj")]
    pub projection: usize,
    /// Optional final Count-Sketch dimension.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub final_dim: Option<usize>,
    /// Fill a point's empty buckets with its nearest vector (default true).
    #[serde(default = "default_fsync")]
    pub fill_empty: bool,
    /// Seed of every random draw (default 1).
    #[serde(default = "default_seed")]
    pub seed: u64,
}

impl Default for FdeConfig {
    fn default() -> Self {
        FdeConfig {
            repetitions: default_reps(),
            simhash_bits: default_bits(),
            projection: default_proj(),
            final_dim: None,
            fill_empty: true,
            seed: default_seed(),
        }
    }
}

impl Default for MultiVectorConfig {
    fn default() -> Self {
        MultiVectorConfig {
            comparator: default_comparator(),
            max_vectors: default_max_vectors(),
            candidates: default_candidates(),
            rerank: default_rerank(),
            per_token: default_per_token(),
            fde: FdeConfig::default(),
        }
    }
}

fn default_comparator() -> String {
    "max_sim".into()
}
fn default_max_vectors() -> usize {
    1024
}
fn default_candidates() -> String {
    "muvera".into()
}
fn default_rerank() -> usize {
    200
}
fn default_per_token() -> usize {
    10
}
fn default_reps() -> usize {
    8
}
fn default_bits() -> u32 {
    2
}
fn default_proj() -> usize {
    0
}
fn default_seed() -> u64 {
    1
}

impl MultiVectorConfig {
    /// Whether candidates come from MUVERA encodings (else from the per-token heuristic).
    pub fn muvera(&self) -> bool {
        self.candidates == "muvera"
    }

    /// The MUVERA parameters.
    pub fn fde_params(&self) -> quarry_ann::fde::FdeParams {
        quarry_ann::fde::FdeParams {
            repetitions: self.fde.repetitions,
            simhash_bits: self.fde.simhash_bits,
            projection: match self.fde.projection {
                0 => quarry_ann::fde::InnerProjection::Identity,
                p => quarry_ann::fde::InnerProjection::Random(p),
            },
            fill_empty: self.fde.fill_empty,
            final_dim: self.fde.final_dim,
            seed: self.fde.seed,
        }
    }

    /// Checks the settings for vectors of `dim` values; errors start with `label`.
    fn check(&self, label: &str, dim: usize, metric: Metric) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidArgument(format!("{label}: {m}")));
        if self.comparator != "max_sim" {
            return bad(format!(
                "multivector comparator {:?} is unknown (max_sim is supported)",
                self.comparator
            ));
        }
        if metric == Metric::L2 {
            return bad(
                "a multi-vector field compares by MaxSim of inner products: use metric cosine or ip, not l2"
                    .into(),
            );
        }
        if self.max_vectors == 0 || self.max_vectors > 65_536 {
            return bad(format!("max_vectors {} must be in 1..=65536", self.max_vectors));
        }
        match self.candidates.as_str() {
            "muvera" => {
                if self.rerank == 0 {
                    return bad("rerank must be at least 1".into());
                }
                self.fde_params()
                    .validate(dim)
                    .map_err(|e| Error::InvalidArgument(format!("{label}: MUVERA: {e}")))
            }
            "tokens" if self.per_token == 0 => bad("per_token must be at least 1".into()),
            "tokens" => Ok(()),
            c => bad(format!("multivector candidates {c:?} is unknown (muvera or tokens)")),
        }
    }
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

    /// The parsed index spec, checked against the dimension of the rows it indexes.
    pub fn index_spec(&self) -> Result<quarry_ann::IndexSpec> {
        let spec: quarry_ann::IndexSpec =
            self.index.parse().map_err(|e| Error::InvalidArgument(format!("{}: {e}", self.label())))?;
        spec.check_dim(self.index_dim())
            .map_err(|e| Error::InvalidArgument(format!("{}: {e}", self.label())))?;
        Ok(spec)
    }

    /// Dimension of the rows the field's index holds: the vectors', or a multi-vector field's
    /// MUVERA encodings.
    pub fn index_dim(&self) -> usize {
        match &self.multivector {
            Some(mv) if mv.muvera() => mv.fde_params().output_dim(self.dim),
            _ => self.dim,
        }
    }

    /// A value of this field as JSON: an array of numbers, or for a multi-vector field an array
    /// of vectors (`v` holds them concatenated).
    pub fn value_json(&self, v: &[f32]) -> serde_json::Value {
        let row = |c: &[f32]| serde_json::Value::Array(c.iter().map(|&x| f32_json(x)).collect());
        match &self.multivector {
            None => row(v),
            Some(_) => serde_json::Value::Array(v.chunks(self.dim.max(1)).map(row).collect()),
        }
    }

    /// Parses a query or value of this field from JSON (an array of numbers; for a multi-vector
    /// field an array of vectors, concatenated); errors name `what`.
    pub fn parse_value(&self, v: &serde_json::Value, what: &str) -> Result<Vec<f32>> {
        match &self.multivector {
            Some(_) => crate::point::vector_set(v, self.dim, what),
            None => {
                let a = v
                    .as_array()
                    .ok_or_else(|| Error::InvalidArgument(format!("{what} must be an array of numbers")))?;
                a.iter()
                    .enumerate()
                    .map(|(i, x)| {
                        x.as_f64().map(|f| f as f32).ok_or_else(|| {
                            Error::InvalidArgument(format!("{what}: component {i} is not a number ({x})"))
                        })
                    })
                    .collect()
            }
        }
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
                multivector: None,
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
            let metric = f.metric()?;
            if let Some(mv) = &f.multivector {
                mv.check(&f.label(), f.dim, metric)?;
            }
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

/// `x` as JSON in its shortest decimal form that reads back as the same `f32` (`0.1`, not the
/// `0.10000000149011612` of its exact `f64` value), so vectors print as they were written.
pub fn f32_json(x: f32) -> serde_json::Value {
    x.to_string()
        .parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
        .map_or(serde_json::Value::Null, serde_json::Value::Number)
}

#[cfg(test)]
mod f32_json_tests {
    use super::f32_json;

    #[test]
    fn shortest_form_reads_back_exactly() {
        assert_eq!(f32_json(0.1).to_string(), "0.1");
        assert_eq!(f32_json(-3.0).to_string(), "-3.0");
        assert_eq!(f32_json(f32::NAN), serde_json::Value::Null);
        for x in [1e-38f32, 3.4028235e38, 0.333_333_34, 1.0 / 3.0, 123_456.79, -0.0, f32::MIN_POSITIVE] {
            let back = f32_json(x).as_f64().expect("number") as f32;
            assert_eq!(back.to_bits(), x.to_bits(), "{x}");
        }
    }
}
