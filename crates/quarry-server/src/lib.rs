//! Quarry's HTTP server (`quarry serve`): the engine behind axum + tokio.
//!
//! - A Qdrant-compatible REST subset under the same paths, JSON shapes, filter syntax and error
//!   envelope (`{"status": {"error": …}, "time": …}`), so code written against Qdrant's REST API
//!   or its Python client works by changing the URL ([`qdrant`]).
//! - Native endpoints under `/quarry/` for what only Quarry does: text collections, hybrid
//!   search with `explain`, evaluation runs ([`native`]); expert groups with routing ([`groups`]).
//! - Operations: `/healthz`, `/readyz`, Prometheus `/metrics`, the OpenAPI spec at
//!   `/openapi.json` (generated from the handlers by utoipa) ([`ops`]).
//! - A web console at `/console` (collections, search with explain, documents, report charts),
//!   its assets compiled in ([`console`]).
//! - Safety: API keys (full and read-only, compared in constant time), loopback bind by default,
//!   optional TLS (rustls), body, batch and result limits, per-request timeouts, every bad input
//!   a 4xx naming the problem ([`auth`], [`body`], [`error`]).
//!
//! Writes with `wait=true` are answered after they are durable; `wait=false` writes are queued
//! per collection, applied in order, and drained before a graceful shutdown returns.

pub mod auth;
pub mod body;
pub mod config;
pub mod console;
pub mod error;
pub mod groups;
pub mod metrics;
pub mod native;
pub mod openapi;
pub mod ops;
pub mod qdrant;
pub mod serve;
pub mod state;
pub mod writer;

pub use config::ServerConfig;
pub use serve::{openapi, router, serve};
pub use state::AppState;
