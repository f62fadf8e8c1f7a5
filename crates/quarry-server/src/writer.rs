//! Per-collection write ordering. A `wait=false` write is acknowledged once queued and applied
//! later, in queue order, by the collection's writer task; a `wait=true` write runs at once (so
//! concurrent ones share the engine's group commit) unless writes are queued, in which case it
//! joins the queue and is answered when applied, so it never overtakes a write acknowledged
//! before it. Shutdown drains every queue before the database is closed.

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

type Job = Box<dyn FnOnce() + Send + 'static>;

/// A collection's write queue.
#[derive(Debug)]
pub struct Writer {
    pending: Arc<AtomicUsize>,
    tx: mpsc::UnboundedSender<Job>,
}

impl Writer {
    /// Starts the writer task of collection `name`.
    pub(crate) fn start(name: &str, state: AppState) -> Arc<Writer> {
        let (tx, mut rx) = mpsc::unbounded_channel::<Job>();
        let pending = Arc::new(AtomicUsize::new(0));
        let p = pending.clone();
        let name = name.to_string();
        tokio::spawn(async move {
            while let Some(job) = rx.recv().await {
                if let Err(e) = tokio::task::spawn_blocking(job).await {
                    tracing::error!(collection = %name, error = %e, "queued write panicked");
                    state.metrics().async_write_failed(&name);
                }
                p.fetch_sub(1, Ordering::SeqCst);
            }
        });
        Arc::new(Writer { pending, tx })
    }

    fn enqueue(&self, job: Job) -> ApiResult<()> {
        self.pending.fetch_add(1, Ordering::SeqCst);
        self.tx.send(job).map_err(|_| {
            self.pending.fetch_sub(1, Ordering::SeqCst);
            ApiError::new(axum::http::StatusCode::SERVICE_UNAVAILABLE, "the server is shutting down")
        })
    }

    /// Runs `op` in order with the queued writes: with `wait`, returns its result once applied;
    /// without, queues it and returns `None` at once (its failure is logged and counted).
    pub async fn write<T: Send + 'static>(
        &self,
        state: &AppState,
        collection: &str,
        wait: bool,
        op: impl FnOnce() -> ApiResult<T> + Send + 'static,
    ) -> ApiResult<Option<T>> {
        if !wait {
            let (state, name) = (state.clone(), collection.to_string());
            self.enqueue(Box::new(move || {
                if let Err(e) = op() {
                    tracing::error!(collection = %name, error = %e.message, "acknowledged wait=false write failed");
                    state.metrics().async_write_failed(&name);
                }
            }))?;
            return Ok(None);
        }
        if self.pending.load(Ordering::SeqCst) == 0 {
            return AppState::blocking(op).await.map(Some);
        }
        let (tx, rx) = oneshot::channel();
        self.enqueue(Box::new(move || {
            let _ = tx.send(op());
        }))?;
        rx.await
            .map_err(|_| {
                ApiError::new(axum::http::StatusCode::INTERNAL_SERVER_ERROR, "a queued write was lost")
            })?
            .map(Some)
    }

    /// Waits until the queue is empty (at most `grace`).
    pub async fn drain(&self, grace: Duration) {
        let deadline = tokio::time::Instant::now() + grace;
        while self.pending.load(Ordering::SeqCst) > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}
