//! `quarry bench ann`: recall and one-query-per-call QPS of an index on a TEXMEX/npy dataset,
//! printed as the same JSON rows as `shared/tools/peer_bench.py`.
//!
//! The index is built once per configuration of build parameters (`--params`, on the
//! `--build-threads` pool); a `--sweep` over a search parameter then times every value on the
//! `--threads` pool and prints one row each. Recall is scored by an exact [`FlatIndex`] over the
//! same base (the index itself when it is flat).

mod adaptive;
pub mod cgroup;
pub mod embed;
mod engine;
mod http;
mod multivector;
mod objects;
mod open;
mod order;
mod params;
mod quant;
mod spann;

use crate::{load, progress};
use anyhow::{Context, Result};
use clap::Subcommand;
use params::{Build, HnswBuild, Kind};
use quarry_ann::{FlatIndex, HnswIndex, HnswSearch, Storage};
use quarry_core::{Matrix, Metric, SearchParams, VectorIndex};
use quarry_eval::ann_recall::{ids, recall_at_k, tie_aware_recall_at_k};
use quarry_eval::bench::{time_queries, BenchRow, Timing};
use quarry_eval::io;
use quarry_eval::io::IdRows;
use std::path::PathBuf;
use std::time::Instant;

/// Benchmark subcommands.
#[derive(Subcommand)]
pub enum BenchCommand {
    /// Recall@k and QPS of an index against exact ground truth.
    Ann(AnnArgs),
    /// Open time and first-query cost of a saved index file.
    Open(open::OpenArgs),
    /// The embedded database: durable ingest, filtered search and count (as peer_engine.py).
    Engine(engine::EngineArgs),
    /// `quarry serve` under loopback load: search QPS and latency at several concurrencies, and a
    /// mixed 90/10 search/upsert load with a kill -9 and restart in the middle.
    Http(http::HttpArgs),
    /// One query node serving a collection from object storage through a block cache of a
    /// fraction of its bytes, with injected request latency, against local disk in the same run:
    /// cold and warm QPS, p99, recall@10, requests and bytes per query.
    Objects(objects::ObjectsArgs),
    /// Late interaction: MUVERA candidates and the per-token heuristic, each re-ranked by exact
    /// Chamfer (MaxSim), against exhaustive Chamfer on token sets from `quarry embed --tokens`.
    Multivector(multivector::MultivectorArgs),
    /// Sentence-embedding throughput of a model on a text file (as peer_embed.py).
    Embed(embed::EmbedArgs),
    /// Runs a command (a peer's search process) in a memory cgroup capped at
    /// `--memory-limit-mb` (page cache included), adding the cap and the cgroup's peak usage to
    /// every JSON row it prints: `quarry bench capped --memory-limit-mb 40 -- python3 peer.py …`.
    Capped(cgroup::CappedArgs),
    /// HNSW recall at fixed ef under each insertion order (as given, random, LID ascending and
    /// descending), with LID statistics: the study in docs/benchmarks/hnsw-insertion-order.md.
    #[command(hide = true)]
    Order(order::OrderArgs),
    /// Per-query adaptive ef against fixed ef at equal recall (a prototype outside the library).
    #[command(hide = true, name = "adaptive-ef")]
    AdaptiveEf(adaptive::AdaptiveArgs),
}

/// Arguments of `quarry bench ann`.
#[derive(clap::Args)]
pub struct AnnArgs {
    /// Base vectors (.fvecs, .bvecs, .npy f32/f16, .jsonl).
    #[arg(long)]
    base: PathBuf,
    /// Query vectors (same formats).
    #[arg(long)]
    query: PathBuf,
    /// Ground-truth neighbour ids (.ivecs or integer .npy), best first.
    #[arg(long)]
    gt: PathBuf,
    /// Similarity metric: ip, cosine or l2.
    #[arg(long, default_value = "ip")]
    metric: Metric,
    /// Index kind: flat or hnsw.
    #[arg(long, default_value = "flat")]
    index: String,
    /// Build parameters as key=value pairs, comma-separated. hnsw: M (graph degree, default 16),
    /// efc (ef_construction, default 200), seed, storage (f32 or f16), insertion_order
    /// (as_given, random, lid_asc or lid_desc; default as_given), walk (sq8: the walk ranks by
    /// 8-bit codes and re-scores exactly, the default; f32: it reads the rows; also applies to
    /// --load); flat: storage.
    #[arg(long, value_name = "KEY=VALUE,...")]
    params: Option<String>,
    /// A search parameter and the values to time, e.g. ef=10,20,40 (hnsw): the index is built
    /// once and one row is printed per value.
    #[arg(long, value_name = "NAME=V1,V2,...")]
    sweep: Option<String>,
    /// Results per query.
    #[arg(short = 'k', long = "k", default_value_t = 10)]
    k: usize,
    /// Search threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// `single`: one query per call, timed in a Rust loop; `batch`: all queries in one
    /// `search_batch` call per pass (as peers are timed with `peer_bench.py --calls batch`; the
    /// flat index then scores them by blocked matrix products). Rows carry `"calls"`.
    #[arg(long, default_value = "single", value_parser = ["single", "batch"])]
    calls: String,
    /// Threads used to build the index.
    #[arg(long, default_value_t = 2)]
    build_threads: usize,
    /// Time only the first N queries.
    #[arg(long)]
    queries: Option<usize>,
    /// Flat index only: stored element types to benchmark, comma-separated (f32, f16), one row
    /// each (default f32; `--params storage=f16` is the same for one type).
    #[arg(long, value_delimiter = ',')]
    storage: Option<Vec<Storage>>,
    /// Timed passes over the queries (the median QPS is reported).
    #[arg(long, default_value_t = 3)]
    passes: usize,
    /// Print one JSON object per configuration, nothing else on stdout.
    #[arg(long)]
    json: bool,
    /// Save the built index to this file (open it again with `quarry bench open`).
    #[arg(long)]
    save: Option<PathBuf>,
    /// spann: the folder the index is built into (posting lists on disk).
    #[arg(long)]
    index_dir: Option<PathBuf>,
    /// spann: drop the OS page cache (`sync`, then 3 into /proc/sys/vm/drop_caches; needs root)
    /// and reopen the index before each sweep point, then time one pass with no warm-up. Rows
    /// carry `"cold": true`, or `false` with a warning when the cache could not be dropped.
    #[arg(long)]
    cold: bool,
    /// hnsw: time a saved index, loaded into memory, instead of building one (`--params` are
    /// then ignored and build_seconds is reported as 0).
    #[arg(long, conflicts_with = "save")]
    load: Option<PathBuf>,
    /// Compressed graphs (`hnsw+<codes>`): rank by the codes alone, with estimated scores and no
    /// row read (Qdrant's `rescore: false`; faiss's HNSW over SQ codes without a refine step).
    /// Rows carry `"rescore": false`.
    #[arg(long)]
    no_rescore: bool,
    /// Search in a memory cgroup capped at this many MiB, page cache included (needs root):
    /// this command re-runs itself in the cgroup after dropping the page cache, and every row
    /// gets `memory_limit_bytes`, `cgroup_peak_bytes` and `oom_killed`. Needs a saved index
    /// (`--load`; build it first with `--save` or `--index-dir`), so only the search is capped;
    /// the capped process loads no base vectors, so recall is plain |A ∩ G| / k.
    #[arg(long)]
    memory_limit_mb: Option<u64>,
}

/// Runs a bench subcommand.
pub fn run(cmd: BenchCommand) -> Result<()> {
    match cmd {
        BenchCommand::Ann(a) => ann(a),
        BenchCommand::Open(a) => open::run(a),
        BenchCommand::Engine(a) => engine::run(a),
        BenchCommand::Embed(a) => embed::run(a),
        BenchCommand::Capped(a) => cgroup::run(a),
        BenchCommand::Http(a) => http::run(a),
        BenchCommand::Objects(a) => objects::run(a),
        BenchCommand::Multivector(a) => multivector::run(a),
        BenchCommand::Order(a) => order::run(a),
        BenchCommand::AdaptiveEf(a) => adaptive::run(a),
    }
}

/// The loaded queries and ground truth, the search pool and the output settings shared by every
/// configuration of one run.
struct Bench<'a> {
    args: &'a AnnArgs,
    queries: Matrix,
    gt: IdRows,
    search_pool: rayon::ThreadPool,
}

impl Bench<'_> {
    /// Times `index` (median of the passes after a warm-up), scores its answers with the exact
    /// `scorer` and returns the row with the QPS of every pass.
    fn measure(
        &self,
        index: &dyn VectorIndex,
        scorer: Option<&FlatIndex>,
        params: serde_json::Value,
        build_seconds: f64,
        index_bytes: usize,
    ) -> Result<(BenchRow, Vec<f64>)> {
        let timing = Timing { warmup_queries: self.queries.rows().min(100), passes: self.args.passes.max(1) };
        self.measure_with(index, scorer, params, build_seconds, index_bytes, timing)
    }

    /// [`Bench::measure`] with explicit warm-up and passes (a cold run: no warm-up, one pass).
    fn measure_with(
        &self,
        index: &dyn VectorIndex,
        scorer: Option<&FlatIndex>,
        params: serde_json::Value,
        build_seconds: f64,
        index_bytes: usize,
        timing: Timing,
    ) -> Result<(BenchRow, Vec<f64>)> {
        let (a, queries) = (self.args, &self.queries);
        let search = SearchParams::top(a.k);
        let pb =
            progress::bar((queries.rows() as u64).saturating_mul(timing.passes as u64), "searching", a.json);
        let timed = self.search_pool.install(|| match a.calls.as_str() {
            "batch" => quarry_eval::bench::time_batch(index, queries, &search, timing),
            _ => time_queries(index, queries, &search, timing, &|| pb.inc(1)),
        })?;
        pb.finish_and_clear();
        let found: Vec<Vec<u32>> = timed.answers.iter().map(|h| ids(h)).collect();
        let plain = recall_at_k(&found, &self.gt, a.k)?;
        let recall = match scorer {
            Some(s) => tie_aware_recall(s, queries, &self.gt, &timed.answers, a.k)?,
            None => plain,
        };
        let row = BenchRow {
            system: format!("quarry {}", env!("CARGO_PKG_VERSION")),
            index: a.index.clone(),
            params,
            k: a.k,
            threads: a.threads,
            recall,
            recall_plain: plain,
            qps: timed.qps,
            build_seconds,
            index_bytes,
            p50_ms: timed.p50_ms,
            p99_ms: timed.p99_ms,
            queries: queries.rows(),
            extra: serde_json::Map::from_iter([("calls".to_string(), serde_json::json!(a.calls))]),
        };
        Ok((row, timed.pass_qps))
    }

    /// Prints `row`: JSON, or a line for people (with the scan rate when `scanned_bytes`, the
    /// bytes one query streams, is known).
    fn print(&self, row: &BenchRow, pass_qps: &[f64], scanned_bytes: Option<f64>) -> Result<()> {
        if self.args.json {
            println!("{}", serde_json::to_string(row)?);
            return Ok(());
        }
        let params = match &row.params {
            serde_json::Value::Object(m) => m
                .iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().map_or_else(|| v.to_string(), String::from)))
                .collect(),
            _ => Vec::new(),
        };
        let scan = scanned_bytes.map_or(String::new(), |b| {
            format!(
                "; scan rate {:.2} GB/s with {} kernels",
                b * row.qps / 1e9,
                quarry_linalg::detected_isa().name()
            )
        });
        let mut measured = String::new();
        if let Some(r) = row.extra.get("resident_bytes").and_then(serde_json::Value::as_f64) {
            measured += &format!("; resident {:.1} MB as the OS measures it", r / 1e6);
        }
        if row.extra.get("cold").and_then(serde_json::Value::as_bool) == Some(true) {
            measured += "; cold page cache, one pass";
        }
        println!(
            "{} {} ({}) k={} threads={}: recall {:.4} (plain {:.4}), {:.1} QPS (passes: {}), build {:.2}s, {:.1} MB{scan}{measured}",
            row.system,
            row.index,
            params.join(", "),
            row.k,
            row.threads,
            row.recall,
            row.recall_plain,
            row.qps,
            pass_qps.iter().map(|q| format!("{q:.1}")).collect::<Vec<_>>().join(", "),
            row.build_seconds,
            row.index_bytes as f64 / 1e6,
        );
        Ok(())
    }
}

fn ann(a: AnnArgs) -> Result<()> {
    if a.memory_limit_mb.is_some() {
        anyhow::ensure!(
            a.load.is_some(),
            "--memory-limit-mb caps the searching process only: give a saved index with --load \
             (build it first with --save FILE, or --index-dir DIR for spann)"
        );
        anyhow::ensure!(!a.cold, "--memory-limit-mb already drops the page cache; leave out --cold");
    }
    if cgroup::rerun_capped(a.memory_limit_mb)? {
        return Ok(());
    }
    anyhow::ensure!(
        !a.cold || a.index == "spann",
        "--cold applies to --index spann only (the other indexes are searched from memory)"
    );
    if a.index == "spann" {
        let (build_pool, bench) = setup(&a)?;
        return spann::run(&bench, &build_pool);
    }
    if let Some((base_kind, family)) = quant::split_spec(&a.index) {
        anyhow::ensure!(
            a.storage.is_none(),
            "--storage applies to the flat index only; use --params storage="
        );
        let (build_pool, bench) = setup(&a)?;
        return quant::run(&bench, base_kind, family, &build_pool);
    }
    // Every flag is checked before any data is read.
    let kind = Kind::parse(&a.index)?;
    let build = params::build(kind, a.params.as_deref(), a.storage.as_deref())?;
    let sweep = params::sweep(kind, a.sweep.as_deref())?;
    let (build_pool, bench) = setup(&a)?;
    run_plain(&a, &bench, build, sweep, &build_pool)
}

/// Loads the queries and ground truth and makes the thread pools.
fn setup(a: &AnnArgs) -> Result<(rayon::ThreadPool, Bench<'_>)> {
    anyhow::ensure!(a.k > 0, "-k must be at least 1");
    anyhow::ensure!(a.threads > 0, "--threads must be at least 1");
    anyhow::ensure!(a.build_threads > 0, "--build-threads must be at least 1");
    let queries = load::queries(&a.query, a.queries)?;
    let gt =
        io::read_id_rows(&a.gt).with_context(|| format!("loading ground truth from {}", a.gt.display()))?;
    anyhow::ensure!(
        gt.rows() >= queries.rows(),
        "ground truth {} has {} rows for {} queries",
        a.gt.display(),
        gt.rows(),
        queries.rows()
    );
    anyhow::ensure!(
        gt.cols >= a.k,
        "ground truth {} has {} neighbours per query, fewer than k = {}",
        a.gt.display(),
        gt.cols,
        a.k
    );
    let build_pool = progress::pool(a.build_threads)?;
    Ok((build_pool, Bench { args: a, queries, gt, search_pool: progress::pool(a.threads)? }))
}

fn run_plain(
    a: &AnnArgs,
    bench: &Bench,
    build: Build,
    sweep: Option<Vec<usize>>,
    build_pool: &rayon::ThreadPool,
) -> Result<()> {
    match build {
        Build::Flat(storages) => {
            for storage in storages {
                let (index, build_seconds) =
                    build_pool.install(|| load::flat_index(&a.base, a.metric, storage))?;
                load::check_dims(&index, &bench.queries, &a.base, &a.query)?;
                if let Some(path) = &a.save {
                    index.save(path).with_context(|| format!("saving the index to {}", path.display()))?;
                }
                let params = serde_json::json!({ "storage": storage.name() });
                let (row, passes) =
                    bench.measure(&index, Some(&index), params, build_seconds, index.memory_bytes())?;
                let scanned = (index.len() * index.dim() * storage.bytes_per_component()) as f64;
                bench.print(&row, &passes, Some(scanned))?;
            }
        }
        Build::Hnsw(params) => {
            let exact = base_and_scorer(a, &bench.queries)?;
            hnsw(bench, exact.as_ref(), params, sweep, build_pool)?;
        }
    }
    Ok(())
}

/// Builds the HNSW index over `base` once on `build_pool`, then times every `ef` of the sweep
/// (the library's default ef without one). Rows carry `M`, `efc` and `ef` like peer_bench.py's,
/// plus `seed`, `storage` and `insertion_order` when they were given, and `walk` (sq8 or f32).
fn hnsw(
    bench: &Bench,
    exact: Option<&(Matrix, FlatIndex)>,
    given: HnswBuild,
    efs: Option<Vec<usize>>,
    build_pool: &rayon::ThreadPool,
) -> Result<()> {
    let a = bench.args;
    let params = given.resolve();
    let start = Instant::now();
    let (index, build_seconds) = match &a.load {
        Some(path) => {
            let mut index = HnswIndex::load(path)?;
            if given.walk_codes == Some(false) {
                index.set_walk_codes(false)?;
            }
            let rows = exact.map(|(base, _)| base.rows());
            anyhow::ensure!(
                index.metric() == a.metric && rows.is_none_or(|r| r == index.len()),
                "{} holds {} {} vectors; --base has {} and --metric is {}",
                path.display(),
                index.len(),
                index.metric(),
                rows.map_or("?".to_string(), |r| r.to_string()),
                a.metric
            );
            (index, 0.0)
        }
        None => {
            let (base, _) = exact.context("building needs the base vectors")?;
            let index = build_pool
                .install(|| HnswIndex::build(base, a.metric, params))
                .with_context(|| format!("building an hnsw index from {}", a.base.display()))?;
            (index, start.elapsed().as_secs_f64())
        }
    };
    let params = if a.load.is_some() { index.params() } else { params };
    if let Some(path) = &a.save {
        let t = Instant::now();
        index.save(path).with_context(|| format!("saving the index to {}", path.display()))?;
        eprintln!("saved the hnsw index to {} in {:.2} s", path.display(), t.elapsed().as_secs_f64());
    }
    let mut fixed = serde_json::Map::new();
    fixed.insert("M".into(), params.m.into());
    fixed.insert("efc".into(), params.ef_construction.into());
    if let Some(seed) = given.seed {
        fixed.insert("seed".into(), seed.into());
    }
    if let Some(storage) = given.storage {
        fixed.insert("storage".into(), storage.name().into());
    }
    if let Some(order) = given.insertion_order {
        fixed.insert("insertion_order".into(), order.name().into());
    }
    fixed.insert("walk".into(), if index.walks_on_codes() { "sq8" } else { "f32" }.into());
    for ef in efs.unwrap_or_else(|| vec![HnswSearch::default().ef]) {
        let searcher = index.searcher(HnswSearch { ef, ..HnswSearch::default() });
        let mut row_params = fixed.clone();
        row_params.insert("ef".into(), ef.into());
        let (row, passes) = bench.measure(
            &searcher,
            exact.map(|(_, s)| s),
            row_params.into(),
            build_seconds,
            index.memory_bytes(),
        )?;
        bench.print(&row, &passes, None)?;
    }
    Ok(())
}

/// The base vectors and the exact scorer of recall over them (checked against the queries'
/// dimension) — or neither in a capped child searching a saved index: its memory is what is
/// measured, so it loads only the index and the queries, and recall is plain |A ∩ G| / k.
fn base_and_scorer(a: &AnnArgs, queries: &Matrix) -> Result<Option<(Matrix, FlatIndex)>> {
    if cgroup::in_capped_child() && a.load.is_some() {
        return Ok(None);
    }
    let base = load::base(&a.base)?;
    let scorer = load::exact_scorer(&base, a.metric, &a.base)?;
    load::check_dims(&scorer, queries, &a.base, &a.query)?;
    Ok(Some((base, scorer)))
}

/// Recall@k that also credits an answer tying the k-th true neighbour (as ann-benchmarks does):
/// both are re-scored by the exact flat index, and a tie means equal within a relative 1e-6, so
/// only equidistant points (duplicates, integer-valued data) are affected; without ties this is
/// the plain `|A ∩ G| / k` of the peer script. Warns when answers score clearly above the truth.
fn tie_aware_recall(
    scorer: &FlatIndex,
    queries: &quarry_core::Matrix,
    gt: &IdRows,
    answers: &[Vec<quarry_core::Hit>],
    k: usize,
) -> Result<f64> {
    let mut kth = Vec::with_capacity(answers.len());
    let mut found = Vec::with_capacity(answers.len());
    for (i, (q, hits)) in queries.iter().zip(answers).enumerate() {
        let last_valid = gt.row(i)[..k].iter().rev().find(|&&id| id != IdRows::NONE);
        kth.push(match last_valid {
            Some(&id) => {
                Some(scorer.score_ids(q, &[id]).with_context(|| format!("ground truth of query {i}"))?[0])
            }
            None => None,
        });
        let top: Vec<u32> = hits.iter().take(k).map(|h| h.id).collect();
        let exact = scorer.score_ids(q, &top)?;
        found.push(top.into_iter().zip(exact).collect::<Vec<_>>());
    }
    let r = tie_aware_recall_at_k(&found, gt, &kth, k, 1e-6)?;
    if r.above_truth > 0 {
        eprintln!(
            "warning: {} answers score clearly above the ground truth's k-th neighbour; \
             was the ground truth computed with another metric than --metric {}?",
            r.above_truth,
            scorer.metric()
        );
    }
    Ok(r.recall)
}
