//! `quarry beir`: builds a text collection from a BEIR folder through the engine (documents as
//! `title + " " + text`, embedded and BM25-indexed), runs the split's queries dense, BM25 or
//! hybrid, writes the TREC run and prints trec_eval measures with indexing and query timings.

use crate::progress;
use anyhow::{bail, Context, Result};
use quarry_engine::{Database, PassageMode, PointId, TextDoc, TextMode, TextQuery, TextSpec};
use quarry_eval::trec::{evaluate, EvalOptions, Measure, Run};
use quarry_rank::fusion::Fusion;
use serde_json::{json, Map, Value};
use std::path::PathBuf;
use std::time::Instant;

/// Arguments of `quarry beir`.
#[derive(clap::Args)]
pub struct Args {
    /// BEIR folder (`corpus.jsonl`, `queries.jsonl`, `qrels/<split>.tsv`).
    #[arg(long)]
    dataset: PathBuf,
    /// Judgement split.
    #[arg(long, default_value = "test")]
    split: String,
    /// Sentence model (folder or name) for dense and hybrid modes.
    #[arg(long, default_value = "all-MiniLM-L6-v2")]
    model: String,
    /// Ranking: dense, bm25 or hybrid.
    #[arg(long, default_value = "hybrid")]
    mode: TextMode,
    /// Hybrid fusion: weighted (convex combination of normalised scores) or rrf.
    #[arg(long, default_value = "weighted")]
    fusion: String,
    /// RRF rank offset.
    #[arg(long, default_value_t = 60.0)]
    rrf_k: f64,
    /// Weighted fusion: dense and BM25 weights.
    #[arg(long, default_value = "0.5,0.5")]
    weights: String,
    /// Weighted fusion: per-list normalisation (minmax, zscore or none).
    #[arg(long, default_value = "minmax")]
    norm: String,
    /// Vector index of the collection: hnsw, hnsw+sq8 or flat (exact).
    #[arg(long, default_value = "hnsw")]
    index: String,
    /// Graph beam of dense searches.
    #[arg(long, default_value_t = 200)]
    ef: usize,
    /// BM25 k1.
    #[arg(long, default_value_t = 1.2)]
    k1: f32,
    /// BM25 b.
    #[arg(long, default_value_t = 0.75)]
    b: f32,
    /// Long documents: truncate (the first window only: the published BEIR protocol, so the
    /// default here) or max (best of overlapping passages, the text collections' default).
    #[arg(long, default_value = "truncate")]
    passages: String,
    /// Results per query (the run's depth; also the candidates per list before fusion).
    #[arg(short = 'k', long = "k", default_value_t = 100)]
    k: usize,
    /// Documents per durable write while indexing.
    #[arg(long, default_value_t = 256)]
    batch: usize,
    /// Database folder (default: a temporary folder, removed at the end).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Reuse the collection already built in --dir (same settings) instead of rebuilding it.
    #[arg(long, requires = "dir")]
    reuse: bool,
    /// Write the TREC run here.
    #[arg(long)]
    run_out: Option<PathBuf>,
    /// One JSON object on stdout instead of a table.
    #[arg(long)]
    json: bool,
}

fn fusion_of(a: &Args) -> Result<Fusion> {
    let f = crate::commands::fuse::parse_fusion(&a.fusion, a.rrf_k, Some(&a.weights), &a.norm)?;
    match &f {
        Fusion::Weighted { weights, .. } if weights.len() != 2 => {
            bail!("--weights takes two values: dense,bm25")
        }
        Fusion::Rrf { .. } | Fusion::Weighted { .. } => Ok(f),
        _ => bail!("--fusion {:?}: use weighted or rrf", a.fusion),
    }
}

/// Runs `quarry beir`.
pub fn run(a: Args) -> Result<()> {
    let fusion = fusion_of(&a)?;
    if a.batch == 0 || a.k == 0 {
        bail!("--batch and -k must be at least 1");
    }
    let data = quarry_eval::io::beir::read_beir(&a.dataset, &a.split)
        .with_context(|| format!("reading BEIR folder {}", a.dataset.display()))?;
    let name = a.dataset.file_name().map_or("beir".into(), |n| n.to_string_lossy().to_string());
    let (dir, temp) = match &a.dir {
        Some(d) => (d.clone(), false),
        None => (std::env::temp_dir().join(format!("quarry-beir-{}", std::process::id())), true),
    };
    let result = run_in(&a, &data, &name, &dir, fusion);
    if temp {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

fn run_in(
    a: &Args,
    data: &quarry_eval::io::beir::BeirDataset,
    name: &str,
    dir: &std::path::Path,
    fusion: Fusion,
) -> Result<()> {
    let dense = a.mode != TextMode::Bm25;
    let db = Database::open(dir).with_context(|| format!("opening {}", dir.display()))?;
    let col_name = "beir";
    let mut spec = TextSpec::new(dense.then(|| a.model.clone()));
    spec.bm25 = quarry_text::Bm25Params { k1: a.k1, b: a.b };
    spec.passages.mode = match a.passages.as_str() {
        "max" => PassageMode::Max,
        "truncate" => PassageMode::Truncate,
        p => bail!("--passages {p:?}: use max or truncate"),
    };
    let t_index = Instant::now();
    let col = if a.reuse && db.collection_names().iter().any(|n| n == col_name) {
        let col = db.text_collection(col_name)?;
        if col.spec() != &spec {
            bail!("the collection in {} was built with other settings: {:?}", dir.display(), col.spec());
        }
        col
    } else {
        let col = db.create_text_collection(col_name, spec, &a.index)?;
        let bar = progress::bar(data.corpus.len() as u64, "indexing", a.json);
        for (c, chunk) in data.corpus.chunks(a.batch).enumerate() {
            let docs: Vec<TextDoc> = chunk
                .iter()
                .enumerate()
                .map(|(i, d)| {
                    let mut payload = Map::new();
                    payload.insert("_id".into(), Value::String(d.id.clone()));
                    payload.insert("title".into(), Value::String(d.title.clone()));
                    let text =
                        if d.title.is_empty() { d.text.clone() } else { format!("{} {}", d.title, d.text) };
                    TextDoc { id: PointId::Num((c * a.batch + i) as u64), text, payload }
                })
                .collect();
            col.upsert(docs)?;
            bar.inc(chunk.len() as u64);
        }
        bar.finish_and_clear();
        let spin = progress::bar(1, "graphs", a.json);
        col.optimize()?;
        spin.finish_and_clear();
        col
    };
    let index_s = t_index.elapsed().as_secs_f64();
    let doc_ids: Vec<&str> = data.corpus.iter().map(|d| d.id.as_str()).collect();
    let queries: Vec<_> = data.queries.iter().filter(|q| data.qrels.get(&q.id).is_some()).collect();
    let bar = progress::bar(queries.len() as u64, "querying", a.json);
    let mut run = Run::new();
    let mut lat = Vec::with_capacity(queries.len());
    let t_query = Instant::now();
    for q in &queries {
        let mut tq = TextQuery::new(&q.text, a.mode, a.k);
        tq.fusion = fusion.clone();
        tq.ef = a.ef.max(a.k);
        tq.with_payload = false;
        let t = Instant::now();
        let hits = col.search(&tq, None)?;
        lat.push(t.elapsed().as_secs_f64());
        let ranked: Vec<(&str, f64)> = hits
            .iter()
            .filter_map(|h| match h.id {
                PointId::Num(n) => doc_ids.get(n as usize).map(|d| (*d, h.score)),
                PointId::Uuid(_) => None,
            })
            .collect();
        run.insert_query(&q.id, &ranked)?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    let query_s = t_query.elapsed().as_secs_f64();
    if let Some(path) = &a.run_out {
        quarry_eval::trec::write_run(path, &run, "quarry")?;
    }
    let measures = Measure::parse_list("ndcg_cut_10,recall_100,recip_rank,map")?;
    let eval = evaluate(&data.qrels, &run, &measures, &EvalOptions::default());
    lat.sort_by(f64::total_cmp);
    let p50 = lat.get(lat.len() / 2).copied().unwrap_or(0.0) * 1e3;
    let mut out = json!({
        "engine": "quarry",
        "dataset": name,
        "mode": a.mode,
        "fusion": if a.mode == TextMode::Hybrid { a.fusion.as_str() } else { "" },
        "index": if dense { a.index.as_str() } else { "" },
        "passages": a.passages,
        "k1": f64::from(a.k1 * 1000.0).round() / 1000.0,
        "b": f64::from(a.b * 1000.0).round() / 1000.0,
        "docs": col.count(),
        "extra_passages": col.extra_passages(),
        "queries": queries.len(),
        "index_s": index_s,
        "query_s": query_s,
        "qps": queries.len() as f64 / query_s.max(1e-9),
        "p50_ms": p50,
        "threads": rayon::current_num_threads(),
    });
    for (m, v) in &eval.mean {
        out[m.as_str()] = json!(v);
    }
    if a.json {
        println!("{out}");
    } else {
        println!("{name} ({} documents, {} queries), mode {:?}", col.count(), queries.len(), a.mode);
        for (m, v) in &eval.mean {
            println!("  {m:<12} {v:.4}");
        }
        println!(
            "  indexing {index_s:.1} s, querying {query_s:.2} s ({:.0} queries/s, p50 {p50:.2} ms)",
            queries.len() as f64 / query_s.max(1e-9)
        );
    }
    Ok(())
}
