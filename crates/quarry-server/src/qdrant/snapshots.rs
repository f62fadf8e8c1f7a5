//! Collection snapshots over HTTP, as Qdrant serves them: create (a consistent snapshot file while
//! writes go on, `Collection::snapshot`), list, download, delete, and recover into a collection of
//! that name (`Database::restore_snapshot`). Files live in `<data>/snapshots/<collection>/`, named
//! `<collection>-<unix ms>.snapshot`; a recover reads only from that folder (a name, or a
//! `file://` path inside it), never from anywhere else on the server. Uploading a snapshot
//! (multipart) is not served.

use crate::body::JsonBody;
use crate::error::{ok, ApiError, ApiResult};
use crate::state::AppState;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Body of `PUT /collections/{name}/snapshots/recover`.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
pub struct RecoverRequest {
    /// A snapshot of this collection: its name, or `file://` and its path in the server's
    /// snapshot folder of the collection.
    pub location: String,
    /// Accepted and ignored (there is one copy of the data).
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub priority: Option<Value>,
}

/// The snapshot folder of collection `name`.
fn folder(state: &AppState, name: &str) -> PathBuf {
    state.db().dir().join("snapshots").join(name)
}

/// Checks a snapshot file name: `[A-Za-z0-9._-]`, ending in `.snapshot`, no path.
fn check_name(n: &str) -> ApiResult<()> {
    let fine = n.ends_with(".snapshot")
        && !n.starts_with('.')
        && n.len() <= 255
        && n.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if fine {
        Ok(())
    } else {
        Err(ApiError::bad(format!(
            "snapshot name {n:?}: expected <name>.snapshot of letters, digits, '.', '_', '-'"
        )))
    }
}

/// `YYYY-MM-DDTHH:MM:SS` (UTC) of `t`, Qdrant's `creation_time` format.
fn iso(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Qdrant's description of snapshot file `path`.
fn describe(path: &std::path::Path) -> ApiResult<Value> {
    let meta =
        std::fs::metadata(path).map_err(|e| ApiError::from(quarry_core::Error::io("reading", path, e)))?;
    let name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    Ok(json!({"name": name, "creation_time": iso(meta.modified().unwrap_or(UNIX_EPOCH)),
              "size": meta.len(), "checksum": null}))
}

/// Create a snapshot of a collection.
#[utoipa::path(post, path = "/collections/{collection_name}/snapshots", tag = "snapshots",
    params(("collection_name" = String, Path, description = "Collection name", example = "c")),
    responses((status = 200, description = "`{\"name\", \"creation_time\", \"size\", \"checksum\"}`")))]
pub async fn create_snapshot(
    State(state): State<AppState>,
    name: Result<Path<String>, PathRejection>,
) -> ApiResult<Response> {
    let start = Instant::now();
    let Path(name) = name?;
    let c = state.collection(&name)?;
    let dir = folder(&state, &name);
    let v = AppState::blocking(move || {
        std::fs::create_dir_all(&dir)
            .map_err(|e| ApiError::from(quarry_core::Error::io("creating", &dir, e)))?;
        let ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
        let path = dir.join(format!("{name}-{ms}.snapshot"));
        c.snapshot(&path)?;
        describe(&path)
    })
    .await?;
    Ok(ok(v, start))
}

/// List a collection's snapshots.
#[utoipa::path(get, path = "/collections/{collection_name}/snapshots", tag = "snapshots",
    params(("collection_name" = String, Path, description = "Collection name", example = "c")),
    responses((status = 200, description = "A list of snapshot descriptions, by name")))]
pub async fn list_snapshots(
    State(state): State<AppState>,
    name: Result<Path<String>, PathRejection>,
) -> ApiResult<Response> {
    let start = Instant::now();
    let Path(name) = name?;
    state.collection(&name)?;
    let dir = folder(&state, &name);
    let v = AppState::blocking(move || {
        let mut names: Vec<PathBuf> = match std::fs::read_dir(&dir) {
            Ok(entries) => entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.file_name().is_some_and(|n| check_name(&n.to_string_lossy()).is_ok()))
                .collect(),
            Err(_) => Vec::new(),
        };
        names.sort();
        names.iter().map(|p| describe(p)).collect::<ApiResult<Vec<_>>>()
    })
    .await?;
    Ok(ok(v, start))
}

/// The file of snapshot `snap` of collection `name`, checked to exist.
fn snapshot_file(state: &AppState, name: &str, snap: &str) -> ApiResult<PathBuf> {
    check_name(snap)?;
    let path = folder(state, name).join(snap);
    if !path.is_file() {
        return Err(ApiError::not_found(format!("Snapshot {snap} of collection {name} not found")));
    }
    Ok(path)
}

/// Download a snapshot file.
#[utoipa::path(get, path = "/collections/{collection_name}/snapshots/{snapshot_name}", tag = "snapshots",
    params(("collection_name" = String, Path, description = "Collection name", example = "c"),
           ("snapshot_name" = String, Path, description = "Snapshot file name")),
    responses((status = 200, description = "The snapshot file (application/octet-stream)"), (status = 404, description = "Unknown snapshot")))]
pub async fn get_snapshot(
    State(state): State<AppState>,
    names: Result<Path<(String, String)>, PathRejection>,
) -> ApiResult<Response> {
    let Path((name, snap)) = names?;
    state.collection(&name)?;
    let path = snapshot_file(&state, &name, &snap)?;
    let bytes = tokio::fs::read(&path)
        .await
        .map_err(|e| ApiError::from(quarry_core::Error::io("reading", &path, e)))?;
    Ok(([(axum::http::header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response())
}

/// Delete a snapshot file.
#[utoipa::path(delete, path = "/collections/{collection_name}/snapshots/{snapshot_name}", tag = "snapshots",
    params(("collection_name" = String, Path, description = "Collection name", example = "c"),
           ("snapshot_name" = String, Path, description = "Snapshot file name")),
    responses((status = 200, description = "`true`"), (status = 404, description = "Unknown snapshot")))]
pub async fn delete_snapshot(
    State(state): State<AppState>,
    names: Result<Path<(String, String)>, PathRejection>,
) -> ApiResult<Response> {
    let start = Instant::now();
    let Path((name, snap)) = names?;
    let path = snapshot_file(&state, &name, &snap)?;
    std::fs::remove_file(&path).map_err(|e| ApiError::from(quarry_core::Error::io("removing", &path, e)))?;
    Ok(ok(true, start))
}

/// Recover a collection from one of its snapshots. The collection must not exist (delete it
/// first): a recover never replaces stored data.
#[utoipa::path(put, path = "/collections/{collection_name}/snapshots/recover", tag = "snapshots",
    params(("collection_name" = String, Path, description = "Collection name", example = "c")),
    request_body = RecoverRequest,
    responses((status = 200, description = "`true`"), (status = 404, description = "Unknown snapshot"),
              (status = 409, description = "The collection exists")))]
pub async fn recover_snapshot(
    State(state): State<AppState>,
    name: Result<Path<String>, PathRejection>,
    JsonBody(req): JsonBody<RecoverRequest>,
) -> ApiResult<Response> {
    let start = Instant::now();
    let Path(name) = name?;
    let loc = req.location.trim();
    let snap = match loc.strip_prefix("file://") {
        Some(p) => {
            let p = std::path::Path::new(p);
            if p.parent() != Some(folder(&state, &name).as_path()) {
                return Err(ApiError::bad(format!(
                    "location {loc:?}: recover reads only this collection's snapshot folder ({})",
                    folder(&state, &name).display()
                )));
            }
            p.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default()
        }
        None if loc.contains("://") => {
            return Err(ApiError::bad(format!("location {loc:?}: give a snapshot name or a file:// path")));
        }
        None => loc.to_string(),
    };
    let path = snapshot_file(&state, &name, &snap)?;
    if state.db().collection(&name).is_ok() {
        return Err(quarry_core::Error::Conflict(format!(
            "collection {name:?} exists: delete it before recovering it from a snapshot"
        ))
        .into());
    }
    let db = state.db().clone();
    AppState::blocking(move || db.restore_snapshot(&path, &name).map(|_| ()).map_err(ApiError::from)).await?;
    Ok(ok(true, start))
}
