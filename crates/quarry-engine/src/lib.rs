//! Quarry's database layer: an embedded [`Database`] (a folder, opened like SQLite) of
//! collections, each with a [`CollectionSchema`] (named dense vector fields, payload limit,
//! durability, payload indexes), points with JSON payloads and u64 or UUID ids, a write-ahead log
//! fsynced before a write is acknowledged (group commit), Qdrant-dialect payload [`Filter`]s,
//! sealed segments of any index family built in the background and persisted with a manifest (a log checkpoint),
//! consistent snapshots, and text collections ([`TextCollection`]: BM25, sentence embeddings,
//! hybrid and multi-query fusion).
//!
//! ```
//! use quarry_engine::{CollectionSchema, Database, Filter, Point, PointId, SearchOptions};
//! use quarry_core::Metric;
//! # let dir = std::env::temp_dir().join(format!("quarry-doc-{}", std::process::id()));
//! # let _ = std::fs::remove_dir_all(&dir);
//! let db = Database::open(&dir)?;                       // a folder; created if missing
//! let mut schema = CollectionSchema::single(3, Metric::Cosine, "hnsw");
//! schema.payload_indexes = vec!["tag".into()];          // filters on "tag" use an index
//! let col = db.create_collection("docs", schema)?;
//! let mut payload = serde_json::Map::new();
//! payload.insert("tag".into(), "a".into());
//! // Acknowledged = in the log and fsynced: it survives a crash or power loss from here on.
//! col.upsert(vec![Point { id: PointId::Num(1), vectors: vec![vec![0.1, 0.2, 0.3]], payload }])?;
//! let filter = Filter::parse(r#"{"must": [{"key": "tag", "match": {"value": "a"}}]}"#)?;
//! let hits = col.search(&[0.1, 0.2, 0.25], None, 10, Some(&filter))?;
//! assert_eq!(hits[0].id, PointId::Num(1));
//! let fast = col.search_with(&[0.1, 0.2, 0.25], None, 10, None, &SearchOptions { ef: 64, with_payload: false, ..SearchOptions::default() })?;
//! col.optimize()?;                                      // one graph segment, written to disk
//! drop(col);
//! drop(db);
//! let db = Database::open(&dir)?;                       // segments load; the log tail replays
//! assert_eq!(db.collection("docs")?.count(None), 1);
//! # drop(db);
//! # let _ = std::fs::remove_dir_all(&dir);
//! # let _ = fast;
//! # Ok::<(), quarry_core::Error>(())
//! ```
//!
//! Files: `id` (point ids), `schema`, `point` (points, validation, the WAL operation codec),
//! `filter` (payload filters), `payload_index`, `segment` (sealed segments: an index per field),
//! `segment_file` (a segment's folder), `manifest` (the checkpoint), `collection` (log, replay),
//! `state`, `reads`, `writes`, `search`, `seal`, `snapshot`, `text` (text collections, with
//! `text_spec`, `text_query`, `text_lexical`), `group` (expert groups with routing), `database`, `remote` (collections on object storage:
//! writer write-through and read-only copies).

pub mod collection;
pub mod database;
pub mod filter;
#[cfg(feature = "text")]
pub mod group;
pub mod id;
mod manifest;
mod multivector;
mod payload_index;
mod payloads;
pub mod point;
pub mod quality;
mod reads;
pub mod remote;
pub mod schema;
mod seal;
mod search;
mod segment;
mod segment_file;
mod slot_map;
mod snapshot;
mod state;
#[cfg(test)]
mod tests;
#[cfg(feature = "text")]
pub mod text;
#[cfg(all(test, feature = "text"))]
mod text_ingest_tests;
#[cfg(feature = "text")]
mod text_lexical;
#[cfg(all(test, feature = "text"))]
mod text_quality_tests;
#[cfg(feature = "text")]
mod text_query;
#[cfg(feature = "text")]
mod text_spec;
#[cfg(all(test, feature = "text"))]
mod text_tests;
mod writes;

pub use collection::{Collection, ScoredPoint, SearchOptions};

/// Most vectors a query of a multi-vector field may hold (or the field's `max_vectors`, if larger).
pub const MAX_QUERY_VECTORS: usize = 1024;
pub use database::Database;
pub use filter::Filter;
pub use id::PointId;
pub use point::{Op, Point};
pub use quarry_ann::{IndexSpec, QuantSpec, Residency};
/// Reading and chunking documents (`quarry_docs`), for front ends of ingest.
#[cfg(feature = "text")]
pub use quarry_docs;
pub use remote::RangeCache;
pub use schema::{CollectionSchema, FdeConfig, MultiVectorConfig, VectorField};
#[cfg(feature = "text")]
pub use text::{
    Context, ContextPassage, ContextRequest, Duplicate, Feedback, FileOutcome, FileReport, IngestOptions,
    IngestReport, PassageMode, PassageSpec, TextCollection, TextDoc, TextHit, TextMode, TextQuery, TextSpec,
};
