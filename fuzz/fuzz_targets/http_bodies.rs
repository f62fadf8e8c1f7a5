//! Fuzz target: HTTP request bodies of the Qdrant-compatible routes. The input's first byte picks
//! a route (and one of two collections); the rest is the body. Every request body model of
//! `quarry_server::qdrant::models` is read from the bytes by the body extractor's parser
//! (`quarry_server::body::parse`: empty body, nesting depth, error paths) and run through the
//! public conversions the handlers apply (ids, filters, payload / vector selectors, vectors,
//! `collections::schema_of`); then the body is sent through the whole router (in process, no
//! sockets) to the picked route, so the handlers' own validation runs too, before and with the
//! engine. Nothing may panic (a panic aborts the fuzzer, even inside a handler), no answer may be
//! a 500 (the server's own failure), and every answer is JSON.
//!
//! Reads go to collections `f` (named fields `a`: 4-d cosine HNSW, `b`: 3-d Euclid HNSW+SQ8) and
//! `u` (one unnamed 4-d dot field), 50 points each, partly sealed, with a payload index; writes go
//! to `w` / `wu` (same schemas), recreated every 512 writes so they stay small.
#![no_main]

#[path = "common.rs"]
mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use libfuzzer_sys::fuzz_target;
use quarry_engine::{Database, Point, PointId};
use quarry_server::qdrant::{collections, convert, models};
use quarry_server::{router, AppState, ServerConfig};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use tower::ServiceExt;

struct Fixture {
    rt: tokio::runtime::Runtime,
    app: Router,
    db: Arc<Database>,
    writes: AtomicUsize,
}

static FIXTURE: OnceLock<Fixture> = OnceLock::new();

/// Routes: method, path after `/collections/{name}`, whether it writes.
const ROUTES: [(&str, &str, bool); 15] = [
    ("POST", "/points", false),
    ("POST", "/points/scroll", false),
    ("POST", "/points/count", false),
    ("POST", "/points/search", false),
    ("POST", "/points/search/batch", false),
    ("POST", "/points/query", false),
    ("POST", "/points/query/batch", false),
    ("PUT", "/points", true),
    ("POST", "/points/delete", true),
    ("POST", "/points/payload", true),
    ("PUT", "/points/payload", true),
    ("POST", "/points/payload/delete", true),
    ("POST", "/points/payload/clear", true),
    ("PUT", "/index", true),
    ("PUT", "", true),
];

fn create_body(named: bool) -> Value {
    let vectors = if named {
        json!({"a": {"size": 4, "distance": "Cosine"},
               "b": {"size": 3, "distance": "Euclid", "quantization_config": {"scalar": {"type": "int8"}}}})
    } else {
        json!({"size": 4, "distance": "Dot"})
    };
    json!({"vectors": vectors, "quarry": {"fsync": false, "seal_threshold": 0}})
}

async fn send(app: &Router, method: &str, uri: &str, body: Vec<u8>) -> (StatusCode, Vec<u8>) {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
        .body(Body::from(body))
        .expect("request");
    let resp = app.clone().oneshot(req).await.expect("infallible");
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX).await.expect("answer body");
    (status, bytes.to_vec())
}

/// (Re)creates collection `name` through the router and fills it with `n` points.
fn fill(fx_app: &Router, rt: &tokio::runtime::Runtime, db: &Database, name: &str, named: bool, n: u64) {
    rt.block_on(async {
        let _ = send(fx_app, "DELETE", &format!("/collections/{name}"), Vec::new()).await;
        let body = serde_json::to_vec(&create_body(named)).expect("json");
        let (s, b) = send(fx_app, "PUT", &format!("/collections/{name}"), body).await;
        assert_eq!(s, StatusCode::OK, "create {name}: {}", String::from_utf8_lossy(&b));
    });
    let c = db.collection(name).expect("created");
    c.create_payload_index("tag").expect("index");
    let point = |i: u64| {
        let v = |d: usize, k: u64| -> Vec<f32> {
            (0..d as u64).map(|j| ((i * 5 + j * 3 + k) % 7) as f32 - 2.5).collect()
        };
        let vectors = if named { vec![v(4, 0), v(3, 1)] } else { vec![v(4, 2)] };
        let payload = json!({"tag": (["a", "b", "c"][(i % 3) as usize]), "n": i, "tags": ["x", i % 4],
                             "nested": {"k": i % 2}});
        let id = if i % 10 == 7 { PointId::Uuid(u128::from(i) + (0xfeed << 64)) } else { PointId::Num(i) };
        Point { id, vectors, payload: payload.as_object().cloned().expect("object") }
    };
    let first = n * 3 / 5;
    c.upsert((0..first).map(point).collect()).expect("upsert");
    c.optimize().expect("seal");
    c.upsert((first..n).map(point).collect()).expect("upsert");
    c.delete(&[PointId::Num(2), PointId::Num(first + 1)]).expect("delete");
}

fn fixture() -> &'static Fixture {
    FIXTURE.get_or_init(|| {
        let dir = common::scratch("http_bodies");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .max_blocking_threads(4)
            .enable_all()
            .build()
            .expect("runtime");
        let db = Arc::new(Database::open(&dir).expect("scratch database"));
        let mut cfg = ServerConfig::new(&dir);
        cfg.max_body_bytes = 4096;
        cfg.max_batch = 64;
        cfg.max_limit = 256;
        let app = {
            let _guard = rt.enter();
            router(AppState::new(db.clone(), cfg))
        };
        for (name, named, n) in [("f", true, 50), ("u", false, 50), ("w", true, 20), ("wu", false, 20)] {
            fill(&app, &rt, &db, name, named, n);
        }
        Fixture { rt, app, db, writes: AtomicUsize::new(0) }
    })
}

/// Reads `body` as every request model and applies the handlers' public conversions.
fn models_and_conversions(body: &[u8]) {
    use quarry_server::body::parse;
    let filter = |v: &Option<Value>| drop(convert::filter(v.as_ref()));
    let ids = |v: &Option<Vec<Value>>| drop(v.as_ref().map(|ids| convert::ids(ids, 64)));
    let selectors = |p: &Option<Value>, v: &Option<Value>| {
        drop(convert::PayloadSel::parse(p.as_ref(), true));
        drop(convert::VectorSel::parse(v.as_ref()));
    };
    if let Ok(r) = parse::<models::RetrievePoints>(body) {
        drop(convert::ids(&r.ids, 64));
        selectors(&r.with_payload, &r.with_vector);
    }
    if let Ok(r) = parse::<models::ScrollRequest>(body) {
        filter(&r.filter);
        selectors(&r.with_payload, &r.with_vector);
        drop(r.offset.as_ref().map(PointId::from_json));
    }
    if let Ok(r) = parse::<models::CountRequest>(body) {
        filter(&r.filter);
    }
    let search = |r: &models::SearchRequest| {
        filter(&r.filter);
        selectors(&r.with_payload, &r.with_vector);
        drop(convert::floats(r.vector.get("vector").unwrap_or(&r.vector), "vector"));
    };
    if let Ok(r) = parse::<models::SearchRequest>(body) {
        search(&r);
    }
    if let Ok(r) = parse::<models::SearchBatch>(body) {
        r.searches.iter().for_each(search);
    }
    let query = |r: &models::QueryRequest| {
        filter(&r.filter);
        selectors(&r.with_payload, &r.with_vector);
        if let Some(q) = &r.query {
            drop(convert::floats(q.get("nearest").unwrap_or(q), "query"));
        }
    };
    if let Ok(r) = parse::<models::QueryRequest>(body) {
        query(&r);
    }
    if let Ok(r) = parse::<models::QueryBatch>(body) {
        r.searches.iter().for_each(query);
    }
    if let Ok(r) = parse::<models::UpsertPoints>(body) {
        if let Some(points) = &r.points {
            let schema = fixture().db.collection("f").expect("f").schema().clone();
            for p in points {
                drop(Point::from_json(p, &schema));
            }
        }
    }
    if let Ok(r) = parse::<models::PointsSelector>(body) {
        ids(&r.points);
        filter(&r.filter);
    }
    if let Ok(r) = parse::<models::SetPayload>(body) {
        ids(&r.points);
        filter(&r.filter);
    }
    if let Ok(r) = parse::<models::DeletePayload>(body) {
        ids(&r.points);
        filter(&r.filter);
    }
    if let Ok(r) = parse::<models::CreateCollection>(body) {
        if let Ok(schema) = collections::schema_of(&r) {
            schema.check().expect("schema_of returns valid schemas");
            let text = serde_json::to_vec(&schema).expect("schema JSON");
            let back: quarry_engine::CollectionSchema = serde_json::from_slice(&text).expect("reads back");
            assert_eq!(back, schema);
        }
    }
    drop(parse::<models::CreateFieldIndex>(body));
    drop(parse::<models::VectorParams>(body));
    drop(parse::<models::SearchParams>(body));
    drop(parse::<models::QuarryCollectionOptions>(body));
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else { return };
    let fx = fixture();
    models_and_conversions(body);
    let (method, path, writes) = ROUTES[pick as usize % ROUTES.len()];
    let second = (pick as usize / ROUTES.len()) % 2 == 1;
    let name = match (writes, second) {
        (false, false) => "f",
        (false, true) => "u",
        (true, false) => "w",
        (true, true) => "wu",
    };
    let (name, uri) = if path.is_empty() {
        ("new", "/collections/new?wait=true".to_string())
    } else {
        (name, format!("/collections/{name}{path}?wait=true"))
    };
    let (status, answer) = fx.rt.block_on(send(&fx.app, method, &uri, body.to_vec()));
    assert_ne!(
        status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "{method} {uri}: {}",
        String::from_utf8_lossy(&answer)
    );
    assert!(status.is_success() || status.is_client_error(), "{method} {uri}: status {status}");
    let v: Value = serde_json::from_slice(&answer).expect("every answer is JSON");
    assert!(v.get("status").is_some() && v.get("time").is_some(), "Qdrant's envelope: {v}");
    if name == "new" && status.is_success() {
        let (s, _) = fx.rt.block_on(send(&fx.app, "DELETE", "/collections/new", Vec::new()));
        assert_eq!(s, StatusCode::OK);
    }
    if writes && fx.writes.fetch_add(1, Ordering::Relaxed) % 512 == 511 {
        fill(&fx.app, &fx.rt, &fx.db, "w", true, 20);
        fill(&fx.app, &fx.rt, &fx.db, "wu", false, 20);
    }
});
