//! Expert groups over HTTP (`quarry_engine::group`): create, show, list, delete, fit on judged
//! queries, and search (route, search the chosen experts, fuse). Models are named, never given as
//! paths: the router must be installed in the server's model folders.

use crate::body::JsonBody;
use crate::error::{ok, ApiError, ApiResult};
use crate::state::AppState;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::response::Response;
use quarry_engine::group::{GroupFitQuery, GroupMember, GroupQuery, GroupSpec};
use quarry_engine::PointId;
use quarry_rank::route::RouteRule;
use serde::Deserialize;
use serde_json::{json, Value};
use std::time::Instant;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The group routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_groups))
        .routes(routes!(create_group, group_info, delete_group))
        .routes(routes!(fit_group))
        .routes(routes!(search_group))
}

/// `PUT /quarry/groups/{name}`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateGroup {
    /// Experts, the general one first: `[{"collection", "mode": "dense" | "bm25" | "hybrid"}]`.
    #[schema(value_type = Vec<Object>)]
    pub members: Vec<Value>,
    /// Base encoder routing queries: an installed model name.
    pub router_model: String,
    /// `mean` (default) or `max`.
    #[serde(default)]
    pub rule: Option<String>,
    /// Experts searched per query (default 1).
    #[serde(default)]
    pub fuse_top: Option<u64>,
    /// The members hold the same documents under the same ids.
    #[serde(default)]
    pub same_documents: Option<bool>,
}

/// A judged query of `POST /quarry/groups/{name}/fit`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct FitQuery {
    /// Its text.
    pub text: String,
    /// Its domain label (default: one domain).
    #[serde(default)]
    pub label: Option<String>,
    /// Relevant documents: `[{"id", "collection"?, "gain"?}]` (gain default 1; without
    /// `collection`, any member's point with that id).
    #[schema(value_type = Vec<Object>)]
    pub relevant: Vec<Value>,
}

/// `POST /quarry/groups/{name}/fit`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct FitGroup {
    /// Judged queries.
    pub queries: Vec<FitQuery>,
    /// Pilots per domain and expert (default 1).
    #[serde(default)]
    pub k: Option<u64>,
}

/// `POST /quarry/groups/{name}/search`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct SearchGroup {
    /// The query text.
    pub text: String,
    /// Hits (default 10).
    #[serde(default)]
    pub limit: Option<u64>,
    /// Experts searched (default: the group's).
    #[serde(default)]
    pub fuse_top: Option<u64>,
    /// `mean` or `max` (default: the group's).
    #[serde(default)]
    pub rule: Option<String>,
    /// Whether hits carry payloads (default true).
    #[serde(default)]
    pub with_payload: Option<bool>,
}

fn rule_of(s: Option<&str>) -> ApiResult<Option<RouteRule>> {
    s.map(|r| r.parse::<RouteRule>().map_err(|e| ApiError::bad(e.to_string()))).transpose()
}

/// List the groups.
#[utoipa::path(get, path = "/quarry/groups", tag = "quarry",
    responses((status = 200, description = "`{\"groups\": [name]}`")))]
pub async fn list_groups(State(state): State<AppState>) -> ApiResult<Response> {
    let start = Instant::now();
    Ok(ok(json!({"groups": state.db().group_names()}), start))
}

/// Create (or replace) a group of text collections.
#[utoipa::path(put, path = "/quarry/groups/{group_name}", tag = "quarry",
    params(("group_name" = String, Path, description = "Group name", example = "g")),
    request_body = CreateGroup, responses((status = 200, description = "`true`")))]
pub async fn create_group(
    State(state): State<AppState>,
    name: Result<Path<String>, PathRejection>,
    JsonBody(req): JsonBody<CreateGroup>,
) -> ApiResult<Response> {
    let start = Instant::now();
    let Path(name) = name?;
    let members = req
        .members
        .iter()
        .map(|m| serde_json::from_value::<GroupMember>(m.clone()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ApiError::bad(format!("members: {e} (expected [{{\"collection\", \"mode\"}}])")))?;
    let mut spec = GroupSpec::new(members, &req.router_model);
    if let Some(r) = rule_of(req.rule.as_deref())? {
        spec.rule = r;
    }
    if let Some(t) = req.fuse_top {
        spec.fuse_top = usize::try_from(t).map_err(|_| ApiError::bad("fuse_top: too large"))?;
    }
    spec.same_documents = req.same_documents.unwrap_or(false);
    spec.check().map_err(|e| ApiError::bad(e.to_string()))?;
    for m in &spec.members {
        state.collection(&m.collection)?;
    }
    // Only installed models, by name: never a path.
    quarry_text::locate::installed_model_dir(&req.router_model)
        .map_err(|e| ApiError::bad(format!("router_model: {e}")))?;
    let db = state.db().clone();
    AppState::blocking(move || Ok(db.create_group(&name, spec)?)).await?;
    Ok(ok(json!(true), start))
}

/// A group's settings and last fit.
#[utoipa::path(get, path = "/quarry/groups/{group_name}", tag = "quarry",
    params(("group_name" = String, Path, description = "Group name", example = "g")),
    responses((status = 200, description = "the group's settings, pilot counts and fit")))]
pub async fn group_info(
    State(state): State<AppState>,
    name: Result<Path<String>, PathRejection>,
) -> ApiResult<Response> {
    let start = Instant::now();
    let Path(name) = name?;
    let g = state.db().group(&name)?;
    Ok(ok(
        json!({
            "members": g.members, "router_model": g.router_model, "rule": g.rule, "fuse_top": g.fuse_top,
            "same_documents": g.same_documents, "fusion": g.fusion, "pilots": g.pilots.counts(), "fit": g.fit,
        }),
        start,
    ))
}

/// Delete a group (its collections stay).
#[utoipa::path(delete, path = "/quarry/groups/{group_name}", tag = "quarry",
    params(("group_name" = String, Path, description = "Group name", example = "g")),
    responses((status = 200, description = "whether it existed")))]
pub async fn delete_group(
    State(state): State<AppState>,
    name: Result<Path<String>, PathRejection>,
) -> ApiResult<Response> {
    let start = Instant::now();
    let Path(name) = name?;
    Ok(ok(json!(state.db().delete_group(&name)?), start))
}

/// Fit a group's pilots on judged queries.
#[utoipa::path(post, path = "/quarry/groups/{group_name}/fit", tag = "quarry",
    params(("group_name" = String, Path, description = "Group name", example = "g")),
    request_body = FitGroup, responses((status = 200, description = "the fit's report")))]
pub async fn fit_group(
    State(state): State<AppState>,
    name: Result<Path<String>, PathRejection>,
    JsonBody(req): JsonBody<FitGroup>,
) -> ApiResult<Response> {
    let start = Instant::now();
    let Path(name) = name?;
    if req.queries.is_empty() || req.queries.len() > state.config().max_batch {
        return Err(ApiError::bad(format!("give 1 to {} queries", state.config().max_batch)));
    }
    let k = usize::try_from(req.k.unwrap_or(1)).map_err(|_| ApiError::bad("k: too large"))?;
    let mut judged: Vec<Vec<(Option<String>, PointId, f64)>> = Vec::with_capacity(req.queries.len());
    for (i, q) in req.queries.iter().enumerate() {
        let mut rel = Vec::new();
        for r in &q.relevant {
            let id = r
                .get("id")
                .ok_or_else(|| ApiError::bad(format!("queries[{i}].relevant: each needs an id")))
                .and_then(|v| {
                    PointId::from_json(v).map_err(|e| ApiError::bad(format!("queries[{i}]: {e}")))
                })?;
            let collection = r.get("collection").and_then(Value::as_str).map(str::to_string);
            let gain = match r.get("gain") {
                None => 1.0,
                Some(g) => g
                    .as_f64()
                    .filter(|g| g.is_finite() && *g >= 0.0)
                    .ok_or_else(|| ApiError::bad(format!("queries[{i}]: gain must be a number ≥ 0")))?,
            };
            rel.push((collection, id, gain));
        }
        judged.push(rel);
    }
    let queries: Vec<GroupFitQuery> = req
        .queries
        .iter()
        .map(|q| GroupFitQuery { text: q.text.clone(), label: q.label.clone().unwrap_or_default() })
        .collect();
    let db = state.db().clone();
    let report = AppState::blocking(move || {
        let gain = |i: usize, collection: &str, h: &quarry_engine::TextHit| -> f64 {
            judged[i]
                .iter()
                .find(|(c, id, _)| *id == h.id && c.as_deref().is_none_or(|c| c == collection))
                .map_or(0.0, |r| r.2)
        };
        Ok(db.fit_group(&name, &queries, &gain, k)?)
    })
    .await?;
    Ok(ok(json!(report), start))
}

/// Search a group: route the query, search the chosen experts, fuse.
#[utoipa::path(post, path = "/quarry/groups/{group_name}/search", tag = "quarry",
    params(("group_name" = String, Path, description = "Group name", example = "g")),
    request_body = SearchGroup,
    responses((status = 200, description = "`{\"routing\": [{\"collection\", \"mode\", \"score\", \"searched\"}], \"hits\": [{\"collection\", \"id\", \"score\", \"payload\"}]}`")))]
pub async fn search_group(
    State(state): State<AppState>,
    name: Result<Path<String>, PathRejection>,
    JsonBody(req): JsonBody<SearchGroup>,
) -> ApiResult<Response> {
    let start = Instant::now();
    let Path(name) = name?;
    let limit = req.limit.unwrap_or(10);
    if limit == 0 || limit > state.config().max_limit as u64 {
        return Err(ApiError::bad(format!("limit: 1..={}", state.config().max_limit)));
    }
    let mut q = GroupQuery::new(&req.text, limit as usize);
    q.fuse_top = req.fuse_top.map(|t| usize::try_from(t).unwrap_or(usize::MAX));
    q.rule = rule_of(req.rule.as_deref())?;
    q.with_payload = req.with_payload.unwrap_or(true);
    let db = state.db().clone();
    let with_payload = q.with_payload;
    let r = AppState::blocking(move || Ok(db.search_group(&name, &q)?)).await?;
    let hits: Vec<Value> = r
        .hits
        .into_iter()
        .map(|h| {
            let mut o = json!({"collection": h.collection, "id": h.hit.id.to_json(), "score": h.hit.score});
            if with_payload {
                o["payload"] = Value::Object(h.hit.payload);
            }
            o
        })
        .collect();
    Ok(ok(json!({"routing": r.routing, "hits": hits}), start))
}
