//! Native endpoints under `/quarry/` for what only Quarry does: text collections (documents in,
//! BM25 / dense / hybrid search out, with `explain`), collection details, and evaluation runs
//! (a judged query set scored with trec_eval's measures against the collection's answers).

use crate::body::JsonBody;
use crate::error::{ok, ApiError, ApiResult};
use crate::qdrant::convert;
use crate::qdrant::models::WriteParams;
use crate::state::AppState;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::response::Response;
use quarry_engine::{PointId, TextDoc, TextMode, TextQuery, TextSpec};
use quarry_eval::trec::{evaluate, EvalOptions, Measure, Qrels, Run};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::time::Instant;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The native routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_text_collection))
        .routes(routes!(collection_details))
        .routes(routes!(upsert_documents))
        .routes(routes!(delete_documents))
        .routes(routes!(text_search))
        .routes(routes!(context))
        .routes(routes!(eval_run))
        .routes(routes!(optimize))
}

/// `POST /quarry/collections/{name}/text`: a text collection.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateText {
    /// Text settings: `{"model": folder or name | null (BM25 only), "bm25": {"k1", "b"},
    /// "analyzer": {…}, "passages": {"mode": "max" | "truncate", "overlap"}, "key",
    /// "query_prefix", "document_prefix"}`; all optional.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub text: Option<Value>,
    /// Index of the dense field: `hnsw` (default), `hnsw+sq8`, `flat`.
    #[serde(default)]
    pub index: Option<String>,
}

/// A document.
#[derive(Debug, Deserialize, ToSchema)]
pub struct Document {
    /// Id (unsigned integer or UUID string).
    #[schema(value_type = Object)]
    pub id: Value,
    /// Its text.
    pub text: String,
    /// Its payload (an object).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub payload: Option<Value>,
}

/// `PUT /quarry/collections/{name}/documents`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct UpsertDocuments {
    /// The documents.
    pub documents: Vec<Document>,
}

/// `POST /quarry/collections/{name}/documents/delete`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct DeleteDocuments {
    /// Ids.
    #[schema(value_type = Vec<Object>)]
    pub ids: Vec<Value>,
}

/// `POST /quarry/collections/{name}/text-search`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct TextSearch {
    /// The query text.
    #[serde(default)]
    pub text: Option<String>,
    /// Several texts for one need (retrieved separately and fused by RRF).
    #[serde(default)]
    pub texts: Option<Vec<String>>,
    /// `dense`, `bm25` or `hybrid` (default: hybrid with a model, else bm25).
    #[serde(default)]
    pub mode: Option<String>,
    /// Hits (default 10).
    #[serde(default)]
    pub limit: Option<u64>,
    /// Hybrid fusion: `weighted` (0.5/0.5 after min-max unless `weights`) or `rrf`; default: the
    /// collection's fitted fusion, else weighted.
    #[serde(default)]
    pub fusion: Option<String>,
    /// RRF offset (default 60).
    #[serde(default)]
    pub rrf_k: Option<f64>,
    /// Weights of the dense and BM25 lists (weighted fusion).
    #[serde(default)]
    pub weights: Option<Vec<f64>>,
    /// Candidates per list before fusion (default 100).
    #[serde(default)]
    pub depth: Option<u64>,
    /// A filter (Qdrant syntax).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub filter: Option<Value>,
    /// Per hit: each list's rank and score, the best passage, BM25 term contributions.
    #[serde(default)]
    pub explain: Option<bool>,
    /// Whether hits carry payloads (default true).
    #[serde(default)]
    pub with_payload: Option<bool>,
    /// Return only hits whose calibrated relevance probability reaches this: a number in [0, 1]
    /// or `"auto"` (the threshold stored by `quarry calibrate`); hits then carry `relevance`.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub min_relevance: Option<Value>,
    /// Re-score dense candidates by the collection's fitted hubness correction.
    #[serde(default)]
    pub hubness: Option<bool>,
    /// Embed the texts with this (newer) model and map them into the collection's space
    /// (`quarry align` fitted the map).
    #[serde(default)]
    pub query_model: Option<String>,
    /// Re-rank the first `rerank_depth` hits with this cross-encoder: a model name in the
    /// server's model folders (`QUARRY_MODELS`, `~/.cache/quarry/models`), never a path.
    #[serde(default)]
    pub rerank: Option<String>,
    /// Hits re-ranked (default 20, at most 200).
    #[serde(default)]
    pub rerank_depth: Option<u64>,
    /// Weight of the cross-encoder against the first stage's score in the re-ranked head, in
    /// [0, 1] (default 0.5, an equal mix; 1: the cross-encoder alone).
    #[serde(default)]
    pub rerank_blend: Option<f64>,
}

/// One judged query of an evaluation run.
#[derive(Debug, Deserialize, ToSchema)]
pub struct EvalQuery {
    /// Query id (as in the judgements).
    pub id: String,
    /// Query text (text collections).
    #[serde(default)]
    pub text: Option<String>,
    /// Query vector (vector collections).
    #[serde(default)]
    pub vector: Option<Vec<f64>>,
}

/// `POST /quarry/collections/{name}/eval`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct EvalRequest {
    /// The queries.
    pub queries: Vec<EvalQuery>,
    /// Judgements: query id → document id → grade.
    #[schema(value_type = Object)]
    pub qrels: BTreeMap<String, BTreeMap<String, i32>>,
    /// trec_eval measure names (default `ndcg_cut_10`, `recall_100`, `recip_rank`, `map`).
    #[serde(default)]
    pub measures: Option<Vec<String>>,
    /// Ranking of text queries (as in text search).
    #[serde(default)]
    pub mode: Option<String>,
    /// Depth of each run (default 100).
    #[serde(default)]
    pub k: Option<u64>,
    /// Graph beam of vector searches.
    #[serde(default)]
    pub ef: Option<u64>,
}

/// Create a text collection.
#[utoipa::path(post, path = "/quarry/collections/{collection_name}/text", tag = "quarry",
    params(("collection_name" = String, Path, description = "Collection name", example = "c")),
    request_body = CreateText, responses((status = 200, description = "Created")))]
pub async fn create_text_collection(
    State(state): State<AppState>,
    name: Result<Path<String>, PathRejection>,
    JsonBody(req): JsonBody<CreateText>,
) -> ApiResult<Response> {
    let start = Instant::now();
    let Path(name) = name?;
    let spec: TextSpec = match req.text {
        None | Some(Value::Null) => TextSpec::new(None),
        Some(v) => {
            let mut v = v;
            if let Value::Object(o) = &mut v {
                o.entry("model").or_insert(Value::Null);
            }
            serde_json::from_value(v).map_err(|e| ApiError::bad(format!("text: {e}")))?
        }
    };
    spec.check()?;
    let index = req.index.unwrap_or_else(|| "hnsw".into());
    index.parse::<quarry_engine::IndexSpec>()?;
    if state.db().collection(&name).is_ok() {
        return Err(ApiError::bad(format!("Wrong input: Collection `{name}` already exists!")));
    }
    let db = state.db().clone();
    AppState::blocking(move || {
        db.create_text_collection(&name, spec, &index).map(|_| ()).map_err(ApiError::from)
    })
    .await?;
    Ok(ok(true, start))
}

/// Details of any collection: the schema, counts, segments, text statistics.
#[utoipa::path(get, path = "/quarry/collections/{collection_name}", tag = "quarry",
    params(("collection_name" = String, Path, description = "Collection name", example = "c")),
    responses((status = 200, description = "Details"), (status = 404, description = "Unknown collection")))]
pub async fn collection_details(
    State(state): State<AppState>,
    name: Result<Path<String>, PathRejection>,
) -> ApiResult<Response> {
    let start = Instant::now();
    let Path(name) = name?;
    let c = state.collection(&name)?;
    let db = state.db().clone();
    let v = AppState::blocking(move || {
        let schema = c.current_schema();
        let mut v = json!({"name": name, "schema": schema, "points": c.count(None), "segments": c.segment_count()});
        if schema.text.is_some() {
            let t = db.text_collection(&name)?;
            let st = t.bm25_stats();
            v["text"] = json!({"documents": t.count(), "extra_passages": t.extra_passages(), "bm25": {"documents": st.docs, "avg_length": st.avgdl, "terms": st.terms}});
        }
        Ok(v)
    })
    .await?;
    Ok(ok(v, start))
}

/// Insert or replace documents of a text collection (embedded and indexed for BM25).
#[utoipa::path(put, path = "/quarry/collections/{collection_name}/documents", tag = "quarry",
    params(("collection_name" = String, Path, description = "Collection name", example = "c"), WriteParams),
    request_body = UpsertDocuments, responses((status = 200, description = "Update result")))]
pub async fn upsert_documents(
    State(state): State<AppState>,
    name: Result<Path<String>, PathRejection>,
    q: Result<Query<WriteParams>, QueryRejection>,
    JsonBody(req): JsonBody<UpsertDocuments>,
) -> ApiResult<Response> {
    let start = Instant::now();
    let (Path(name), Query(q)) = (name?, q?);
    state.collection(&name)?;
    if req.documents.len() > state.config().max_batch {
        return Err(ApiError::bad(format!(
            "{} documents in one request: at most {}",
            req.documents.len(),
            state.config().max_batch
        )));
    }
    let docs = req
        .documents
        .into_iter()
        .enumerate()
        .map(|(i, d)| {
            let id = PointId::from_json(&d.id)
                .map_err(|e| ApiError::from(e).prefixed(&format!("documents[{i}]: ")))?;
            let payload = match d.payload {
                None | Some(Value::Null) => Map::new(),
                Some(Value::Object(m)) => m,
                Some(_) => return Err(ApiError::bad(format!("documents[{i}]: payload must be an object"))),
            };
            Ok(TextDoc { id, text: d.text, payload })
        })
        .collect::<ApiResult<Vec<_>>>()?;
    let db = state.db().clone();
    let n2 = name.clone();
    let t = AppState::blocking(move || db.text_collection(&n2).map_err(ApiError::from)).await?;
    let done = state
        .writer(&name)
        .write(&state, &name, q.wait.unwrap_or(false), move || t.upsert(docs).map_err(ApiError::from))
        .await?;
    Ok(ok(
        json!({"operation_id": 0, "status": if done.is_some() { "completed" } else { "acknowledged" }}),
        start,
    ))
}

/// Delete documents of a text collection (with their passages).
#[utoipa::path(post, path = "/quarry/collections/{collection_name}/documents/delete", tag = "quarry",
    params(("collection_name" = String, Path, description = "Collection name", example = "c"), WriteParams),
    request_body = DeleteDocuments, responses((status = 200, description = "Update result")))]
pub async fn delete_documents(
    State(state): State<AppState>,
    name: Result<Path<String>, PathRejection>,
    q: Result<Query<WriteParams>, QueryRejection>,
    JsonBody(req): JsonBody<DeleteDocuments>,
) -> ApiResult<Response> {
    let start = Instant::now();
    let (Path(name), Query(q)) = (name?, q?);
    state.collection(&name)?;
    let ids = convert::ids(&req.ids, state.config().max_batch)?;
    let db = state.db().clone();
    let n2 = name.clone();
    let t = AppState::blocking(move || db.text_collection(&n2).map_err(ApiError::from)).await?;
    let done = state
        .writer(&name)
        .write(&state, &name, q.wait.unwrap_or(false), move || t.delete(&ids).map_err(ApiError::from))
        .await?;
    Ok(ok(
        json!({"operation_id": 0, "status": if done.is_some() { "completed" } else { "acknowledged" }}),
        start,
    ))
}

fn text_query(req: &TextSearch, dense: bool, max: usize) -> ApiResult<TextQuery> {
    let texts: Vec<String> = match (&req.text, &req.texts) {
        (Some(t), None) => vec![t.clone()],
        (None, Some(ts)) if !ts.is_empty() && ts.len() <= 64 => ts.clone(),
        _ => return Err(ApiError::bad("give \"text\" or \"texts\" (1 to 64 texts)")),
    };
    if texts.iter().any(|t| t.len() > 64 << 10) {
        return Err(ApiError::bad("a query text is over 64 KiB"));
    }
    let mode: TextMode = match req.mode.as_deref() {
        Some(m) => m.parse()?,
        None if dense => TextMode::Hybrid,
        None => TextMode::Bm25,
    };
    let k = req.limit.unwrap_or(10);
    if k == 0 || k > max as u64 {
        return Err(ApiError::bad(format!("limit {k}: use 1..={max}")));
    }
    let mut q = TextQuery::new(&texts[0], mode, k as usize);
    q.texts = texts;
    match req.fusion.as_deref() {
        None | Some("weighted") => {
            if let Some(w) = &req.weights {
                if w.len() != 2 || w.iter().any(|x| !x.is_finite() || *x < 0.0) {
                    return Err(ApiError::bad("weights: two non-negative numbers (dense, bm25)"));
                }
                q.fusion = Some(quarry_rank::fusion::Fusion::Weighted {
                    weights: w.clone(),
                    norm: quarry_rank::fusion::Norm::MinMax,
                });
            } else if req.fusion.is_some() {
                q.fusion = Some(quarry_engine::text::default_hybrid_fusion());
            }
        }
        Some("rrf") => {
            let k = req.rrf_k.unwrap_or(60.0);
            if !k.is_finite() || k < 0.0 {
                return Err(ApiError::bad("rrf_k must be a number ≥ 0"));
            }
            q.fusion = Some(quarry_rank::fusion::Fusion::Rrf { k });
        }
        Some(other) => return Err(ApiError::bad(format!("fusion {other:?}: use weighted or rrf"))),
    }
    if let Some(d) = req.depth {
        q.depth = (d as usize).clamp(q.k, 10_000);
    }
    q.depth = q.depth.max(q.k);
    q.explain = req.explain.unwrap_or(false);
    q.with_payload = req.with_payload.unwrap_or(true);
    q.hubness = req.hubness.unwrap_or(false);
    q.min_relevance = match &req.min_relevance {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s == "auto" => None, // resolved against the collection later
        Some(v) => match v.as_f64() {
            Some(p) if (0.0..=1.0).contains(&p) => Some(p),
            _ => return Err(ApiError::bad("min_relevance: a probability in [0, 1] or \"auto\"")),
        },
    };
    Ok(q)
}

/// Runs the text search `req` asks of collection `name`, re-ranked by a cross-encoder when it
/// names one: the query as run, and the hits. Shared by text search and context.
async fn search_hits(
    state: &AppState,
    name: &str,
    req: &TextSearch,
    limit_max: usize,
) -> ApiResult<(std::sync::Arc<quarry_engine::TextCollection>, TextQuery, Vec<quarry_engine::TextHit>)> {
    let c = state.collection(name)?;
    let text = c
        .schema()
        .text
        .clone()
        .ok_or_else(|| ApiError::bad(format!("collection `{name}` is not a text collection")))?;
    let q = text_query(req, text.model.is_some(), limit_max)?;
    let filter = convert::filter(req.filter.as_ref())?;
    let db = state.db().clone();
    let auto = matches!(&req.min_relevance, Some(Value::String(s)) if s == "auto");
    let query_model = req.query_model.clone();
    let blend = req.rerank_blend.unwrap_or(0.5);
    if !(0.0..=1.0).contains(&blend) {
        return Err(ApiError::bad("rerank_blend: a weight in [0, 1]"));
    }
    let rerank = match &req.rerank {
        None => None,
        Some(m) => {
            let depth = req.rerank_depth.unwrap_or(20);
            if depth == 0 || depth > 200 {
                return Err(ApiError::bad("rerank_depth: 1..=200"));
            }
            // Only installed models, found by name among the local model folders: never a path.
            quarry_text::locate::installed_model_dir(m).map_err(|e| ApiError::bad(format!("rerank: {e}")))?;
            Some((m.clone(), depth as usize))
        }
    };
    let mut q = q;
    let name = name.to_string();
    AppState::blocking(move || {
        let t = db.text_collection(&name)?;
        if auto {
            q.min_relevance = Some(t.calibrated_threshold(q.mode)?);
        }
        if let Some(model) = &query_model {
            // Only models the collection has a map for are ever loaded (never an arbitrary path).
            if t.alignment_prefix(model).is_none() {
                return Err(ApiError::bad(format!(
                    "collection has no map for queries of model {model:?}: fit one with `quarry align`"
                )));
            }
            let encoder = db.model(model)?;
            q.vectors = Some(t.embed_aligned(model, &encoder, &q.texts)?);
        }
        let mut hits = t.search(&q, filter.as_ref())?;
        if let Some((model, depth)) = &rerank {
            let reranker = db.reranker(model)?;
            hits = t.rerank(&q.texts[0], hits, &reranker, *depth, blend)?;
        }
        Ok((t, q, hits))
    })
    .await
}

/// Search a text collection: BM25, dense or hybrid, optionally explained.
#[utoipa::path(post, path = "/quarry/collections/{collection_name}/text-search", tag = "quarry",
    params(("collection_name" = String, Path, description = "Collection name", example = "c")),
    request_body = TextSearch, responses((status = 200, description = "`{\"hits\": [{\"id\", \"score\", \"payload\", \"explain\"}]}`")))]
pub async fn text_search(
    State(state): State<AppState>,
    name: Result<Path<String>, PathRejection>,
    JsonBody(req): JsonBody<TextSearch>,
) -> ApiResult<Response> {
    let start = Instant::now();
    let Path(name) = name?;
    let (_, q, hits) = search_hits(&state, &name, &req, state.config().max_limit).await?;
    let hits: Vec<Value> = hits
        .into_iter()
        .map(|h| {
            let mut o = json!({"id": h.id.to_json(), "score": h.score});
            if let Some(r) = h.relevance {
                o["relevance"] = json!(r);
            }
            if q.with_payload {
                o["payload"] = Value::Object(h.payload);
            }
            if let Some(e) = h.explain {
                o["explain"] = serde_json::to_value(e).unwrap_or(Value::Null);
            }
            o
        })
        .collect();
    Ok(ok(json!({"hits": hits}), start))
}

/// `POST /quarry/collections/{name}/context`: a text search's fields, and how to pack its hits.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ContextSearch {
    /// The search (`limit`: hits considered before de-duplication and packing, default 20).
    #[serde(flatten)]
    pub search: TextSearch,
    /// Most tokens of passage text (the collection's model tokens; default 1500).
    #[serde(default)]
    pub budget_tokens: Option<u64>,
    /// The query id in the response (default "0").
    #[serde(default)]
    pub qid: Option<String>,
    /// Near-duplicate distance in bits of 64-bit SimHash fingerprints (default 3; 0: exact
    /// duplicates only).
    #[serde(default)]
    pub near_distance: Option<u32>,
    /// `ragnarok` (default: the TREC RAG request JSON) or `text` (numbered citations, in
    /// `{"text": …}`).
    #[serde(default)]
    pub format: Option<String>,
}

/// Context for an LLM: the best passages for a question, de-duplicated and packed into a token
/// budget, as a TREC 2024 RAG (Ragnarök) request or as numbered-citation text.
#[utoipa::path(post, path = "/quarry/collections/{collection_name}/context", tag = "quarry",
    params(("collection_name" = String, Path, description = "Collection name", example = "c")),
    request_body = ContextSearch, responses((status = 200, description = "`{\"query\": {\"text\", \"qid\"}, \"candidates\": [{\"docid\", \"score\", \"doc\": {\"segment\", …}}], \"tokens\", \"duplicates\", \"over_budget\"}`, or `{\"text\": …}`")))]
pub async fn context(
    State(state): State<AppState>,
    name: Result<Path<String>, PathRejection>,
    JsonBody(mut req): JsonBody<ContextSearch>,
) -> ApiResult<Response> {
    let start = Instant::now();
    let Path(name) = name?;
    let budget = req.budget_tokens.unwrap_or(1500);
    if budget == 0 || budget > 1 << 20 {
        return Err(ApiError::bad("budget_tokens: 1..=1048576"));
    }
    let as_text = match req.format.as_deref() {
        None | Some("ragnarok") => false,
        Some("text") => true,
        Some(f) => return Err(ApiError::bad(format!("format {f:?}: use ragnarok or text"))),
    };
    if req.qid.as_ref().is_some_and(|q| q.len() > 256) {
        return Err(ApiError::bad("qid: at most 256 bytes"));
    }
    req.search.limit = Some(req.search.limit.unwrap_or(20));
    req.search.with_payload = Some(true);
    let (t, q, hits) = search_hits(&state, &name, &req.search, state.config().max_limit).await?;
    let creq = quarry_engine::ContextRequest {
        qid: req.qid.clone(),
        near_distance: req.near_distance.unwrap_or(3).min(16),
        ..quarry_engine::ContextRequest::new(q, budget as usize)
    };
    let ctx = AppState::blocking(move || Ok(t.context_of_hits(&creq, hits))).await?;
    let body = match as_text {
        true => json!({"text": ctx.to_text(), "tokens": ctx.tokens, "duplicates": ctx.duplicates,
                       "over_budget": ctx.over_budget}),
        false => ctx.to_json(),
    };
    Ok(ok(body, start))
}

/// Run judged queries against the collection and score the run with trec_eval's measures.
#[utoipa::path(post, path = "/quarry/collections/{collection_name}/eval", tag = "quarry",
    params(("collection_name" = String, Path, description = "Collection name", example = "c")),
    request_body = EvalRequest, responses((status = 200, description = "`{\"measures\": {name: mean}, \"per_query\", \"queries\", \"seconds\"}`")))]
pub async fn eval_run(
    State(state): State<AppState>,
    name: Result<Path<String>, PathRejection>,
    JsonBody(req): JsonBody<EvalRequest>,
) -> ApiResult<Response> {
    let start = Instant::now();
    let Path(name) = name?;
    let c = state.collection(&name)?;
    if req.queries.is_empty() || req.queries.len() > state.config().max_batch {
        return Err(ApiError::bad(format!("give 1 to {} queries", state.config().max_batch)));
    }
    let measures = match &req.measures {
        None => quarry_eval::trec::default_measures(),
        Some(list) => list.iter().map(|m| Measure::parse(m)).collect::<quarry_core::Result<Vec<_>>>()?,
    };
    let k = req.k.unwrap_or(100);
    if k == 0 || k > state.config().max_limit as u64 {
        return Err(ApiError::bad(format!("k {k}: use 1..={}", state.config().max_limit)));
    }
    let mut qrels = Qrels::new();
    for (q, docs) in &req.qrels {
        for (d, rel) in docs {
            qrels.insert(q.clone(), d.clone(), *rel);
        }
    }
    let db = state.db().clone();
    let out = AppState::blocking(move || {
        let mut run = Run::new();
        let text = c.schema().text.clone();
        for q in &req.queries {
            let hits: Vec<(String, f64)> = match (&q.text, &q.vector) {
                (Some(t), None) => {
                    let spec = text.as_ref().ok_or_else(|| {
                        ApiError::bad(format!("query {}: text queries need a text collection", q.id))
                    })?;
                    let ts = TextSearch {
                        text: Some(t.clone()),
                        texts: None,
                        mode: req.mode.clone(),
                        limit: Some(k),
                        fusion: None,
                        rrf_k: None,
                        weights: None,
                        depth: None,
                        filter: None,
                        explain: None,
                        with_payload: Some(false),
                        min_relevance: None,
                        hubness: None,
                        query_model: None,
                        rerank: None,
                        rerank_depth: None,
                        rerank_blend: None,
                    };
                    let tq = text_query(&ts, spec.model.is_some(), usize::MAX)?;
                    db.text_collection(&name)?
                        .search(&tq, None)?
                        .into_iter()
                        .map(|h| (h.id.to_string(), h.score))
                        .collect()
                }
                (None, Some(v)) => {
                    let v: Vec<f32> = v.iter().map(|&x| x as f32).collect();
                    let ef = req
                        .ef
                        .map_or(quarry_engine::collection::DEFAULT_EF, |e| e.clamp(1, 100_000) as usize)
                        .max(k as usize);
                    c.search_with(
                        &v,
                        None,
                        k as usize,
                        None,
                        &quarry_engine::SearchOptions {
                            ef,
                            with_payload: false,
                            ..quarry_engine::SearchOptions::default()
                        },
                    )
                    .map_err(|e| ApiError::from(e).prefixed(&format!("query {}: ", q.id)))?
                    .into_iter()
                    .map(|h| (h.id.to_string(), f64::from(h.score)))
                    .collect()
                }
                _ => return Err(ApiError::bad(format!("query {}: give \"text\" or \"vector\"", q.id))),
            };
            run.insert_query(&q.id, &hits)?;
        }
        let ev = evaluate(&qrels, &run, &measures, &EvalOptions::default());
        let means: Map<String, Value> =
            measures.iter().map(|m| (m.name(), json!(ev.mean_value(&m.name())))).collect();
        let per_query: Map<String, Value> = req
            .queries
            .iter()
            .map(|q| {
                let v: Map<String, Value> =
                    measures.iter().map(|m| (m.name(), json!(ev.query_value(&q.id, &m.name())))).collect();
                (q.id.clone(), Value::Object(v))
            })
            .collect();
        Ok(json!({"measures": means, "per_query": per_query, "queries": req.queries.len()}))
    })
    .await?;
    let mut out = out;
    out["seconds"] = json!(start.elapsed().as_secs_f64());
    Ok(ok(out, start))
}

/// Seal every unsealed point into index segments now (and merge small segments); answered when
/// done (`wait=true`, the default; a large build can outlast the request timeout: `wait=false`
/// queues it instead). Searches run meanwhile.
#[utoipa::path(post, path = "/quarry/collections/{collection_name}/optimize", tag = "quarry",
    params(("collection_name" = String, Path, description = "Collection name", example = "c"), WriteParams),
    responses((status = 200, description = "`{\"segments\": n, \"seconds\": s}`")))]
pub async fn optimize(
    State(state): State<AppState>,
    name: Result<Path<String>, PathRejection>,
    q: Result<Query<WriteParams>, QueryRejection>,
) -> ApiResult<Response> {
    let start = Instant::now();
    let Path(name) = name?;
    let Query(q) = q?;
    let c = state.collection(&name)?;
    let db = state.db().clone();
    let n2 = name.clone();
    let segments = state
        .writer(&name)
        .write(&state, &name, q.wait.unwrap_or(true), move || {
            if c.schema().text.is_some() {
                db.text_collection(&n2)?.optimize()?;
            } else {
                c.optimize()?;
            }
            Ok(c.segment_count())
        })
        .await?;
    Ok(ok(json!({"segments": segments, "seconds": start.elapsed().as_secs_f64()}), start))
}
