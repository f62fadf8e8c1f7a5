//! Server settings: address, keys, TLS files and the limits every request is held to.

use std::path::PathBuf;
use std::time::Duration;

/// Settings of one server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Database folder.
    pub data: PathBuf,
    /// Address to bind (default `127.0.0.1`: loopback only).
    pub host: String,
    /// Port (default 6333, Qdrant's; 0 picks a free one).
    pub port: u16,
    /// Key granting every operation (`api-key` header or `Authorization: Bearer`).
    pub api_key: Option<String>,
    /// Key granting reads only.
    pub read_only_key: Option<String>,
    /// PEM certificate chain and private key: serve HTTPS.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Largest request body in bytes (default 32 MiB, Qdrant's).
    pub max_body_bytes: usize,
    /// Most points, ids or searches in one request (default 10,000).
    pub max_batch: usize,
    /// Largest `limit + offset` of a search, scroll or query (default 10,000).
    pub max_limit: usize,
    /// Time a request may take before it is answered 503 (default 30 s).
    pub request_timeout: Duration,
    /// Time a graceful shutdown waits for in-flight requests and queued writes (default 30 s).
    pub shutdown_grace: Duration,
    /// Object storage holding the collections (`s3://bucket/prefix`, `file:///path`); `data` is
    /// then this node's local folder: the writer's working copy, or a read-only node's cache.
    pub objects: Option<String>,
    /// Serve `objects` read-only: no writer lease, writes refused, new versions followed.
    pub read_only: bool,
    /// How often a read-only node looks for new versions in `objects`.
    pub follow: Duration,
    /// The writer lease's time to live (renewed every third of it).
    pub lease_ttl: Duration,
    /// A read-only node's block cache of byte ranges (SPANN posting lists and rows).
    pub range_cache: quarry_engine::RangeCache,
    /// Latency added to every object-storage request (benchmarks: what real object storage
    /// costs, with a local store).
    pub object_latency: Duration,
    /// Folder of benchmark and evaluation reports (`*.jsonl`, one JSON row per line) the console
    /// charts (`GET /quarry/reports`); none: no reports.
    pub reports: Option<PathBuf>,
}

impl ServerConfig {
    /// Defaults for a database in `data`.
    pub fn new(data: impl Into<PathBuf>) -> ServerConfig {
        ServerConfig {
            data: data.into(),
            host: "127.0.0.1".into(),
            port: 6333,
            api_key: None,
            read_only_key: None,
            tls: None,
            max_body_bytes: 32 << 20,
            max_batch: 10_000,
            max_limit: 10_000,
            request_timeout: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(30),
            objects: None,
            read_only: false,
            follow: Duration::from_secs(1),
            lease_ttl: Duration::from_secs(30),
            range_cache: quarry_engine::RangeCache::default(),
            object_latency: Duration::ZERO,
            reports: None,
        }
    }

    /// Checks the settings; errors name the problem.
    pub fn check(&self) -> Result<(), String> {
        if self.read_only_key.is_some() && self.api_key.is_none() {
            return Err("a read-only key needs a full --api-key too (else nobody could write)".into());
        }
        for (name, k) in [("--api-key", &self.api_key), ("--read-only-key", &self.read_only_key)] {
            if k.as_deref().is_some_and(|k| k.len() < 8 || k.chars().any(|c| c.is_control() || c == ' ')) {
                return Err(format!("{name}: use at least 8 characters without spaces"));
            }
        }
        if self.api_key.is_some() && self.api_key == self.read_only_key {
            return Err("the read-only key must differ from the full key".into());
        }
        if self.read_only && self.objects.is_none() {
            return Err("--read-only serves object storage: give --data s3://… (or file://…)".into());
        }
        if self.follow.is_zero() || self.lease_ttl < Duration::from_millis(300) {
            return Err("the follow interval must be positive and the lease at least 300 ms".into());
        }
        if self.max_body_bytes < 1024 || self.max_batch == 0 || self.max_limit == 0 {
            return Err("limits must be positive (body at least 1 KiB)".into());
        }
        Ok(())
    }
}
