//! `quarry beir`: builds a text collection from a BEIR folder through the engine (documents as
//! `title + " " + text`, embedded and BM25-indexed), runs the split's queries dense, BM25 or
//! hybrid, writes the TREC run and prints trec_eval measures with indexing and query timings.

use crate::progress;
use anyhow::{bail, Context, Result};
use quarry_engine::{Database, PassageMode, PointId, TextCollection, TextDoc, TextMode, TextQuery, TextSpec};
use quarry_eval::trec::{evaluate, EvalOptions, Measure, Qrels, Run};
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
    /// Calibrated cut-off: fit the mode's relevance calibration on the odd-numbered judged
    /// queries, then run the even-numbered ones with and without `min_relevance` and report
    /// precision of the returned hits and recall@100 (stored in the collection).
    #[arg(long)]
    calibrate: bool,
    /// With --calibrate: fraction of the fit queries' relevant hits the threshold keeps.
    #[arg(long, default_value_t = 0.99)]
    keep: f64,
    /// With --calibrate: this cut-off instead of the fitted threshold.
    #[arg(long)]
    min_relevance: Option<f64>,
    /// Hubness correction: qb (QB-Norm) or db (DBNorm), fitted on a bank of queries (--bank, or
    /// the dataset's queries without judgements in the split); reports nDCG@10 and the
    /// k-occurrence skewness of the dense top 10 with and without it.
    #[arg(long)]
    hubness: Option<String>,
    /// Hubness: share of the inverted-softmax penalty applied, in (0, 1].
    #[arg(long, default_value_t = 0.2)]
    hubness_strength: f64,
    /// Hubness: query-bank temperature (default 20 for qb, 1/1.99 for db).
    #[arg(long)]
    hubness_beta: Option<f64>,
    /// Hubness: dynamic variant (only queries whose top hit some bank query ranks first).
    #[arg(long)]
    hubness_dynamic: bool,
    /// Hubness: a file of bank queries (BEIR queries JSONL or lines).
    #[arg(long)]
    bank: Option<PathBuf>,
    /// Model upgrade: a new model whose queries search this collection (embedded by --model)
    /// through an orthogonal map fitted on --align-pairs documents; reports nDCG@10 of new-model
    /// queries with and without the map against the old model's own (dense mode).
    #[arg(long)]
    query_model: Option<String>,
    /// Model upgrade: documents embedded by both models to fit the map.
    #[arg(long, default_value_t = 1000)]
    align_pairs: usize,
    /// Model upgrade: a plain orthogonal map instead of the centred one.
    #[arg(long)]
    align_plain: bool,
    /// Model upgrade: the new model's query prefix (bge: "Represent this sentence for searching
    /// relevant passages: ").
    #[arg(long, default_value = "")]
    query_prefix_new: String,
    /// Cascade: re-rank the first --rerank-depth hits of every query with this cross-encoder
    /// (folder or name) and report nDCG@10 with the latency of each stage.
    #[arg(long)]
    rerank: Option<String>,
    /// Fusion fitted on judged queries: choose the hybrid fusion on the odd-numbered judged
    /// queries (`TextCollection::fit_fusion`), then report nDCG@10 of the even-numbered ones
    /// with it, with the default, with RRF and with each side alone.
    #[arg(long)]
    fit_fusion: bool,
    /// Pseudo-relevance feedback: also run the queries with Rocchio (dense) and RM3 (BM25) from
    /// the first pass's top --feedback-docs documents, and report its nDCG@10.
    #[arg(long)]
    feedback: bool,
    /// Feedback documents.
    #[arg(long, default_value_t = 10)]
    feedback_docs: usize,
    /// Cascade: hits re-ranked per query.
    #[arg(long, default_value_t = 20)]
    rerank_depth: usize,
    /// Routing among experts instead of one run: expert models, comma-separated, each a dense
    /// collection of the corpus named `route-<model>` (`bm25` names BM25 over the first one's).
    /// Pilots are fitted on the odd-numbered judged queries (a query's domain is its id before
    /// a `/`, as scripts/mix_beir.py writes them); the even-numbered ones are run by each expert
    /// alone, routed (mean and max rules), fused over all experts (RRF) and by the per-query
    /// oracle, with nDCG@10 per domain and the cost per query.
    #[arg(long, value_delimiter = ',')]
    route: Vec<String>,
    /// Routing: the base encoder (default: the first expert's model).
    #[arg(long)]
    router_model: Option<String>,
    /// Routing: pilots (k-means centroids) per domain and expert.
    #[arg(long, default_value_t = 1)]
    route_k: usize,
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
    if !a.route.is_empty() {
        let out = route_report(a, &db, data, name, dir)?;
        if a.json {
            println!("{out}");
        } else {
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        return Ok(());
    }
    let col_name = "beir";
    let spec = text_spec(a, dense.then(|| a.model.clone()))?;
    let t_index = Instant::now();
    let col = build_or_reuse(a, &db, col_name, spec, data, dir)?;
    let index_s = t_index.elapsed().as_secs_f64();
    let doc_ids: Vec<&str> = data.corpus.iter().map(|d| d.id.as_str()).collect();
    let queries: Vec<_> = data.queries.iter().filter(|q| data.qrels.get(&q.id).is_some()).collect();
    let doc_name = |id: PointId| match id {
        PointId::Num(n) => doc_ids.get(n as usize).map(|d| d.to_string()),
        PointId::Uuid(_) => None,
    };
    let base = |text: &str| {
        let mut tq = TextQuery::new(text, a.mode, a.k);
        tq.fusion = Some(fusion.clone());
        tq.ef = a.ef.max(a.k);
        tq.with_payload = false;
        tq
    };
    let t_query = Instant::now();
    let (run, mut lat) = run_queries(&col, &queries, &base, &doc_ids, "querying", a.json)?;
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
    let text_queries: Vec<(String, String)> =
        queries.iter().map(|q| (q.id.clone(), q.text.clone())).collect();
    if a.calibrate {
        out["calibration"] =
            calibration_report(a, &col, &text_queries, &data.qrels, &doc_name, &base, &doc_ids)?;
    }
    if let Some(method) = &a.hubness {
        out["hubness"] = hubness_report(a, method, &col, data, &queries, &measures, &base, &doc_ids)?;
    }
    if a.feedback {
        let with = |text: &str| {
            let mut tq = base(text);
            tq.feedback = Some(quarry_engine::Feedback { docs: a.feedback_docs, ..Default::default() });
            tq
        };
        let (run, lat) = run_queries(&col, &queries, &with, &doc_ids, "feedback", a.json)?;
        let e = evaluate(&data.qrels, &run, &measures, &EvalOptions::default());
        let mut fb = json!({"docs": a.feedback_docs, "mean_ms": lat.iter().sum::<f64>() / lat.len().max(1) as f64 * 1e3});
        for (m, v) in &e.mean {
            fb[m.as_str()] = json!(v);
        }
        out["feedback"] = fb;
    }
    if a.fit_fusion {
        out["fusion_fit"] = fusion_report(a, &col, data, &queries, &measures, &doc_ids)?;
    }
    if let Some(model) = &a.rerank {
        out["cascade"] = cascade_report(a, model, &db, &col, data, &queries, &measures, &base, &doc_ids)?;
    }
    if let Some(model) = &a.query_model {
        out["upgrade"] = upgrade_report(a, model, &db, &col, data, &queries, &measures, &base, &doc_ids)?;
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
        for key in ["calibration", "hubness", "upgrade", "cascade", "fusion_fit", "feedback"] {
            if let Some(v) = out.get(key) {
                println!("  {key}: {}", serde_json::to_string_pretty(v)?);
            }
        }
    }
    Ok(())
}

/// The text settings of the run's collections: `model` (none: BM25 only), --k1, --b, --passages.
fn text_spec(a: &Args, model: Option<String>) -> Result<TextSpec> {
    let mut spec = TextSpec::new(model);
    spec.bm25 = quarry_text::Bm25Params { k1: a.k1, b: a.b };
    spec.passages.mode = match a.passages.as_str() {
        "max" => PassageMode::Max,
        "truncate" => PassageMode::Truncate,
        p => bail!("--passages {p:?}: use max or truncate"),
    };
    Ok(spec)
}

/// The text collection `name` of `data`'s corpus with `spec`: reused from `dir` with `--reuse`
/// when it was built with the same settings, else built (documents as `title + " " + text`,
/// point ids in corpus order, payload `_id` and `title`).
fn build_or_reuse(
    a: &Args,
    db: &Database,
    name: &str,
    spec: TextSpec,
    data: &quarry_eval::io::beir::BeirDataset,
    dir: &std::path::Path,
) -> Result<std::sync::Arc<TextCollection>> {
    if a.reuse && db.collection_names().iter().any(|n| n == name) {
        let col = db.text_collection(name)?;
        if col.spec() != &spec {
            bail!(
                "the collection {name} in {} was built with other settings: {:?}",
                dir.display(),
                col.spec()
            );
        }
        return Ok(col);
    }
    let col = db.create_text_collection(name, spec, &a.index)?;
    let bar = progress::bar(data.corpus.len() as u64, &format!("indexing {name}"), a.json);
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
    Ok(col)
}

type Queries<'a> = [&'a quarry_eval::io::beir::BeirQuery];

/// Runs `queries` built by `make`, as a TREC run with per-query latencies.
fn run_queries(
    col: &TextCollection,
    queries: &Queries<'_>,
    make: &dyn Fn(&str) -> TextQuery,
    doc_ids: &[&str],
    label: &str,
    quiet: bool,
) -> Result<(Run, Vec<f64>)> {
    let bar = progress::bar(queries.len() as u64, label, quiet);
    let mut run = Run::new();
    let mut lat = Vec::with_capacity(queries.len());
    for q in queries {
        let tq = make(&q.text);
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
    Ok((run, lat))
}

/// Precision of returned hits (micro and per-query mean), recall@depth and hits per query.
fn cut_measures(run: &Run, qrels: &Qrels, ids: &[String]) -> Value {
    let (mut ret, mut rel_ret, mut prec_sum, mut rec_sum, mut n) = (0usize, 0usize, 0.0, 0.0, 0usize);
    for qid in ids {
        let Some(judged) = qrels.get(qid) else { continue };
        let relevant = judged.values().filter(|g| **g > 0).count();
        let hits = run.get(qid).unwrap_or(&[]);
        let found = hits.iter().filter(|(d, _)| judged.get(d).is_some_and(|g| *g > 0)).count();
        ret += hits.len();
        rel_ret += found;
        prec_sum += if hits.is_empty() { 0.0 } else { found as f64 / hits.len() as f64 };
        rec_sum += if relevant == 0 { 0.0 } else { found as f64 / relevant as f64 };
        n += 1;
    }
    let n = n.max(1) as f64;
    json!({
        "precision": rel_ret as f64 / ret.max(1) as f64,
        "precision_per_query": prec_sum / n,
        "recall": rec_sum / n,
        "hits_per_query": ret as f64 / n,
    })
}

fn calibration_report(
    a: &Args,
    col: &TextCollection,
    queries: &[(String, String)],
    qrels: &Qrels,
    doc_name: super::quality::DocName<'_>,
    base: &dyn Fn(&str) -> TextQuery,
    doc_ids: &[&str],
) -> Result<Value> {
    let fit: Vec<(String, String)> = queries.iter().skip(1).step_by(2).cloned().collect();
    let eval: Vec<(String, String)> = queries.iter().step_by(2).cloned().collect();
    let t = Instant::now();
    let (cal, report) = super::quality::fit_calibration(col, &fit, qrels, a.mode, a.k, a.keep, doc_name)?;
    let fit_s = t.elapsed().as_secs_f64();
    let threshold = a.min_relevance.unwrap_or(cal.threshold);
    let eval_q: Vec<quarry_eval::io::beir::BeirQuery> = eval
        .iter()
        .map(|(id, text)| quarry_eval::io::beir::BeirQuery { id: id.clone(), text: text.clone() })
        .collect();
    let refs: Vec<&quarry_eval::io::beir::BeirQuery> = eval_q.iter().collect();
    let ids: Vec<String> = eval.iter().map(|q| q.0.clone()).collect();
    let (raw, raw_lat) = run_queries(col, &refs, base, doc_ids, "uncut", a.json)?;
    let cut_query = |text: &str| {
        let mut tq = base(text);
        tq.min_relevance = Some(threshold);
        tq
    };
    let (cut, cut_lat) = run_queries(col, &refs, &cut_query, doc_ids, "cut", a.json)?;
    let (r, c) = (cut_measures(&raw, qrels, &ids), cut_measures(&cut, qrels, &ids));
    let ratio = |k: &str| c[k].as_f64().unwrap_or(0.0) / r[k].as_f64().unwrap_or(1.0).max(1e-12);
    let mean = |l: &[f64]| l.iter().sum::<f64>() / l.len().max(1) as f64 * 1e3;
    Ok(json!({
        "fit_queries": fit.len(),
        "eval_queries": eval.len(),
        "features": cal.features.iter().map(|f| f.name()).collect::<Vec<_>>(),
        "threshold": threshold,
        "fit": report,
        "fit_s": fit_s,
        "uncut": r,
        "cut": c,
        "precision_gain": ratio("precision") - 1.0,
        "precision_per_query_gain": ratio("precision_per_query") - 1.0,
        "recall_loss": 1.0 - ratio("recall"),
        "mean_ms_uncut": mean(&raw_lat),
        "mean_ms_cut": mean(&cut_lat),
    }))
}

#[allow(clippy::too_many_arguments)]
fn hubness_report(
    a: &Args,
    method: &str,
    col: &TextCollection,
    data: &quarry_eval::io::beir::BeirDataset,
    queries: &Queries<'_>,
    measures: &[Measure],
    base: &dyn Fn(&str) -> TextQuery,
    doc_ids: &[&str],
) -> Result<Value> {
    let bank: Vec<String> = match &a.bank {
        Some(path) => crate::commands::bench::embed::read_texts(path)?,
        None => {
            data.queries.iter().filter(|q| data.qrels.get(&q.id).is_none()).map(|q| q.text.clone()).collect()
        }
    };
    if bank.len() < 100 {
        bail!(
            "hubness needs a bank of at least 100 queries: this split leaves {} unjudged; pass --bank",
            bank.len()
        );
    }
    let method = super::quality::method_of(method, a.hubness_beta, None, a.hubness_dynamic)?;
    let t = Instant::now();
    let report = col.fit_hubness(&bank, method, a.hubness_strength, quarry_engine::text::GALLERY_BANK)?;
    let fit_s = t.elapsed().as_secs_f64();
    let texts: Vec<String> = queries.iter().map(|q| q.text.clone()).collect();
    let skew_raw = col.skewness(&texts, 10, false)?;
    let skew_new = col.skewness(&texts, 10, true)?;
    let corrected = |text: &str| {
        let mut tq = base(text);
        tq.hubness = true;
        tq
    };
    let (run, lat) = run_queries(col, queries, &corrected, doc_ids, "hubness", a.json)?;
    let eval = evaluate(&data.qrels, &run, measures, &EvalOptions::default());
    let mut out = json!({
        "bank": bank.len(),
        "fit": report,
        "fit_s": fit_s,
        "skewness_dense_top10_raw": skew_raw,
        "skewness_dense_top10_corrected": skew_new,
        "mean_ms": lat.iter().sum::<f64>() / lat.len().max(1) as f64 * 1e3,
    });
    for (m, v) in &eval.mean {
        out[m.as_str()] = json!(v);
    }
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
fn upgrade_report(
    a: &Args,
    model: &str,
    db: &Database,
    col: &TextCollection,
    data: &quarry_eval::io::beir::BeirDataset,
    queries: &Queries<'_>,
    measures: &[Measure],
    base: &dyn Fn(&str) -> TextQuery,
    doc_ids: &[&str],
) -> Result<Value> {
    let enc = db.model(model)?;
    let t = Instant::now();
    let fit = col.fit_alignment(model, &enc, a.align_pairs, !a.align_plain, &a.query_prefix_new)?;
    let fit_s = t.elapsed().as_secs_f64();
    let texts: Vec<String> = queries.iter().map(|q| q.text.clone()).collect();
    let mapped = super::quality::aligned_vectors(db, col, model, &texts)?;
    let by_text: std::collections::HashMap<&str, &Vec<f32>> =
        texts.iter().map(String::as_str).zip(&mapped).collect();
    let ndcg = |run: &Run| {
        let e = evaluate(&data.qrels, run, measures, &EvalOptions::default());
        e.mean.iter().find(|(m, _)| m == "ndcg_cut_10").map_or(0.0, |(_, v)| *v)
    };
    let with_map = |text: &str| {
        let mut tq = base(text);
        tq.mode = TextMode::Dense;
        tq.vectors = by_text.get(text).map(|v| vec![(*v).clone()]);
        tq
    };
    let (run_map, lat) = run_queries(col, queries, &with_map, doc_ids, "new model, mapped", a.json)?;
    let old_only = |text: &str| {
        let mut tq = base(text);
        tq.mode = TextMode::Dense;
        tq
    };
    let (run_old, _) = run_queries(col, queries, &old_only, doc_ids, "old model", a.json)?;
    let (old, new_mapped) = (ndcg(&run_old), ndcg(&run_map));
    let mut out = json!({
        "model": model,
        "pairs": fit.pairs,
        "centred": !a.align_plain,
        "fit_mean_cosine": fit.mean_cosine,
        "fit_s": fit_s,
        "ndcg_cut_10_old_to_old": old,
        "ndcg_cut_10_new_to_old_mapped": new_mapped,
        "kept": new_mapped / old.max(1e-12),
        "mean_ms_mapped": lat.iter().sum::<f64>() / lat.len().max(1) as f64 * 1e3,
    });
    if enc.dim() == col.docs().schema().vectors[0].dim {
        // The same queries without the map: what the map buys (near chance for unrelated models).
        let raw: Vec<Vec<f32>> = {
            let with: Vec<String> = texts.iter().map(|t| format!("{}{t}", a.query_prefix_new)).collect();
            let refs: Vec<&str> = with.iter().map(String::as_str).collect();
            let m = enc.encode(&refs, 64)?;
            (0..m.rows()).map(|r| m.row(r).to_vec()).collect()
        };
        let raw_by: std::collections::HashMap<&str, &Vec<f32>> =
            texts.iter().map(String::as_str).zip(&raw).collect();
        let unmapped = |text: &str| {
            let mut tq = base(text);
            tq.mode = TextMode::Dense;
            tq.vectors = raw_by.get(text).map(|v| vec![(*v).clone()]);
            tq
        };
        let (run_raw, _) = run_queries(col, queries, &unmapped, doc_ids, "new model, unmapped", a.json)?;
        out["ndcg_cut_10_new_to_old_unmapped"] = json!(ndcg(&run_raw));
    }
    Ok(out)
}

/// Match (the run's mode) then re-rank the top hits with a cross-encoder: quality and the
/// latency of each stage.
#[allow(clippy::too_many_arguments)]
fn cascade_report(
    a: &Args,
    model: &str,
    db: &Database,
    col: &TextCollection,
    data: &quarry_eval::io::beir::BeirDataset,
    queries: &Queries<'_>,
    measures: &[Measure],
    base: &dyn Fn(&str) -> TextQuery,
    doc_ids: &[&str],
) -> Result<Value> {
    let t = Instant::now();
    let ce = db.reranker(model)?;
    let load_s = t.elapsed().as_secs_f64();
    let bar = progress::bar(queries.len() as u64, "re-ranking", a.json);
    const BLENDS: [f64; 6] = [1.0, 0.8, 0.6, 0.5, 0.4, 0.2];
    let mut runs: Vec<Run> = BLENDS.iter().map(|_| Run::new()).collect();
    let (mut match_s, mut rerank_s) = (Vec::new(), Vec::new());
    for q in queries {
        let t = Instant::now();
        let hits = col.search(&base(&q.text), None)?;
        match_s.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        let n = a.rerank_depth.min(hits.len());
        let logits = col.cross_scores(&q.text, &hits[..n], &ce)?;
        rerank_s.push(t.elapsed().as_secs_f64());
        for (blend, run) in BLENDS.iter().zip(runs.iter_mut()) {
            let ranked_hits = quarry_engine::text::blend_head(hits.clone(), &logits, *blend)?;
            let ranked: Vec<(&str, f64)> = ranked_hits
                .iter()
                .enumerate()
                .filter_map(|(i, h)| match h.id {
                    // Ranks, not mixed scales: the re-ranked head above the rest.
                    PointId::Num(n) => doc_ids.get(n as usize).map(|d| (*d, (ranked_hits.len() - i) as f64)),
                    PointId::Uuid(_) => None,
                })
                .collect();
            run.insert_query(&q.id, &ranked)?;
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let by_blend: serde_json::Map<String, Value> = BLENDS
        .iter()
        .zip(&runs)
        .map(|(b, run)| {
            let e = evaluate(&data.qrels, run, measures, &EvalOptions::default());
            let nd = e.mean.iter().find(|(m, _)| m == "ndcg_cut_10").map_or(0.0, |(_, v)| *v);
            (format!("{b:.1}"), json!(nd))
        })
        .collect();
    let run = &runs[0];
    let eval = evaluate(&data.qrels, run, measures, &EvalOptions::default());
    let mean_ms = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64 * 1e3;
    let mut out = json!({
        "reranker": model,
        "depth": a.rerank_depth,
        "ndcg_cut_10_by_blend": by_blend,
        "load_s": load_s,
        "match_ms": mean_ms(&match_s),
        "rerank_ms": mean_ms(&rerank_s),
    });
    for (m, v) in &eval.mean {
        out[m.as_str()] = json!(v);
    }
    Ok(out)
}

/// Fits the hybrid fusion on the odd-numbered judged queries and compares it on the others.
fn fusion_report(
    a: &Args,
    col: &TextCollection,
    data: &quarry_eval::io::beir::BeirDataset,
    queries: &Queries<'_>,
    measures: &[Measure],
    doc_ids: &[&str],
) -> Result<Value> {
    let fit: Vec<&quarry_eval::io::beir::BeirQuery> = queries.iter().skip(1).step_by(2).copied().collect();
    let eval: Vec<&quarry_eval::io::beir::BeirQuery> = queries.iter().step_by(2).copied().collect();
    let point_of: std::collections::HashMap<&str, PointId> =
        doc_ids.iter().enumerate().map(|(i, d)| (*d, PointId::Num(i as u64))).collect();
    let relevant: Vec<std::collections::HashSet<PointId>> = fit
        .iter()
        .map(|q| {
            data.qrels
                .get(&q.id)
                .map(|j| {
                    j.iter()
                        .filter(|(_, g)| **g > 0)
                        .filter_map(|(d, _)| point_of.get(d.as_str()).copied())
                        .collect()
                })
                .unwrap_or_default()
        })
        .collect();
    let texts: Vec<String> = fit.iter().map(|q| q.text.clone()).collect();
    let t = Instant::now();
    let (chosen, report) = col.fit_fusion(&texts, &relevant, a.k)?;
    let fit_s = t.elapsed().as_secs_f64();
    let ndcg = |mode: TextMode, fusion: Option<Fusion>| -> Result<f64> {
        let make = |text: &str| {
            let mut tq = TextQuery::new(text, mode, a.k);
            tq.fusion = fusion.clone();
            tq.ef = a.ef.max(a.k);
            tq.with_payload = false;
            tq
        };
        let (run, _) = run_queries(col, &eval, &make, doc_ids, "evaluating", true)?;
        let e = evaluate(&data.qrels, &run, measures, &EvalOptions::default());
        Ok(e.mean.iter().find(|(m, _)| m == "ndcg_cut_10").map_or(0.0, |(_, v)| *v))
    };
    Ok(json!({
        "fit_queries": fit.len(),
        "eval_queries": eval.len(),
        "chosen": chosen,
        "fit": report,
        "fit_s": fit_s,
        "eval_ndcg_cut_10": {
            "fitted": ndcg(TextMode::Hybrid, None)?,
            "default_weighted": ndcg(TextMode::Hybrid, Some(quarry_engine::text::default_hybrid_fusion()))?,
            "rrf": ndcg(TextMode::Hybrid, Some(Fusion::Rrf { k: 60.0 }))?,
            "dense": ndcg(TextMode::Dense, None)?,
            "bm25": ndcg(TextMode::Bm25, None)?,
        },
    }))
}

/// The collection name of routing expert `model`: `route-` and the model's folder name, with
/// characters a collection name cannot hold replaced by `-`.
fn expert_collection(model: &str) -> String {
    let base = std::path::Path::new(model)
        .file_name()
        .map_or(model.to_string(), |f| f.to_string_lossy().to_string());
    let clean: String = base
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '-' })
        .collect();
    format!("route-{clean}").chars().take(64).collect()
}

/// Routing among expert models (see `--route`).
fn route_report(
    a: &Args,
    db: &Database,
    data: &quarry_eval::io::beir::BeirDataset,
    name: &str,
    dir: &std::path::Path,
) -> Result<Value> {
    use quarry_engine::group::{GroupFitQuery, GroupMember, GroupQuery, GroupSpec};
    use quarry_rank::route::RouteRule;
    let first_model = a.route.iter().find(|m| *m != "bm25").context("--route needs at least one model")?;
    let mut members = Vec::new();
    let t_index = Instant::now();
    for m in &a.route {
        let (model, mode) = if m == "bm25" { (first_model, TextMode::Bm25) } else { (m, TextMode::Dense) };
        let cname = expert_collection(model);
        let spec = text_spec(a, Some(model.clone()))?;
        if !db.collection_names().contains(&cname) || mode == TextMode::Dense {
            build_or_reuse(a, db, &cname, spec, data, dir)?;
        }
        members.push(GroupMember { collection: cname, mode });
    }
    let index_s = t_index.elapsed().as_secs_f64();
    let router = a.router_model.clone().unwrap_or_else(|| first_model.clone());
    let mut spec = GroupSpec::new(members.clone(), &router);
    spec.same_documents = true;
    db.create_group("route", spec)?;

    let doc_ids: Vec<&str> = data.corpus.iter().map(|d| d.id.as_str()).collect();
    let judged: Vec<&quarry_eval::io::beir::BeirQuery> =
        data.queries.iter().filter(|q| data.qrels.get(&q.id).is_some()).collect();
    let fit: Vec<&quarry_eval::io::beir::BeirQuery> = judged.iter().skip(1).step_by(2).copied().collect();
    let eval: Vec<&quarry_eval::io::beir::BeirQuery> = judged.iter().step_by(2).copied().collect();
    let fit_q: Vec<GroupFitQuery> = fit
        .iter()
        .map(|q| GroupFitQuery { text: q.text.clone(), label: super::group::label_of(&q.id).to_string() })
        .collect();
    let gain = |i: usize, _: &str, h: &quarry_engine::TextHit| -> f64 {
        let PointId::Num(n) = h.id else { return 0.0 };
        let Some(doc) = doc_ids.get(n as usize) else { return 0.0 };
        data.qrels.get(&fit[i].id).and_then(|j| j.get(*doc)).map_or(0.0, |g| f64::from((*g).max(0)))
    };
    let t = Instant::now();
    let report = db.fit_group("route", &fit_q, &gain, a.route_k)?;
    let fit_s = t.elapsed().as_secs_f64();

    let measures = Measure::parse_list("ndcg_cut_10,recall_100")?;
    let ranked = |hits: &[(PointId, f64)]| -> Vec<(&str, f64)> {
        hits.iter()
            .filter_map(|(id, s)| match id {
                PointId::Num(n) => doc_ids.get(*n as usize).map(|d| (*d, *s)),
                PointId::Uuid(_) => None,
            })
            .collect()
    };
    // One run per strategy: its TREC run, mean latency and mean experts searched.
    let mut runs: Vec<(String, Run, f64, f64)> = Vec::new();
    for m in &members {
        let col = db.text_collection(&m.collection)?;
        let mut run = Run::new();
        let mut total = 0.0;
        let bar = progress::bar(eval.len() as u64, &format!("expert {}", m.collection), a.json);
        for q in &eval {
            let mut tq = TextQuery::new(&q.text, m.mode, a.k);
            tq.ef = a.ef.max(a.k);
            tq.with_payload = false;
            let t = Instant::now();
            let hits = col.search(&tq, None)?;
            total += t.elapsed().as_secs_f64();
            let pairs: Vec<(PointId, f64)> = hits.iter().map(|h| (h.id, h.score)).collect();
            run.insert_query(&q.id, &ranked(&pairs))?;
            bar.inc(1);
        }
        bar.finish_and_clear();
        let label = if m.mode == TextMode::Bm25 { "bm25".to_string() } else { m.collection.clone() };
        runs.push((format!("expert:{label}"), run, total / eval.len().max(1) as f64, 1.0));
    }
    let mut routed_to: std::collections::HashMap<String, Vec<Option<usize>>> = Default::default();
    let strategies: Vec<(String, usize, RouteRule)> = vec![
        ("routed:mean".into(), 1, RouteRule::Mean),
        ("routed:max".into(), 1, RouteRule::Max),
        ("fuse_all:rrf".into(), members.len(), RouteRule::Mean),
    ];
    for (label, top, rule) in &strategies {
        let mut run = Run::new();
        let mut total = 0.0;
        let bar = progress::bar(eval.len() as u64, label, a.json);
        for q in &eval {
            let mut gq = GroupQuery::new(&q.text, a.k);
            gq.fuse_top = Some(*top);
            gq.rule = Some(*rule);
            gq.ef = Some(a.ef.max(a.k));
            gq.with_payload = false;
            let t = Instant::now();
            let r = db.search_group("route", &gq)?;
            total += t.elapsed().as_secs_f64();
            if *top == 1 {
                let first = &r.routing[0];
                let chosen =
                    members.iter().position(|m| m.collection == first.collection && m.mode == first.mode);
                routed_to.entry(label.clone()).or_default().push(chosen);
            }
            let pairs: Vec<(PointId, f64)> = r.hits.iter().map(|h| (h.hit.id, h.hit.score)).collect();
            run.insert_query(&q.id, &ranked(&pairs))?;
            bar.inc(1);
        }
        bar.finish_and_clear();
        runs.push((label.clone(), run, total / eval.len().max(1) as f64, *top as f64));
    }
    // Per-query nDCG@10 of every run, by domain.
    let evals: Vec<_> = runs
        .iter()
        .map(|(_, run, _, _)| evaluate(&data.qrels, run, &measures, &EvalOptions::default()))
        .collect();
    let nd = |e: &quarry_eval::trec::Evaluation, qid: &str| e.per_query.get(qid).map_or(0.0, |v| v[0]);
    let domains: std::collections::BTreeSet<&str> =
        eval.iter().map(|q| super::group::label_of(&q.id)).collect();
    let n_experts = members.len();
    let mut table = Map::new();
    for (i, (label, _, ms, searched)) in runs.iter().enumerate() {
        let mut by_domain = Map::new();
        for d in &domains {
            let qs: Vec<&str> =
                eval.iter().filter(|q| super::group::label_of(&q.id) == *d).map(|q| q.id.as_str()).collect();
            let m = qs.iter().map(|q| nd(&evals[i], q)).sum::<f64>() / qs.len().max(1) as f64;
            by_domain.insert((*d).to_string(), json!(m));
        }
        let mut row =
            json!({"ndcg_cut_10_by_domain": by_domain, "mean_ms": ms * 1e3, "experts_searched": searched});
        for (m, v) in &evals[i].mean {
            row[m.as_str()] = json!(v);
        }
        table.insert(label.clone(), row);
    }
    // The oracle: each query's best single expert.
    let oracle =
        eval.iter().map(|q| (0..n_experts).map(|e| nd(&evals[e], &q.id)).fold(0.0, f64::max)).sum::<f64>()
            / eval.len().max(1) as f64;
    // Routing accuracy: routed to an expert with the query's best nDCG@10 (queries where the
    // experts differ).
    let mut accuracy = Map::new();
    for (label, targets) in &routed_to {
        let (mut right, mut decided) = (0usize, 0usize);
        for (q, target) in eval.iter().zip(targets) {
            let scores: Vec<f64> = (0..n_experts).map(|e| nd(&evals[e], &q.id)).collect();
            let best = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            if scores.iter().all(|s| *s == best) {
                continue;
            }
            decided += 1;
            if target.is_some_and(|e| scores[e] == best) {
                right += 1;
            }
        }
        accuracy.insert(label.clone(), json!({"right": right, "decided": decided}));
    }
    let best_single = (0..n_experts)
        .map(|e| evals[e].mean.iter().find(|(m, _)| m == "ndcg_cut_10").map_or(0.0, |(_, v)| *v))
        .fold(0.0, f64::max);
    Ok(json!({
        "engine": "quarry",
        "dataset": name,
        "experts": members,
        "router_model": router,
        "docs": data.corpus.len(),
        "fit_queries": fit.len(),
        "eval_queries": eval.len(),
        "index_s": index_s,
        "fit_s": fit_s,
        "fit": report,
        "runs": table,
        "best_single_ndcg_cut_10": best_single,
        "oracle_ndcg_cut_10": oracle,
        "routing_accuracy": accuracy,
        "threads": rayon::current_num_threads(),
    }))
}
