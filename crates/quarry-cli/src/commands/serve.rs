//! `quarry serve`: the HTTP server over a database folder (see the `quarry-server` crate): a
//! Qdrant-compatible REST subset plus native endpoints, until Ctrl-C or SIGTERM, then a graceful
//! shutdown. Logs go to stderr (`RUST_LOG` filters them; `--log-json` for JSON lines).

use anyhow::{anyhow, Result};
use clap::Parser;
use std::path::PathBuf;
use std::time::Duration;

/// Arguments of `quarry serve`.
#[derive(Debug, Parser)]
pub struct Args {
    /// Database folder (created if missing), or object storage holding the collections:
    /// `s3://bucket/prefix` (with the `object-store` build feature; credentials, region and
    /// endpoint from the usual AWS_* variables) or `file:///path`. With object storage, this
    /// node writes through to it (one writer at a time, by lease) unless --read-only.
    #[arg(long)]
    data: String,
    /// With object storage: this node's local folder (the writer's working copy, or a read-only
    /// node's cache; safe to delete when the node is stopped).
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// With object storage: serve it read-only (writes refused), following new versions.
    #[arg(long)]
    read_only: bool,
    /// Read-only nodes: most bytes of the local block cache of byte ranges (SPANN posting lists
    /// and rows stay in object storage and are read through it), e.g. 512MiB, 2GiB, 10GB.
    #[arg(long, default_value = "2GiB", value_parser = parse_size)]
    cache_size: u64,
    /// Read-only nodes: the cache's block size (the unit fetched), e.g. 16KiB.
    #[arg(long, default_value = "16KiB", value_parser = parse_size)]
    cache_block: u64,
    /// Latency added to every object-storage request, in milliseconds (benchmarks: a local store
    /// made to answer like remote object storage).
    #[arg(long, default_value_t = 0, hide = true)]
    object_latency_ms: u64,
    /// Folder of benchmark and evaluation reports (`*.jsonl` rows, as `quarry bench … --json`
    /// and `scripts/bench_*.sh` write them) that the web console at /console charts.
    #[arg(long)]
    reports: Option<std::path::PathBuf>,
    /// Read-only nodes: how often to look for new versions, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    follow_ms: u64,
    /// Writer nodes: the lease's time to live in milliseconds (another writer may take over this
    /// long after this one stops renewing it).
    #[arg(long, default_value_t = 30_000)]
    lease_ms: u64,
    /// Address to bind; the default serves this machine only.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port (0 picks a free one; the address is printed).
    #[arg(long, default_value_t = 6333)]
    port: u16,
    /// Key granting every operation (or set QUARRY_API_KEY).
    #[arg(long, env = "QUARRY_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Key granting reads only (or set QUARRY_READ_ONLY_KEY).
    #[arg(long, env = "QUARRY_READ_ONLY_KEY", hide_env_values = true)]
    read_only_key: Option<String>,
    /// PEM certificate chain: serve HTTPS (with --tls-key).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Largest request body, MiB.
    #[arg(long, default_value_t = 32)]
    max_body_mb: usize,
    /// Most points, ids or searches in one request.
    #[arg(long, default_value_t = 10_000)]
    max_batch: usize,
    /// Largest limit + offset of one search or page.
    #[arg(long, default_value_t = 10_000)]
    max_limit: usize,
    /// Seconds a request may take before it is answered 503.
    #[arg(long, default_value_t = 30.0)]
    timeout: f64,
    /// Log JSON lines instead of text.
    #[arg(long)]
    log_json: bool,
}

fn init_logs(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,tower_http=warn"));
    // Colour codes only on a terminal (and never with NO_COLOR): log files and pipes stay plain.
    use std::io::IsTerminal;
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let b = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    let _ = if json { b.json().try_init() } else { b.try_init() };
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

/// Parses a byte size: a number with an optional unit (B, KB, MB, GB, TB; KiB, MiB, GiB, TiB).
fn parse_size(s: &str) -> std::result::Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().map_err(|_| format!("{s:?}: expected a size such as 512MiB or 2GB"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" | "k" => 1_000,
        "mb" | "m" => 1_000_000,
        "gb" | "g" => 1_000_000_000,
        "tb" | "t" => 1_000_000_000_000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "tib" => 1 << 40,
        u => return Err(format!("{s:?}: unknown unit {u:?} (use B, KB, MB, GB, KiB, MiB, GiB)")),
    };
    if !n.is_finite() || n < 0.0 {
        return Err(format!("{s:?}: not a size"));
    }
    Ok((n * mult as f64) as u64)
}

/// Runs `quarry serve`.
pub fn run(a: Args) -> Result<()> {
    init_logs(a.log_json);
    if !a.timeout.is_finite() || a.timeout <= 0.0 {
        return Err(anyhow!("--timeout must be a positive number of seconds"));
    }
    let mut cfg = if a.data.contains("://") {
        let dir = a
            .cache_dir
            .clone()
            .ok_or_else(|| anyhow!("--data {} needs --cache-dir (this node's local folder)", a.data))?;
        let mut c = quarry_server::ServerConfig::new(dir);
        c.objects = Some(a.data.clone());
        c
    } else {
        if a.read_only || a.cache_dir.is_some() {
            return Err(anyhow!(
                "--read-only and --cache-dir serve object storage: give --data s3://… or file://…"
            ));
        }
        quarry_server::ServerConfig::new(PathBuf::from(&a.data))
    };
    cfg.read_only = a.read_only;
    cfg.follow = Duration::from_millis(a.follow_ms.max(1));
    cfg.lease_ttl = Duration::from_millis(a.lease_ms);
    if a.cache_block == 0 {
        return Err(anyhow!("--cache-block must be at least 1 byte"));
    }
    cfg.range_cache =
        quarry_engine::RangeCache { bytes: a.cache_size, block: a.cache_block, ..Default::default() };
    cfg.object_latency = Duration::from_millis(a.object_latency_ms);
    cfg.reports = a.reports;
    cfg.host = a.host;
    cfg.port = a.port;
    cfg.api_key = a.api_key.filter(|k| !k.is_empty());
    cfg.read_only_key = a.read_only_key.filter(|k| !k.is_empty());
    cfg.tls = a.tls_cert.zip(a.tls_key);
    cfg.max_body_bytes = a.max_body_mb.saturating_mul(1 << 20);
    cfg.max_batch = a.max_batch;
    cfg.max_limit = a.max_limit;
    cfg.request_timeout = Duration::from_secs_f64(a.timeout);
    let scheme = if cfg.tls.is_some() { "https" } else { "http" };
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(quarry_server::serve(cfg, shutdown_signal(), |addr| {
        // One line, ending with the address (scripts and tests read it, then may close the pipe).
        println!("quarry serve: web console at /console/; listening on {scheme}://{addr}");
        use std::io::Write;
        let _ = std::io::stdout().flush();
    }))
    .map_err(|e| anyhow!(e))
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes_parse_with_units() {
        use super::parse_size;
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_size("512 MiB"), Ok(512 << 20));
        assert_eq!(parse_size("10GB"), Ok(10_000_000_000));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("1.5KiB"), Ok(1536));
        assert!(parse_size("lots").is_err() && parse_size("3 parsecs").is_err());
    }
}
