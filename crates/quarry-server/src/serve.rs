//! Building the router (routes, OpenAPI, middleware) and running the server: bind (loopback by
//! default), plain HTTP or TLS (rustls), graceful shutdown (stop accepting, finish in-flight
//! requests, apply queued writes, flush every collection's log), then close the database.

use crate::auth;
use crate::error::ApiError;
use crate::metrics;
use crate::openapi::ApiDoc;
use crate::state::AppState;
use crate::{native, ops, qdrant, ServerConfig};
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use quarry_engine::Database;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

async fn timeout(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let limit = state.config().request_timeout;
    // A write already handed to the engine runs on after the answer, so it may still commit.
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| req.uri().path().to_string(), |m| m.as_str().to_string());
    let writes = crate::auth::access(req.method(), &route) == crate::auth::Access::Write;
    let what = format!("{} {}", req.method(), req.uri().path());
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(r) => r,
        Err(_) => ApiError::from(quarry_core::Error::Timeout {
            what,
            seconds: limit.as_secs_f64(),
            may_commit: writes,
        })
        .into_response(),
    }
}

async fn not_found(req: Request) -> Response {
    ApiError::not_found(format!(
        "{} {} is not supported: Quarry serves a subset of Qdrant's REST API (docs/SERVER.md lists \
         its routes; GET /openapi.json describes them)",
        req.method(),
        req.uri().path()
    ))
    .into_response()
}

async fn method_not_allowed(req: Request) -> Response {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!(
            "{} {} is not supported: the route exists with other methods (GET /openapi.json lists them)",
            req.method(),
            req.uri().path()
        ),
    )
    .into_response()
}

fn panic_answer(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("a request handler panicked");
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal error (a handler panicked; the data is unaffected)",
    )
    .into_response()
}

/// The OpenAPI document and the routes it describes.
fn api() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(qdrant::routes())
        .merge(native::routes())
        .merge(crate::groups::routes())
        .merge(crate::console::routes())
        .routes(routes!(ops::root))
        .routes(routes!(ops::healthz))
        .routes(routes!(ops::livez))
        .routes(routes!(ops::readyz))
        .routes(routes!(ops::metrics))
        .split_for_parts()
}

/// The OpenAPI document of the server.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api().1
}

/// The full application over `state`: every route, with keys, metrics, body limit, timeouts and
/// panics answered as errors.
pub fn router(state: AppState) -> Router {
    let (routes, doc) = api();
    let doc = Arc::new(doc);
    routes
        .route("/openapi.json", get(move || async move { axum::Json(doc.as_ref().clone()) }))
        .merge(crate::console::assets())
        .route_layer(middleware::from_fn_with_state(state.clone(), auth::require_key))
        .route_layer(middleware::from_fn_with_state(state.clone(), metrics::track))
        // After routing, so the timeout knows the route (whether a timed-out write may commit).
        .route_layer(middleware::from_fn_with_state(state.clone(), timeout))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(state.config().max_body_bytes))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(panic_answer))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}

/// Opens the database `config` names: a local folder, a writer node of an object store (with
/// its lease), or a read-only node of one.
async fn open_database(
    config: &ServerConfig,
) -> Result<(Database, Option<quarry_store::commit::Lease>), String> {
    let (data, objects, read_only, ttl) =
        (config.data.clone(), config.objects.clone(), config.read_only, config.lease_ttl);
    let (range_cache, latency) = (config.range_cache, config.object_latency);
    tokio::task::spawn_blocking(
        move || -> quarry_core::Result<(Database, Option<quarry_store::commit::Lease>)> {
            let Some(url) = objects else { return Ok((Database::open(&data)?, None)) };
            let mut store = quarry_store::objects::open_url(&url)?;
            if !latency.is_zero() {
                store = Arc::new(quarry_store::cache::Delayed { inner: store, latency });
            }
            if read_only {
                return Ok((Database::open_mirror_with(store, &data, range_cache)?, None));
            }
            let holder = format!(
                "{}:{}",
                std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default().trim(),
                std::process::id()
            );
            let lease = quarry_store::commit::Lease::acquire(store.clone(), "", &holder, ttl)?;
            Ok((Database::open_replicated(&data, store)?, Some(lease)))
        },
    )
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| format!("opening the database: {e}"))
}

/// Runs a server with `config` until `shutdown` completes, then shuts down gracefully. `ready`
/// is called with the bound address once the server accepts connections.
pub async fn serve(
    config: ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
    ready: impl FnOnce(SocketAddr),
) -> Result<(), String> {
    config.check()?;
    let (db, lease) = open_database(&config).await?;
    let db = Arc::new(db);
    let lease = Arc::new(std::sync::Mutex::new(lease));
    if lease.lock().map(|l| l.is_some()).unwrap_or(false) {
        // The writer keeps its lease alive; a writer that loses it must stop writing at once.
        let every = config.lease_ttl / 3;
        let lease = lease.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let l = lease.clone();
                let renewed = tokio::task::spawn_blocking(move || {
                    match l.lock().unwrap_or_else(std::sync::PoisonError::into_inner).as_mut() {
                        Some(x) => x.renew(),
                        None => Ok(()),
                    }
                })
                .await;
                match renewed {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        tracing::error!(error = %e, "lost the writer lease of the object store: stopping");
                        std::process::exit(3);
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "renewing the writer lease failed: stopping");
                        std::process::exit(3);
                    }
                }
            }
        });
    }
    if config.read_only {
        let (db, every) = (db.clone(), config.follow);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let d = db.clone();
                match tokio::task::spawn_blocking(move || d.refresh()).await {
                    Ok(Ok(0)) => {}
                    Ok(Ok(n)) => tracing::info!(collections = n, "followed new versions in object storage"),
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "reading object storage failed; serving the last copy")
                    }
                    Err(e) => tracing::warn!(error = %e, "refresh task failed"),
                }
                for (name, why) in db.mirror_errors() {
                    tracing::warn!(collection = %name, error = %why, "collection unreadable in object storage");
                }
            }
        });
    }
    let state = AppState::new(db, config.clone());
    let app = router(state.clone());
    let listener = std::net::TcpListener::bind((config.host.as_str(), config.port))
        .map_err(|e| format!("binding {}:{}: {e}", config.host, config.port))?;
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    if !addr.ip().is_loopback() && config.api_key.is_none() {
        tracing::warn!(%addr, "listening beyond loopback without an API key: anyone who can reach this address can read and write");
    }
    let handle = axum_server::Handle::new();
    let h = handle.clone();
    let grace = config.shutdown_grace;
    tokio::spawn(async move {
        shutdown.await;
        tracing::info!("shutting down: no new connections; finishing requests in flight");
        h.graceful_shutdown(Some(grace));
    });
    let service = app.into_make_service();
    let served = match &config.tls {
        Some((cert, key)) => {
            let _ = rustls::crypto::ring::default_provider().install_default();
            let tls = axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key)
                .await
                .map_err(|e| format!("TLS certificate {} / key {}: {e}", cert.display(), key.display()))?;
            let server =
                axum_server::from_tcp_rustls(listener, tls).map_err(|e| e.to_string())?.handle(handle);
            ready(addr);
            server.serve(service).await
        }
        None => {
            let server = axum_server::from_tcp(listener).map_err(|e| e.to_string())?.handle(handle);
            ready(addr);
            server.serve(service).await
        }
    };
    served.map_err(|e| format!("serving: {e}"))?;
    state.drain_writes(grace).await;
    let db = state.db().clone();
    tokio::task::spawn_blocking(move || {
        for n in db.collection_names() {
            if let Ok(c) = db.collection(&n) {
                if let Err(e) = c.flush() {
                    tracing::error!(collection = %n, error = %e, "flushing the log at shutdown");
                }
            }
        }
    })
    .await
    .map_err(|e| e.to_string())?;
    // A clean shutdown gives the writer lease up, so a new writer need not wait for it to expire.
    let held = lease.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
    if let Some(l) = held {
        let released = tokio::task::spawn_blocking(move || l.release()).await.map_err(|e| e.to_string())?;
        if let Err(e) = released {
            tracing::warn!(error = %e, "giving up the writer lease");
        }
    }
    tracing::info!("shut down cleanly");
    Ok(())
}
