//! `quarry bench ann`: recall and one-query-per-call QPS of an index on a TEXMEX/npy dataset,
//! printed as the same JSON rows as `shared/tools/peer_bench.py`.

use crate::{load, progress};
use anyhow::{Context, Result};
use clap::Subcommand;
use quarry_ann::FlatIndex;
use quarry_ann::Storage;
use quarry_core::{Metric, SearchParams, VectorIndex};
use quarry_eval::ann_recall::{ids, recall_at_k, tie_aware_recall_at_k};
use quarry_eval::bench::{time_queries, BenchRow, Timing};
use quarry_eval::io;
use quarry_eval::io::IdRows;
use std::path::PathBuf;

/// Benchmark subcommands.
#[derive(Subcommand)]
pub enum BenchCommand {
    /// Recall@k and QPS of an index against exact ground truth.
    Ann(AnnArgs),
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
    /// Index kind.
    #[arg(long, default_value = "flat")]
    index: String,
    /// Results per query.
    #[arg(short = 'k', long = "k", default_value_t = 10)]
    k: usize,
    /// Search threads (one query per call either way).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Time only the first N queries.
    #[arg(long)]
    queries: Option<usize>,
    /// Stored element types to benchmark, comma-separated (f32, f16): one row each.
    #[arg(long, default_value = "f32", value_delimiter = ',')]
    storage: Vec<Storage>,
    /// Timed passes over the queries (the median QPS is reported).
    #[arg(long, default_value_t = 3)]
    passes: usize,
    /// Print one JSON object per configuration, nothing else on stdout.
    #[arg(long)]
    json: bool,
}

/// Runs a bench subcommand.
pub fn run(cmd: BenchCommand) -> Result<()> {
    match cmd {
        BenchCommand::Ann(a) => ann(a),
    }
}

fn ann(a: AnnArgs) -> Result<()> {
    load::check_index_kind(&a.index)?;
    anyhow::ensure!(a.k > 0, "-k must be at least 1");
    anyhow::ensure!(a.threads > 0, "--threads must be at least 1");
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
    let pool = progress::pool(a.threads)?;
    for &storage in &a.storage {
        let (index, build_seconds) = load::flat_index(&a.base, a.metric, storage)?;
        load::check_dims(&index, &queries, &a.base, &a.query)?;
        let params = SearchParams::top(a.k);
        let timing = Timing { warmup_queries: queries.rows().min(100), passes: a.passes.max(1) };
        let pb =
            progress::bar((queries.rows() as u64).saturating_mul(timing.passes as u64), "searching", a.json);
        let timed = pool.install(|| time_queries(&index, &queries, &params, timing, &|| pb.inc(1)))?;
        pb.finish_and_clear();
        let found: Vec<Vec<u32>> = timed.answers.iter().map(|h| ids(h)).collect();
        let plain = recall_at_k(&found, &gt, a.k)?;
        let recall = tie_aware_recall(&index, &queries, &gt, &timed.answers, a.k)?;
        let row = BenchRow {
            system: format!("quarry {}", env!("CARGO_PKG_VERSION")),
            index: a.index.clone(),
            params: serde_json::json!({ "storage": storage.name() }),
            k: a.k,
            threads: a.threads,
            recall,
            recall_plain: plain,
            qps: timed.qps,
            build_seconds,
            index_bytes: index.memory_bytes(),
            queries: queries.rows(),
        };
        if a.json {
            println!("{}", serde_json::to_string(&row)?);
        } else {
            let scanned = (index.len() * index.dim() * storage.bytes_per_component()) as f64;
            println!(
                "{} {} ({}) k={} threads={}: recall {:.4} (plain {:.4}), {:.1} QPS (passes: {}), build {:.2}s, {:.1} MB; \
                 scan rate {:.2} GB/s with {} kernels",
                row.system,
                row.index,
                storage.name(),
                row.k,
                row.threads,
                row.recall,
                row.recall_plain,
                row.qps,
                timed.pass_qps.iter().map(|q| format!("{q:.1}")).collect::<Vec<_>>().join(", "),
                row.build_seconds,
                row.index_bytes as f64 / 1e6,
                scanned * row.qps / 1e9,
                quarry_linalg::detected_isa().name(),
            );
        }
    }
    Ok(())
}

/// Recall@k that also credits an answer tying the k-th true neighbour (ALGORITHMS.md §13.3):
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
