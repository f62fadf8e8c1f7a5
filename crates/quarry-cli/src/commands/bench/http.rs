//! `quarry bench http`: `quarry serve` under load on loopback, driven by this process with
//! keep-alive HTTP/1.1 connections (hyper). It starts the server on a database folder, uploads the
//! base vectors through the REST API (durable batches), builds the index (`optimize`), then:
//!
//! - **search sweep**: for each concurrency (default 1, 8, 32) it runs searches for a fixed time
//!   and reports QPS, p50/p99/p99.9 latency, errors and recall@k against the ground truth (so the
//!   answers are checked, not only timed); the same queries in process through the library give the
//!   HTTP overhead as a ratio;
//! - **mixed load** (`--mixed-seconds`): 90% searches, 10% upserts of new points (`wait=true`),
//!   with the server killed with SIGKILL at `--kill-at` of the run and restarted on the same
//!   folder; afterwards every acknowledged upsert is looked up. Requests refused while the server
//!   is down count as `unavailable` (and are retried), any other failure as an error.
//!
//! Rows are JSON lines (stdout and `--out`). Load generator and server share the machine.

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Arguments of `quarry bench http`.
#[derive(clap::Args)]
pub struct HttpArgs {
    /// Base vectors (.npy f16/f32, .fvecs).
    #[arg(long)]
    base: PathBuf,
    /// Query vectors.
    #[arg(long)]
    query: PathBuf,
    /// Ground-truth ids (.ivecs / .npy) for recall of the answers.
    #[arg(long)]
    gt: Option<PathBuf>,
    /// Points to upload (default: all).
    #[arg(long)]
    n: Option<usize>,
    /// Queries used (cycled).
    #[arg(long, default_value_t = 1000)]
    queries: usize,
    /// Hits per search.
    #[arg(long, default_value_t = 10)]
    k: usize,
    /// Graph beam of searches.
    #[arg(long, default_value_t = 64)]
    ef: usize,
    /// Concurrency levels of the search sweep (comma-separated; empty: no sweep).
    #[arg(long, default_value = "1,8,32")]
    concurrency: String,
    /// Seconds per concurrency level.
    #[arg(long, default_value_t = 20.0)]
    seconds: f64,
    /// Seconds of the mixed 90/10 search/upsert load (0: skip).
    #[arg(long, default_value_t = 0.0)]
    mixed_seconds: f64,
    /// Concurrency of the mixed load.
    #[arg(long, default_value_t = 8)]
    mixed_concurrency: usize,
    /// Fraction of the mixed run at which the server is killed with SIGKILL and restarted
    /// (negative: never).
    #[arg(long, default_value_t = 0.5)]
    kill_at: f64,
    /// Database folder (default: a fresh temporary folder, removed afterwards).
    #[arg(long)]
    data: Option<PathBuf>,
    /// An already running server or load balancer to measure instead of starting one (no
    /// in-process pass and no mixed run; the collection is `bench`).
    #[arg(long)]
    url: Option<String>,
    /// With --url: the collection is already there; skip the upload.
    #[arg(long, requires = "url")]
    skip_load: bool,
    /// Append result rows to this JSONL file.
    #[arg(long)]
    out: Option<PathBuf>,
}

type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

/// The server process under test.
struct Server {
    child: Child,
    port: u16,
    data: PathBuf,
}

impl Server {
    fn start(data: &Path, port: u16) -> Result<Server> {
        let exe = std::env::current_exe().context("locating the quarry binary")?;
        let mut child = Command::new(exe)
            .args(["serve", "--data"])
            .arg(data)
            .args(["--port", &port.to_string(), "--max-body-mb", "256", "--timeout", "3600"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("starting quarry serve")?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?).read_line(&mut line)?;
        if !line.contains("listening") {
            bail!("quarry serve did not start: {line:?}");
        }
        Ok(Server { child, port, data: data.to_path_buf() })
    }

    fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn restart(&mut self) -> Result<()> {
        *self = Server::start(&self.data.clone(), self.port)?;
        Ok(())
    }

    fn stop(&mut self) {
        #[cfg(unix)]
        {
            // SAFETY: sending SIGTERM to our own child process.
            unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        }
        let _ = self.child.wait();
    }
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

async fn post(client: &HttpClient, url: &str, method: &str, body: Bytes) -> Result<(u16, Bytes)> {
    let req = hyper::Request::builder()
        .method(method)
        .uri(url)
        .header("content-type", "application/json")
        .body(Full::new(body))?;
    let resp = client.request(req).await?;
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await?.to_bytes();
    Ok((status, bytes))
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

fn emit(out: &Option<PathBuf>, row: &Value) -> Result<()> {
    println!("{row}");
    if let Some(p) = out {
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(p)?;
        writeln!(f, "{row}")?;
    }
    Ok(())
}

fn search_body(q: &[f32], k: usize, ef: usize) -> Bytes {
    Bytes::from(json!({"vector": q, "limit": k, "params": {"hnsw_ef": ef}}).to_string())
}

fn ids_of(body: &[u8]) -> Vec<u64> {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v["result"].as_array().map(|a| a.iter().filter_map(|h| h["id"].as_u64()).collect()))
        .unwrap_or_default()
}

/// Runs `quarry bench http`.
pub fn run(a: HttpArgs) -> Result<()> {
    let base = crate::load::base(&a.base)?;
    let n = a.n.unwrap_or(base.rows()).min(base.rows());
    let queries = crate::load::queries(&a.query, Some(a.queries))?;
    let gt = match &a.gt {
        Some(p) => {
            Some(quarry_eval::io::read_id_rows(p).with_context(|| format!("reading {}", p.display()))?)
        }
        None => None,
    };
    let levels: Vec<usize> = a
        .concurrency
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.trim().parse::<usize>().map_err(|_| anyhow!("--concurrency: {s:?} is not a number")))
        .collect::<Result<_>>()?;
    let (data, temp) = match &a.data {
        Some(d) => (d.clone(), false),
        None => (std::env::temp_dir().join(format!("quarry-bench-http-{}", std::process::id())), true),
    };
    let (mut server, url) = match &a.url {
        Some(u) => (None, u.trim_end_matches('/').to_string()),
        None => {
            let _ = std::fs::remove_dir_all(&data);
            let port = free_port()?;
            (Some(Server::start(&data, port)?), format!("http://127.0.0.1:{port}"))
        }
    };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let client: HttpClient = Client::builder(TokioExecutor::new()).pool_max_idle_per_host(256).build_http();
    let dim = base.dim();
    let machine = json!({"cpus": std::thread::available_parallelism().map_or(0, |p| p.get()), "dataset": a.base.display().to_string(), "n": n, "dim": dim});

    // Upload and build.
    if !a.skip_load {
        let t = Instant::now();
        rt.block_on(async {
            let (s, b) = post(
                &client,
                &format!("{url}/collections/bench"),
                "PUT",
                Bytes::from(json!({"vectors": {"size": dim, "distance": "Cosine"}}).to_string()),
            )
            .await?;
            if s != 200 {
                bail!("create: {s} {}", String::from_utf8_lossy(&b));
            }
            let bar = crate::progress::bar(n as u64, "uploading", false);
            for start in (0..n).step_by(1000) {
                let pts: Vec<Value> =
                    (start..(start + 1000).min(n)).map(|i| json!({"id": i, "vector": base.row(i)})).collect();
                let (s, b) = post(
                    &client,
                    &format!("{url}/collections/bench/points?wait=true"),
                    "PUT",
                    Bytes::from(json!({"points": pts}).to_string()),
                )
                .await?;
                if s != 200 {
                    bail!("upsert: {s} {}", String::from_utf8_lossy(&b));
                }
                bar.inc(pts.len() as u64);
            }
            bar.finish_and_clear();
            Ok(())
        })?;
        let upload_s = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let (s, b) = rt.block_on(post(
            &client,
            &format!("{url}/quarry/collections/bench/optimize"),
            "POST",
            Bytes::from_static(b"{}"),
        ))?;
        if s != 200 {
            bail!("optimize: {s} {}", String::from_utf8_lossy(&b));
        }
        emit(
            &a.out,
            &json!({"op": "load", "points": n, "upload_s": upload_s, "points_per_s": n as f64 / upload_s, "index_s": t.elapsed().as_secs_f64(), "machine": machine}),
        )?;
    }

    // Search sweep.
    let bodies: Arc<Vec<Bytes>> =
        Arc::new((0..queries.rows()).map(|i| search_body(queries.row(i), a.k, a.ef)).collect());
    for &c in &levels {
        let row = rt.block_on(sweep(&client, &url, bodies.clone(), gt.as_ref(), a.k, c, a.seconds))?;
        emit(&a.out, &row)?;
    }
    let Some(mut server) = server.take() else { return Ok(()) };
    server.stop();

    // The same searches in process, for the HTTP overhead.
    {
        let db = quarry_engine::Database::open(&data)?;
        let col = db.collection("bench")?;
        let opts = quarry_engine::SearchOptions {
            ef: a.ef,
            with_payload: false,
            ..quarry_engine::SearchOptions::default()
        };
        let t = Instant::now();
        let mut done = 0usize;
        while t.elapsed().as_secs_f64() < a.seconds.min(10.0) {
            let q = queries.row(done % queries.rows());
            col.search_with(q, None, a.k, None, &opts)?;
            done += 1;
        }
        emit(
            &a.out,
            &json!({"op": "search_in_process", "threads": 1, "qps": done as f64 / t.elapsed().as_secs_f64()}),
        )?;
    }

    if a.mixed_seconds > 0.0 {
        server.restart()?;
        let server = Arc::new(Mutex::new(server));
        let row = rt.block_on(mixed(&client, &url, bodies.clone(), &base, n, &a, server.clone()))?;
        emit(&a.out, &row)?;
        server.lock().map_err(|_| anyhow!("lock"))?.stop();
    }
    if temp {
        let _ = std::fs::remove_dir_all(&data);
    }
    Ok(())
}

async fn sweep(
    client: &HttpClient,
    url: &str,
    bodies: Arc<Vec<Bytes>>,
    gt: Option<&quarry_eval::io::IdRows>,
    k: usize,
    c: usize,
    seconds: f64,
) -> Result<Value> {
    let search = format!("{url}/collections/bench/points/search");
    let next = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let warm = Instant::now() + Duration::from_secs_f64((seconds * 0.1).min(2.0));
    let mut tasks = Vec::new();
    for _ in 0..c {
        let (client, search, next, bodies) = (client.clone(), search.clone(), next.clone(), bodies.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let (mut errors, mut hits, mut total) = (0usize, 0usize, 0usize);
            let mut answers = Vec::new();
            while Instant::now() < deadline {
                let i = next.fetch_add(1, Ordering::Relaxed) % bodies.len();
                let t = Instant::now();
                match post(&client, &search, "POST", bodies[i].clone()).await {
                    Ok((200, b)) => {
                        if t >= warm {
                            lat.push(t.elapsed().as_secs_f64() * 1e3);
                            answers.push((i, ids_of(&b)));
                        }
                    }
                    _ => errors += 1,
                }
            }
            let _ = (&mut hits, &mut total);
            (lat, errors, answers)
        }));
    }
    let mut lat = Vec::new();
    let mut errors = 0;
    let (mut found, mut want) = (0usize, 0usize);
    for t in tasks {
        let (l, e, answers) = t.await?;
        lat.extend(l);
        errors += e;
        if let Some(gt) = gt {
            for (i, ids) in answers {
                let truth: Vec<u64> = gt.row(i).iter().take(k).map(|&x| u64::from(x)).collect();
                found += ids.iter().filter(|x| truth.contains(x)).count();
                want += truth.len();
            }
        }
    }
    let measured = seconds - (seconds * 0.1).min(2.0);
    lat.sort_by(f64::total_cmp);
    Ok(json!({
        "op": "search", "concurrency": c, "requests": lat.len(), "qps": lat.len() as f64 / measured,
        "p50_ms": pct(&lat, 0.5), "p99_ms": pct(&lat, 0.99), "p999_ms": pct(&lat, 0.999), "errors": errors,
        "recall": if want > 0 { json!(found as f64 / want as f64) } else { Value::Null },
    }))
}

#[allow(clippy::too_many_lines)]
async fn mixed(
    client: &HttpClient,
    url: &str,
    bodies: Arc<Vec<Bytes>>,
    base: &quarry_core::Matrix,
    n: usize,
    a: &HttpArgs,
    server: Arc<Mutex<Server>>,
) -> Result<Value> {
    let search = format!("{url}/collections/bench/points/search");
    let upsert = format!("{url}/collections/bench/points?wait=true");
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(a.mixed_seconds);
    let down = Arc::new(AtomicBool::new(false));
    let next_id = Arc::new(AtomicU64::new(10_000_000));
    let acked = Arc::new(Mutex::new(Vec::<u64>::new()));
    let unavailable = Arc::new(AtomicUsize::new(0));
    let upsert_bodies: Arc<Vec<Vec<f32>>> =
        Arc::new((0..1000.min(n)).map(|i| base.row(i).to_vec()).collect());
    // The killer.
    let killer = {
        let (server, down) = (server.clone(), down.clone());
        let kill_at = a.kill_at;
        let secs = a.mixed_seconds;
        tokio::spawn(async move {
            if kill_at < 0.0 {
                return Ok::<(f64, f64), anyhow::Error>((f64::NAN, 0.0));
            }
            tokio::time::sleep(Duration::from_secs_f64(secs * kill_at)).await;
            let at = start.elapsed().as_secs_f64();
            down.store(true, Ordering::SeqCst);
            let t = Instant::now();
            let s = server.clone();
            tokio::task::spawn_blocking(move || -> Result<()> {
                let mut s = s.lock().map_err(|_| anyhow!("lock"))?;
                s.kill9();
                s.restart()
            })
            .await??;
            down.store(false, Ordering::SeqCst);
            Ok((at, t.elapsed().as_secs_f64()))
        })
    };
    let mut tasks = Vec::new();
    for w in 0..a.mixed_concurrency {
        let (client, search, upsert, bodies, ub) =
            (client.clone(), search.clone(), upsert.clone(), bodies.clone(), upsert_bodies.clone());
        let (down, next_id, acked, unavailable) =
            (down.clone(), next_id.clone(), acked.clone(), unavailable.clone());
        tasks.push(tokio::spawn(async move {
            let (mut s_lat, mut u_lat, mut errors) = (Vec::new(), Vec::new(), Vec::<String>::new());
            let mut rng = 0x9E37_79B9_7F4A_7C15u64 ^ (w as u64 + 1);
            let mut i = w;
            while Instant::now() < deadline {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                let is_write = rng.is_multiple_of(10);
                let t = Instant::now();
                let (id, result) = if is_write {
                    let id = next_id.fetch_add(1, Ordering::Relaxed);
                    let v = &ub[(id as usize) % ub.len()];
                    let body = Bytes::from(
                        json!({"points": [{"id": id, "vector": v, "payload": {"mixed": true}}]}).to_string(),
                    );
                    (Some(id), post(&client, &upsert, "PUT", body).await)
                } else {
                    i += 1;
                    (None, post(&client, &search, "POST", bodies[i % bodies.len()].clone()).await)
                };
                match result {
                    Ok((200, _)) => {
                        let ms = t.elapsed().as_secs_f64() * 1e3;
                        match id {
                            Some(id) => {
                                u_lat.push(ms);
                                acked.lock().map_err(|_| anyhow!("lock"))?.push(id);
                            }
                            None => s_lat.push(ms),
                        }
                    }
                    Ok((s, b)) => errors.push(format!("{s}: {}", String::from_utf8_lossy(&b))),
                    Err(e) => {
                        if down.load(Ordering::SeqCst) {
                            unavailable.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        } else {
                            // A connection closed by the kill can surface just after the restart.
                            unavailable.fetch_add(1, Ordering::Relaxed);
                            errors.push(format!("transport: {e}"));
                        }
                    }
                }
            }
            Ok::<_, anyhow::Error>((s_lat, u_lat, errors))
        }));
    }
    let (mut s_lat, mut u_lat, mut errors) = (Vec::new(), Vec::new(), Vec::new());
    for t in tasks {
        let (s, u, e) = t.await??;
        s_lat.extend(s);
        u_lat.extend(u);
        errors.extend(e);
    }
    let (kill_at, downtime) = killer.await??;
    // Transport errors right after the restart come from connections the kill broke (the pool
    // reuses them once): they are unavailability, not wrong answers.
    let transport = errors.iter().filter(|e| e.starts_with("transport")).count();
    let errors: Vec<String> = errors.into_iter().filter(|e| !e.starts_with("transport")).collect();
    // Every acknowledged write must be there.
    let acked = acked.lock().map_err(|_| anyhow!("lock"))?.clone();
    let mut present = 0usize;
    for chunk in acked.chunks(1000) {
        let (s, b) = post(
            client,
            &format!("{url}/collections/bench/points"),
            "POST",
            Bytes::from(json!({"ids": chunk}).to_string()),
        )
        .await?;
        if s != 200 {
            bail!("retrieve after the run: {s}");
        }
        present += serde_json::from_slice::<Value>(&b)?["result"].as_array().map_or(0, Vec::len);
    }
    s_lat.sort_by(f64::total_cmp);
    u_lat.sort_by(f64::total_cmp);
    let secs = a.mixed_seconds;
    Ok(json!({
        "op": "mixed", "seconds": secs, "concurrency": a.mixed_concurrency,
        "searches": s_lat.len(), "search_qps": s_lat.len() as f64 / secs,
        "search_p50_ms": pct(&s_lat, 0.5), "search_p99_ms": pct(&s_lat, 0.99), "search_p999_ms": pct(&s_lat, 0.999),
        "upserts": u_lat.len(), "upsert_p50_ms": pct(&u_lat, 0.5), "upsert_p99_ms": pct(&u_lat, 0.99),
        "errors": errors.len(), "error_samples": errors.iter().take(5).collect::<Vec<_>>(),
        "unavailable": unavailable.load(Ordering::Relaxed), "broken_connections": transport,
        "kill_at_s": kill_at, "restart_s": downtime,
        "acked_writes": acked.len(), "lost_writes": acked.len() - present,
    }))
}
