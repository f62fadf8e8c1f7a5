//! `quarry bench multivector`: candidate generation for late interaction (MaxSim / Chamfer) on
//! token sets written by `quarry embed --tokens`, measured against exhaustive Chamfer.
//!
//! Three ways to answer a query's top k, each timed one query per call on one thread:
//! - `exhaustive`: exact Chamfer similarity of every document ([`fde::rerank`] over all);
//! - `muvera`: the query's MUVERA encoding searched in an index over the documents' encodings
//!   (`--fde-index`, any index spec), its best `depth` candidates re-ranked by exact Chamfer,
//!   one row per `--depths` value;
//! - `per-token`: the heuristic peers use, each query token's `per_token` nearest tokens in an
//!   index over every document token (`--token-index`), their owners re-ranked by exact Chamfer,
//!   one row per `--per-token` value.
//!
//! Every row reports recall@k against the exhaustive top k, QPS, and the mean number of
//! documents re-ranked per query (`candidates`); with `--qrels`, `--doc-ids` and `--query-ids`
//! also nDCG@k of the ranking returned. Rows are JSON objects, one per line.

use crate::commands::embed::{default_offsets_path, read_token_sets};
use crate::progress;
use anyhow::{bail, Context, Result};
use quarry_ann::fde::{self, FdeEncoder, FdeParams, InnerProjection, TokenSets};
use quarry_ann::{AnyIndex, Effort, IndexSpec, Residency};
use quarry_core::{Hit, Matrix, Metric};
use rayon::prelude::*;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Arguments of `quarry bench multivector`.
#[derive(clap::Args)]
pub struct MultivectorArgs {
    /// Documents' token vectors (`quarry embed --tokens` output, `[tokens, dim]` .npy).
    #[arg(long)]
    docs: PathBuf,
    /// Where each document's tokens start (default: the docs file with `.offsets.npy`).
    #[arg(long)]
    doc_offsets: Option<PathBuf>,
    /// Queries' token vectors (same format).
    #[arg(long)]
    queries: PathBuf,
    /// Where each query's tokens start (default: the queries file with `.offsets.npy`).
    #[arg(long)]
    query_offsets: Option<PathBuf>,
    /// Use only the first N queries.
    #[arg(long)]
    limit: Option<usize>,
    /// Results per query.
    #[arg(short = 'k', long = "k", default_value_t = 10)]
    k: usize,
    /// MUVERA repetitions (the engine's default).
    #[arg(long, default_value_t = 8)]
    reps: usize,
    /// MUVERA SimHash bits per repetition (2^bits buckets; the engine's default).
    #[arg(long, default_value_t = 2)]
    bits: usize,
    /// MUVERA inner projection dimension (0: none, the identity; the engine's default).
    #[arg(long, default_value_t = 0)]
    proj: usize,
    /// MUVERA final Count-Sketch dimension (none by default).
    #[arg(long)]
    final_dim: Option<usize>,
    /// Index spec over the documents' encodings (flat, hnsw, hnsw+sq8, ...).
    #[arg(long, default_value = "hnsw")]
    fde_index: String,
    /// Graph beam of the encodings' index (raised to the depth when smaller).
    #[arg(long, default_value_t = 64)]
    ef: usize,
    /// Candidates re-ranked by exact Chamfer after the MUVERA search, one row each.
    #[arg(long, value_delimiter = ',', default_value = "50,100,200,300,400,600,800,1200")]
    depths: Vec<usize>,
    /// Index spec over all document tokens for the per-token heuristic (`none`: skip it).
    #[arg(long, default_value = "hnsw")]
    token_index: String,
    /// Graph beam of the token index (raised to the per-token count when smaller).
    #[arg(long, default_value_t = 64)]
    token_ef: usize,
    /// Nearest tokens per query token for the per-token heuristic, one row each.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4,8,16,32,64")]
    per_token: Vec<usize>,
    /// Queries timed for the exhaustive row (the ground truth uses every query, in parallel).
    #[arg(long, default_value_t = 50)]
    exhaustive_queries: usize,
    /// Folder for the indexes built (default: a temporary folder, removed afterwards).
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Qrels for nDCG@k (with --doc-ids and --query-ids).
    #[arg(long, requires_all = ["doc_ids", "query_ids"])]
    qrels: Option<PathBuf>,
    /// Document ids, one per line, in token-set order.
    #[arg(long)]
    doc_ids: Option<PathBuf>,
    /// Query ids, one per line, in token-set order.
    #[arg(long)]
    query_ids: Option<PathBuf>,
    /// One sentence vector per document (`quarry embed` output, .npy), for a `single-vector` row:
    /// the same texts ranked by exact inner product of their sentence vectors (with --qrels: the
    /// nDCG late interaction is compared with).
    #[arg(long, requires = "single_queries")]
    single_docs: Option<PathBuf>,
    /// One sentence vector per query, in token-set order.
    #[arg(long)]
    single_queries: Option<PathBuf>,
    /// Name of the data set, copied into every row.
    #[arg(long, default_value = "")]
    dataset: String,
}

/// nDCG@k of ranked document rows against qrels.
struct Judge {
    qrels: quarry_eval::trec::Qrels,
    doc_ids: Vec<String>,
    query_ids: Vec<String>,
}

impl Judge {
    fn load(a: &MultivectorArgs, nq: usize) -> Result<Option<Judge>> {
        let (Some(q), Some(d), Some(qi)) = (&a.qrels, &a.doc_ids, &a.query_ids) else { return Ok(None) };
        let lines = |p: &Path| -> Result<Vec<String>> {
            Ok(std::fs::read_to_string(p)
                .with_context(|| format!("reading {}", p.display()))?
                .lines()
                .map(|l| l.trim().to_string())
                .filter(|l| !l.is_empty())
                .collect())
        };
        let query_ids = lines(qi)?;
        if query_ids.len() < nq {
            bail!("{} names {} queries, fewer than the {nq} token sets", qi.display(), query_ids.len());
        }
        Ok(Some(Judge { qrels: quarry_eval::trec::read_qrels(q)?, doc_ids: lines(d)?, query_ids }))
    }

    /// Mean nDCG@k over the judged queries among `answers`.
    fn ndcg(&self, answers: &[Vec<Hit>], k: usize) -> Result<f64> {
        let mut run = quarry_eval::trec::Run::new();
        for (qi, hits) in answers.iter().enumerate() {
            let qid = &self.query_ids[qi];
            if !self.qrels.contains_query(qid) {
                continue;
            }
            let ranked: Vec<(&str, f64)> = hits
                .iter()
                .filter_map(|h| self.doc_ids.get(h.id as usize).map(|d| (d.as_str(), h.score as f64)))
                .collect();
            run.insert_query(qid, &ranked)?;
        }
        let m = quarry_eval::trec::Measure::parse(&format!("ndcg_cut_{k}"))?;
        let ev = quarry_eval::trec::evaluate(&self.qrels, &run, &[m], &Default::default());
        Ok(ev.mean_value(&m.name()).unwrap_or(0.0))
    }
}

fn recall(answers: &[Vec<Hit>], truth: &[Vec<Hit>], k: usize) -> f64 {
    let mut sum = 0.0;
    for (a, t) in answers.iter().zip(truth) {
        let want: Vec<u32> = t.iter().take(k).map(|h| h.id).collect();
        let got = a.iter().take(k).filter(|h| want.contains(&h.id)).count();
        sum += got as f64 / want.len().max(1) as f64;
    }
    sum / truth.len().max(1) as f64
}

/// Times `answer` over every query one call at a time (after one warm-up query); returns the
/// answers, QPS and the mean candidate count it reported.
fn timed(
    queries: &TokenSets,
    n: usize,
    label: &str,
    mut answer: impl FnMut(&[f32]) -> Result<(Vec<Hit>, usize)>,
) -> Result<(Vec<Vec<Hit>>, f64, f64)> {
    if n > 0 {
        answer(queries.get(0).unwrap_or_default())?;
    }
    let bar = progress::bar(n as u64, label, false);
    let mut out = Vec::with_capacity(n);
    let mut cands = 0usize;
    let t = Instant::now();
    for i in 0..n as u32 {
        let (hits, c) = answer(queries.get(i).unwrap_or_default())?;
        cands += c;
        out.push(hits);
        bar.inc(1);
    }
    let s = t.elapsed().as_secs_f64();
    bar.finish_and_clear();
    Ok((out, n as f64 / s.max(1e-9), cands as f64 / n.max(1) as f64))
}

fn build_index(
    spec: &str,
    rows: Vec<f32>,
    dim: usize,
    metric: Metric,
    dir: &Path,
) -> Result<(AnyIndex, f64)> {
    let spec: IndexSpec = spec.parse().with_context(|| format!("index spec {spec:?}"))?;
    let t = Instant::now();
    quarry_ann::build_into(&spec, &Matrix::new(rows, dim)?, metric, dir)?;
    let index = AnyIndex::open(&spec, dir, Residency::Memory)?;
    Ok((index, t.elapsed().as_secs_f64()))
}

/// Runs `quarry bench multivector`.
pub fn run(a: MultivectorArgs) -> Result<()> {
    let docs =
        read_token_sets(&a.docs, &a.doc_offsets.clone().unwrap_or_else(|| default_offsets_path(&a.docs)))?;
    let mut queries = read_token_sets(
        &a.queries,
        &a.query_offsets.clone().unwrap_or_else(|| default_offsets_path(&a.queries)),
    )?;
    if docs.dim() != queries.dim() {
        bail!("documents have tokens of {} values, queries of {}", docs.dim(), queries.dim());
    }
    if let Some(n) = a.limit.filter(|&n| n < queries.len()) {
        let offs = queries.offsets()[..=n].to_vec();
        let end = offs[n] as usize * queries.dim();
        queries = TokenSets::from_parts(queries.dim(), queries.all_tokens()[..end].to_vec(), offs)?;
    }
    let nq = queries.len();
    let judge = Judge::load(&a, nq)?;
    let temp = a.work_dir.is_none();
    let work = a.work_dir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("quarry-bench-multivector-{}", std::process::id()))
    });
    std::fs::create_dir_all(&work)?;
    let result = measure(&a, &docs, &queries, judge.as_ref(), &work);
    if temp {
        let _ = std::fs::remove_dir_all(&work);
    }
    result
}

fn measure(
    a: &MultivectorArgs,
    docs: &TokenSets,
    queries: &TokenSets,
    judge: Option<&Judge>,
    work: &Path,
) -> Result<()> {
    let (nq, dim, k) = (queries.len(), docs.dim(), a.k);
    let base = json!({
        "dataset": a.dataset, "docs": docs.len(), "doc_tokens": docs.offsets()[docs.len()],
        "queries": nq, "query_tokens": queries.offsets()[nq], "dim": dim, "k": k,
    });
    let emit = |mut row: serde_json::Value| {
        if let (Some(r), Some(b)) = (row.as_object_mut(), base.as_object()) {
            for (key, v) in b {
                r.entry(key.clone()).or_insert(v.clone());
            }
        }
        println!("{row}");
    };
    eprintln!(
        "{} documents ({} tokens, {:.1} per document), {nq} queries ({:.1} tokens each), dim {dim}",
        docs.len(),
        docs.offsets()[docs.len()],
        docs.offsets()[docs.len()] as f64 / docs.len().max(1) as f64,
        queries.offsets()[nq] as f64 / nq.max(1) as f64
    );

    // Ground truth: exhaustive Chamfer of every query, in parallel.
    let all: Vec<u32> = (0..docs.len() as u32).collect();
    let t = Instant::now();
    let truth: Vec<Vec<Hit>> = (0..nq as u32)
        .into_par_iter()
        .map(|i| fde::rerank(queries.get(i).unwrap_or_default(), docs, &all, k))
        .collect();
    eprintln!("exhaustive ground truth in {:.1} s", t.elapsed().as_secs_f64());
    let ne = a.exhaustive_queries.clamp(1, nq.max(1)).min(nq);
    let (ex_answers, ex_qps, _) =
        timed(queries, ne, "exhaustive", |q| Ok((fde::rerank(q, docs, &all, k), docs.len())))?;
    let mut row = json!({"method": "exhaustive", "recall": recall(&ex_answers, &truth[..ne], k),
        "qps": ex_qps, "candidates": docs.len(), "timed_queries": ne});
    if let Some(j) = judge {
        row["ndcg"] = json!(j.ndcg(&truth, k)?);
    }
    emit(row);

    if let (Some(sd), Some(sq)) = (&a.single_docs, &a.single_queries) {
        let d = crate::load::base(sd)?;
        let q = crate::load::queries(sq, None)?;
        if d.rows() != docs.len() || q.rows() < nq {
            bail!(
                "{} rows of single vectors for {} documents, {} for {nq} queries",
                d.rows(),
                docs.len(),
                q.rows()
            );
        }
        let flat = quarry_ann::FlatIndex::build(&d, Metric::InnerProduct, Default::default())?;
        let answers: Vec<Vec<Hit>> = (0..nq)
            .map(|i| quarry_core::VectorIndex::search(&flat, q.row(i), &quarry_core::SearchParams::top(k)))
            .collect::<quarry_core::Result<_>>()?;
        let mut row = json!({"method": "single-vector", "recall": recall(&answers, &truth, k)});
        if let Some(j) = judge {
            row["ndcg"] = json!(j.ndcg(&answers, k)?);
        }
        emit(row);
    }

    // MUVERA.
    let params = FdeParams {
        repetitions: a.reps,
        simhash_bits: a.bits as u32,
        projection: if a.proj == 0 { InnerProjection::Identity } else { InnerProjection::Random(a.proj) },
        final_dim: a.final_dim,
        ..FdeParams::default()
    };
    let enc = FdeEncoder::new(dim, params)?;
    let t = Instant::now();
    let fdes: Vec<Vec<f32>> = (0..docs.len() as u32)
        .into_par_iter()
        .map(|i| enc.encode_document(docs.get(i).unwrap_or_default()))
        .collect::<quarry_core::Result<_>>()?;
    let encode_s = t.elapsed().as_secs_f64();
    let out_dim = enc.output_dim();
    let (fde_index, fde_build_s) =
        build_index(&a.fde_index, fdes.concat(), out_dim, Metric::InnerProduct, &work.join("fde"))?;
    drop(fdes);
    eprintln!(
        "MUVERA: {out_dim}-d encodings in {encode_s:.1} s, {} index in {fde_build_s:.1} s",
        a.fde_index
    );
    for &depth in &a.depths {
        let effort = Effort { ef: a.ef.max(depth), rerank: None, rescore: true };
        let (answers, qps, cands) = timed(queries, nq, &format!("muvera depth {depth}"), |q| {
            let fq = enc.encode_query(q)?;
            let ids: Vec<u32> =
                fde_index.search(&fq, depth, &effort, None)?.into_iter().map(|h| h.id).collect();
            Ok((fde::rerank(q, docs, &ids, k), ids.len()))
        })?;
        let mut row = json!({"method": "muvera", "depth": depth, "recall": recall(&answers, &truth, k),
            "qps": qps, "candidates": cands, "index": a.fde_index, "ef": effort.ef,
            "fde_dim": out_dim, "reps": a.reps, "bits": a.bits, "proj": a.proj, "final_dim": a.final_dim,
            "encode_seconds": encode_s, "build_seconds": fde_build_s, "speedup": qps / ex_qps});
        if let Some(j) = judge {
            row["ndcg"] = json!(j.ndcg(&answers, k)?);
        }
        emit(row);
    }
    drop(fde_index);

    // The per-token heuristic.
    if a.token_index != "none" {
        let (tok_index, tok_build_s) = build_index(
            &a.token_index,
            docs.all_tokens().to_vec(),
            dim,
            Metric::InnerProduct,
            &work.join("tokens"),
        )?;
        eprintln!(
            "per-token: {} index over {} tokens in {tok_build_s:.1} s",
            a.token_index,
            docs.offsets()[docs.len()]
        );
        for &pt in &a.per_token {
            let effort = Effort { ef: a.token_ef.max(pt), rerank: None, rescore: true };
            let (answers, qps, cands) = timed(queries, nq, &format!("per-token {pt}"), |q| {
                let mut ids = Vec::new();
                for t in q.chunks_exact(dim) {
                    for h in tok_index.search(t, pt, &effort, None)? {
                        ids.extend(docs.owner(h.id));
                    }
                }
                ids.sort_unstable();
                ids.dedup();
                Ok((fde::rerank(q, docs, &ids, k), ids.len()))
            })?;
            let mut row = json!({"method": "per-token", "per_token": pt, "recall": recall(&answers, &truth, k),
                "qps": qps, "candidates": cands, "index": a.token_index, "ef": effort.ef,
                "build_seconds": tok_build_s, "speedup": qps / ex_qps});
            if let Some(j) = judge {
                row["ndcg"] = json!(j.ndcg(&answers, k)?);
            }
            emit(row);
        }
    }
    Ok(())
}
