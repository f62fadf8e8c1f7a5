//! `quarry bench objects`: one query node serving a collection from object storage through a
//! block cache much smaller than the collection, against the same collection on local disk, in
//! the same run.
//!
//! The base vectors are loaded through a writer node into a store (a local folder; the bytes are
//! then read back through `Delayed`, which adds a fixed latency to every request, as object
//! storage answers in tens of milliseconds). Then, with `--threads` concurrent searchers:
//! `local` (the writer's own folder opened as an ordinary database), and for each latency a
//! read-only node with an empty cache of `--cache-fraction` of the collection's stored bytes:
//! its open, a `cold` pass (empty cache), and `--warm-passes` more passes (`warm`: the last).
//! Every row has QPS, p50/p99, recall@10 against the ground truth, and for the nodes the
//! requests and bytes fetched per query and the block hit rate. `qps_vs_local` is the ratio to
//! the local row of the same run. `--zipf S` replaces "every query once per pass" by draws with
//! Zipf popularity, as real query logs repeat their head queries.

use crate::load;
use anyhow::{bail, Context, Result};
use quarry_core::Metric;
use quarry_engine::{CollectionSchema, Database, Point, PointId, RangeCache, SearchOptions};
use quarry_store::cache::Delayed;
use quarry_store::objects::{LocalObjects, Objects};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Arguments of `quarry bench objects`.
#[derive(clap::Args)]
pub struct ObjectsArgs {
    /// Base vectors (.npy f16/f32, .fvecs).
    #[arg(long)]
    base: PathBuf,
    /// Query vectors.
    #[arg(long)]
    query: PathBuf,
    /// Ground truth of the queries (.ivecs / .npy ids), for recall@10.
    #[arg(long)]
    gt: PathBuf,
    /// Queries (the first ones).
    #[arg(long, default_value_t = 2000)]
    queries: usize,
    /// Index spec of the sealed segment (a SPANN family reads its lists and rows by range).
    #[arg(long, default_value = "spann")]
    index: String,
    /// Graph beam / most posting lists read per query.
    #[arg(long, default_value_t = 64)]
    ef: usize,
    /// Work folder: `store/` (the object store), `writer/`, `node-*/` (caches). Reused when it
    /// already holds the store (`--reuse`).
    #[arg(long)]
    dir: PathBuf,
    /// Reuse the store an earlier run built in `--dir`.
    #[arg(long)]
    reuse: bool,
    /// Cache size as a fraction of the collection's bytes in the store.
    #[arg(long, default_value_t = 0.1)]
    cache_fraction: f64,
    /// Cache block size in bytes.
    #[arg(long, default_value_t = 16384)]
    block: u64,
    /// Most requests in flight for one read.
    #[arg(long, default_value_t = 32)]
    in_flight: usize,
    /// Latencies injected per request, in ms (comma-separated; one node each).
    #[arg(long, default_value = "0,20")]
    latency_ms: String,
    /// Concurrent searchers (threads; each runs one query at a time).
    #[arg(long, default_value_t = 32)]
    threads: usize,
    /// Passes after the cold one; the last is the warm row.
    #[arg(long, default_value_t = 2)]
    warm_passes: usize,
    /// Skewed workload: each pass draws `--draws` queries from the query set with Zipf exponent
    /// S (query popularity ∝ 1/rank^S, ranks in a fixed shuffled order), as query logs are; 0
    /// (default): every query once per pass, in order.
    #[arg(long, default_value_t = 0.0)]
    zipf: f64,
    /// Times each pass runs through the query set without `--zipf` (longer passes: steadier rates).
    #[arg(long, default_value_t = 1)]
    cycles: usize,
    /// Queries per pass with `--zipf`.
    #[arg(long, default_value_t = 5000)]
    draws: usize,
}

/// The query indices of one pass: every query `cycles` times (in order, cycle after cycle), or
/// `draws` Zipf draws (fixed seed).
fn workload(queries: usize, zipf: f64, draws: usize, cycles: usize, seed: u64) -> Vec<usize> {
    if zipf <= 0.0 {
        return (0..queries * cycles.max(1)).map(|i| i % queries.max(1)).collect();
    }
    let mut next = workload_rng(seed);
    // A fixed shuffle: popularity rank → query.
    let mut order: Vec<usize> = (0..queries).collect();
    let mut shuffle = workload_rng(7);
    for i in (1..order.len()).rev() {
        order.swap(i, (shuffle() * (i + 1) as f64) as usize % (i + 1));
    }
    let weights: Vec<f64> = (1..=queries).map(|r| 1.0 / (r as f64).powf(zipf)).collect();
    let total: f64 = weights.iter().sum();
    let mut cdf = Vec::with_capacity(queries);
    let mut acc = 0.0;
    for w in &weights {
        acc += w / total;
        cdf.push(acc);
    }
    (0..draws)
        .map(|_| {
            let u = next();
            order[cdf.partition_point(|&c| c < u).min(queries - 1)]
        })
        .collect()
}

/// xorshift64* uniform numbers in [0, 1).
fn workload_rng(seed: u64) -> impl FnMut() -> f64 {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    move || {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        (state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Sum of the sizes of every object under `prefix`.
fn stored_bytes(objects: &dyn Objects, prefix: &str) -> Result<u64> {
    let mut total = 0;
    for k in objects.list(prefix)? {
        total += objects.size(&k)?.unwrap_or(0);
    }
    Ok(total)
}

thread_local! {
    /// Time this thread spent in requests to the store (waits included), in nanoseconds.
    static STORE_NANOS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// A store that adds the time each request takes to the calling thread's [`STORE_NANOS`]: with
/// the thread's CPU time, it splits a query's latency into store, CPU and waiting for a core.
#[derive(Debug)]
struct Timed(Arc<dyn Objects>);

impl Timed {
    fn time<T>(f: impl FnOnce() -> T) -> T {
        let t = Instant::now();
        let r = f();
        STORE_NANOS.with(|n| n.set(n.get() + t.elapsed().as_nanos() as u64));
        r
    }
}

impl Objects for Timed {
    fn get(&self, key: &str) -> quarry_core::Result<Option<Vec<u8>>> {
        Self::time(|| self.0.get(key))
    }
    fn get_range(&self, key: &str, range: std::ops::Range<u64>) -> quarry_core::Result<Vec<u8>> {
        Self::time(|| self.0.get_range(key, range))
    }
    fn get_ranges(&self, key: &str, ranges: &[std::ops::Range<u64>]) -> quarry_core::Result<Vec<Vec<u8>>> {
        Self::time(|| self.0.get_ranges(key, ranges))
    }
    fn size(&self, key: &str) -> quarry_core::Result<Option<u64>> {
        Self::time(|| self.0.size(key))
    }
    fn put(&self, key: &str, bytes: &[u8]) -> quarry_core::Result<()> {
        self.0.put(key, bytes)
    }
    fn put_if_absent(&self, key: &str, bytes: &[u8]) -> quarry_core::Result<bool> {
        self.0.put_if_absent(key, bytes)
    }
    fn list(&self, prefix: &str) -> quarry_core::Result<Vec<String>> {
        self.0.list(prefix)
    }
    fn delete(&self, key: &str) -> quarry_core::Result<()> {
        self.0.delete(key)
    }
    fn location(&self) -> String {
        self.0.location()
    }
}

/// CPU time of the calling thread, in nanoseconds (0 where it cannot be read).
fn thread_cpu_nanos() -> u64 {
    #[cfg(target_os = "linux")]
    {
        let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: clock_gettime writes one timespec into the valid pointer it is given.
        if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) } == 0 {
            return ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64;
        }
    }
    0
}

/// Mean milliseconds per query of a pass: in store requests, on a core, and the rest (waiting for
/// a core or a lock).
#[derive(Debug, Clone, Copy, Default)]
struct Split {
    store_ms: f64,
    cpu_ms: f64,
    other_ms: f64,
}

/// One pass of every query over `threads` searchers: (QPS, sorted latencies in ms, recall@10).
///
/// QPS is the steady rate: queries finished by the moment the first searcher finds no query
/// left, over that time. The drain that follows (the last queries finishing with fewer and fewer
/// searchers busy) is left out: it lasts about one query's latency whatever the pass length, so
/// it would understate a slow setup's rate most on short passes.
fn pass(
    col: &quarry_engine::Collection,
    queries: &quarry_core::Matrix,
    gt: &quarry_eval::io::IdRows,
    order: &[usize],
    ef: usize,
    threads: usize,
) -> Result<(f64, Vec<f64>, f64, Split)> {
    let next = AtomicUsize::new(0);
    let exhausted = std::sync::OnceLock::new();
    let opts = SearchOptions { ef, with_payload: false, ..SearchOptions::default() };
    let t = Instant::now();
    type Row = (f64, f64, usize, f64, f64);
    let results: Vec<Result<Vec<Row>>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads.max(1))
            .map(|_| {
                s.spawn(|| -> Result<Vec<Row>> {
                    let mut out = Vec::new();
                    loop {
                        let Some(&i) = order.get(next.fetch_add(1, Ordering::Relaxed)) else {
                            exhausted.get_or_init(|| t.elapsed().as_secs_f64());
                            return Ok(out);
                        };
                        STORE_NANOS.with(|n| n.set(0));
                        let cpu0 = thread_cpu_nanos();
                        let t0 = Instant::now();
                        let hits = col.search_with(queries.row(i), None, 10, None, &opts)?;
                        let ms = t0.elapsed().as_secs_f64() * 1e3;
                        let cpu_ms = thread_cpu_nanos().saturating_sub(cpu0) as f64 / 1e6;
                        let store_ms = STORE_NANOS.with(std::cell::Cell::get) as f64 / 1e6;
                        let want = &gt.row(i)[..10];
                        let found = hits
                            .iter()
                            .filter(|h| matches!(h.id, PointId::Num(id) if want.contains(&(id as u32))))
                            .count();
                        out.push((ms, t.elapsed().as_secs_f64(), found, store_ms, cpu_ms));
                    }
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|_| bail!("a searcher panicked"))).collect()
    });
    let secs = t.elapsed().as_secs_f64();
    let until = exhausted.get().copied().unwrap_or(secs);
    let (mut lat, mut found, mut steady) = (Vec::with_capacity(order.len()), 0usize, 0usize);
    let mut split = Split::default();
    for r in results {
        for (ms, end, f, store_ms, cpu_ms) in r? {
            lat.push(ms);
            found += f;
            steady += usize::from(end <= until);
            split.store_ms += store_ms;
            split.cpu_ms += cpu_ms;
            split.other_ms += (ms - store_ms - cpu_ms).max(0.0);
        }
    }
    let nq = lat.len().max(1) as f64;
    split = Split { store_ms: split.store_ms / nq, cpu_ms: split.cpu_ms / nq, other_ms: split.other_ms / nq };
    lat.sort_by(f64::total_cmp);
    let qps = if steady > 0 && until > 0.0 { steady as f64 / until } else { order.len() as f64 / secs };
    Ok((qps, lat, found as f64 / (10 * order.len().max(1)) as f64, split))
}

/// Builds the collection `bench` through a writer node into `store`.
fn build(dir: &Path, store: Arc<dyn Objects>, base: &quarry_core::Matrix, index: &str) -> Result<()> {
    let writer_dir = dir.join("writer");
    let _ = std::fs::remove_dir_all(&writer_dir);
    let db = Database::open_replicated(&writer_dir, store)?;
    let mut schema = CollectionSchema::single(base.dim(), Metric::Cosine, index);
    schema.seal_threshold = 0;
    let col = db.create_collection("bench", schema)?;
    let bar = crate::progress::bar(base.rows() as u64, "loading", false);
    for start in (0..base.rows()).step_by(2000) {
        let batch: Vec<Point> = (start..(start + 2000).min(base.rows()))
            .map(|i| Point {
                id: PointId::Num(i as u64),
                vectors: vec![base.row(i).to_vec()],
                payload: serde_json::Map::new(),
            })
            .collect();
        bar.inc(batch.len() as u64);
        col.upsert(batch)?;
    }
    bar.finish_and_clear();
    let t = Instant::now();
    col.optimize()?;
    eprintln!("built {index} over {} points in {:.1} s", base.rows(), t.elapsed().as_secs_f64());
    Ok(())
}

/// Runs `quarry bench objects`.
pub fn run(a: ObjectsArgs) -> Result<()> {
    quarry_engine::IndexSpec::from_str(&a.index).with_context(|| format!("--index {:?}", a.index))?;
    if !(a.cache_fraction > 0.0 && a.cache_fraction <= 1.0) {
        bail!("--cache-fraction must be in (0, 1]");
    }
    let latencies: Vec<u64> = a
        .latency_ms
        .split(',')
        .map(|v| v.trim().parse::<u64>().with_context(|| format!("--latency-ms {v:?}: not a number")))
        .collect::<Result<_>>()?;
    let queries = load::queries(&a.query, Some(a.queries))?;
    let gt = quarry_eval::io::read_id_rows(&a.gt).with_context(|| format!("loading {}", a.gt.display()))?;
    anyhow::ensure!(gt.rows() >= queries.rows() && gt.cols >= 10, "ground truth too small for the queries");
    std::fs::create_dir_all(&a.dir)?;
    let store: Arc<dyn Objects> = Arc::new(LocalObjects::open(&a.dir.join("store"))?);
    if !a.reuse || store.list("collections/bench/manifest/")?.is_empty() {
        let _ = std::fs::remove_dir_all(a.dir.join("store"));
        let store: Arc<dyn Objects> = Arc::new(LocalObjects::open(&a.dir.join("store"))?);
        build(&a.dir, store, &load::base(&a.base)?, &a.index)?;
    }
    // The collection's bytes: its newest version's files (log batches the version covers are
    // collected at the next seal, so they are counted apart).
    let log_bytes = stored_bytes(store.as_ref(), "collections/bench/wal/")?;
    let bytes = stored_bytes(store.as_ref(), "collections/bench/")? - log_bytes;
    let range_bytes = {
        let mut t = 0;
        for k in store.list("collections/bench/segments/")? {
            if k.ends_with(quarry_ann::spann::POSTINGS_FILE) || k.ends_with(quarry_ann::spann::VECTORS_FILE) {
                t += store.size(&k)?.unwrap_or(0);
            }
        }
        t
    };
    let cache_bytes = (bytes as f64 * a.cache_fraction) as u64;
    let system = format!("quarry {}", env!("CARGO_PKG_VERSION"));
    let common = json!({"system": system, "index": a.index, "ef": a.ef, "threads": a.threads,
        "queries": queries.rows(), "collection_bytes": bytes, "range_read_bytes": range_bytes,
        "cache_bytes": cache_bytes, "block": a.block, "in_flight": a.in_flight, "log_bytes": log_bytes,
        "zipf": a.zipf, "draws": if a.zipf > 0.0 { a.draws } else { queries.rows() * a.cycles.max(1) }});
    let row = |extra: serde_json::Value| {
        let mut r = common.clone();
        if let (Some(r), Some(e)) = (r.as_object_mut(), extra.as_object()) {
            r.extend(e.clone());
        }
        println!("{r}");
    };
    eprintln!(
        "collection: {:.1} MB in the store ({:.1} MB read by range); node cache {:.1} MB",
        bytes as f64 / 1e6,
        range_bytes as f64 / 1e6,
        cache_bytes as f64 / 1e6
    );

    // Local disk: the writer's folder opened as an ordinary database (page cache warm after a
    // first pass, as a local server's would be), measured before the nodes and again after
    // them. Each node row's ratio is to the faster of the two, so a machine busier during the
    // first local passes cannot flatter the nodes.
    let local = |when: &str| -> Result<f64> {
        let db = Database::open(&a.dir.join("writer"))?;
        let col = db.collection("bench")?;
        pass(&col, &queries, &gt, &workload(queries.rows(), a.zipf, a.draws, a.cycles, 1), a.ef, a.threads)?;
        let (qps, lat, recall, _) = pass(
            &col,
            &queries,
            &gt,
            &workload(queries.rows(), a.zipf, a.draws, a.cycles, 1),
            a.ef,
            a.threads,
        )?;
        row(
            json!({"setup": "local", "phase": when, "qps": qps, "p50_ms": super::engine::percentile(&lat, 0.5), "p99_ms": super::engine::percentile(&lat, 0.99),
                   "recall": recall}),
        );
        eprintln!(
            "local disk {when:<7}  {qps:8.0} q/s  p99 {:7.2} ms  recall {recall:.4}",
            super::engine::percentile(&lat, 0.99)
        );
        Ok(qps)
    };
    let local_before = local("before")?;
    // Node rows wait for the second local measurement (their ratio needs it).
    let mut node_rows: Vec<serde_json::Value> = Vec::new();
    let mut summary: Vec<(String, f64)> = Vec::new();

    for &ms in &latencies {
        let remote: Arc<dyn Objects> =
            Arc::new(Timed(Arc::new(Delayed { inner: store.clone(), latency: Duration::from_millis(ms) })));
        let node_dir = a.dir.join(format!("node-{ms}ms"));
        let _ = std::fs::remove_dir_all(&node_dir);
        let t = Instant::now();
        let cache = RangeCache { bytes: cache_bytes, block: a.block, in_flight: a.in_flight };
        let db = Database::open_mirror_with(remote, &node_dir, cache)?;
        let open_secs = t.elapsed().as_secs_f64();
        let col = db.collection("bench")?;
        let blocks = db.range_cache().context("a read-only node has a block cache")?.clone();
        let local_files: u64 = crate::commands::db::folder_bytes(&node_dir.join("collections"));
        let counters = || {
            let s = &blocks.stats;
            [&s.requests, &s.bytes_fetched, &s.hits, &s.misses, &s.round_trips]
                .map(|c| c.load(Ordering::Relaxed))
        };
        let open_counts = counters();
        node_rows.push(json!({"setup": "node", "phase": "open", "latency_ms": ms, "open_seconds": open_secs,
                   "local_file_bytes": local_files}));
        for p in 0..=a.warm_passes {
            let before = counters();
            // The cold pass runs the query set once: a second cycle would not meet an empty cache.
            let cycles = if p == 0 { 1 } else { a.cycles };
            let order = workload(queries.rows(), a.zipf, a.draws, cycles, 2 + p as u64);
            let (qps, lat, recall, split) = pass(&col, &queries, &gt, &order, a.ef, a.threads)?;
            let after = counters();
            let d: Vec<f64> = (0..5).map(|i| (after[i] - before[i]) as f64).collect();
            let nq = order.len() as f64;
            let phase = if p == 0 {
                "cold"
            } else if p == a.warm_passes {
                "warm"
            } else {
                "warming"
            };
            node_rows.push(json!({"setup": "node", "phase": phase, "pass": p, "latency_ms": ms, "qps": qps,
                       "p50_ms": super::engine::percentile(&lat, 0.5), "p99_ms": super::engine::percentile(&lat, 0.99), "recall": recall,
                       "requests_per_query": d[0] / nq, "round_trips_per_query": d[4] / nq,
                       "store_ms_per_query": split.store_ms, "cpu_ms_per_query": split.cpu_ms, "waiting_ms_per_query": split.other_ms,
                       "bytes_per_query": d[1] / nq, "block_hit_rate": d[2] / (d[2] + d[3]).max(1.0),
                       "cache_used_bytes": blocks.used(), "open_requests": open_counts[0]}));
            summary.push((format!("node {ms:>3} ms {phase:<7}"), qps));
            eprintln!(
                "node {ms:>3} ms {phase:<7} {qps:8.0} q/s  p99 {:7.2} ms  recall {recall:.4}  {:.2}x local before  {:.1} req/q  {:.2} trips/q  {:.0} KB/q  hit {:.2}  ms/q: store {:.1} cpu {:.2} waiting {:.1}",
                super::engine::percentile(&lat, 0.99),
                qps / local_before,
                d[0] / nq,
                d[4] / nq,
                d[1] / nq / 1e3,
                d[2] / (d[2] + d[3]).max(1.0),
                split.store_ms,
                split.cpu_ms,
                split.other_ms
            );
        }
    }
    let local_after = local("after")?;
    let reference = local_before.max(local_after);
    for mut r in node_rows {
        if let Some(o) = r.as_object_mut() {
            if let Some(qps) = o.get("qps").and_then(serde_json::Value::as_f64) {
                o.insert("qps_vs_local".into(), json!(qps / reference));
            }
            o.insert("local_qps".into(), json!(reference));
        }
        row(r);
    }
    eprintln!("ratios to the faster local measurement ({reference:.0} q/s):");
    for (label, qps) in summary {
        eprintln!("{label} {:.2}x local", qps / reference);
    }
    Ok(())
}
