//! Errors as HTTP answers in Qdrant's envelope: `{"status": {"error": "…"}, "time": 0.0}`, with
//! 400 for bad input, 401/403 for keys, 404 for unknown collections or points, 409 for conflicts
//! (a collection that exists), 413 for bodies over the limit, 503 for timeouts, and 500 only for
//! the server's own failures (I/O, damaged stored files, a log that refuses writes).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// An error answer.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// What went wrong, for the client.
    pub message: String,
}

impl ApiError {
    /// 400 with `message`.
    pub fn bad(message: impl Into<String>) -> ApiError {
        ApiError { status: StatusCode::BAD_REQUEST, message: message.into() }
    }

    /// 404 with `message`.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError { status: StatusCode::NOT_FOUND, message: message.into() }
    }

    /// An error with any status.
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError { status, message: message.into() }
    }
}

impl From<quarry_core::Error> for ApiError {
    fn from(e: quarry_core::Error) -> ApiError {
        use quarry_core::Error as E;
        // Every variant is named (no wildcard arm): a new one must be classified here.
        let status = match &e {
            // The client's input: a request body, a query or a file it named.
            E::DimensionMismatch { .. }
            | E::NonFinite { .. }
            | E::ZeroVector { .. }
            | E::InvalidArgument(_)
            | E::Malformed { .. } => StatusCode::BAD_REQUEST,
            E::NotFound(_) => StatusCode::NOT_FOUND,
            E::Conflict(_) => StatusCode::CONFLICT,
            E::Timeout { .. } => StatusCode::SERVICE_UNAVAILABLE,
            // The server's own faults: its disk, its stored files, a log that refuses writes.
            E::Io { .. } | E::Corrupt { .. } | E::Poisoned(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(error = %e, "engine failure");
        }
        ApiError { status, message: e.to_string() }
    }
}

impl From<axum::extract::rejection::QueryRejection> for ApiError {
    fn from(e: axum::extract::rejection::QueryRejection) -> ApiError {
        ApiError::bad(format!("bad query string: {}", e.body_text()))
    }
}

impl From<axum::extract::rejection::PathRejection> for ApiError {
    fn from(e: axum::extract::rejection::PathRejection) -> ApiError {
        ApiError::bad(format!("bad path: {}", e.body_text()))
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.status, self.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(json!({"status": {"error": self.message}, "time": 0.0}))).into_response()
    }
}

/// A handler's result.
pub type ApiResult<T> = Result<T, ApiError>;

/// A success answer in Qdrant's envelope: `{"result": …, "status": "ok", "time": seconds}`.
pub fn ok(result: impl serde::Serialize, start: std::time::Instant) -> Response {
    axum::Json(json!({"result": result, "status": "ok", "time": start.elapsed().as_secs_f64()}))
        .into_response()
}

impl ApiError {
    /// The same error with `prefix` before its message.
    pub fn prefixed(mut self, prefix: &str) -> ApiError {
        self.message = format!("{prefix}{}", self.message);
        self
    }
}
