//! The JSON body extractor of every endpoint: the body (whatever its declared content type, as
//! `curl -d` sends form types) is read up to the server's size limit
//! (413 beyond it), an empty body reads as `{}`, and malformed JSON, JSON nested deeper than 128
//! levels, or a value of the wrong shape is a 400 naming where (`points[3].id: …`).

use crate::error::ApiError;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

/// A JSON request body of type `T`.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            let status = e.status();
            if status == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(status, "request body is over the server's size limit".to_string())
            } else {
                ApiError::new(
                    if status.is_client_error() { status } else { StatusCode::BAD_REQUEST },
                    format!("could not read the request body: {}", e.body_text()),
                )
            }
        })?;
        parse(&bytes).map(JsonBody)
    }
}

/// Parses `bytes` as a `T` (empty: `{}`); errors name the path inside the document.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let bytes = if bytes.iter().all(u8::is_ascii_whitespace) { b"{}".as_slice() } else { bytes };
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let v: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let mut path = e.path().to_string();
        if path.len() > 120 {
            path = format!("{}…", &path[..path.char_indices().nth(117).map_or(path.len(), |c| c.0)]);
        }
        let inner = e.into_inner();
        let hint = quarry_core::non_finite_hint(bytes, inner.line(), inner.column(), &inner.to_string())
            .map_or(String::new(), |h| format!(" ({h})"));
        if path == "." || path.is_empty() {
            ApiError::bad(format!("malformed JSON body: {inner}{hint}"))
        } else {
            ApiError::bad(format!("malformed JSON body at {path}: {inner}{hint}"))
        }
    })?;
    de.end().map_err(|e| ApiError::bad(format!("malformed JSON body: {e}")))?;
    Ok(v)
}
