//! Operations routes: `/` (version, as Qdrant answers it, so clients' compatibility checks pass),
//! `/healthz` `/livez` `/readyz`, Prometheus `/metrics`, and the OpenAPI spec at `/openapi.json`.

use crate::state::AppState;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// The Qdrant REST API version this server speaks (the subset documented in docs/SERVER.md).
pub const QDRANT_API_VERSION: &str = "1.20.0";

/// Server name and version.
#[utoipa::path(get, path = "/", tag = "service", responses((status = 200, description = "`{\"title\", \"version\", \"quarry_version\"}`")))]
pub async fn root() -> Response {
    axum::Json(json!({
        "title": "quarry - retrieval engine (Qdrant-compatible REST subset)",
        "version": QDRANT_API_VERSION,
        "quarry_version": env!("CARGO_PKG_VERSION"),
    }))
    .into_response()
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "service", responses((status = 200, description = "`healthz check passed`")))]
pub async fn healthz() -> &'static str {
    "healthz check passed"
}

/// Liveness (Kubernetes name).
#[utoipa::path(get, path = "/livez", tag = "service", responses((status = 200, description = "`livez check passed`")))]
pub async fn livez() -> &'static str {
    "livez check passed"
}

/// Readiness: the database is open and every collection loaded.
#[utoipa::path(get, path = "/readyz", tag = "service", responses((status = 200, description = "`all shards are ready`")))]
pub async fn readyz() -> &'static str {
    "all shards are ready"
}

/// Prometheus metrics: request counts and latencies per route, points and segments per collection.
#[utoipa::path(get, path = "/metrics", tag = "service", responses((status = 200, description = "Prometheus text format")))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    let names = state.db().collection_names();
    let m = state.metrics();
    m.gauge("quarry_collections", vec![], names.len() as f64);
    for n in names {
        if let Ok(c) = state.db().collection(&n) {
            m.gauge("quarry_collection_points", vec![("collection", n.clone())], c.count(None) as f64);
            m.gauge("quarry_collection_segments", vec![("collection", n.clone())], c.segment_count() as f64);
        }
    }
    let mut text = m.render();
    text.push_str(&format!(
        "# HELP quarry_uptime_seconds Seconds since the server started\n# TYPE quarry_uptime_seconds gauge\nquarry_uptime_seconds {}\n",
        state.started().elapsed().as_secs_f64()
    ));
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}
