//! `quarry bench engine`: the embedded database measured the way `scripts/peer_engine.py`
//! measures qdrant-edge, so both print comparable JSON rows. Point i of the base file gets the
//! payload `{"g100": i % 100, "g10": i % 10, "g2": i % 2}`; points are ingested through the
//! collection API in durable batches (fsync before each acknowledgement), then searched one query
//! per call on one thread, k = 10, under the filters g100 = 0 / g10 = 0 / g2 = 0 (selectivity 1%,
//! 10%, 50%), with recall@10 against an f64 brute force over the admitted points; count with the
//! same filters is timed too; payload indexes are declared on g100, g10 and g2. Rows: `{"op": "ingest", "points_per_s", …}`,
//! `{"op": "search", "selectivity", "recall", "qps", "p50_ms", "p99_ms", …}`,
//! `{"op": "count", "selectivity", "p50_ms", "count"}`.
//!
//! After the ingest the collection is optimised (one segment of the `--index` family, e.g.
//! `hnsw`, `hnsw+rabitq4`, `spann+rabitq4`; rows on disk with `--on-disk`; timed as
//! `index_seconds`), and searches sweep the beam (`--ef`; for SPANN also the lists probed).
//!
//! `--gt FILE` adds unfiltered searches (`{"op": "search", …}` with no `selectivity`) scored
//! against that ground truth. `--dir D --reuse` reopens a collection an earlier run built (the
//! `open` row: `open_seconds`); with `--memory-limit-mb N` as well, the reopen and the
//! unfiltered searches run in a memory cgroup capped at N MiB after the page cache is dropped
//! (page cache included: rows read from disk count), the base file is not loaded, filtered
//! searches are skipped, and every row carries the cgroup's peak.

use crate::load;
use anyhow::{bail, Context, Result};
use quarry_core::Metric;
use quarry_engine::{CollectionSchema, Database, Filter, Point, PointId, SearchOptions};
use serde_json::json;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Instant;

/// Arguments of `quarry bench engine`.
#[derive(clap::Args)]
pub struct EngineArgs {
    /// Base vectors (.npy f16/f32, .fvecs).
    #[arg(long)]
    base: PathBuf,
    /// Query vectors.
    #[arg(long)]
    query: PathBuf,
    /// Points to ingest (default: all).
    #[arg(long)]
    n: Option<usize>,
    /// Queries (the first ones).
    #[arg(long, default_value_t = 200)]
    queries: usize,
    /// Points per durable batch.
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    /// Database folder (default: a fresh temporary folder, removed afterwards).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// With `--dir`: reuse the collection a previous run left there (same data) instead of
    /// ingesting and building again; the ingest row then reports the time to open it.
    #[arg(long)]
    reuse: bool,
    /// Graph beams to sweep in sealed segments (SPANN: also the most posting lists read).
    #[arg(long, default_value = "32,64,128,256")]
    ef: String,
    /// Index spec of the sealed segment (flat, hnsw, spann, each optionally +sq8, +sq4, +pq,
    /// +rabitq, +rabitq<B>).
    #[arg(long, default_value = "hnsw")]
    index: String,
    /// Keep the segment's f32 rows on disk (memory-mapped).
    #[arg(long)]
    on_disk: bool,
    /// Unfiltered rows rank compressed graphs by their codes alone, with estimated scores and no
    /// row read (`SearchOptions::rescore` false, Qdrant's `rescore: false`); rows say `"rescore"`.
    #[arg(long)]
    no_rescore: bool,
    /// Ground truth of the queries (.ivecs / .npy ids): adds unfiltered search rows.
    #[arg(long)]
    gt: Option<PathBuf>,
    /// Skip the filtered searches and counts (their ground truth needs the base in memory).
    #[arg(long)]
    no_filters: bool,
    /// No per-value graphs for the filter keys (less build time, memory and disk).
    #[arg(long)]
    no_payload_graphs: bool,
    /// Timed passes over the queries for the unfiltered rows (as `bench ann` times them): the
    /// row reports every pass's QPS (`pass_qps`) and the last pass as `qps`; the first pass of a
    /// reopened collection reads from a cold page cache.
    #[arg(long, default_value_t = 1)]
    passes: usize,
    /// With `--dir D --reuse`: reopen and search in a memory cgroup capped at this many MiB
    /// (page cache included; dropped first; needs root).
    #[arg(long)]
    memory_limit_mb: Option<u64>,
}

/// The `p` quantile of `sorted` (nearest index, rounded; 0 when empty).
pub(super) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Runs `quarry bench engine`.
pub fn run(a: EngineArgs) -> Result<()> {
    if a.batch == 0 {
        bail!("--batch must be at least 1");
    }
    if a.memory_limit_mb.is_some() && !(a.reuse && a.dir.is_some()) {
        bail!("--memory-limit-mb measures a reopened collection: give --dir D --reuse (built by an earlier run)");
    }
    if super::cgroup::rerun_capped(a.memory_limit_mb)? {
        return Ok(());
    }
    let capped = super::cgroup::in_capped_child();
    let queries = load::queries(&a.query, Some(a.queries))?;
    let gt = match &a.gt {
        Some(p) => {
            let gt = quarry_eval::io::read_id_rows(p)
                .with_context(|| format!("loading ground truth from {}", p.display()))?;
            anyhow::ensure!(
                gt.rows() >= queries.rows() && gt.cols >= 10,
                "ground truth {} has {} rows of {} ids for {} queries and k = 10",
                p.display(),
                gt.rows(),
                gt.cols,
                queries.rows()
            );
            Some(gt)
        }
        None => None,
    };
    // A capped reopen loads no base: its memory is what is measured.
    let base = if capped && a.reuse { None } else { Some(load::base(&a.base)?) };
    let filters = !a.no_filters && base.is_some();
    let n =
        a.n.unwrap_or(base.as_ref().map_or(usize::MAX, |b| b.rows()))
            .min(base.as_ref().map_or(usize::MAX, |b| b.rows()));
    let temp = a.dir.is_none();
    let dir = a
        .dir
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join(format!("quarry-bench-engine-{}", std::process::id())));
    let system = format!("quarry {}", env!("CARGO_PKG_VERSION"));
    if a.reuse && !temp {
        let baseline = super::open::process_rss();
        let t = Instant::now();
        let db = Database::open(&dir).with_context(|| format!("opening {}", dir.display()))?;
        let col = db.collection("bench")?;
        let open_secs = t.elapsed().as_secs_f64();
        let n = if base.is_some() { n } else { col.count(None) };
        if col.count(None) != n {
            bail!("--reuse: {} holds {} points, not {n}", dir.display(), col.count(None));
        }
        let field = &col.schema().vectors[0];
        let rss = super::open::process_rss();
        println!(
            "{}",
            json!({"system": system, "op": "open", "n": n, "open_seconds": open_secs, "segments": col.segment_count(),
                   "index": field.index, "on_disk": field.on_disk, "segment_resident_bytes": col.segment_resident_bytes(),
                   "payload_bytes": col.payload_bytes(), "id_bytes": col.id_bytes(), "rss_anon_bytes": rss.anon, "rss_file_bytes": rss.file,
                   "baseline_rss_anon_bytes": baseline.anon})
        );
        eprintln!("reopened {n} points ({} segments) in {open_secs:.2} s", col.segment_count());
        if let Some(gt) = &gt {
            unfiltered(&col, &queries, gt, &a.ef, a.passes.max(1), !a.no_rescore, &system)?;
        }
        if filters {
            if let Some(base) = &base {
                searches(&col, base, &queries, n, &a.ef, &system)?;
            }
        }
        return Ok(());
    }
    let base = base.context("building needs the base vectors")?;
    let dim = base.dim();
    quarry_engine::IndexSpec::from_str(&a.index).with_context(|| format!("--index {:?}", a.index))?;
    let _ = std::fs::remove_dir_all(&dir);
    let db = Database::open(&dir).with_context(|| format!("opening {}", dir.display()))?;
    let mut schema = CollectionSchema::single(dim, Metric::Cosine, &a.index);
    schema.vectors[0].on_disk = a.on_disk;
    schema.payload_indexes = vec!["g100".into(), "g10".into(), "g2".into()];
    // The graph is built once after the ingest (timed apart), as qdrant-edge's optimize() does.
    schema.seal_threshold = 0;
    schema.payload_graphs = !a.no_payload_graphs;
    let col = db.create_collection("bench", schema)?;
    // Ingest.
    let t = Instant::now();
    for start in (0..n).step_by(a.batch) {
        let batch: Vec<Point> = (start..(start + a.batch).min(n))
            .map(|i| {
                let mut payload = serde_json::Map::new();
                payload.insert("g100".into(), json!(i % 100));
                payload.insert("g10".into(), json!(i % 10));
                payload.insert("g2".into(), json!(i % 2));
                Point { id: PointId::Num(i as u64), vectors: vec![base.row(i).to_vec()], payload }
            })
            .collect();
        col.upsert(batch)?;
    }
    let secs = t.elapsed().as_secs_f64();
    // One graph over everything (as qdrant-edge's optimizer builds one), timed separately.
    let t = Instant::now();
    col.optimize()?;
    let index_secs = t.elapsed().as_secs_f64();
    println!(
        "{}",
        json!({"system": system, "op": "ingest", "n": n, "batch": a.batch, "points_per_s": n as f64 / secs,
               "ingest_seconds": secs, "index_seconds": index_secs, "durability": "fsync per batch (WAL)",
               "build_threads": rayon::current_num_threads(), "index": a.index, "on_disk": a.on_disk})
    );
    eprintln!(
        "ingested {n} points in {secs:.2} s ({:.0}/s); graph built in {index_secs:.1} s",
        n as f64 / secs
    );
    if let Some(gt) = &gt {
        unfiltered(&col, &queries, gt, &a.ef, a.passes.max(1), !a.no_rescore, &system)?;
    }
    if filters {
        searches(&col, &base, &queries, n, &a.ef, &system)?;
    }
    drop(col);
    drop(db);
    if temp {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}

/// Parses `--ef`.
fn efs(ef: &str) -> Result<Vec<usize>> {
    ef.split(',')
        .map(|v| v.trim().parse::<usize>().with_context(|| format!("--ef {v:?}: not a number")))
        .collect()
}

/// Unfiltered searches against the given ground truth, one row per beam: recall@10, QPS, p50,
/// p99 (one thread, one query per call, ids and scores only).
fn unfiltered(
    col: &quarry_engine::Collection,
    queries: &quarry_core::Matrix,
    gt: &quarry_eval::io::IdRows,
    ef: &str,
    passes: usize,
    rescore: bool,
    system: &str,
) -> Result<()> {
    let field = &col.schema().vectors[0];
    for ef in efs(ef)? {
        let opts = SearchOptions { ef, with_payload: false, rescore, candidates: None };
        let mut pass_qps = Vec::with_capacity(passes);
        let (mut lat, mut found) = (Vec::new(), 0usize);
        for _ in 0..passes {
            lat = Vec::with_capacity(queries.rows());
            found = 0;
            for (i, q) in queries.iter().enumerate() {
                let t = Instant::now();
                let hits = col.search_with(q, None, 10, None, &opts)?;
                lat.push(t.elapsed().as_secs_f64() * 1e3);
                let want = &gt.row(i)[..10];
                found += hits
                    .iter()
                    .filter(|h| matches!(h.id, PointId::Num(id) if want.contains(&(id as u32))))
                    .count();
            }
            pass_qps.push(queries.rows() as f64 / (lat.iter().sum::<f64>() / 1e3));
        }
        let total_ms: f64 = lat.iter().sum();
        lat.sort_by(f64::total_cmp);
        let recall = found as f64 / (10 * queries.rows()) as f64;
        println!(
            "{}",
            json!({"system": system, "op": "search", "ef": ef, "k": 10, "recall": recall,
                   "qps": queries.rows() as f64 / (total_ms / 1e3), "p50_ms": percentile(&lat, 0.5),
                   "p99_ms": percentile(&lat, 0.99), "queries": queries.rows(), "index": field.index,
                   "on_disk": field.on_disk, "threads": 1, "passes": passes, "pass_qps": pass_qps,
                   "rescore": rescore})
        );
        eprintln!(
            "unfiltered ef {ef}: recall {recall:.4}, {:.0} QPS, p99 {:.3} ms",
            queries.rows() as f64 / (total_ms / 1e3),
            percentile(&lat, 0.99)
        );
    }
    Ok(())
}

/// The filtered searches and counts at the three selectivities, one row each.
fn searches(
    col: &quarry_engine::Collection,
    base: &quarry_core::Matrix,
    queries: &quarry_core::Matrix,
    n: usize,
    ef: &str,
    system: &str,
) -> Result<()> {
    let efs = efs(ef)?;
    // Unit-normalised rows for the f64 ground truth (cosine).
    let norm = |v: &[f32]| -> Vec<f64> {
        let s = v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt().max(f64::MIN_POSITIVE);
        v.iter().map(|x| *x as f64 / s).collect()
    };
    let rows: Vec<Vec<f64>> = (0..n).map(|i| norm(base.row(i))).collect();
    for (key, modulus, sel) in [("g100", 100usize, 0.01), ("g10", 10, 0.1), ("g2", 2, 0.5)] {
        let filter = Filter::parse(&format!(r#"{{"must": [{{"key": "{key}", "match": {{"value": 0}}}}]}}"#))?;
        let admitted: Vec<usize> = (0..n).filter(|i| i % modulus == 0).collect();
        // Ground truth first (as the peer script does), so the timed searches run back to back
        // with no brute force evicting the caches in between.
        let wants: Vec<Vec<u64>> = queries
            .iter()
            .map(|q| {
                let qn = norm(q);
                let mut exact: Vec<(f64, usize)> = admitted
                    .iter()
                    .map(|&i| (-rows[i].iter().zip(&qn).map(|(a, b)| a * b).sum::<f64>(), i))
                    .collect();
                if exact.len() > 10 {
                    exact.select_nth_unstable_by(9, |a, b| a.0.total_cmp(&b.0));
                }
                exact.iter().take(10).map(|&(_, i)| i as u64).collect()
            })
            .collect();
        for &ef in &efs {
            // Ids and scores only, as the peer script asks qdrant-edge (with_payload=False).
            let opts = SearchOptions { ef, with_payload: false, ..SearchOptions::default() };
            for q in queries.iter().take(20) {
                col.search_with(q, None, 10, Some(&filter), &opts)?;
            }
            let mut lat = Vec::with_capacity(queries.rows());
            let mut results = Vec::with_capacity(queries.rows());
            for q in queries.iter() {
                let t = Instant::now();
                let hits = col.search_with(q, None, 10, Some(&filter), &opts)?;
                lat.push(t.elapsed().as_secs_f64() * 1e3);
                results.push(hits);
            }
            let hits_found: usize = results
                .iter()
                .zip(&wants)
                .map(|(hits, want)| {
                    hits.iter().filter(|h| matches!(h.id, PointId::Num(id) if want.contains(&id))).count()
                })
                .sum();
            let total_ms: f64 = lat.iter().sum();
            lat.sort_by(f64::total_cmp);
            let recall = hits_found as f64 / (10 * queries.rows()) as f64;
            println!(
                "{}",
                json!({"system": system, "op": "search", "selectivity": sel, "ef": ef, "k": 10, "recall": recall,
                       "qps": queries.rows() as f64 / (total_ms / 1e3), "p50_ms": percentile(&lat, 0.5),
                       "p99_ms": percentile(&lat, 0.99), "queries": queries.rows(), "index": col.schema().vectors[0].index})
            );
            eprintln!(
                "selectivity {sel} ef {ef}: recall {recall:.4}, p50 {:.3} ms, p99 {:.3} ms",
                percentile(&lat, 0.5),
                percentile(&lat, 0.99)
            );
        }
        let mut count_lat = Vec::with_capacity(50);
        let mut count = 0;
        for _ in 0..50 {
            let t = Instant::now();
            count = col.count(Some(&filter));
            count_lat.push(t.elapsed().as_secs_f64() * 1e3);
        }
        count_lat.sort_by(f64::total_cmp);
        if count != admitted.len() {
            bail!("count with filter {key} = 0 gave {count}, expected {}", admitted.len());
        }
        println!(
            "{}",
            json!({"system": system, "op": "count", "selectivity": sel, "p50_ms": percentile(&count_lat, 0.5), "count": count})
        );
        eprintln!("selectivity {sel}: count p50 {:.3} ms", percentile(&count_lat, 0.5));
    }
    Ok(())
}
