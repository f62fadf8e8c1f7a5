//! What every handler shares: the open database, the settings, the metrics, and the write queue
//! of each collection. Engine calls block (fsync, index builds), so handlers run them on tokio's
//! blocking pool through [`AppState::blocking`].

use crate::config::ServerConfig;
use crate::error::{ApiError, ApiResult};
use crate::metrics::Metrics;
use crate::writer::Writer;
use quarry_engine::{Collection, Database};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

/// Shared server state (cheap to clone).
#[derive(Clone, Debug)]
pub struct AppState(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    db: Arc<Database>,
    config: ServerConfig,
    metrics: Metrics,
    writers: Mutex<HashMap<String, Arc<Writer>>>,
    started: Instant,
}

impl AppState {
    /// State over an open database.
    pub fn new(db: Arc<Database>, config: ServerConfig) -> AppState {
        AppState(Arc::new(Inner {
            db,
            config,
            metrics: Metrics::new(),
            writers: Mutex::new(HashMap::new()),
            started: Instant::now(),
        }))
    }

    /// The database.
    pub fn db(&self) -> &Arc<Database> {
        &self.0.db
    }

    /// The settings.
    pub fn config(&self) -> &ServerConfig {
        &self.0.config
    }

    /// The metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.0.metrics
    }

    /// When the server started.
    pub fn started(&self) -> Instant {
        self.0.started
    }

    /// Collection `name` (404 naming it if unknown).
    pub fn collection(&self, name: &str) -> ApiResult<Arc<Collection>> {
        self.0
            .db
            .collection(name)
            .map_err(|_| ApiError::not_found(format!("Not found: Collection `{name}` doesn't exist!")))
    }

    /// The write queue of collection `name`.
    pub fn writer(&self, name: &str) -> Arc<Writer> {
        let mut w = self.0.writers.lock().unwrap_or_else(PoisonError::into_inner);
        w.entry(name.to_string()).or_insert_with(|| Writer::start(name, self.clone())).clone()
    }

    /// Forgets the write queue of a deleted collection (after draining it).
    pub async fn drop_writer(&self, name: &str) {
        let w = self.0.writers.lock().unwrap_or_else(PoisonError::into_inner).remove(name);
        if let Some(w) = w {
            w.drain(self.0.config.shutdown_grace).await;
        }
    }

    /// Waits until every queued write is applied (at most `grace`).
    pub async fn drain_writes(&self, grace: std::time::Duration) {
        let all: Vec<Arc<Writer>> =
            self.0.writers.lock().unwrap_or_else(PoisonError::into_inner).values().cloned().collect();
        for w in all {
            w.drain(grace).await;
        }
    }

    /// Runs blocking engine work on the blocking pool.
    pub async fn blocking<T: Send + 'static>(
        f: impl FnOnce() -> ApiResult<T> + Send + 'static,
    ) -> ApiResult<T> {
        tokio::task::spawn_blocking(f).await.map_err(|e| {
            ApiError::new(axum::http::StatusCode::INTERNAL_SERVER_ERROR, format!("internal error: {e}"))
        })?
    }
}
