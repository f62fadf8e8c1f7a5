//! `quarry quickstart`: a one-minute tour on data shipped inside the binary.
//!
//! 4,000 WordNet 3.0 glosses with their all-MiniLM-L6-v2 embeddings (see
//! `data/quickstart/LICENSE-WordNet`) are indexed; a few example queries (other glosses, embedded
//! with the same model) print their nearest glosses; finally every query's top-10 is checked
//! against an independent f64 exact scan and the recall is reported.

use crate::progress;
use anyhow::{Context, Result};
use quarry_ann::{FlatIndex, FlatParams};
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
    #[arg(long, default_value_t = 5)]
    examples: usize,
    /// Results per example query.
    #[arg(short = 'k', long = "k", default_value_t = 5)]
    k: usize,
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

    let k = a.k.max(1);
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
    let (mut plain, mut robust) = (0usize, 0usize);
    for (q, hits) in queries.iter().zip(&results) {
        let (truth, kth) = exact_f64(&base, q, k10);
        plain += hits.iter().filter(|h| truth.contains(&h.id)).count();
        robust += hits.iter().filter(|h| cosine_f64(q, base.row(h.id as usize)) >= kth - 1e-6).count();
        pb.inc(1);
    }
    pb.finish_and_clear();
    let denom = (k10 * queries.rows()).max(1) as f64;
    println!(
        "Recall@10 of the index against an independent f64 exact scan, over all {} queries: {:.4} \
         (tie-robust {:.4})",
        queries.rows(),
        plain as f64 / denom,
        robust as f64 / denom
    );
    println!(
        "Batch search of {} queries: {:.1} ms. Total time {:.2} s.",
        queries.rows(),
        batch_ms,
        t0.elapsed().as_secs_f64()
    );
    println!("\nNext: `quarry bench ann --help`, `quarry search --help`, `quarry eval --help`.");
    Ok(())
}
