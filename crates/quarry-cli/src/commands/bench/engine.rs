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
//! After the ingest the collection is optimised (one HNSW segment, M=16, efc=200, timed as
//! `index_seconds`), and searches sweep the graph beam (`--ef`).

use crate::load;
use anyhow::{bail, Context, Result};
use quarry_core::Metric;
use quarry_engine::{CollectionSchema, Database, Filter, Point, PointId, SearchOptions};
use serde_json::json;
use std::path::PathBuf;
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
    /// Graph beams to sweep in sealed segments.
    #[arg(long, default_value = "32,64,128,256")]
    ef: String,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
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
    let base = load::base(&a.base)?;
    let queries = load::queries(&a.query, Some(a.queries))?;
    let n = a.n.unwrap_or(base.rows()).min(base.rows());
    let dim = base.dim();
    let temp = a.dir.is_none();
    let dir = a
        .dir
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join(format!("quarry-bench-engine-{}", std::process::id())));
    let system = format!("quarry {}", env!("CARGO_PKG_VERSION"));
    if a.reuse && !temp {
        let t = Instant::now();
        let db = Database::open(&dir).with_context(|| format!("opening {}", dir.display()))?;
        let col = db.collection("bench")?;
        let open_secs = t.elapsed().as_secs_f64();
        if col.count(None) != n {
            bail!("--reuse: {} holds {} points, not {n}", dir.display(), col.count(None));
        }
        println!(
            "{}",
            json!({"system": system, "op": "open", "n": n, "open_seconds": open_secs, "segments": col.segment_count()})
        );
        eprintln!("reopened {n} points ({} segments) in {open_secs:.2} s", col.segment_count());
        return searches(&col, &base, &queries, n, &a.ef, &system);
    }
    let _ = std::fs::remove_dir_all(&dir);
    let db = Database::open(&dir).with_context(|| format!("opening {}", dir.display()))?;
    let mut schema = CollectionSchema::single(dim, Metric::Cosine, "hnsw");
    schema.payload_indexes = vec!["g100".into(), "g10".into(), "g2".into()];
    // The graph is built once after the ingest (timed apart), as qdrant-edge's optimize() does.
    schema.seal_threshold = 0;
    schema.payload_graphs = true;
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
               "build_threads": rayon::current_num_threads()})
    );
    eprintln!(
        "ingested {n} points in {secs:.2} s ({:.0}/s); graph built in {index_secs:.1} s",
        n as f64 / secs
    );
    searches(&col, &base, &queries, n, &a.ef, &system)?;
    drop(col);
    drop(db);
    if temp {
        let _ = std::fs::remove_dir_all(&dir);
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
    let efs: Vec<usize> = ef
        .split(',')
        .map(|v| v.trim().parse::<usize>().with_context(|| format!("--ef {v:?}: not a number")))
        .collect::<Result<_>>()?;
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
            let opts = SearchOptions { ef, with_payload: false };
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
                       "p99_ms": percentile(&lat, 0.99), "queries": queries.rows(), "index": "hnsw segment (M=16, efc=200)"})
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
