//! Point routes: upsert (`points` or `batch` form), retrieve, delete by ids or filter, payload
//! set / overwrite / delete keys / clear, scroll and count.

use super::convert::{self, record, PayloadSel, VectorSel};
use super::models::{
    CountRequest, DeletePayload, PointsSelector, ReadParams, RetrievePoints, ScrollRequest, SetPayload,
    UpsertPoints, WriteParams,
};
use crate::body::JsonBody;
use crate::error::{ok, ApiError, ApiResult};
use crate::state::AppState;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::response::Response;
use quarry_engine::{Collection, Filter, Point, PointId};
use serde_json::{json, Map, Value};
use std::sync::Arc;
use std::time::Instant;

fn update_result(done: bool, start: Instant) -> Response {
    ok(json!({"operation_id": 0, "status": if done { "completed" } else { "acknowledged" }}), start)
}

/// The points of an upsert body, checked against the collection's schema.
fn points_of(c: &Collection, req: UpsertPoints, max: usize) -> ApiResult<Vec<Point>> {
    let schema = c.schema();
    let values: Vec<Value> = match (req.points, req.batch) {
        (Some(p), None) => p,
        (None, Some(b)) => {
            let ids = b
                .get("ids")
                .and_then(Value::as_array)
                .ok_or_else(|| ApiError::bad("batch.ids must be a list"))?;
            let n = ids.len();
            if n > max {
                return Err(ApiError::bad(format!("{n} points in one request: at most {max}")));
            }
            let vectors = b.get("vectors").ok_or_else(|| ApiError::bad("batch.vectors is missing"))?;
            let per_point: Vec<Value> = match vectors {
                Value::Array(rows) if rows.len() == n => rows.clone(),
                Value::Object(named) => {
                    let mut out = vec![Map::new(); n];
                    for (name, rows) in named {
                        let rows = rows.as_array().filter(|r| r.len() == n).ok_or_else(|| {
                            ApiError::bad(format!("batch.vectors.{name} must hold one vector per id ({n})"))
                        })?;
                        for (o, r) in out.iter_mut().zip(rows) {
                            o.insert(name.clone(), r.clone());
                        }
                    }
                    out.into_iter().map(Value::Object).collect()
                }
                _ => return Err(ApiError::bad(format!("batch.vectors must hold one vector per id ({n})"))),
            };
            let payloads = match b.get("payloads") {
                None | Some(Value::Null) => vec![Value::Null; n],
                Some(Value::Array(p)) if p.len() == n => p.clone(),
                Some(_) => {
                    return Err(ApiError::bad(format!("batch.payloads must hold one payload per id ({n})")))
                }
            };
            ids.iter()
                .zip(per_point)
                .zip(payloads)
                .map(|((id, v), p)| json!({"id": id, "vector": v, "payload": p}))
                .collect()
        }
        _ => return Err(ApiError::bad("give either \"points\" or \"batch\"")),
    };
    if values.len() > max {
        return Err(ApiError::bad(format!("{} points in one request: at most {max}", values.len())));
    }
    values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            Point::from_json(v, schema).map_err(|e| ApiError::from(e).prefixed(&format!("points[{i}]: ")))
        })
        .collect()
}

/// Upsert points.
#[utoipa::path(put, path = "/collections/{collection_name}/points", tag = "points",
    params(("collection_name" = String, Path, description = "Collection name", example = "c"), WriteParams),
    request_body = UpsertPoints,
    responses((status = 200, description = "`{\"operation_id\", \"status\": \"completed\" | \"acknowledged\"}`"), (status = 400, description = "Bad points (nothing written)")))]
pub async fn upsert(
    State(state): State<AppState>,
    name: Result<Path<String>, PathRejection>,
    q: Result<Query<WriteParams>, QueryRejection>,
    JsonBody(req): JsonBody<UpsertPoints>,
) -> ApiResult<Response> {
    let start = Instant::now();
    let Path(name) = name?;
    let Query(q) = q?;
    let c = state.collection(&name)?;
    let max = state.config().max_batch;
    let c2 = c.clone();
    let points = AppState::blocking(move || points_of(&c2, req, max)).await?;
    let done = state
        .writer(&name)
        .write(&state, &name, q.wait.unwrap_or(false), move || c.upsert(points).map_err(ApiError::from))
        .await?;
    Ok(update_result(done.is_some(), start))
}

/// Points by id (absent ids are skipped).
#[utoipa::path(post, path = "/collections/{collection_name}/points", tag = "points",
    params(("collection_name" = String, Path, description = "Collection name", example = "c"), ReadParams),
    request_body = RetrievePoints,
    responses((status = 200, description = "Records")))]
pub async fn retrieve(
    State(state): State<AppState>,
    name: Result<Path<String>, PathRejection>,
    q: Result<Query<ReadParams>, QueryRejection>,
    JsonBody(req): JsonBody<RetrievePoints>,
) -> ApiResult<Response> {
    let start = Instant::now();
    let Path(name) = name?;
    q?;
    let c = state.collection(&name)?;
    let ids = convert::ids(&req.ids, state.config().max_batch)?;
    let ps = PayloadSel::parse(req.with_payload.as_ref(), true)?;
    let vs = VectorSel::parse(req.with_vector.as_ref())?;
    let out = AppState::blocking(move || {
        let schema = c.schema();
        Ok(ids
            .into_iter()
            .filter_map(|id| c.get(id))
            .map(|p| record(schema, p, &ps, &vs))
            .collect::<Vec<_>>())
    })
    .await?;
    Ok(ok(out, start))
}

/// One point by id (404 if absent).
#[utoipa::path(get, path = "/collections/{collection_name}/points/{id}", tag = "points",
    params(("collection_name" = String, Path, description = "Collection name", example = "c"), ("id" = String, Path, description = "Point id: an unsigned integer or a UUID")),
    responses((status = 200, description = "The record with payload and vector"), (status = 404, description = "No such point")))]
pub async fn get_point(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> ApiResult<Response> {
    let start = Instant::now();
    let Path((name, id)) = path?;
    let c = state.collection(&name)?;
    let id = PointId::parse(&id)?;
    let p =
        c.get(id).ok_or_else(|| ApiError::not_found(format!("Not found: No point with id {id} found")))?;
    Ok(ok(record(c.schema(), p, &PayloadSel::All, &VectorSel::All), start))
}

/// The ids or filter of a selector.
enum Target {
    Ids(Vec<PointId>),
    Filter(Filter),
}

fn target(points: Option<&Vec<Value>>, filter: Option<&Value>, max: usize) -> ApiResult<Target> {
    match (points, filter.filter(|f| !f.is_null())) {
        (Some(p), None) => Ok(Target::Ids(convert::ids(p, max)?)),
        (None, Some(f)) => Ok(Target::Filter(Filter::from_json(f)?)),
        _ => Err(ApiError::bad("select points with either \"points\" (ids) or \"filter\"")),
    }
}

fn ids_of(c: &Collection, t: Target) -> Vec<PointId> {
    match t {
        Target::Ids(ids) => ids,
        Target::Filter(f) => c.matching_ids(&f),
    }
}

/// Delete points by ids or filter.
#[utoipa::path(post, path = "/collections/{collection_name}/points/delete", tag = "points",
    params(("collection_name" = String, Path, description = "Collection name", example = "c"), WriteParams),
    request_body = PointsSelector,
    responses((status = 200, description = "Update result")))]
pub async fn delete_points(
    State(state): State<AppState>,
    name: Result<Path<String>, PathRejection>,
    q: Result<Query<WriteParams>, QueryRejection>,
    JsonBody(req): JsonBody<PointsSelector>,
) -> ApiResult<Response> {
    let start = Instant::now();
    let Path(name) = name?;
    let Query(q) = q?;
    let c = state.collection(&name)?;
    let t = target(req.points.as_ref(), req.filter.as_ref(), state.config().max_batch)?;
    let done = state
        .writer(&name)
        .write(&state, &name, q.wait.unwrap_or(false), move || match t {
            Target::Ids(ids) => c.delete(&ids).map_err(ApiError::from),
            Target::Filter(f) => c.delete_by_filter(&f).map_err(ApiError::from),
        })
        .await?;
    Ok(update_result(done.is_some(), start))
}

async fn payload_op(
    state: AppState,
    name: String,
    wait: bool,
    op: impl FnOnce(Arc<Collection>) -> ApiResult<usize> + Send + 'static,
    start: Instant,
) -> ApiResult<Response> {
    let c = state.collection(&name)?;
    let done = state.writer(&name).write(&state, &name, wait, move || op(c)).await?;
    Ok(update_result(done.is_some(), start))
}

fn payload_object(v: Value) -> ApiResult<Map<String, Value>> {
    match v {
        Value::Object(m) => Ok(m),
        other => Err(ApiError::bad(format!("payload must be a JSON object, not {other}"))),
    }
}

async fn set_payload_impl(
    state: AppState,
    name: String,
    q: WriteParams,
    req: SetPayload,
    overwrite: bool,
) -> ApiResult<Response> {
    let start = Instant::now();
    if req.key.is_some() {
        return Err(ApiError::bad("\"key\" (setting a nested payload path) is not supported"));
    }
    let payload = payload_object(req.payload)?;
    let t = target(req.points.as_ref(), req.filter.as_ref(), state.config().max_batch)?;
    payload_op(
        state,
        name,
        q.wait.unwrap_or(false),
        move |c| {
            let ids = ids_of(&c, t);
            c.set_payload(&ids, payload, overwrite).map_err(ApiError::from)
        },
        start,
    )
    .await
}

/// Set payload keys (merged into each payload).
#[utoipa::path(post, path = "/collections/{collection_name}/points/payload", tag = "points",
    params(("collection_name" = String, Path, description = "Collection name", example = "c"), WriteParams),
    request_body = SetPayload, responses((status = 200, description = "Update result")))]
pub async fn set_payload(
    State(state): State<AppState>,
    name: Result<Path<String>, PathRejection>,
    q: Result<Query<WriteParams>, QueryRejection>,
    JsonBody(req): JsonBody<SetPayload>,
) -> ApiResult<Response> {
    let (Path(name), Query(q)) = (name?, q?);
    set_payload_impl(state, name, q, req, false).await
}

/// Replace whole payloads.
#[utoipa::path(put, path = "/collections/{collection_name}/points/payload", tag = "points",
    params(("collection_name" = String, Path, description = "Collection name", example = "c"), WriteParams),
    request_body = SetPayload, responses((status = 200, description = "Update result")))]
pub async fn overwrite_payload(
    State(state): State<AppState>,
    name: Result<Path<String>, PathRejection>,
    q: Result<Query<WriteParams>, QueryRejection>,
    JsonBody(req): JsonBody<SetPayload>,
) -> ApiResult<Response> {
    let (Path(name), Query(q)) = (name?, q?);
    set_payload_impl(state, name, q, req, true).await
}

/// Remove payload keys.
#[utoipa::path(post, path = "/collections/{collection_name}/points/payload/delete", tag = "points",
    params(("collection_name" = String, Path, description = "Collection name", example = "c"), WriteParams),
    request_body = DeletePayload, responses((status = 200, description = "Update result")))]
pub async fn delete_payload(
    State(state): State<AppState>,
    name: Result<Path<String>, PathRejection>,
    q: Result<Query<WriteParams>, QueryRejection>,
    JsonBody(req): JsonBody<DeletePayload>,
) -> ApiResult<Response> {
    let start = Instant::now();
    let (Path(name), Query(q)) = (name?, q?);
    let t = target(req.points.as_ref(), req.filter.as_ref(), state.config().max_batch)?;
    let keys = req.keys;
    payload_op(
        state,
        name,
        q.wait.unwrap_or(false),
        move |c| {
            let ids = ids_of(&c, t);
            c.delete_payload_keys(&ids, &keys).map_err(ApiError::from)
        },
        start,
    )
    .await
}

/// Remove whole payloads.
#[utoipa::path(post, path = "/collections/{collection_name}/points/payload/clear", tag = "points",
    params(("collection_name" = String, Path, description = "Collection name", example = "c"), WriteParams),
    request_body = PointsSelector, responses((status = 200, description = "Update result")))]
pub async fn clear_payload(
    State(state): State<AppState>,
    name: Result<Path<String>, PathRejection>,
    q: Result<Query<WriteParams>, QueryRejection>,
    JsonBody(req): JsonBody<PointsSelector>,
) -> ApiResult<Response> {
    let start = Instant::now();
    let (Path(name), Query(q)) = (name?, q?);
    let t = target(req.points.as_ref(), req.filter.as_ref(), state.config().max_batch)?;
    payload_op(
        state,
        name,
        q.wait.unwrap_or(false),
        move |c| {
            let ids = ids_of(&c, t);
            c.set_payload(&ids, Map::new(), true).map_err(ApiError::from)
        },
        start,
    )
    .await
}

/// Pages through points in id order.
#[utoipa::path(post, path = "/collections/{collection_name}/points/scroll", tag = "points",
    params(("collection_name" = String, Path, description = "Collection name", example = "c"), ReadParams),
    request_body = ScrollRequest,
    responses((status = 200, description = "`{\"points\": [...], \"next_page_offset\": id | null}`")))]
pub async fn scroll(
    State(state): State<AppState>,
    name: Result<Path<String>, PathRejection>,
    q: Result<Query<ReadParams>, QueryRejection>,
    JsonBody(req): JsonBody<ScrollRequest>,
) -> ApiResult<Response> {
    let start = Instant::now();
    let Path(name) = name?;
    q?;
    if req.order_by.as_ref().is_some_and(|v| !v.is_null()) {
        return Err(ApiError::bad("order_by is not supported: pages are in id order"));
    }
    let c = state.collection(&name)?;
    let limit = req.limit.unwrap_or(10);
    if limit == 0 || limit > state.config().max_limit as u64 {
        return Err(ApiError::bad(format!("limit {limit}: use 1..={}", state.config().max_limit)));
    }
    let offset = match req.offset.as_ref().filter(|v| !v.is_null()) {
        Some(v) => Some(PointId::from_json(v)?),
        None => None,
    };
    let f = convert::filter(req.filter.as_ref())?;
    let ps = PayloadSel::parse(req.with_payload.as_ref(), true)?;
    let vs = VectorSel::parse(req.with_vector.as_ref())?;
    let out = AppState::blocking(move || {
        let (page, next) = c.scroll_from(offset, limit as usize, f.as_ref(), vs.wanted());
        let schema = c.schema();
        let points: Vec<Value> = page.into_iter().map(|p| record(schema, p, &ps, &vs)).collect();
        Ok(json!({"points": points, "next_page_offset": next.map(PointId::to_json)}))
    })
    .await?;
    Ok(ok(out, start))
}

/// Counts points (passing a filter).
#[utoipa::path(post, path = "/collections/{collection_name}/points/count", tag = "points",
    params(("collection_name" = String, Path, description = "Collection name", example = "c"), ReadParams),
    request_body = CountRequest, responses((status = 200, description = "`{\"count\": n}`")))]
pub async fn count(
    State(state): State<AppState>,
    name: Result<Path<String>, PathRejection>,
    q: Result<Query<ReadParams>, QueryRejection>,
    JsonBody(req): JsonBody<CountRequest>,
) -> ApiResult<Response> {
    let start = Instant::now();
    let Path(name) = name?;
    q?;
    let c = state.collection(&name)?;
    let f = convert::filter(req.filter.as_ref())?;
    let n = AppState::blocking(move || Ok(c.count(f.as_ref()))).await?;
    Ok(ok(json!({"count": n}), start))
}
