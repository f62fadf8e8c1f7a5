//! API keys. Every route has an access level ([`access`]): open (health, the OpenAPI spec), read
//! (GETs and the POSTs that only read: retrieve, search, query, scroll, count, text search,
//! evaluation) or write (everything else). With keys configured, a request names one in the
//! `api-key` header or as `Authorization: Bearer …`; a missing or wrong key is 401, the read-only
//! key on a write route is 403. Keys are compared in constant time (both always compared).

use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use subtle::ConstantTimeEq;

/// What a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No key (health checks, the API description).
    Open,
    /// The read-only or the full key.
    Read,
    /// The full key.
    Write,
}

/// POST routes that only read.
const READ_POSTS: &[&str] = &[
    "/collections/{collection_name}/points",
    "/collections/{collection_name}/points/search",
    "/collections/{collection_name}/points/search/batch",
    "/collections/{collection_name}/points/query",
    "/collections/{collection_name}/points/query/batch",
    "/collections/{collection_name}/points/scroll",
    "/collections/{collection_name}/points/count",
    "/quarry/collections/{collection_name}/text-search",
    "/quarry/collections/{collection_name}/context",
    "/quarry/collections/{collection_name}/eval",
    "/quarry/groups/{group_name}/search",
];

/// The access level of `method` on the route template `path`.
pub fn access(method: &Method, path: &str) -> Access {
    match path {
        "/healthz" | "/livez" | "/readyz" | "/openapi.json" | "/console" | "/console/"
        | "/console/{file}" => Access::Open,
        _ if method == Method::GET || method == Method::HEAD => Access::Read,
        _ if method == Method::POST && READ_POSTS.contains(&path) => Access::Read,
        _ => Access::Write,
    }
}

/// The key a request presents, if any.
fn presented(req: &Request) -> Option<&[u8]> {
    let h = req.headers();
    if let Some(k) = h.get("api-key") {
        return Some(k.as_bytes());
    }
    let auth = h.get(axum::http::header::AUTHORIZATION)?.as_bytes();
    auth.strip_prefix(b"Bearer ").or_else(|| auth.strip_prefix(b"bearer "))
}

fn same(a: &[u8], b: Option<&str>) -> bool {
    b.is_some_and(|b| bool::from(a.ct_eq(b.as_bytes())))
}

/// The middleware checking keys against the route's [`access`] level.
pub async fn require_key(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let cfg = state.config();
    if cfg.api_key.is_none() && cfg.read_only_key.is_none() {
        return Ok(next.run(req).await);
    }
    let path = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| req.uri().path().to_string(), |m| m.as_str().to_string());
    let need = access(req.method(), &path);
    if need == Access::Open {
        return Ok(next.run(req).await);
    }
    let Some(key) = presented(&req) else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "Unauthorized: this server needs an API key (header `api-key` or `Authorization: Bearer`)",
        ));
    };
    // Both comparisons always run: the time taken does not tell which key was close.
    let full = same(key, cfg.api_key.as_deref());
    let read = same(key, cfg.read_only_key.as_deref());
    match (full, read, need) {
        (true, _, _) | (false, true, Access::Read) => Ok(next.run(req).await),
        (false, true, _) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("Forbidden: the read-only key cannot call {} {path}", req.method()),
        )),
        (false, false, _) => Err(ApiError::new(StatusCode::UNAUTHORIZED, "Unauthorized: wrong API key")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_writes_and_open_routes_are_classified() {
        assert_eq!(access(&Method::GET, "/healthz"), Access::Open);
        assert_eq!(access(&Method::GET, "/collections"), Access::Read);
        assert_eq!(access(&Method::POST, "/collections/{collection_name}/points/search"), Access::Read);
        assert_eq!(access(&Method::PUT, "/collections/{collection_name}/points"), Access::Write);
        assert_eq!(access(&Method::POST, "/collections/{collection_name}/points/delete"), Access::Write);
        assert_eq!(access(&Method::DELETE, "/collections/{collection_name}"), Access::Write);
    }
}
