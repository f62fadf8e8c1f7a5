//! Request bodies of the Qdrant-compatible routes, as Qdrant's REST API names them. Parts that
//! take several shapes (ids, vectors, filters, selectors, queries) are kept as JSON values here and
//! parsed by the engine's own parsers, so one syntax and one set of error messages serves the
//! CLI, the server and Python. Unknown fields are ignored, as Qdrant does.

use serde::Deserialize;
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

/// `?wait=…` (and the other query parameters of writes, accepted and ignored: `ordering`,
/// `timeout`).
#[derive(Debug, Default, Deserialize, IntoParams)]
pub struct WriteParams {
    /// Answer after the write is applied and durable (`true`), or once it is queued.
    pub wait: Option<bool>,
    /// Qdrant's write ordering (accepted; writes are always applied in order here).
    pub ordering: Option<String>,
    /// Qdrant's per-request timeout in seconds (the server's own limit applies).
    pub timeout: Option<u64>,
}

/// `?timeout=…` and `consistency` of reads (accepted and ignored: one replica).
#[derive(Debug, Default, Deserialize, IntoParams)]
pub struct ReadParams {
    /// Qdrant's read consistency (accepted; there is one replica).
    pub consistency: Option<String>,
    /// Qdrant's per-request timeout in seconds (the server's own limit applies).
    pub timeout: Option<u64>,
}

/// One dense vector field.
#[derive(Debug, Deserialize, ToSchema)]
pub struct VectorParams {
    /// Dimension (1..=65536).
    pub size: u64,
    /// `Cosine`, `Dot` or `Euclid`.
    pub distance: String,
    /// Storage type: only `float32` (the default) is supported.
    #[serde(default)]
    pub datatype: Option<String>,
    /// A multi-vector field: `{"comparator": "max_sim"}` (each point holds a set of vectors,
    /// scored by MaxSim); Quarry also reads `candidates` (`muvera` or `tokens`), `rerank`,
    /// `per_token`, `max_vectors` and `fde` here.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub multivector_config: Option<Value>,
    /// Accepted; the graph parameters are the engine's.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub hnsw_config: Option<Value>,
    /// Codes searched first, candidates re-scored exactly: `{"scalar": {"type": "int8"}}` (8-bit
    /// scalar), `{"binary": {}}` (RaBitQ, 1 bit per dimension) or `{"product": {"compression":
    /// "x16"}}` (product quantization).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub quantization_config: Option<Value>,
    /// `true`: sealed segments keep the f32 rows memory-mapped from disk (resident only where
    /// read); codes and graph links stay in memory.
    #[serde(default)]
    pub on_disk: Option<bool>,
}

/// Quarry's own collection settings (an extension Qdrant clients never send).
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct QuarryCollectionOptions {
    /// Index of sealed segments: `hnsw` (default), `hnsw+sq8` or `flat`.
    pub index: Option<String>,
    /// fsync every acknowledged write (default true).
    pub fsync: Option<bool>,
    /// Unsealed points that trigger building a graph segment.
    pub seal_threshold: Option<usize>,
    /// Largest payload in bytes.
    pub max_payload_bytes: Option<usize>,
}

/// `PUT /collections/{name}`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateCollection {
    /// One unnamed field (`{"size", "distance"}`) or named fields (`{"name": {…}}`).
    #[schema(value_type = Object)]
    pub vectors: Value,
    /// Not supported: must be absent or empty.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub sparse_vectors: Option<Value>,
    /// Accepted; the graph parameters are the engine's.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub hnsw_config: Option<Value>,
    /// `{"scalar": {"type": "int8"}}` for every field.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub quantization_config: Option<Value>,
    /// `indexing_threshold` sets the seal threshold (points); the rest is accepted.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub optimizers_config: Option<Value>,
    /// Quarry's own settings.
    #[serde(default)]
    pub quarry: Option<QuarryCollectionOptions>,
}

/// `PUT /collections/{name}/points`: `{"points": [...]}` or `{"batch": {"ids", "vectors", "payloads"}}`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct UpsertPoints {
    /// Points: `{"id", "vector", "payload"}`.
    #[serde(default)]
    #[schema(value_type = Option<Vec<Object>>)]
    pub points: Option<Vec<Value>>,
    /// Column form: `{"ids": [...], "vectors": [[...]] | {"name": [[...]]}, "payloads": [...]}`.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub batch: Option<Value>,
}

/// `POST /collections/{name}/points`: points by id.
#[derive(Debug, Deserialize, ToSchema)]
pub struct RetrievePoints {
    /// Ids (unsigned integers or UUID strings).
    #[schema(value_type = Vec<Object>)]
    pub ids: Vec<Value>,
    /// `true` (default), `false`, a list of keys, `{"include": [...]}` or `{"exclude": [...]}`.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub with_payload: Option<Value>,
    /// `false` (default), `true` or a list of field names.
    #[serde(default, alias = "with_vectors")]
    #[schema(value_type = Option<Object>)]
    pub with_vector: Option<Value>,
}

/// Points named by ids or by a filter (delete, payload operations).
#[derive(Debug, Deserialize, ToSchema)]
pub struct PointsSelector {
    /// Ids.
    #[serde(default)]
    #[schema(value_type = Option<Vec<Object>>)]
    pub points: Option<Vec<Value>>,
    /// A filter.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub filter: Option<Value>,
}

/// `POST|PUT /collections/{name}/points/payload`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct SetPayload {
    /// Keys and values to set.
    #[schema(value_type = Object)]
    pub payload: Value,
    /// Ids.
    #[serde(default)]
    #[schema(value_type = Option<Vec<Object>>)]
    pub points: Option<Vec<Value>>,
    /// A filter.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub filter: Option<Value>,
    /// Qdrant's nested key: not supported (must be absent).
    #[serde(default)]
    pub key: Option<String>,
}

/// `POST /collections/{name}/points/payload/delete`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct DeletePayload {
    /// Keys to remove.
    pub keys: Vec<String>,
    /// Ids.
    #[serde(default)]
    #[schema(value_type = Option<Vec<Object>>)]
    pub points: Option<Vec<Value>>,
    /// A filter.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub filter: Option<Value>,
}

/// `POST /collections/{name}/points/scroll`.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct ScrollRequest {
    /// A filter.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub filter: Option<Value>,
    /// Page size (default 10).
    #[serde(default)]
    pub limit: Option<u64>,
    /// The id the page starts at (inclusive): the previous page's `next_page_offset`.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub offset: Option<Value>,
    /// Payload selector (default `true`).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub with_payload: Option<Value>,
    /// Vector selector (default `false`).
    #[serde(default, alias = "with_vectors")]
    #[schema(value_type = Option<Object>)]
    pub with_vector: Option<Value>,
    /// Not supported: must be absent.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub order_by: Option<Value>,
}

/// `POST /collections/{name}/points/count`.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct CountRequest {
    /// A filter.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub filter: Option<Value>,
    /// Accepted; counts are always exact.
    #[serde(default)]
    pub exact: Option<bool>,
}

/// Search parameters.
#[derive(Debug, Default, Clone, Deserialize, ToSchema)]
pub struct SearchParams {
    /// Graph beam width (larger: better recall, slower).
    #[serde(default)]
    pub hnsw_ef: Option<u64>,
    /// Exact search (every point scored).
    #[serde(default)]
    pub exact: Option<bool>,
    /// `{"rescore": false}`: compressed graphs rank by their codes and return estimated scores,
    /// reading no row (default true: exact re-scoring). `ignore` and `oversampling` are accepted.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub quantization: Option<Value>,
    /// Accepted and ignored.
    #[serde(default)]
    pub indexed_only: Option<bool>,
}

/// `POST /collections/{name}/points/search`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct SearchRequest {
    /// A vector, or `{"name": field, "vector": [...]}`.
    #[schema(value_type = Object)]
    pub vector: Value,
    /// A filter.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub filter: Option<Value>,
    /// Search parameters.
    #[serde(default)]
    pub params: Option<SearchParams>,
    /// Hits (default 10).
    #[serde(default, alias = "top")]
    pub limit: Option<u64>,
    /// Hits skipped first.
    #[serde(default)]
    pub offset: Option<u64>,
    /// Payload selector (default `false`).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub with_payload: Option<Value>,
    /// Vector selector (default `false`).
    #[serde(default, alias = "with_vectors")]
    #[schema(value_type = Option<Object>)]
    pub with_vector: Option<Value>,
    /// Worst score kept (for `Euclid`: the largest distance kept).
    #[serde(default)]
    pub score_threshold: Option<f64>,
}

/// `POST /collections/{name}/points/search/batch`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct SearchBatch {
    /// The searches.
    pub searches: Vec<SearchRequest>,
}

/// A universal query (`POST /collections/{name}/points/query`) or one of its prefetches.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct QueryRequest {
    /// A vector, `{"nearest": vector}`, a point id (its vector), `{"fusion": "rrf" | "dbsf"}`
    /// or `{"rrf": {"k": k}}`.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub query: Option<Value>,
    /// Sub-queries whose results this query fuses or re-scores.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub prefetch: Option<Value>,
    /// Vector field of the query.
    #[serde(default)]
    pub using: Option<String>,
    /// A filter.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub filter: Option<Value>,
    /// Search parameters.
    #[serde(default)]
    pub params: Option<SearchParams>,
    /// Hits (default 10).
    #[serde(default, alias = "top")]
    pub limit: Option<u64>,
    /// Hits skipped first.
    #[serde(default)]
    pub offset: Option<u64>,
    /// Worst score kept.
    #[serde(default)]
    pub score_threshold: Option<f64>,
    /// Payload selector (default `false`).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub with_payload: Option<Value>,
    /// Vector selector (default `false`).
    #[serde(default, alias = "with_vectors")]
    #[schema(value_type = Option<Object>)]
    pub with_vector: Option<Value>,
    /// Not supported: must be absent.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub lookup_from: Option<Value>,
}

/// `POST /collections/{name}/points/query/batch`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct QueryBatch {
    /// The queries.
    pub searches: Vec<QueryRequest>,
}

/// `PUT /collections/{name}/index`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateFieldIndex {
    /// Payload key (a dotted path).
    pub field_name: String,
    /// `keyword`, `integer`, `float`, `bool`, `uuid`, … or `{"type": …}` (any type: the index
    /// keeps integers, strings and booleans exactly; ranges on integers).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub field_schema: Option<Value>,
}
