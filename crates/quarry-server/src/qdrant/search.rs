//! Search routes: `search`, `search/batch`, and the universal `query` (`query/batch`) with
//! nested `prefetch`, fused by `rrf` (Qdrant's default k = 2, or `{"rrf": {"k": …}}`) or `dbsf`
//! (distribution-based: each list scaled by mean ± 3σ, then summed), or re-scored exactly by a
//! query vector.

use super::convert::{self, PayloadSel, Scores, VectorSel};
use super::models::{QueryBatch, QueryRequest, ReadParams, SearchBatch, SearchParams, SearchRequest};
use crate::body::JsonBody;
use crate::error::{ok, ApiError, ApiResult};
use crate::state::AppState;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::response::Response;
use quarry_core::Metric;
use quarry_engine::{Collection, Filter, PointId, SearchOptions};
use quarry_rank::{fuse, Fusion};
use serde_json::{json, Value};
use std::time::Instant;

/// Prefetches nest at most this deep.
const MAX_DEPTH: usize = 4;

/// Graph beam for a search of `k` with `params`.
fn ef_of(c: &Collection, params: Option<&SearchParams>, k: usize) -> usize {
    let p = params.cloned().unwrap_or_default();
    if p.exact == Some(true) {
        return c.count(None).max(k).max(1);
    }
    let ef = p.hnsw_ef.map_or(quarry_engine::collection::DEFAULT_EF, |e| e.clamp(1, 100_000) as usize);
    ef.max(k)
}

/// Qdrant's `params.quantization.rescore` (default true): whether candidates found on codes are
/// re-scored from the rows. `ignore` and `oversampling` are accepted (re-scoring is exact either
/// way, and the number of candidates is the index's).
fn rescore_of(params: Option<&SearchParams>) -> ApiResult<bool> {
    match params.and_then(|p| p.quantization.as_ref()) {
        None | Some(Value::Null) => Ok(true),
        Some(Value::Object(q)) => match q.get("rescore") {
            None | Some(Value::Null) => Ok(true),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(ApiError::bad("params.quantization.rescore must be true or false")),
        },
        Some(_) => Err(ApiError::bad("params.quantization must be an object")),
    }
}

fn check_limit(limit: u64, offset: u64, max: usize) -> ApiResult<(usize, usize)> {
    let total = limit.saturating_add(offset);
    if total > max as u64 {
        return Err(ApiError::bad(format!("limit + offset = {total}: at most {max}")));
    }
    Ok((limit as usize, offset as usize))
}

/// A field and vector from `search`'s `vector` (an array or `{"name", "vector"}`).
fn named_vector(v: &Value) -> ApiResult<(Option<String>, Vec<f32>)> {
    match v {
        Value::Array(_) => Ok((None, convert::floats(v, "vector")?)),
        Value::Object(o) => {
            let name = o
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| ApiError::bad("vector.name must be a string"))?;
            let vec = o.get("vector").ok_or_else(|| ApiError::bad("vector.vector is missing"))?;
            Ok((Some(name.to_string()), convert::floats(vec, "vector.vector")?))
        }
        _ => Err(ApiError::bad("vector must be an array of numbers or {\"name\", \"vector\"}")),
    }
}

/// Hits of one search: ids, Qdrant scores (best first).
fn search_ids(
    c: &Collection,
    field: Option<&str>,
    vector: &[f32],
    filter: Option<&Filter>,
    params: Option<&SearchParams>,
    k: usize,
) -> ApiResult<Vec<(PointId, f64)>> {
    let f = c.schema().field(field)?;
    let sc = Scores::of(c.schema(), f);
    let opts = SearchOptions {
        ef: ef_of(c, params, k),
        with_payload: false,
        rescore: rescore_of(params)?,
        candidates: None,
    };
    let hits = c.search_with(vector, field, k, filter, &opts)?;
    Ok(hits.into_iter().map(|h| (h.id, sc.out(h.score))).collect())
}

/// Hits with payloads and vectors as selected, `offset` skipped, `threshold` applied.
fn finish(
    c: &Collection,
    hits: Vec<(PointId, f64)>,
    offset: usize,
    threshold: Option<f64>,
    sc: Scores,
    ps: &PayloadSel,
    vs: &VectorSel,
) -> Vec<Value> {
    hits.into_iter()
        .skip(offset)
        .filter(|(_, s)| sc.passes(*s, threshold))
        .map(|(id, s)| {
            let (payload, vector) = if vs.wanted() {
                match c.get(id) {
                    Some(p) => (ps.apply(p.payload.clone()), vs.apply(c.schema(), &p)),
                    None => (None, None),
                }
            } else if ps.wanted() {
                (c.payload(id).and_then(|p| ps.apply(p)), None)
            } else {
                (None, None)
            };
            convert::scored(id, s, payload, vector)
        })
        .collect()
}

fn run_search(c: &Collection, req: &SearchRequest, max: usize) -> ApiResult<Vec<Value>> {
    let (limit, offset) = check_limit(req.limit.unwrap_or(10), req.offset.unwrap_or(0), max)?;
    let (field, vector) = named_vector(&req.vector)?;
    let filter = convert::filter(req.filter.as_ref())?;
    let ps = PayloadSel::parse(req.with_payload.as_ref(), false)?;
    let vs = VectorSel::parse(req.with_vector.as_ref())?;
    let f = c.schema().field(field.as_deref())?;
    let hits =
        search_ids(c, field.as_deref(), &vector, filter.as_ref(), req.params.as_ref(), limit + offset)?;
    Ok(finish(c, hits, offset, req.score_threshold, Scores::of(c.schema(), f), &ps, &vs))
}

/// Nearest points to a vector.
#[utoipa::path(post, path = "/collections/{collection_name}/points/search", tag = "search",
    params(("collection_name" = String, Path, description = "Collection name", example = "c"), ReadParams),
    request_body = SearchRequest, responses((status = 200, description = "Scored points, best first")))]
pub async fn search(
    State(state): State<AppState>,
    name: Result<Path<String>, PathRejection>,
    q: Result<Query<ReadParams>, QueryRejection>,
    JsonBody(req): JsonBody<SearchRequest>,
) -> ApiResult<Response> {
    let start = Instant::now();
    let Path(name) = name?;
    q?;
    let c = state.collection(&name)?;
    let max = state.config().max_limit;
    let out = AppState::blocking(move || run_search(&c, &req, max)).await?;
    Ok(ok(out, start))
}

/// Several searches in one request.
#[utoipa::path(post, path = "/collections/{collection_name}/points/search/batch", tag = "search",
    params(("collection_name" = String, Path, description = "Collection name", example = "c"), ReadParams),
    request_body = SearchBatch, responses((status = 200, description = "One list of scored points per search")))]
pub async fn search_batch(
    State(state): State<AppState>,
    name: Result<Path<String>, PathRejection>,
    q: Result<Query<ReadParams>, QueryRejection>,
    JsonBody(req): JsonBody<SearchBatch>,
) -> ApiResult<Response> {
    let start = Instant::now();
    let Path(name) = name?;
    q?;
    let out = run_batch(&state, &name, req.searches, "searches", run_search).await?;
    Ok(ok(out, start))
}

/// Runs `one` for every request of a batch (at most the server's batch size) on the blocking
/// pool, in order; an error names the failing entry (`searches[i]: …`).
async fn run_batch<R: Send + 'static, T: Send + 'static>(
    state: &AppState,
    name: &str,
    reqs: Vec<R>,
    what: &'static str,
    one: fn(&Collection, &R, usize) -> ApiResult<T>,
) -> ApiResult<Vec<T>> {
    let c = state.collection(name)?;
    let max_batch = state.config().max_batch;
    if reqs.len() > max_batch {
        return Err(ApiError::bad(format!("{} {what} in one request: at most {max_batch}", reqs.len())));
    }
    let max = state.config().max_limit;
    AppState::blocking(move || {
        reqs.iter()
            .enumerate()
            .map(|(i, r)| one(&c, r, max).map_err(|e| e.prefixed(&format!("searches[{i}]: "))))
            .collect()
    })
    .await
}

/// What a query asks.
enum Q {
    Nearest(Vec<f32>),
    Rrf(f64),
    Dbsf,
    None,
}

fn parse_query(c: &Collection, q: Option<&Value>, using: Option<&str>) -> ApiResult<Q> {
    let vector_of = |id: PointId| -> ApiResult<Vec<f32>> {
        let f = c.schema().field(using)?;
        let p = c
            .get(id)
            .ok_or_else(|| ApiError::not_found(format!("Not found: No point with id {id} found")))?;
        Ok(p.vectors[f].clone())
    };
    match q {
        None | Some(Value::Null) => Ok(Q::None),
        Some(v @ Value::Array(_)) => Ok(Q::Nearest(query_vector(c, using, v, "query")?)),
        Some(v @ (Value::Number(_) | Value::String(_))) => Ok(Q::Nearest(vector_of(PointId::from_json(v)?)?)),
        Some(Value::Object(o)) => {
            if let Some(n) = o.get("nearest") {
                return match n {
                    Value::Array(_) => Ok(Q::Nearest(query_vector(c, using, n, "query.nearest")?)),
                    Value::Number(_) | Value::String(_) => Ok(Q::Nearest(vector_of(PointId::from_json(n)?)?)),
                    _ => Err(ApiError::bad("query.nearest must be a vector or a point id")),
                };
            }
            if let Some(f) = o.get("fusion") {
                return match f.as_str() {
                    Some("rrf") => Ok(Q::Rrf(2.0)),
                    Some("dbsf") => Ok(Q::Dbsf),
                    _ => Err(ApiError::bad("query.fusion: use \"rrf\" or \"dbsf\"")),
                };
            }
            if let Some(r) = o.get("rrf") {
                let k = r.get("k").map_or(Some(2.0), Value::as_f64).filter(|k| k.is_finite() && *k >= 0.0);
                return k.map(Q::Rrf).ok_or_else(|| ApiError::bad("query.rrf.k must be a number ≥ 0"));
            }
            let kind = o.keys().next().cloned().unwrap_or_default();
            Err(ApiError::bad(format!(
                "query type {kind:?} is not supported (nearest, a point id, fusion, rrf)"
            )))
        }
        Some(other) => {
            Err(ApiError::bad(format!("query {other}: use a vector, a point id or {{\"fusion\": …}}")))
        }
    }
}

/// A query vector for field `using`: an array of numbers, or for a multi-vector field an array of
/// vectors (concatenated).
fn query_vector(c: &Collection, using: Option<&str>, v: &Value, what: &str) -> ApiResult<Vec<f32>> {
    let f = c.schema().field(using)?;
    let field = &c.schema().vectors[f];
    if field.multivector.is_some() {
        return Ok(field.parse_value(v, what)?);
    }
    convert::floats(v, what)
}

fn similarity(metric: Metric, a: &[f32], b: &[f32]) -> f32 {
    match metric {
        Metric::L2 => -a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f32>(),
        Metric::Cosine => {
            let (mut d, mut na, mut nb) = (0f32, 0f32, 0f32);
            for (x, y) in a.iter().zip(b) {
                d += x * y;
                na += x * x;
                nb += y * y;
            }
            d / (na.sqrt() * nb.sqrt()).max(f32::MIN_POSITIVE)
        }
        _ => a.iter().zip(b).map(|(x, y)| x * y).sum(),
    }
}

/// Runs one query (with its prefetches) for `k` hits under `outer` filter: ids and Qdrant scores.
fn run_query(
    c: &Collection,
    q: &QueryRequest,
    outer: Option<&Value>,
    k: usize,
    depth: usize,
    max: usize,
) -> ApiResult<(Vec<(PointId, f64)>, Scores)> {
    if depth > MAX_DEPTH {
        return Err(ApiError::bad(format!("prefetch nested deeper than {MAX_DEPTH} levels")));
    }
    if q.lookup_from.as_ref().is_some_and(|v| !v.is_null()) {
        return Err(ApiError::bad("lookup_from is not supported"));
    }
    let using = q.using.as_deref();
    let f = c.schema().field(using)?;
    let sc = Scores::of(c.schema(), f);
    let filter_json = match (outer, q.filter.as_ref().filter(|v| !v.is_null())) {
        (Some(a), Some(b)) => Some(json!({"must": [a, b]})),
        (a, b) => a.or(b).cloned(),
    };
    let filter = convert::filter(filter_json.as_ref())?;
    let prefetches: Vec<QueryRequest> = match q.prefetch.as_ref() {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|p| serde_json::from_value(p.clone()))
            .collect::<Result<_, _>>()
            .map_err(|e| ApiError::bad(format!("prefetch: {e}")))?,
        Some(p @ Value::Object(_)) => {
            vec![serde_json::from_value(p.clone()).map_err(|e| ApiError::bad(format!("prefetch: {e}")))?]
        }
        Some(_) => return Err(ApiError::bad("prefetch must be a query object or a list of them")),
    };
    let query = parse_query(c, q.query.as_ref(), using)?;
    if prefetches.is_empty() {
        return match query {
            Q::Nearest(v) => Ok((search_ids(c, using, &v, filter.as_ref(), q.params.as_ref(), k)?, sc)),
            Q::None => {
                let (page, _) = c.scroll_from(None, k, filter.as_ref(), false);
                Ok((page.into_iter().map(|p| (p.id, 0.0)).collect(), sc))
            }
            Q::Rrf(_) | Q::Dbsf => Err(ApiError::bad("fusion needs prefetch queries to fuse")),
        };
    }
    let mut lists = Vec::new();
    for (i, p) in prefetches.iter().enumerate() {
        let (pl, _) = check_limit(p.limit.unwrap_or(10), 0, max)?;
        let (hits, psc) = run_query(c, p, filter_json.as_ref(), pl, depth + 1, max)
            .map_err(|e| e.prefixed(&format!("prefetch[{i}]: ")))?;
        // Best first already; for score fusion, distances become similarities (higher better).
        let hits: Vec<(PointId, f64)> = hits
            .into_iter()
            .filter(|(_, s)| psc.passes(*s, p.score_threshold))
            .map(|(id, s)| (id, psc.higher_better(s)))
            .collect();
        lists.push(hits);
    }
    match query {
        // Fusion is quarry-rank's, like every other front end's.
        Q::Rrf(rk) => Ok((fuse(&lists, &Fusion::Rrf { k: rk }, k)?, Scores::of(c.schema(), usize::MAX))),
        Q::Dbsf => Ok((fuse(&lists, &Fusion::Dbsf, k)?, Scores::of(c.schema(), usize::MAX))),
        Q::Nearest(v) => {
            // Re-score the union of the prefetched points exactly with the query vector.
            let metric: Metric = c.schema().vectors[f].metric()?;
            let dim = c.schema().vectors[f].dim;
            if c.schema().vectors[f].multivector.is_some() {
                // Late-interaction re-ranking of the prefetched points by exact MaxSim.
                let hits =
                    c.score_points(&v, using, &lists.iter().flatten().map(|x| x.0).collect::<Vec<_>>(), k)?;
                return Ok((hits.into_iter().map(|h| (h.id, sc.out(h.score))).collect(), sc));
            }
            if v.len() != dim {
                return Err(quarry_core::Error::DimensionMismatch {
                    expected: dim,
                    got: v.len(),
                    context: "query".into(),
                }
                .into());
            }
            let mut ids: Vec<PointId> = lists.iter().flatten().map(|x| x.0).collect();
            ids.sort_unstable();
            ids.dedup();
            let mut out: Vec<(PointId, f32)> = ids
                .into_iter()
                .filter_map(|id| c.get(id).map(|p| (id, similarity(metric, &v, &p.vectors[f]))))
                .collect();
            out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            out.truncate(k);
            Ok((out.into_iter().map(|(id, s)| (id, sc.out(s))).collect(), sc))
        }
        Q::None => {
            let mut ids: Vec<PointId> = lists.iter().flatten().map(|x| x.0).collect();
            ids.sort_unstable();
            ids.dedup();
            ids.truncate(k);
            Ok((ids.into_iter().map(|id| (id, 0.0)).collect(), sc))
        }
    }
}

fn run_top_query(c: &Collection, q: &QueryRequest, max: usize) -> ApiResult<Value> {
    let (limit, offset) = check_limit(q.limit.unwrap_or(10), q.offset.unwrap_or(0), max)?;
    let ps = PayloadSel::parse(q.with_payload.as_ref(), false)?;
    let vs = VectorSel::parse(q.with_vector.as_ref())?;
    let (hits, sc) = run_query(c, q, None, limit + offset, 0, max)?;
    Ok(json!({"points": finish(c, hits, offset, q.score_threshold, sc, &ps, &vs)}))
}

/// The universal query: nearest, by point id, or fusing / re-scoring `prefetch` results.
#[utoipa::path(post, path = "/collections/{collection_name}/points/query", tag = "search",
    params(("collection_name" = String, Path, description = "Collection name", example = "c"), ReadParams),
    request_body = QueryRequest, responses((status = 200, description = "`{\"points\": [scored points]}`")))]
pub async fn query(
    State(state): State<AppState>,
    name: Result<Path<String>, PathRejection>,
    q: Result<Query<ReadParams>, QueryRejection>,
    JsonBody(req): JsonBody<QueryRequest>,
) -> ApiResult<Response> {
    let start = Instant::now();
    let Path(name) = name?;
    q?;
    let c = state.collection(&name)?;
    let max = state.config().max_limit;
    let out = AppState::blocking(move || run_top_query(&c, &req, max)).await?;
    Ok(ok(out, start))
}

/// Several universal queries in one request.
#[utoipa::path(post, path = "/collections/{collection_name}/points/query/batch", tag = "search",
    params(("collection_name" = String, Path, description = "Collection name", example = "c"), ReadParams),
    request_body = QueryBatch, responses((status = 200, description = "One `{\"points\"}` per query")))]
pub async fn query_batch(
    State(state): State<AppState>,
    name: Result<Path<String>, PathRejection>,
    q: Result<Query<ReadParams>, QueryRejection>,
    JsonBody(req): JsonBody<QueryBatch>,
) -> ApiResult<Response> {
    let start = Instant::now();
    let Path(name) = name?;
    q?;
    let out = run_batch(&state, &name, req.searches, "queries", run_top_query).await?;
    Ok(ok(out, start))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// DBSF against a hand computation. List A = (1: 0.9, 2: 0.5, 3: 0.1): mean 0.5, population
    /// σ = √(0.32 / 3) = 0.326599, limits 0.5 ∓ 0.979796, so 1 → 1.379796 / 1.959592 = 0.704124,
    /// 2 → 0.5, 3 → 0.295876. List B = (2: 10, 4: 20): mean 15, σ 5, limits 0 and 30, so
    /// 2 → 1/3, 4 → 2/3. Sums: 2 = 0.833333, 1 = 0.704124, 4 = 0.666667, 3 = 0.295876.
    #[test]
    fn dbsf_matches_a_hand_computation() {
        let n = PointId::Num;
        let a = vec![(n(1), 0.9), (n(2), 0.5), (n(3), 0.1)];
        let b = vec![(n(2), 10.0), (n(4), 20.0)];
        let got = fuse(&[a, b], &Fusion::Dbsf, 10).expect("fuse");
        let want = [(2, 0.833_333), (1, 0.704_124), (4, 0.666_667), (3, 0.295_876)];
        assert_eq!(got.len(), want.len());
        for ((id, score), (wid, ws)) in got.iter().zip(want) {
            assert_eq!(*id, n(wid));
            assert!((score - ws).abs() < 1e-6, "point {wid}: {score} vs {ws}");
        }
        // k truncates; a constant list scores 0.5 for each of its points.
        let c = vec![(n(5), 3.0), (n(6), 3.0)];
        assert_eq!(fuse(&[c], &Fusion::Dbsf, 1).expect("fuse"), vec![(n(5), 0.5)]);
        assert!(fuse::<PointId>(&[vec![], vec![]], &Fusion::Dbsf, 3).expect("fuse").is_empty());
    }
}
