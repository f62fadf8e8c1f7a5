//! The server in process (no sockets): an auth matrix over every route of the OpenAPI document,
//! every kind of bad input answered 4xx with stored data untouched, write ordering of `wait=false`
//! writes, native text search with explain, evaluation runs, metrics, and the OpenAPI document
//! naming every route.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use quarry_server::{router, AppState, ServerConfig};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::Arc;
use tower::ServiceExt;

const FULL: &str = "full-key-123456";
const READ: &str = "read-key-654321";

fn temp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("quarry-server-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn app(dir: &std::path::Path, keys: bool) -> Router {
    let mut cfg = ServerConfig::new(dir);
    if keys {
        cfg.api_key = Some(FULL.into());
        cfg.read_only_key = Some(READ.into());
    }
    cfg.max_body_bytes = 1 << 20;
    cfg.max_batch = 100;
    let db = quarry_engine::Database::open(dir).expect("open");
    router(AppState::new(Arc::new(db), cfg))
}

async fn raw(app: &Router, method: &str, uri: &str, key: Option<&str>, body: Vec<u8>) -> (StatusCode, Value) {
    let mut b = Request::builder().method(method).uri(uri).header("content-type", "application/json");
    if let Some(k) = key {
        b = b.header("api-key", k);
    }
    let resp = app.clone().oneshot(b.body(Body::from(body)).expect("request")).await.expect("infallible");
    let status = resp.status();
    let bytes = http_body_util::BodyExt::collect(resp.into_body()).await.expect("body").to_bytes();
    let v = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, v)
}

async fn call(app: &Router, method: &str, uri: &str, key: Option<&str>, body: Value) -> (StatusCode, Value) {
    let bytes = if body.is_null() { Vec::new() } else { serde_json::to_vec(&body).expect("json") };
    raw(app, method, uri, key, bytes).await
}

async fn ok(app: &Router, method: &str, uri: &str, body: Value) -> Value {
    let (s, v) = call(app, method, uri, None, body.clone()).await;
    assert_eq!(s, StatusCode::OK, "{method} {uri} {body}: {v}");
    v["result"].clone()
}

async fn setup(app: &Router, key: Option<&str>) {
    let (s, v) =
        call(app, "PUT", "/collections/c", key, json!({"vectors": {"size": 3, "distance": "Cosine"}})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let points: Vec<Value> =
        (1..=20).map(|i| json!({"id": i, "vector": [1.0, i as f64, 0.5], "payload": {"tag": i % 3, "name": format!("p{i}")}})).collect();
    let (s, v) = call(app, "PUT", "/collections/c/points?wait=true", key, json!({"points": points})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
}

fn body_for(path: &str, method: &str) -> Value {
    match (method, path) {
        ("PUT", "/collections/{collection_name}") => json!({"vectors": {"size": 3, "distance": "Dot"}}),
        ("PUT", "/collections/{collection_name}/points") => {
            json!({"points": [{"id": 99, "vector": [1, 2, 3]}]})
        }
        ("POST", "/collections/{collection_name}/points") => json!({"ids": [1]}),
        (_, p) if p.starts_with("/quarry/groups/") && p.ends_with("/search") => json!({"text": "x"}),
        (_, p) if p.ends_with("/search") => json!({"vector": [1, 2, 3]}),
        (_, p) if p.ends_with("/search/batch") => json!({"searches": [{"vector": [1, 2, 3]}]}),
        (_, p) if p.ends_with("/query") => json!({"query": [1, 2, 3]}),
        (_, p) if p.ends_with("/query/batch") => json!({"searches": [{"query": [1, 2, 3]}]}),
        (_, p) if p.ends_with("/payload") => json!({"payload": {"x": 1}, "points": [1]}),
        (_, p) if p.ends_with("/payload/delete") => json!({"keys": ["x"], "points": [1]}),
        (_, p) if p.ends_with("/delete") || p.ends_with("/clear") => json!({"points": [1]}),
        (_, p) if p.ends_with("/index") => json!({"field_name": "tag", "field_schema": "integer"}),
        (_, p) if p.ends_with("/text") => json!({}),
        (_, p) if p.ends_with("/recover") => json!({"location": "none.snapshot"}),
        (_, p) if p.ends_with("/documents") => json!({"documents": [{"id": 1, "text": "hello"}]}),
        (_, p) if p.ends_with("/text-search") || p.ends_with("/context") => json!({"text": "hello"}),
        ("PUT", p) if p.starts_with("/quarry/groups/") => json!({"members": [], "router_model": "m"}),
        (_, p) if p.ends_with("/fit") => json!({"queries": [{"text": "x", "relevant": [{"id": 1}]}]}),
        (_, p) if p.ends_with("/eval") => {
            json!({"queries": [{"id": "q", "vector": [1, 2, 3]}], "qrels": {"q": {"1": 1}}})
        }
        _ => json!({}),
    }
}

/// Who may call each route, written out by hand from what the route does — the test's own
/// oracle, independent of `auth::access`: `open` needs no key, `read` takes either key, `write`
/// only the full key. A route added to the server without a line here fails the test.
const ROUTE_ACCESS: &[(&str, &str, &str)] = &[
    ("GET", "/healthz", "open"),
    ("GET", "/livez", "open"),
    ("GET", "/readyz", "open"),
    ("GET", "/openapi.json", "open"),
    ("GET", "/", "read"),
    ("GET", "/metrics", "read"),
    ("GET", "/collections", "read"),
    ("GET", "/collections/{collection_name}", "read"),
    ("GET", "/collections/{collection_name}/exists", "read"),
    ("GET", "/collections/{collection_name}/points/{id}", "read"),
    ("GET", "/quarry/collections/{collection_name}", "read"),
    ("POST", "/collections/{collection_name}/points", "read"),
    ("POST", "/collections/{collection_name}/points/count", "read"),
    ("POST", "/collections/{collection_name}/points/query", "read"),
    ("POST", "/collections/{collection_name}/points/query/batch", "read"),
    ("POST", "/collections/{collection_name}/points/scroll", "read"),
    ("POST", "/collections/{collection_name}/points/search", "read"),
    ("POST", "/collections/{collection_name}/points/search/batch", "read"),
    ("POST", "/quarry/collections/{collection_name}/text-search", "read"),
    ("POST", "/quarry/collections/{collection_name}/context", "read"),
    ("POST", "/quarry/collections/{collection_name}/eval", "read"),
    ("GET", "/quarry/groups", "read"),
    ("GET", "/quarry/reports", "read"),
    ("GET", "/quarry/reports/{report_name}", "read"),
    ("GET", "/quarry/groups/{group_name}", "read"),
    ("POST", "/quarry/groups/{group_name}/search", "read"),
    ("PUT", "/quarry/groups/{group_name}", "write"),
    ("DELETE", "/quarry/groups/{group_name}", "write"),
    ("POST", "/quarry/groups/{group_name}/fit", "write"),
    ("PUT", "/collections/{collection_name}", "write"),
    ("DELETE", "/collections/{collection_name}", "write"),
    ("PUT", "/collections/{collection_name}/index", "write"),
    ("DELETE", "/collections/{collection_name}/index/{field_name}", "write"),
    ("PUT", "/collections/{collection_name}/points", "write"),
    ("POST", "/collections/{collection_name}/points/delete", "write"),
    ("POST", "/collections/{collection_name}/points/payload", "write"),
    ("PUT", "/collections/{collection_name}/points/payload", "write"),
    ("POST", "/collections/{collection_name}/points/payload/delete", "write"),
    ("POST", "/collections/{collection_name}/points/payload/clear", "write"),
    ("POST", "/quarry/collections/{collection_name}/text", "write"),
    ("PUT", "/quarry/collections/{collection_name}/documents", "write"),
    ("POST", "/quarry/collections/{collection_name}/documents/delete", "write"),
    ("POST", "/quarry/collections/{collection_name}/optimize", "write"),
    ("GET", "/collections/{collection_name}/snapshots", "read"),
    ("GET", "/collections/{collection_name}/snapshots/{snapshot_name}", "read"),
    ("POST", "/collections/{collection_name}/snapshots", "write"),
    ("DELETE", "/collections/{collection_name}/snapshots/{snapshot_name}", "write"),
    ("PUT", "/collections/{collection_name}/snapshots/recover", "write"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_matrix_over_every_route() {
    let dir = temp("auth");
    let app = app(&dir, true);
    setup(&app, Some(FULL)).await;
    let doc = quarry_server::openapi();
    let mut ops = Vec::new();
    for (path, item) in &doc.paths.paths {
        for (m, op) in
            [("GET", &item.get), ("PUT", &item.put), ("POST", &item.post), ("DELETE", &item.delete)]
        {
            if op.is_some() {
                ops.push((path.clone(), m));
            }
        }
    }
    ops.push(("/openapi.json".into(), "GET"));
    assert!(ops.len() >= 30, "every route is in the document: {}", ops.len());
    for (m, p, _) in ROUTE_ACCESS {
        assert!(ops.iter().any(|(op, om)| op == p && om == m), "{m} {p} is in ROUTE_ACCESS but not served");
    }
    use quarry_server::auth::Access;
    // Deleting the collection last keeps the other routes meaningful.
    ops.sort_by_key(|(p, m)| (*m == "DELETE" && p == "/collections/{collection_name}", p.clone()));
    let mut checked = 0;
    for (path, m) in &ops {
        let uri = path
            .replace("{collection_name}", "c")
            .replace("{id}", "1")
            .replace("{field_name}", "tag")
            .replace("{snapshot_name}", "none.snapshot");
        let need = match ROUTE_ACCESS.iter().find(|(rm, rp, _)| rm == m && rp == path) {
            Some((_, _, "open")) => Access::Open,
            Some((_, _, "read")) => Access::Read,
            Some((_, _, _)) => Access::Write,
            None => panic!("{m} {path} is not in ROUTE_ACCESS: say who may call it"),
        };
        let body = body_for(path, m);
        for key in [None, Some("wrong-key-000000"), Some(READ), Some(FULL)] {
            let (s, v) = call(&app, m, &uri, key, body.clone()).await;
            assert!(!s.is_server_error(), "{m} {uri} key {key:?}: {s} {v}");
            let denied = s == StatusCode::UNAUTHORIZED || s == StatusCode::FORBIDDEN;
            let want_denied = match (need, key) {
                (Access::Open, _) => false,
                (_, None) | (_, Some("wrong-key-000000")) => true,
                (Access::Write, Some(READ)) => true,
                _ => false,
            };
            assert_eq!(denied, want_denied, "{m} {uri} key {key:?}: {s} {v}");
            if key.is_none() && want_denied {
                assert_eq!(s, StatusCode::UNAUTHORIZED);
            }
            if key == Some(READ) && need == Access::Write {
                assert_eq!(s, StatusCode::FORBIDDEN, "{m} {uri}");
            }
            checked += 1;
        }
    }
    assert!(checked >= 120);
    // Bearer tokens work too.
    let resp = app
        .clone()
        .oneshot(
            Request::get("/collections")
                .header("authorization", format!("Bearer {READ}"))
                .body(Body::empty())
                .expect("req"),
        )
        .await
        .expect("call");
    assert_eq!(resp.status(), StatusCode::OK);
    // The console's assets need no key (its API calls do); unknown files are 404.
    for (uri, want) in [
        ("/console/", "<!DOCTYPE html>"),
        ("/console/app.js", "use strict"),
        ("/console/app.css", "--accent"),
    ] {
        let (s, v) = raw(&app, "GET", uri, None, Vec::new()).await;
        assert_eq!(s, StatusCode::OK, "{uri}");
        assert!(v.as_str().is_some_and(|t| t.contains(want)), "{uri}: {v}");
    }
    let (s, _) = raw(&app, "GET", "/console", None, Vec::new()).await;
    assert_eq!(s, StatusCode::PERMANENT_REDIRECT);
    let (s, _) = raw(&app, "GET", "/console/secret.txt", None, Vec::new()).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // Without --reports there are none; names that are not report files are 404.
    let (s, v) = call(&app, "GET", "/quarry/reports", Some(READ), Value::Null).await;
    assert_eq!((s, v["result"]["reports"].clone()), (StatusCode::OK, json!([])));
    for name in ["x.jsonl", "..%2Fsecret.jsonl", "notes.txt"] {
        let (s, v) = call(&app, "GET", &format!("/quarry/reports/{name}"), Some(READ), Value::Null).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{name}: {v}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_a_4xx_naming_the_problem_and_keeps_data() {
    let dir = temp("bad");
    let app = app(&dir, false);
    setup(&app, None).await;
    let before =
        ok(&app, "POST", "/collections/c/points/scroll", json!({"limit": 100, "with_vector": true})).await;
    let cases: Vec<(&str, &str, Vec<u8>, &str)> = vec![
        (
            "PUT",
            "/collections/c/points?wait=true",
            br#"{"points": [{"id": 1, "vector": [1, 2]}]}"#.to_vec(),
            "dimension",
        ),
        (
            "PUT",
            "/collections/c/points?wait=true",
            br#"{"points": [{"id": 1, "vector": [1, 2, NaN]}]}"#.to_vec(),
            "malformed JSON",
        ),
        (
            "PUT",
            "/collections/c/points?wait=true",
            br#"{"points": [{"id": 1, "vector": [1, 2, 1e39]}]}"#.to_vec(),
            "non-finite",
        ),
        (
            "PUT",
            "/collections/c/points?wait=true",
            br#"{"points": [{"id": 5, "vector": [1, 2, 3]}, {"id": -1, "vector": [1, 2, 3]}]}"#.to_vec(),
            "id -1",
        ),
        (
            "PUT",
            "/collections/c/points?wait=true",
            br#"{"points": [{"id": 1, "vector": [0, 0, 0]}]}"#.to_vec(),
            "zero vector",
        ),
        (
            "PUT",
            "/collections/c/points?wait=false",
            br#"{"points": [{"id": 1, "vector": [1, 2]}]}"#.to_vec(),
            "dimension",
        ),
        ("PUT", "/collections/c/points", br#"{"points": [{"id": 1, "#.to_vec(), "malformed JSON"),
        ("PUT", "/collections/c/points", br#"{"points": 7}"#.to_vec(), "malformed JSON body at points"),
        ("PUT", "/collections/c/points?wait=maybe", br#"{"points": []}"#.to_vec(), "query string"),
        ("POST", "/collections/c/points/search", br#"{"vector": [1, 2]}"#.to_vec(), "dimension"),
        (
            "POST",
            "/collections/c/points/search",
            br#"{"vector": [1, 2, 3], "filter": {"must": [{"key": "tag", "match": {}}]}}"#.to_vec(),
            "filter",
        ),
        (
            "POST",
            "/collections/c/points/search",
            br#"{"vector": [1, 2, 3], "limit": 100000000}"#.to_vec(),
            "at most",
        ),
        ("POST", "/collections/c/points/query", br#"{"query": {"recommend": {}}}"#.to_vec(), "not supported"),
        ("POST", "/collections/c/points/query", br#"{"query": {"fusion": "rrf"}}"#.to_vec(), "prefetch"),
        ("POST", "/collections/c/points/count", br#"{"filter": {"oops": []}}"#.to_vec(), "unknown clause"),
        ("POST", "/collections/c/points/scroll", br#"{"offset": "not-an-id"}"#.to_vec(), "UUID"),
        ("POST", "/collections/c/points/delete", br#"{}"#.to_vec(), "either"),
        ("POST", "/collections/nope/points/search", br#"{"vector": [1, 2, 3]}"#.to_vec(), "doesn't exist"),
        (
            "PUT",
            "/collections/c",
            br#"{"vectors": {"size": 3, "distance": "Cosine"}}"#.to_vec(),
            "already exists",
        ),
        (
            "PUT",
            "/collections/d",
            br#"{"vectors": {"size": 3, "distance": "Manhattan"}}"#.to_vec(),
            "Manhattan",
        ),
        (
            "PUT",
            "/collections/d",
            br#"{"vectors": {"size": 3, "distance": "Chebyshev"}}"#.to_vec(),
            "unknown distance",
        ),
        ("PUT", "/collections/d", br#"{"vectors": {"size": 0, "distance": "Cosine"}}"#.to_vec(), "size"),
        (
            "PUT",
            "/collections/bad%20name",
            br#"{"vectors": {"size": 3, "distance": "Cosine"}}"#.to_vec(),
            "collection name",
        ),
        ("GET", "/collections/c/points/abc", Vec::new(), "UUID"),
        ("GET", "/collections/c/points/12345", Vec::new(), "No point"),
        ("POST", "/quarry/collections/c/text-search", br#"{"text": "x"}"#.to_vec(), "not a text collection"),
    ];
    for (m, uri, body, needle) in cases {
        let (s, v) = raw(&app, m, uri, None, body.clone()).await;
        assert!(s.is_client_error(), "{m} {uri} {}: {s} {v}", String::from_utf8_lossy(&body));
        let msg = v["status"]["error"].as_str().unwrap_or_default().to_string();
        assert!(msg.contains(needle), "{m} {uri}: {msg:?} lacks {needle:?}");
    }
    // JSON nested 10,000 deep and a body over the limit.
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let (s, _) = raw(&app, "POST", "/collections/c/points/search", None, deep.into_bytes()).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, v) = raw(&app, "PUT", "/collections/c/points", None, vec![b' '; 2 << 20]).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    let many: Vec<Value> = (0..101).map(|i| json!({"id": i, "vector": [1, 2, 3]})).collect();
    let (s, v) = call(&app, "PUT", "/collections/c/points?wait=true", None, json!({"points": many})).await;
    assert!(s == StatusCode::BAD_REQUEST && v.to_string().contains("at most 100"), "{v}");
    let after =
        ok(&app, "POST", "/collections/c/points/scroll", json!({"limit": 100, "with_vector": true})).await;
    assert_eq!(before, after, "nothing changed");
    let (s, _) = call(&app, "GET", "/no/such/route", None, Value::Null).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_writes_apply_in_order_and_later_waits_see_them() {
    let dir = temp("order");
    let app = app(&dir, false);
    setup(&app, None).await;
    for round in 0..30 {
        let v = ok(
            &app,
            "PUT",
            "/collections/c/points?wait=false",
            json!({"points": [{"id": 500, "vector": [1, round, 1], "payload": {"r": round}}]}),
        )
        .await;
        assert_eq!(v["status"], "acknowledged");
    }
    ok(&app, "POST", "/collections/c/points/delete?wait=false", json!({"points": [1, 2]})).await;
    ok(
        &app,
        "POST",
        "/collections/c/points/payload?wait=false",
        json!({"payload": {"late": true}, "points": [500]}),
    )
    .await;
    // A wait=true write is queued behind them, so once it is answered they are all applied.
    let v = ok(
        &app,
        "PUT",
        "/collections/c/points?wait=true",
        json!({"points": [{"id": 600, "vector": [1, 1, 1]}]}),
    )
    .await;
    assert_eq!(v["status"], "completed");
    let got = ok(&app, "POST", "/collections/c/points", json!({"ids": [500, 1, 2, 600]})).await;
    let ids: Vec<Value> = got.as_array().expect("list").iter().map(|r| r["id"].clone()).collect();
    assert_eq!(ids, vec![json!(500), json!(600)]);
    assert_eq!(got[0]["payload"], json!({"r": 29, "late": true}), "last write wins, merge applied after");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_fusion_and_rescoring_match_hand_computation() {
    let dir = temp("query");
    let app = app(&dir, false);
    ok(
        &app,
        "PUT",
        "/collections/e",
        json!({"vectors": {"size": 2, "distance": "Euclid"}, "quarry": {"index": "flat"}}),
    )
    .await;
    let pts: Vec<Value> =
        (0..10).map(|i| json!({"id": i, "vector": [i, 0], "payload": {"even": i % 2 == 0}})).collect();
    ok(&app, "PUT", "/collections/e/points?wait=true", json!({"points": pts})).await;
    // Euclid answers distances, smallest first.
    let r = ok(&app, "POST", "/collections/e/points/search", json!({"vector": [3.2, 0], "limit": 3})).await;
    let got: Vec<(i64, f64)> = r
        .as_array()
        .expect("list")
        .iter()
        .map(|h| (h["id"].as_i64().unwrap_or(-1), h["score"].as_f64().unwrap_or(-1.0)))
        .collect();
    assert_eq!(got.iter().map(|g| g.0).collect::<Vec<_>>(), vec![3, 4, 2]);
    assert!((got[0].1 - 0.2).abs() < 1e-5 && (got[1].1 - 0.8).abs() < 1e-5, "{got:?}");
    let r = ok(
        &app,
        "POST",
        "/collections/e/points/search",
        json!({"vector": [3.2, 0], "limit": 5, "score_threshold": 1.0}),
    )
    .await;
    assert_eq!(r.as_array().map(Vec::len), Some(2), "threshold is a largest distance for Euclid");
    // RRF of two prefetches (k = 2): ranks 1-based.
    let q = json!({"prefetch": [{"query": [0, 0], "limit": 3}, {"query": [9, 0], "limit": 3, "filter": {"must": [{"key": "even", "match": {"value": true}}]}}],
                   "query": {"fusion": "rrf"}, "limit": 4});
    let r = ok(&app, "POST", "/collections/e/points/query", q).await;
    let pts = r["points"].as_array().expect("points").clone();
    // List 1: 0, 1, 2; list 2: 8, 6, 4. Each rank r scores 1 / (2 + r).
    let want = [(0, 1.0 / 3.0), (8, 1.0 / 3.0), (1, 0.25), (6, 0.25)];
    for (h, (id, s)) in pts.iter().zip(want) {
        assert_eq!(h["id"], json!(id), "{pts:?}");
        assert!((h["score"].as_f64().unwrap_or(0.0) - s).abs() < 1e-9);
    }
    // Re-scoring prefetched candidates with another vector.
    let q = json!({"prefetch": {"query": [0, 0], "limit": 4}, "query": [10, 0], "limit": 2, "with_payload": true});
    let r = ok(&app, "POST", "/collections/e/points/query", q).await;
    assert_eq!(r["points"][0]["id"], json!(3));
    assert_eq!(r["points"][1]["id"], json!(2));
    assert!((r["points"][0]["score"].as_f64().unwrap_or(0.0) - 7.0).abs() < 1e-5);
    assert_eq!(r["points"][0]["payload"], json!({"even": false}));
    // A point id as the query uses its vector; the outer filter reaches the prefetches.
    let q = json!({"query": 5, "limit": 2, "filter": {"must": [{"key": "even", "match": {"value": true}}]}});
    let r = ok(&app, "POST", "/collections/e/points/query", q).await;
    let ids: Vec<Value> = r["points"].as_array().expect("p").iter().map(|h| h["id"].clone()).collect();
    assert_eq!(ids, vec![json!(4), json!(6)]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_collections_search_explain_and_evaluate_natively() {
    let dir = temp("text");
    let app = app(&dir, false);
    ok(&app, "POST", "/quarry/collections/docs/text", json!({"text": {"bm25": {"k1": 1.2, "b": 0.75}}}))
        .await;
    let docs = json!({"documents": [
        {"id": 1, "text": "the quick brown fox jumps", "payload": {"lang": "en"}},
        {"id": 2, "text": "a slow brown dog sleeps", "payload": {"lang": "en"}},
        {"id": 3, "text": "fox and fox and fox", "payload": {"lang": "xx"}}]});
    ok(&app, "PUT", "/quarry/collections/docs/documents?wait=true", docs).await;
    // Context for an LLM: a Ragnarök request, the duplicate text (id 4) left out, within budget.
    ok(
        &app,
        "PUT",
        "/quarry/collections/docs/documents?wait=true",
        json!({"documents": [{"id": 4, "text": "FOX and fox   and fox"}]}),
    )
    .await;
    let r = ok(
        &app,
        "POST",
        "/quarry/collections/docs/context",
        json!({"text": "fox", "qid": "q1", "budget_tokens": 50}),
    )
    .await;
    assert_eq!(r["query"], json!({"text": "fox", "qid": "q1"}), "{r}");
    let c = r["candidates"].as_array().expect("candidates");
    assert_eq!(c.len(), 2, "{r}");
    assert_eq!(
        (r["duplicates"].as_u64(), c[1]["doc"]["segment"].as_str()),
        (Some(1), Some("the quick brown fox jumps"))
    );
    assert!(c.iter().all(|c| c["docid"].is_string() && c["score"].is_number()));
    let r = ok(
        &app,
        "POST",
        "/quarry/collections/docs/context",
        json!({"text": "fox", "format": "text", "budget_tokens": 3}),
    )
    .await;
    assert_eq!(r["text"], json!("Question: fox\n\n[1] (id 3)\nfox and fox\n"), "{r}");
    let (s, v) = call(
        &app,
        "POST",
        "/quarry/collections/docs/context",
        None,
        json!({"text": "fox", "budget_tokens": 0}),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    ok(&app, "POST", "/quarry/collections/docs/documents/delete?wait=true", json!({"ids": [4]})).await;
    let r = ok(&app, "POST", "/quarry/collections/docs/text-search", json!({"text": "fox", "explain": true}))
        .await;
    let hits = r["hits"].as_array().expect("hits");
    assert_eq!(hits.len(), 2);
    assert_eq!(hits[0]["id"], json!(3), "more occurrences rank first");
    let terms = &hits[0]["explain"][0]["terms"];
    let sum: f64 = terms.as_array().expect("terms").iter().map(|t| t["score"].as_f64().unwrap_or(0.0)).sum();
    assert!((sum - hits[0]["score"].as_f64().unwrap_or(0.0)).abs() < 1e-4, "{r}");
    let r = ok(
        &app,
        "POST",
        "/quarry/collections/docs/text-search",
        json!({"text": "fox", "filter": {"must": [{"key": "lang", "match": {"value": "en"}}]}}),
    )
    .await;
    assert_eq!(r["hits"].as_array().map(Vec::len), Some(1));
    let (s, v) = call(
        &app,
        "POST",
        "/quarry/collections/docs/text-search",
        None,
        json!({"text": "fox", "mode": "dense"}),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    // Quality options: bad values and missing fits are the caller's errors (400), with the reason.
    for (body, why) in [
        (json!({"text": "fox", "min_relevance": 2}), "min_relevance"),
        (json!({"text": "fox", "min_relevance": "auto"}), "calibrat"),
        (json!({"text": "fox", "min_relevance": 0.5}), "calibrat"),
        (json!({"text": "fox", "hubness": true, "mode": "bm25"}), "fox"),
        (json!({"text": "fox", "rerank": "../../etc/model"}), "not a path"),
        (json!({"text": "fox", "rerank": "no-such-reranker"}), "not installed"),
        (json!({"text": "fox", "rerank": "m", "rerank_depth": 0}), "rerank_depth"),
        (json!({"text": "fox", "rerank": "m", "rerank_blend": 1.5}), "rerank_blend"),
        (json!({"text": "fox", "query_model": "other"}), "no map"),
    ] {
        let (s, v) = call(&app, "POST", "/quarry/collections/docs/text-search", None, body.clone()).await;
        if why == "fox" {
            // Hubness re-scores dense candidates only: a BM25 query is unaffected.
            assert_eq!(s, StatusCode::OK, "{body}: {v}");
            continue;
        }
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}: {v}");
        assert!(v.to_string().contains(why), "{body}: {v}");
    }
    // An evaluation run: query "fox" judged relevant to 1 only.
    let r = ok(&app, "POST", "/quarry/collections/docs/eval", json!({"queries": [{"id": "q1", "text": "fox"}, {"id": "q2", "text": "dog"}], "qrels": {"q1": {"1": 1}, "q2": {"2": 1}}, "measures": ["recip_rank", "ndcg_cut_10"]})).await;
    assert!((r["measures"]["recip_rank"].as_f64().unwrap_or(0.0) - 0.75).abs() < 1e-9, "{r}");
    assert_eq!(r["per_query"]["q2"]["recip_rank"], json!(1.0));
    let d = ok(&app, "GET", "/quarry/collections/docs", Value::Null).await;
    assert_eq!(d["text"]["documents"], json!(3));
    ok(&app, "POST", "/quarry/collections/docs/documents/delete?wait=true", json!({"ids": [3]})).await;
    let r = ok(&app, "POST", "/quarry/collections/docs/text-search", json!({"text": "fox"})).await;
    assert_eq!(r["hits"].as_array().map(Vec::len), Some(1));
    // Metrics count the requests by route (4 answered with 200, including the BM25 one asking for
    // hubness above).
    let (_, m) = call(&app, "GET", "/metrics", None, Value::Null).await;
    let m = m.as_str().unwrap_or_default().to_string();
    assert!(m.contains(r#"quarry_http_requests_total{route="/quarry/collections/{collection_name}/text-search",method="POST",status="200"} 4"#), "{m}");
    assert!(m.contains(r#"quarry_collection_points{collection="docs"} 2"#), "{m}");
    assert!(m.contains("quarry_http_request_duration_seconds_bucket"), "{m}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expert_groups_route_fit_and_refuse_bad_input() {
    let dir = temp("groups");
    let app = app(&dir, false);
    ok(&app, "POST", "/quarry/collections/a/text", json!({})).await;
    // Settings errors are 400s naming the problem; unknown groups 404.
    for (body, why) in [
        (
            json!({"members": [{"collection": "nowhere", "mode": "dense"}], "router_model": "all-MiniLM-L6-v2"}),
            "nowhere",
        ),
        (json!({"members": [{"collection": "a"}], "router_model": "../etc/model"}), "router_model"),
        (json!({"members": [{"collection": "a", "mode": "sideways"}], "router_model": "m"}), "members"),
        (json!({"members": [{"collection": "a"}, {"collection": "a"}], "router_model": "m"}), "twice"),
        (json!({"members": [], "router_model": "all-MiniLM-L6-v2"}), "member"),
    ] {
        let (s, v) = call(&app, "PUT", "/quarry/groups/g", None, body.clone()).await;
        assert!(s == StatusCode::BAD_REQUEST || s == StatusCode::NOT_FOUND, "{body}: {s} {v}");
        assert!(v.to_string().contains(why), "{body}: {v}");
    }
    let (s, _) = call(&app, "POST", "/quarry/groups/none/search", None, json!({"text": "x"})).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let r = ok(&app, "GET", "/quarry/groups", Value::Null).await;
    assert_eq!(r["groups"], json!([]));
    if quarry_text::locate::installed_model_dir("all-MiniLM-L6-v2").is_err() {
        quarry_testkit::skip::missing("the model all-MiniLM-L6-v2", "run scripts/fetch_model.sh");
        let _ = std::fs::remove_dir_all(&dir);
        return;
    }
    let animals =
        ["the fox hunts rabbits at dawn", "eagles nest on high cliffs", "salmon swim upstream to spawn"];
    let money = [
        "the bank raised interest rates",
        "shares fell after the earnings report",
        "a mortgage is a loan on a house",
    ];
    for (name, texts) in [("animals", animals), ("money", money)] {
        ok(
            &app,
            "POST",
            &format!("/quarry/collections/{name}/text"),
            json!({"text": {"model": "all-MiniLM-L6-v2"}, "index": "flat"}),
        )
        .await;
        let docs: Vec<Value> = texts.iter().enumerate().map(|(i, t)| json!({"id": i, "text": t})).collect();
        ok(
            &app,
            "PUT",
            &format!("/quarry/collections/{name}/documents?wait=true"),
            json!({"documents": docs}),
        )
        .await;
    }
    let members =
        json!([{"collection": "animals", "mode": "dense"}, {"collection": "money", "mode": "dense"}]);
    ok(&app, "PUT", "/quarry/groups/g", json!({"members": members, "router_model": "all-MiniLM-L6-v2"}))
        .await;
    let fit = json!({"queries": [
        {"text": "wild animals hunting", "label": "a", "relevant": [{"collection": "animals", "id": 0}]},
        {"text": "birds of prey", "label": "a", "relevant": [{"collection": "animals", "id": 1}]},
        {"text": "stock market news", "label": "m", "relevant": [{"collection": "money", "id": 1}]},
        {"text": "borrowing to buy a home", "label": "m", "relevant": [{"collection": "money", "id": 2}]}]});
    let r = ok(&app, "POST", "/quarry/groups/g/fit", fit).await;
    assert_eq!(r["credited"], json!([2, 2]), "{r}");
    let r =
        ok(&app, "POST", "/quarry/groups/g/search", json!({"text": "dividends and bonds", "limit": 2})).await;
    assert_eq!(r["routing"][0]["collection"], json!("money"), "{r}");
    assert!(
        r["hits"]
            .as_array()
            .is_some_and(|h| h.len() == 2 && h.iter().all(|h| h["collection"] == json!("money"))),
        "{r}"
    );
    let r =
        ok(&app, "POST", "/quarry/groups/g/search", json!({"text": "dividends", "limit": 6, "fuse_top": 2}))
            .await;
    assert_eq!(r["hits"].as_array().map(Vec::len), Some(6), "{r}");
    for (body, why) in [
        (json!({"text": "x", "fuse_top": 3}), "fuse_top"),
        (json!({"text": "x", "rule": "median"}), "rule"),
        (json!({"text": "x", "limit": 0}), "limit"),
    ] {
        let (s, v) = call(&app, "POST", "/quarry/groups/g/search", None, body.clone()).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}: {v}");
        assert!(v.to_string().contains(why), "{body}: {v}");
    }
    let (s, v) = call(
        &app,
        "POST",
        "/quarry/groups/g/fit",
        None,
        json!({"queries": [{"text": "x", "relevant": [{"id": 0, "gain": -1}]}]}),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let r = ok(&app, "GET", "/quarry/groups/g", Value::Null).await;
    assert_eq!(r["pilots"], json!([1, 1]), "{r}");
    assert_eq!(ok(&app, "DELETE", "/quarry/groups/g", Value::Null).await, json!(true));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Snapshots over HTTP: create while the collection holds points, list, download (a Quarry
/// snapshot file), recover after a delete with every point back, and the refusals: recovering
/// over an existing collection (409), names with a path (400), locations outside the collection's
/// snapshot folder (400), unknown snapshots (404).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_round_trip_and_refuse_what_would_lose_data() {
    let dir = temp("snapshots");
    let app = app(&dir, false);
    setup(&app, None).await;
    let snap = ok(&app, "POST", "/collections/c/snapshots", Value::Null).await;
    let name = snap["name"].as_str().expect("name").to_string();
    assert!(name.starts_with("c-") && name.ends_with(".snapshot"), "{name}");
    assert!(snap["size"].as_u64().expect("size") > 0);
    assert_eq!(snap["creation_time"].as_str().expect("time").len(), 19);
    let list = ok(&app, "GET", "/collections/c/snapshots", Value::Null).await;
    assert_eq!(list.as_array().expect("list").len(), 1);
    assert_eq!(list[0]["name"], json!(name));
    let req = Request::get(format!("/collections/c/snapshots/{name}")).body(Body::empty()).expect("request");
    let resp = app.clone().oneshot(req).await.expect("infallible");
    assert_eq!(resp.status(), StatusCode::OK);
    let bytes = http_body_util::BodyExt::collect(resp.into_body()).await.expect("body").to_bytes();
    assert_eq!(&bytes[..8], b"QRYSNAP\0");
    // Recovering over the existing collection would replace it: refused.
    let (s, v) = call(&app, "PUT", "/collections/c/snapshots/recover", None, json!({"location": name})).await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    for bad in ["../c.snapshot", "c.snap", "file:///etc/passwd", "http://example.com/x.snapshot"] {
        let (s, v) =
            call(&app, "PUT", "/collections/c/snapshots/recover", None, json!({"location": bad})).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}: {v}");
    }
    let (s, _) =
        call(&app, "PUT", "/collections/c/snapshots/recover", None, json!({"location": "c-1.snapshot"}))
            .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(ok(&app, "DELETE", "/collections/c", Value::Null).await, json!(true));
    let file = format!("file://{}", dir.join("snapshots/c").join(&name).display());
    assert_eq!(
        ok(&app, "PUT", "/collections/c/snapshots/recover", json!({"location": file})).await,
        json!(true)
    );
    let n = ok(&app, "POST", "/collections/c/points/count", json!({"exact": true})).await;
    assert_eq!(n["count"], json!(20), "every point is back");
    let p = ok(&app, "GET", "/collections/c/points/7", Value::Null).await;
    assert_eq!(p["payload"]["name"], json!("p7"));
    assert_eq!(
        ok(&app, "DELETE", &format!("/collections/c/snapshots/{name}"), Value::Null).await,
        json!(true)
    );
    let (s, _) = call(&app, "GET", &format!("/collections/c/snapshots/{name}"), None, Value::Null).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let _ = std::fs::remove_dir_all(&dir);
}
