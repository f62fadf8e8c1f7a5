//! `quarry search`: top-k for every query of a file, written as a TREC run.

use crate::{load, progress};
use anyhow::{Context, Result};
use quarry_ann::Storage;
use quarry_core::{Metric, SearchParams, VectorIndex};
use quarry_eval::trec::RunWriter;
use std::path::PathBuf;
use std::time::Instant;

/// Arguments of `quarry search`.
#[derive(clap::Args)]
pub struct Args {
    /// Base vectors (.fvecs, .bvecs, .npy f32/f16, .jsonl).
    #[arg(long, required_unless_present = "dir")]
    base: Option<PathBuf>,
    /// Query vectors (same formats).
    #[arg(long, required_unless_present = "dir")]
    query: Option<PathBuf>,
    /// Collection mode: a database folder (with --collection and --vector-file).
    #[arg(long, requires = "collection")]
    dir: Option<PathBuf>,
    /// Collection mode: the collection to search.
    #[arg(long, requires = "dir")]
    collection: Option<String>,
    /// Collection mode: query vectors (.fvecs, .npy, ...).
    #[arg(long, requires = "dir")]
    vector_file: Option<PathBuf>,
    /// Collection mode: a query text (text collections; repeat for several texts of one need,
    /// fused).
    #[arg(long, requires = "dir")]
    text: Vec<String>,
    /// Text queries: dense, bm25 or hybrid (default: hybrid with a model, else bm25).
    #[arg(long, requires = "text")]
    mode: Option<quarry_engine::TextMode>,
    /// Text queries: show each hit's score components.
    #[arg(long, requires = "text")]
    explain: bool,
    /// Text queries: return only hits whose calibrated relevance probability reaches this
    /// (`auto`: the threshold stored by `quarry calibrate`); hits then show it.
    #[arg(long, requires = "text")]
    min_relevance: Option<String>,
    /// Text queries: re-score dense candidates by the fitted hubness correction.
    #[arg(long, requires = "text")]
    hubness: bool,
    /// Text queries: re-rank the first --rerank-depth hits with this cross-encoder (folder or
    /// name), a cascade's last stage.
    #[arg(long, requires = "text")]
    rerank: Option<String>,
    /// Text queries: hits re-ranked.
    #[arg(long, default_value_t = 20, requires = "rerank")]
    rerank_depth: usize,
    /// Text queries: weight of the cross-encoder against the first stage's score in the
    /// re-ranked head (1: the cross-encoder alone; 0.5, an equal mix, beat both on SciFact).
    #[arg(long, default_value_t = 0.5, requires = "rerank")]
    rerank_blend: f64,
    /// Text queries: embed them with this (new) model and map them into the collection's space
    /// (`quarry align` fitted the map).
    #[arg(long, requires = "text")]
    query_model: Option<String>,
    /// Text queries, hybrid mode: how the dense and BM25 lists are fused — weighted (min-max
    /// normalised scores, --weights, default 0.5,0.5) or rrf (--rrf-k); default: the fusion
    /// fitted by `quarry tune-fusion`, else weighted.
    #[arg(long, requires = "text", value_parser = ["weighted", "rrf"])]
    fusion: Option<String>,
    /// Text queries, `--fusion weighted`: the dense and BM25 weights, comma-separated.
    #[arg(long, requires = "fusion")]
    weights: Option<String>,
    /// Text queries, `--fusion rrf`: the rank offset.
    #[arg(long, default_value_t = 60.0, requires = "fusion")]
    rrf_k: f64,
    /// Collection mode: the vector field (default: the only one).
    #[arg(long)]
    field: Option<String>,
    /// Collection mode: a payload filter (Qdrant's JSON dialect).
    #[arg(long)]
    filter: Option<String>,
    /// Collection mode: one JSON object per query on stdout.
    #[arg(long)]
    json: bool,
    /// Collection mode: graph beam width in sealed segments (default 100, at least k).
    #[arg(long)]
    ef: Option<usize>,
    /// Collection mode: rank compressed graphs (`hnsw+<codes>`) by their codes alone, with
    /// estimated scores and no row read from disk (Qdrant's `rescore: false`).
    #[arg(long)]
    no_rescore: bool,
    /// Index kind.
    #[arg(long, default_value = "flat")]
    index: String,
    /// Similarity metric: ip, cosine or l2.
    #[arg(long, default_value = "ip")]
    metric: Metric,
    /// Results per query (default: 10 from a collection, 100 into a TREC run file).
    #[arg(short = 'k', long = "k")]
    k: Option<usize>,
    /// Output TREC run file.
    #[arg(long, required_unless_present = "dir")]
    out: Option<PathBuf>,
    /// Document ids, one per line in base order (default: row numbers from 0).
    #[arg(long)]
    base_ids: Option<PathBuf>,
    /// Query ids, one per line in query order (default: row numbers from 0).
    #[arg(long)]
    query_ids: Option<PathBuf>,
    /// Run tag written in the last column.
    #[arg(long, default_value = "quarry")]
    tag: String,
    /// Stored element type (f32, f16).
    #[arg(long, default_value = "f32")]
    storage: Storage,
    /// Search threads (0 = one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
}

/// Runs `quarry search`.
pub fn run(a: Args) -> Result<()> {
    if let (Some(dir), Some(collection)) = (&a.dir, &a.collection) {
        let k = a.k.unwrap_or(10);
        if !a.text.is_empty() {
            return crate::commands::db::search_text(
                dir,
                collection,
                &a.text,
                a.mode,
                k,
                a.filter.as_deref(),
                a.explain,
                a.json,
                &crate::commands::db::TextExtras {
                    min_relevance: a.min_relevance.clone(),
                    hubness: a.hubness,
                    query_model: a.query_model.clone(),
                    rerank: a.rerank.clone().map(|m| (m, a.rerank_depth)),
                    rerank_blend: a.rerank_blend,
                    fusion: match &a.fusion {
                        Some(m) => Some(crate::commands::fuse::parse_fusion(
                            m,
                            a.rrf_k,
                            Some(a.weights.as_deref().unwrap_or("0.5,0.5")),
                            "minmax",
                        )?),
                        None => None,
                    },
                },
            );
        }
        let Some(vectors) = &a.vector_file else {
            anyhow::bail!("--dir needs --vector-file (query vectors) or --text (a text collection)")
        };
        return crate::commands::db::search_collection(
            dir,
            collection,
            vectors,
            a.field.as_deref(),
            k,
            a.filter.as_deref(),
            a.json,
            quarry_engine::SearchOptions {
                ef: a.ef.unwrap_or(quarry_engine::collection::DEFAULT_EF).max(k).max(1),
                with_payload: true,
                rescore: !a.no_rescore,
                candidates: None,
            },
        );
    }
    let (Some(base), Some(query), Some(out_path)) = (&a.base, &a.query, &a.out) else {
        anyhow::bail!(
            "quarry search needs --base, --query and --out (or --dir, --collection and --vector-file)"
        );
    };
    load::check_index_kind(&a.index)?;
    let (index, build) = load::flat_index(base, a.metric, a.storage)?;
    let queries = load::queries(query, None)?;
    load::check_dims(&index, &queries, base, query)?;
    let doc_ids = match &a.base_ids {
        Some(p) => load::id_list(p, index.len(), "base")?,
        None => (0..index.len()).map(|i| i.to_string()).collect(),
    };
    let query_ids = match &a.query_ids {
        Some(p) => load::id_list(p, queries.rows(), "query")?,
        None => (0..queries.rows()).map(|i| i.to_string()).collect(),
    };
    let t = Instant::now();
    let results = progress::pool(a.threads)?
        .install(|| index.search_batch(&queries, &SearchParams::top(a.k.unwrap_or(100))))?;
    let secs = t.elapsed().as_secs_f64();
    let pb = progress::bar(results.len() as u64, "writing", false);
    let mut out =
        RunWriter::create(out_path, &a.tag).with_context(|| format!("creating {}", out_path.display()))?;
    for (qid, hits) in query_ids.iter().zip(&results) {
        let ranked: Vec<(&str, f32)> =
            hits.iter().map(|h| (doc_ids[h.id as usize].as_str(), h.score)).collect();
        out.write_query(qid, &ranked)?;
        pb.inc(1);
    }
    out.finish()?;
    pb.finish_and_clear();
    eprintln!(
        "searched {} queries over {} vectors ({}-d, {}, {} index) in {:.2}s after a {:.2}s build; wrote {}",
        queries.rows(),
        index.len(),
        index.dim(),
        a.metric,
        a.index,
        secs,
        build,
        out_path.display()
    );
    Ok(())
}
