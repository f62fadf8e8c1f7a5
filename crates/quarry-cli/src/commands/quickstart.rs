//! `quarry quickstart`: a one-minute tour on data shipped inside the binary.
//!
//! 4,000 WordNet 3.0 glosses with their all-MiniLM-L6-v2 embeddings (see
//! `data/quickstart/LICENSE-WordNet`) are indexed twice: an exact (flat) index, and an HNSW graph.
//! A few example queries (other glosses, embedded with the same model) print their nearest
//! glosses; a text question is answered over the graph (embedded by the model when it is
//! installed, else by BM25 over the glosses' words); every query's top-10 from both indexes is
//! checked against an independent f64 exact scan; and the last lines say where to go next.

use crate::progress;
use anyhow::{Context, Result};
use quarry_ann::{FlatIndex, FlatParams, HnswIndex, HnswParams, HnswSearch};
use quarry_core::{Matrix, Metric, SearchParams, VectorIndex};
use quarry_eval::io::parse_npy;
use std::path::Path;
use std::time::Instant;

const BASE_NPY: &[u8] = include_bytes!("../../../../data/quickstart/base.f16.npy");
const BASE_TEXT: &str = include_str!("../../../../data/quickstart/base.jsonl");
const QUERY_NPY: &[u8] = include_bytes!("../../../../data/quickstart/queries.f16.npy");
const QUERY_TEXT: &str = include_str!("../../../../data/quickstart/queries.jsonl");

/// Arguments of `quarry quickstart`.
#[derive(clap::Args)]
pub struct Args {
    /// Example queries to print.
    #[arg(long, default_value_t = 3)]
    examples: usize,
    /// Results per example query.
    #[arg(short = 'k', long = "k", default_value_t = 5)]
    k: usize,
    /// The text question answered over the graph index.
    #[arg(long, default_value = "a bird that flies a long way when the seasons change")]
    question: String,
}

fn matrix(bytes: &[u8], name: &str) -> Result<Matrix> {
    let arr = parse_npy(bytes, Path::new(name)).with_context(|| format!("bundled {name}"))?;
    let cols = arr.cols();
    Ok(Matrix::new(arr.data.into_f32(), cols)?)
}

fn texts(jsonl: &str, name: &str) -> Result<Vec<String>> {
    #[derive(serde::Deserialize)]
    struct Line {
        text: String,
    }
    jsonl
        .lines()
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str::<Line>(l)
                .map(|x| x.text)
                .with_context(|| format!("bundled {name}, line {}", i + 1))
        })
        .collect()
}

fn snippet(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(max - 1).collect::<String>())
    }
}

/// Cosine similarity in f64: the oracle's score, independent of the SIMD kernels.
fn cosine_f64(a: &[f32], b: &[f32]) -> f64 {
    let (mut ab, mut aa, mut bb) = (0.0f64, 0.0f64, 0.0f64);
    for (x, y) in a.iter().zip(b) {
        let (x, y) = (*x as f64, *y as f64);
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    ab / (aa * bb).sqrt().max(f64::MIN_POSITIVE)
}

/// Exact top-k ids by f64 cosine, ties by id, and the k-th score.
fn exact_f64(base: &Matrix, q: &[f32], k: usize) -> (Vec<u32>, f64) {
    let mut all: Vec<(f64, u32)> =
        base.iter().enumerate().map(|(i, x)| (cosine_f64(q, x), i as u32)).collect();
    all.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    all.truncate(k);
    let kth = all.last().map_or(f64::NEG_INFINITY, |x| x.0);
    (all.into_iter().map(|x| x.1).collect(), kth)
}

/// Runs `quarry quickstart`.
pub fn run(a: Args) -> Result<()> {
    let t0 = Instant::now();
    let base = matrix(BASE_NPY, "base.f16.npy")?;
    let queries = matrix(QUERY_NPY, "queries.f16.npy")?;
    let base_text = texts(BASE_TEXT, "base.jsonl")?;
    let query_text = texts(QUERY_TEXT, "queries.jsonl")?;
    anyhow::ensure!(
        base_text.len() == base.rows() && query_text.len() == queries.rows(),
        "bundled data mismatch"
    );
    println!(
        "Quarry quickstart: {} WordNet glosses, {}-d all-MiniLM-L6-v2 embeddings, cosine metric",
        base.rows(),
        base.dim()
    );

    let t = Instant::now();
    let index = FlatIndex::build(&base, Metric::Cosine, FlatParams::default())?;
    println!(
        "Built a flat (exact) index in {:.1} ms: {:.1} MB, {} kernels\n",
        t.elapsed().as_secs_f64() * 1e3,
        index.memory_bytes() as f64 / 1e6,
        quarry_linalg::detected_isa().name()
    );

    let t = Instant::now();
    let graph = HnswIndex::build(&base, Metric::Cosine, HnswParams::default())?;
    let searcher = graph.searcher(HnswSearch::ef(64));
    println!(
        "Built an HNSW graph index in {:.2} s (m = {}, beam 64 at query time)\n",
        t.elapsed().as_secs_f64(),
        HnswParams::default().m
    );

    let k = a.k.max(1);
    question(&a.question, &base_text, &searcher, k)?;
    for (qi, q) in queries.iter().enumerate().take(a.examples) {
        let t = Instant::now();
        let hits = index.search(q, &SearchParams::top(k))?;
        println!(
            "Query {qi}: {}   ({:.2} ms)",
            snippet(&query_text[qi], 100),
            t.elapsed().as_secs_f64() * 1e3
        );
        for (rank, h) in hits.iter().enumerate() {
            println!("  {:>2}. {:.3}  {}", rank + 1, h.score, snippet(&base_text[h.id as usize], 96));
        }
        println!();
    }

    // Check every query's top-10 against the f64 oracle (tie-robust: equal scores count).
    let k10 = 10.min(index.len());
    let pb = progress::bar(queries.rows() as u64, "checking", false);
    let t = Instant::now();
    let results = index.search_batch(&queries, &SearchParams::top(k10))?;
    let batch_ms = t.elapsed().as_secs_f64() * 1e3;
    let t = Instant::now();
    let graph_results = searcher.search_batch(&queries, &SearchParams::top(k10))?;
    let graph_ms = t.elapsed().as_secs_f64() * 1e3;
    let (mut plain, mut robust, mut graph_plain) = (0usize, 0usize, 0usize);
    for ((q, hits), ghits) in queries.iter().zip(&results).zip(&graph_results) {
        let (truth, kth) = exact_f64(&base, q, k10);
        plain += hits.iter().filter(|h| truth.contains(&h.id)).count();
        robust += hits.iter().filter(|h| cosine_f64(q, base.row(h.id as usize)) >= kth - 1e-6).count();
        graph_plain += ghits.iter().filter(|h| truth.contains(&h.id)).count();
        pb.inc(1);
    }
    pb.finish_and_clear();
    let denom = (k10 * queries.rows()).max(1) as f64;
    println!(
        "Recall@10 against an independent f64 exact scan, over all {} queries: flat {:.4} (tie-robust \
         {:.4}), HNSW {:.4}",
        queries.rows(),
        plain as f64 / denom,
        robust as f64 / denom,
        graph_plain as f64 / denom
    );
    println!(
        "Batch search of {} queries: flat {:.1} ms, HNSW {:.1} ms. Total time {:.2} s.",
        queries.rows(),
        batch_ms,
        graph_ms,
        t0.elapsed().as_secs_f64()
    );
    println!(
        "\nNext:\n  \
         quarry ingest --dir kb --collection notes --files ~/notes     # your own documents, chunked\n  \
         quarry context --dir kb --collection notes --query \"…\"       # the best passages, for an LLM\n  \
         quarry collection --help                                      # collections: create, list, info\n  \
         quarry serve --data kb                                        # HTTP: Qdrant's REST dialect, /console/\n  \
         pip install -v ./crates/quarry-py                             # Python: import quarry\n  \
         quarry bench ann --help · quarry eval --help                  # measure speed and relevance"
    );
    Ok(())
}

/// Answers `text` over the graph: embedded by all-MiniLM-L6-v2 when it is installed (the model
/// that embedded the glosses), else ranked by BM25 over the glosses' words.
fn question(text: &str, glosses: &[String], searcher: &dyn VectorIndex, k: usize) -> Result<()> {
    let t = Instant::now();
    match quarry_text::locate::installed_model_dir("all-MiniLM-L6-v2") {
        Ok(dir) => {
            let model = quarry_text::SentenceEncoder::load(&dir)?;
            let q = model.encode(&[text], 1)?;
            let hits = searcher.search(q.row(0), &SearchParams::top(k))?;
            println!(
                "Question: {text}   (model loaded, question embedded by all-MiniLM-L6-v2 and searched on the graph: {:.1} ms)",
                t.elapsed().as_secs_f64() * 1e3
            );
            for (rank, h) in hits.iter().enumerate() {
                println!("  {:>2}. {:.3}  {}", rank + 1, h.score, snippet(&glosses[h.id as usize], 96));
            }
        }
        Err(_) => {
            let spec = quarry_text::AnalyzerConfig::default();
            let mut bm25 =
                quarry_text::Bm25Index::new(quarry_text::Analyzer::new(&spec)?, Default::default())?;
            for g in glosses {
                bm25.insert(g);
            }
            let hits = bm25.search(text, k, None);
            println!(
                "Question: {text}   (BM25 over the glosses' words: {:.1} ms; `bash scripts/fetch_model.sh` \
                 installs the model for answers by meaning)",
                t.elapsed().as_secs_f64() * 1e3
            );
            for (rank, (id, score)) in hits.iter().enumerate() {
                println!("  {:>2}. {score:.3}  {}", rank + 1, snippet(&glosses[*id as usize], 96));
            }
        }
    }
    println!();
    Ok(())
}
