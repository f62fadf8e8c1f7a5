//! Quarry's database layer (work in progress, issue 6): an embedded [`Database`] of collections,
//! each with a [`CollectionSchema`] (named dense vector fields, payload limit, durability), points
//! with JSON payloads and u64 or UUID ids, a write-ahead log that is fsynced before a write is
//! acknowledged, Qdrant-dialect payload [`Filter`]s, and exact search over the points in memory.
//!
//! ```no_run
//! use quarry_engine::{CollectionSchema, Database, Filter, Point, PointId};
//! use quarry_core::Metric;
//! let db = Database::open(std::path::Path::new("my-db"))?;
//! let col = db.create_collection("docs", CollectionSchema::single(3, Metric::Cosine, "hnsw"))?;
//! let mut payload = serde_json::Map::new();
//! payload.insert("tag".into(), "a".into());
//! col.upsert(vec![Point { id: PointId::Num(1), vectors: vec![vec![0.1, 0.2, 0.3]], payload }])?;
//! let filter = Filter::parse(r#"{"must": [{"key": "tag", "match": {"value": "a"}}]}"#)?;
//! let hits = col.search(&[0.1, 0.2, 0.25], None, 10, Some(&filter))?;
//! # Ok::<(), quarry_core::Error>(())
//! ```
//!
//! Files: `id` (point ids), `schema`, `point` (points, validation, the WAL operation codec),
//! `filter` (payload filters), `collection` (log + in-memory points, search), `database`.

pub mod collection;
pub mod database;
pub mod filter;
pub mod id;
mod manifest;
mod payload_index;
pub mod point;
pub mod schema;
mod segment;
mod segment_file;
#[cfg(test)]
mod tests;

pub use collection::{Collection, ScoredPoint, SearchOptions};
pub use database::Database;
pub use filter::Filter;
pub use id::PointId;
pub use point::{Op, Point};
pub use schema::{CollectionSchema, VectorField};
