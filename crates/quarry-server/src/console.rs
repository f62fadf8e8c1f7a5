//! The web console (`/console`): one page, its script and its style sheet, compiled into the
//! binary (no CDN, no build step), that browses collections, searches (text or vector; mode,
//! filter, explain per hit), shows documents, and charts benchmark and evaluation reports. It
//! calls the same API as any client, with the key the user gives it; the assets themselves need
//! no key. Reports are `*.jsonl` files in the folder `quarry serve --reports DIR` names, listed by
//! `GET /quarry/reports` and read by `GET /quarry/reports/{name}`.

use crate::error::{ok, ApiError, ApiResult};
use crate::state::AppState;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};
use std::time::Instant;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

const INDEX: &str = include_str!("../console/index.html");
const APP_JS: &str = include_str!("../console/app.js");
const APP_CSS: &str = include_str!("../console/app.css");

/// The console's static routes (open: the page asks for the key and sends it with each call).
pub fn assets() -> Router<AppState> {
    Router::new()
        .route("/console", get(|| async { Redirect::permanent("/console/") }))
        .route("/console/", get(|| async { asset("index.html") }))
        .route("/console/{file}", get(|Path(file): Path<String>| async move { asset(&file) }))
}

fn asset(name: &str) -> Response {
    let (body, kind) = match name {
        "index.html" => (INDEX, "text/html; charset=utf-8"),
        "app.js" => (APP_JS, "text/javascript; charset=utf-8"),
        "app.css" => (APP_CSS, "text/css; charset=utf-8"),
        _ => {
            return ApiError::new(StatusCode::NOT_FOUND, format!("no console file {name:?}")).into_response()
        }
    };
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CONTENT_SECURITY_POLICY, "default-src 'self'; img-src 'self' data:; style-src 'self'"),
        ],
        body,
    )
        .into_response()
}

/// The report routes (read access).
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_reports)).routes(routes!(get_report))
}

/// The reports folder's `*.jsonl` files: name, rows, bytes.
#[utoipa::path(get, path = "/quarry/reports", tag = "quarry",
    responses((status = 200, description = "`{\"reports\": [{\"name\", \"bytes\"}]}`: the `*.jsonl` files of `quarry serve --reports DIR`")))]
pub async fn list_reports(State(state): State<AppState>) -> ApiResult<Response> {
    let start = Instant::now();
    let Some(dir) = state.config().reports.clone() else { return Ok(ok(json!({"reports": []}), start)) };
    let list = AppState::blocking(move || {
        let mut out = Vec::new();
        let entries = std::fs::read_dir(&dir)
            .map_err(|e| ApiError::from(quarry_core::Error::io("listing", &dir, e)))?;
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with(".jsonl") && !name.starts_with('.') {
                out.push(json!({"name": name, "bytes": e.metadata().map(|m| m.len()).unwrap_or(0)}));
            }
        }
        out.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
        Ok(out)
    })
    .await?;
    Ok(ok(json!({"reports": list}), start))
}

/// One report's rows (each line of the file as JSON; lines that are not JSON objects, and rows
/// past the first 100,000, are skipped and counted).
#[utoipa::path(get, path = "/quarry/reports/{report_name}", tag = "quarry",
    params(("report_name" = String, Path, description = "A `*.jsonl` file of the reports folder", example = "bench.jsonl")),
    responses((status = 200, description = "`{\"name\", \"rows\": [...], \"skipped\"}`"), (status = 404, description = "No such report")))]
pub async fn get_report(
    State(state): State<AppState>,
    name: Result<Path<String>, PathRejection>,
) -> ApiResult<Response> {
    let start = Instant::now();
    let Path(name) = name?;
    if !name.ends_with(".jsonl") || name.starts_with('.') || name.contains(['/', '\\', ':']) {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no report {name:?} (a *.jsonl file name)"),
        ));
    }
    let Some(dir) = state.config().reports.clone() else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no report {name:?}: the server has no --reports folder"),
        ));
    };
    let path = dir.join(&name);
    let n2 = name.clone();
    let (rows, skipped) = AppState::blocking(move || {
        let text = std::fs::read_to_string(&path)
            .map_err(|_| ApiError::new(StatusCode::NOT_FOUND, format!("no report {n2:?}")))?;
        let mut rows = Vec::new();
        let mut skipped = 0usize;
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            match serde_json::from_str::<Value>(line) {
                Ok(v @ Value::Object(_)) if rows.len() < 100_000 => rows.push(v),
                _ => skipped += 1,
            }
        }
        Ok((rows, skipped))
    })
    .await?;
    Ok(ok(json!({"name": name, "rows": rows, "skipped": skipped}), start))
}
