//! The OpenAPI description, generated from the handlers' annotations (utoipa) and served at
//! `/openapi.json`: every route, its parameters, bodies and answers, and the API-key scheme.

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

/// The document's fixed parts (routes are added by the routers).
#[derive(OpenApi)]
#[openapi(
    info(title = "Quarry", description = "Quarry's HTTP API: a Qdrant-compatible REST subset plus native endpoints (text collections, hybrid search with explain, evaluation runs)."),
    modifiers(&Keys),
    tags(
        (name = "collections", description = "Qdrant-compatible: collections and payload indexes"),
        (name = "points", description = "Qdrant-compatible: points and payloads"),
        (name = "search", description = "Qdrant-compatible: search and the universal query"),
        (name = "quarry", description = "Native: text collections, hybrid search, evaluation"),
        (name = "service", description = "Health, metrics, version"),
    )
)]
pub struct ApiDoc;

/// Adds the two ways to present a key.
struct Keys;

impl Modify for Keys {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        if let Some(c) = openapi.components.as_mut() {
            c.add_security_scheme(
                "api-key",
                SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("api-key"))),
            );
            c.add_security_scheme(
                "bearer",
                SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
            );
        }
    }
}
