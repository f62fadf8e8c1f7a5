//! Collection routes: create, get, list, exists, delete, and payload indexes.

use super::convert::{distance_name, metric_of};
use super::models::{CreateCollection, CreateFieldIndex, VectorParams, WriteParams};
use crate::body::JsonBody;
use crate::error::{ok, ApiError, ApiResult};
use crate::state::AppState;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::response::Response;
use quarry_engine::schema::VectorField;
use quarry_engine::{Collection, CollectionSchema};
use serde_json::{json, Map, Value};
use std::time::Instant;

/// The index spec of a field: `base` (Quarry's `index` option, default `hnsw`; its own codes, if
/// any, kept) with the codes of a Qdrant `quantization_config`: `scalar` int8 → `+sq8`, `binary` →
/// `+rabitq` (1 bit per dimension), `product` with compression `xR` → `+pq<M>`, M = 4·dim / R
/// one-byte sub-spaces (the code is R times smaller than the f32 row).
fn index_spec(quant: Option<&Value>, base: &str, dim: usize) -> ApiResult<String> {
    let q = match quant {
        None | Some(Value::Null) => return Ok(base.to_string()),
        Some(q) => q,
    };
    let bare = base.split_once('+').map_or(base, |(b, _)| b);
    let bad = |m: &str| ApiError::bad(format!("quantization_config: {m}"));
    let codes = if let Some(scalar) = q.get("scalar") {
        match scalar.get("type").and_then(Value::as_str) {
            Some("int8") => "sq8".to_string(),
            _ => return Err(bad("scalar.type: only \"int8\" is supported")),
        }
    } else if q.get("binary").is_some() {
        "rabitq".to_string()
    } else if let Some(product) = q.get("product") {
        let ratio = match product.get("compression").and_then(Value::as_str) {
            Some("x4") => 4,
            Some("x8") => 8,
            Some("x16") => 16,
            Some("x32") => 32,
            Some("x64") => 64,
            _ => return Err(bad("product.compression: use x4, x8, x16, x32 or x64")),
        };
        format!("pq{}", (dim * 4 / ratio).clamp(1, dim))
    } else {
        return Err(bad("use {\"scalar\": {\"type\": \"int8\"}}, {\"binary\": {}} or {\"product\": {\"compression\": \"x16\"}}"));
    };
    Ok(format!("{bare}+{codes}"))
}

/// The Qdrant `quantization_config` that describes index spec `index` of a `dim`-dimensional
/// field (`None`: no codes, or codes Qdrant has no name for, such as `sq4` or `rabitq4`: the
/// schema, `GET /quarry/collections/{name}`, names those).
fn quantization_of(index: &str, dim: usize) -> Option<Value> {
    let spec: quarry_engine::IndexSpec = index.parse().ok()?;
    Some(match spec.codes? {
        quarry_engine::QuantSpec::Sq { bits: 8 } => json!({"scalar": {"type": "int8", "always_ram": true}}),
        quarry_engine::QuantSpec::RaBitQ { bits: 1 } => json!({"binary": {"always_ram": true}}),
        quarry_engine::QuantSpec::Pq { m, nbits } => {
            let m = if m == 0 { (dim / 4).max(1) } else { m };
            // f32 bytes over code bytes, as the nearest of Qdrant's ratios.
            let ratio = (dim * 32) as f64 / (m * nbits as usize) as f64;
            let name = ["x4", "x8", "x16", "x32", "x64"]
                .into_iter()
                .min_by(|a, b| {
                    let d = |r: &str| (r[1..].parse::<f64>().unwrap_or(4.0).ln() - ratio.ln()).abs();
                    d(a).total_cmp(&d(b))
                })
                .unwrap_or("x4");
            json!({"product": {"compression": name, "always_ram": true}})
        }
        _ => return None,
    })
}

/// A field's parameters as Qdrant reports them.
fn field_info(f: &VectorField) -> Value {
    let mut v = json!({"size": f.dim, "distance": distance_name(&f.metric), "on_disk": f.on_disk});
    if let Some(mv) = &f.multivector {
        v["multivector_config"] = json!({"comparator": mv.comparator});
    }
    if let Some(q) = quantization_of(&f.index, f.dim) {
        v["quantization_config"] = q;
    }
    v
}

fn field(name: &str, p: &VectorParams, quant: Option<&Value>, base_index: &str) -> ApiResult<VectorField> {
    if p.size == 0 || p.size > 65_536 {
        return Err(ApiError::bad(format!(
            "{}: size {} must be in 1..=65536",
            quarry_engine::schema::vector_label(name),
            p.size
        )));
    }
    if let Some(dt) = p.datatype.as_deref() {
        if !dt.eq_ignore_ascii_case("float32") {
            return Err(ApiError::bad(format!(
                "{}: datatype {dt:?} is not supported (float32 only)",
                quarry_engine::schema::vector_label(name)
            )));
        }
    }
    // Qdrant's `{"comparator": "max_sim"}`, plus Quarry's settings (`candidates`, `rerank`,
    // `per_token`, `max_vectors`, `fde`) when given.
    let multivector = match p.multivector_config.as_ref().filter(|v| !v.is_null()) {
        None => None,
        Some(v) => {
            Some(serde_json::from_value::<quarry_engine::MultiVectorConfig>(v.clone()).map_err(|e| {
                ApiError::bad(format!(
                    "{}: multivector_config: {e}",
                    quarry_engine::schema::vector_label(name)
                ))
            })?)
        }
    };
    let metric = metric_of(&p.distance)?;
    let index = index_spec(p.quantization_config.as_ref().or(quant), base_index, p.size as usize)?;
    Ok(VectorField {
        name: name.to_string(),
        dim: p.size as usize,
        metric: metric.to_string(),
        index,
        on_disk: p.on_disk.unwrap_or(false),
        multivector,
    })
}

fn params(v: &Value, what: &str) -> ApiResult<VectorParams> {
    serde_json::from_value(v.clone()).map_err(|e| ApiError::bad(format!("{what}: {e}")))
}

/// Builds the engine schema of a create request.
pub fn schema_of(req: &CreateCollection) -> ApiResult<CollectionSchema> {
    if req.sparse_vectors.as_ref().is_some_and(|s| s.as_object().is_some_and(|o| !o.is_empty())) {
        return Err(ApiError::bad("sparse_vectors are not supported"));
    }
    let opts = req.quarry.as_ref();
    let base = opts.and_then(|o| o.index.clone()).unwrap_or_else(|| "hnsw".into());
    let quant = req.quantization_config.as_ref();
    let mut s = CollectionSchema::single(1, quarry_core::Metric::Cosine, &base);
    s.vectors = match &req.vectors {
        Value::Object(o) if o.contains_key("size") || o.contains_key("distance") => {
            vec![field("", &params(&req.vectors, "vectors")?, quant, &base)?]
        }
        Value::Object(o) if !o.is_empty() => o
            .iter()
            .map(|(name, v)| {
                if name.is_empty() || name.len() > 64 {
                    return Err(ApiError::bad(format!("vector name {name:?}: use 1-64 characters")));
                }
                field(name, &params(v, &format!("vectors.{name}"))?, quant, &base)
            })
            .collect::<ApiResult<Vec<_>>>()?,
        _ => return Err(ApiError::bad("vectors: give {\"size\": n, \"distance\": d} or named fields")),
    };
    if let Some(t) =
        req.optimizers_config.as_ref().and_then(|o| o.get("indexing_threshold")).and_then(Value::as_u64)
    {
        s.seal_threshold = usize::try_from(t).unwrap_or(usize::MAX).max(1_000);
    }
    if let Some(o) = opts {
        if let Some(f) = o.fsync {
            s.fsync = f;
        }
        if let Some(t) = o.seal_threshold {
            s.seal_threshold = t;
        }
        if let Some(m) = o.max_payload_bytes {
            s.max_payload_bytes = m.clamp(1, 64 << 20);
        }
    }
    s.check()?;
    Ok(s)
}

/// Create a collection.
#[utoipa::path(put, path = "/collections/{collection_name}", tag = "collections",
    params(("collection_name" = String, Path, description = "Collection name", example = "c"), WriteParams),
    request_body = CreateCollection,
    responses((status = 200, description = "Created: `{\"result\": true}`"), (status = 400, description = "Bad input or the collection exists")))]
pub async fn create_collection(
    State(state): State<AppState>,
    name: Result<Path<String>, PathRejection>,
    _q: Result<Query<WriteParams>, QueryRejection>,
    JsonBody(req): JsonBody<CreateCollection>,
) -> ApiResult<Response> {
    let start = Instant::now();
    let Path(name) = name?;
    _q?;
    let schema = schema_of(&req)?;
    if state.db().collection(&name).is_ok() {
        return Err(ApiError::bad(format!("Wrong input: Collection `{name}` already exists!")));
    }
    let db = state.db().clone();
    AppState::blocking(move || db.create_collection(&name, schema).map(|_| ()).map_err(ApiError::from))
        .await?;
    Ok(ok(true, start))
}

/// The field type of an indexed key (its first indexed value's; `keyword` before any) and the
/// number of points holding it, from the payload index.
fn data_type(c: &Collection, key: &str) -> (&'static str, usize) {
    let (kind, points) = c.payload_index_info(key).unwrap_or((None, 0));
    (kind.unwrap_or("keyword"), points)
}

/// Collection info in Qdrant's shape.
pub fn info(c: &Collection) -> Value {
    let schema = c.current_schema();
    let vectors = if schema.vectors.len() == 1 && schema.vectors[0].name.is_empty() {
        field_info(&schema.vectors[0])
    } else {
        Value::Object(schema.vectors.iter().map(|f| (f.name.clone(), field_info(f))).collect())
    };
    let payload_schema: Map<String, Value> = schema
        .payload_indexes
        .iter()
        .map(|k| {
            let (t, n) = data_type(c, k);
            (k.clone(), json!({"data_type": t, "points": n}))
        })
        .collect();
    // Collection-level quantization: the first field's codes (each field reports its own too).
    let quant = schema.vectors.iter().find_map(|f| quantization_of(&f.index, f.dim));
    let points = c.count(None);
    json!({
        "status": "green",
        "optimizer_status": "ok",
        "indexed_vectors_count": points,
        "points_count": points,
        "segments_count": c.segment_count() + 1,
        "config": {
            "params": {"vectors": vectors, "shard_number": 1, "replication_factor": 1,
                       "write_consistency_factor": 1, "on_disk_payload": false},
            "hnsw_config": {"m": 16, "ef_construct": 200, "full_scan_threshold": 4096},
            "optimizer_config": {"deleted_threshold": 0.2, "vacuum_min_vector_number": 1000,
                                 "default_segment_number": 0, "indexing_threshold": schema.seal_threshold,
                                 "flush_interval_sec": 5},
            "wal_config": {"wal_capacity_mb": 32, "wal_segments_ahead": 0},
            "quantization_config": quant,
        },
        "payload_schema": payload_schema,
    })
}

/// Get a collection's info.
#[utoipa::path(get, path = "/collections/{collection_name}", tag = "collections",
    params(("collection_name" = String, Path, description = "Collection name", example = "c")),
    responses((status = 200, description = "Collection info"), (status = 404, description = "Unknown collection")))]
pub async fn get_collection(
    State(state): State<AppState>,
    name: Result<Path<String>, PathRejection>,
) -> ApiResult<Response> {
    let start = Instant::now();
    let Path(name) = name?;
    let c = state.collection(&name)?;
    let v = AppState::blocking(move || Ok(info(&c))).await?;
    Ok(ok(v, start))
}

/// List collections.
#[utoipa::path(get, path = "/collections", tag = "collections", responses((status = 200, description = "`{\"collections\": [{\"name\"}]}`")))]
pub async fn list_collections(State(state): State<AppState>) -> Response {
    let start = Instant::now();
    let names: Vec<Value> = state.db().collection_names().into_iter().map(|n| json!({"name": n})).collect();
    ok(json!({"collections": names}), start)
}

/// Whether a collection exists.
#[utoipa::path(get, path = "/collections/{collection_name}/exists", tag = "collections",
    params(("collection_name" = String, Path, description = "Collection name", example = "c")),
    responses((status = 200, description = "`{\"exists\": bool}`")))]
pub async fn collection_exists(
    State(state): State<AppState>,
    name: Result<Path<String>, PathRejection>,
) -> ApiResult<Response> {
    let start = Instant::now();
    let Path(name) = name?;
    Ok(ok(json!({"exists": state.db().collection(&name).is_ok()}), start))
}

/// Delete a collection and its files.
#[utoipa::path(delete, path = "/collections/{collection_name}", tag = "collections",
    params(("collection_name" = String, Path, description = "Collection name", example = "c"), WriteParams),
    responses((status = 200, description = "`true` if it existed")))]
pub async fn delete_collection(
    State(state): State<AppState>,
    name: Result<Path<String>, PathRejection>,
    q: Result<Query<WriteParams>, QueryRejection>,
) -> ApiResult<Response> {
    let start = Instant::now();
    let Path(name) = name?;
    q?;
    state.drop_writer(&name).await;
    let db = state.db().clone();
    let existed = AppState::blocking(move || db.delete_collection(&name).map_err(ApiError::from)).await?;
    Ok(ok(existed, start))
}

/// Index a payload key.
#[utoipa::path(put, path = "/collections/{collection_name}/index", tag = "collections",
    params(("collection_name" = String, Path, description = "Collection name", example = "c"), WriteParams),
    request_body = CreateFieldIndex,
    responses((status = 200, description = "`{\"operation_id\", \"status\": \"completed\"}`")))]
pub async fn create_index(
    State(state): State<AppState>,
    name: Result<Path<String>, PathRejection>,
    q: Result<Query<WriteParams>, QueryRejection>,
    JsonBody(req): JsonBody<CreateFieldIndex>,
) -> ApiResult<Response> {
    let start = Instant::now();
    let Path(name) = name?;
    let Query(q) = q?;
    match &req.field_schema {
        None | Some(Value::Null) | Some(Value::String(_)) => {}
        Some(Value::Object(o)) if o.get("type").is_some_and(Value::is_string) => {}
        Some(other) => {
            return Err(ApiError::bad(format!("field_schema {other}: use a type name or {{\"type\": name}}")))
        }
    }
    let c = state.collection(&name)?;
    let key = req.field_name;
    let w = state.writer(&name);
    let done = w
        .write(&state, &name, q.wait.unwrap_or(false), move || {
            c.create_payload_index(&key).map_err(ApiError::from)
        })
        .await?;
    Ok(ok(
        json!({"operation_id": 0, "status": if done.is_some() { "completed" } else { "acknowledged" }}),
        start,
    ))
}

/// Stop indexing a payload key.
#[utoipa::path(delete, path = "/collections/{collection_name}/index/{field_name}", tag = "collections",
    params(("collection_name" = String, Path, description = "Collection name", example = "c"), ("field_name" = String, Path, description = "Payload key"), WriteParams),
    responses((status = 200, description = "`{\"operation_id\", \"status\"}`")))]
pub async fn delete_index(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    q: Result<Query<WriteParams>, QueryRejection>,
) -> ApiResult<Response> {
    let start = Instant::now();
    let Path((name, key)) = path?;
    let Query(q) = q?;
    let c = state.collection(&name)?;
    let w = state.writer(&name);
    let done = w
        .write(&state, &name, q.wait.unwrap_or(false), move || {
            c.delete_payload_index(&key).map_err(ApiError::from)
        })
        .await?;
    Ok(ok(
        json!({"operation_id": 0, "status": if done.is_some() { "completed" } else { "acknowledged" }}),
        start,
    ))
}
