//! Prometheus metrics of one server (a recorder of its own, not the process-global one): request
//! counts by route, method and status, request latency histograms by route and method, and at
//! each scrape the number of points, segments and collections.

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use metrics::{Key, Label, Metadata, Recorder};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusRecorder};
use std::time::Instant;

static META: Metadata<'static> = Metadata::new("quarry_server", metrics::Level::INFO, Some("quarry_server"));

/// Latency buckets (seconds).
const BUCKETS: &[f64] =
    &[0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

/// A server's metrics.
pub struct Metrics {
    rec: PrometheusRecorder,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// A fresh registry.
    pub fn new() -> Metrics {
        let builder = PrometheusBuilder::new();
        let builder = match builder.set_buckets(BUCKETS) {
            Ok(b) => b,
            Err(_) => PrometheusBuilder::new(),
        };
        let rec = builder.build_recorder();
        rec.describe_counter(
            "quarry_http_requests_total".into(),
            None,
            "HTTP requests answered, by route, method and status".into(),
        );
        rec.describe_histogram(
            "quarry_http_request_duration_seconds".into(),
            Some(metrics::Unit::Seconds),
            "HTTP request latency, by route and method".into(),
        );
        rec.describe_gauge("quarry_collection_points".into(), None, "Points stored, by collection".into());
        rec.describe_gauge(
            "quarry_collection_segments".into(),
            None,
            "Sealed index segments, by collection".into(),
        );
        rec.describe_gauge("quarry_collections".into(), None, "Collections in the database".into());
        rec.describe_counter(
            "quarry_async_write_failures_total".into(),
            None,
            "wait=false writes that failed after they were acknowledged".into(),
        );
        Metrics { rec }
    }

    /// Counts one answered request and its latency.
    pub fn request(&self, route: &str, method: &str, status: u16, seconds: f64) {
        let labels = vec![Label::new("route", route.to_string()), Label::new("method", method.to_string())];
        self.rec
            .register_histogram(
                &Key::from_parts("quarry_http_request_duration_seconds", labels.clone()),
                &META,
            )
            .record(seconds);
        let mut labels = labels;
        labels.push(Label::new("status", status.to_string()));
        self.rec.register_counter(&Key::from_parts("quarry_http_requests_total", labels), &META).increment(1);
    }

    /// Counts a failed `wait=false` write.
    pub fn async_write_failed(&self, collection: &str) {
        let key = Key::from_parts(
            "quarry_async_write_failures_total",
            vec![Label::new("collection", collection.to_string())],
        );
        self.rec.register_counter(&key, &META).increment(1);
    }

    /// Sets a gauge.
    pub fn gauge(&self, name: &'static str, labels: Vec<(&'static str, String)>, value: f64) {
        let labels = labels.into_iter().map(|(k, v)| Label::new(k, v)).collect::<Vec<_>>();
        self.rec.register_gauge(&Key::from_parts(name, labels), &META).set(value);
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        self.rec.handle().render()
    }
}

/// The middleware recording every routed request.
pub async fn track(State(state): State<crate::AppState>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |m| m.as_str().to_string());
    let method = req.method().to_string();
    let resp = next.run(req).await;
    state.metrics().request(&route, &method, resp.status().as_u16(), start.elapsed().as_secs_f64());
    resp
}
