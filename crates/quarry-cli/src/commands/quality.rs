//! The CLI side of a text collection's quality steps: `quarry calibrate`, `quarry hubness`,
//! `quarry stats`, `quarry align` and `quarry tune-fusion` read queries and judgements and call
//! the engine's fits (`TextCollection::fit_*`, the one implementation), also used by
//! `quarry beir`.

use anyhow::{bail, Context, Result};
use quarry_engine::quality::Quality;
use quarry_engine::text::mode_key;
use quarry_engine::{PointId, TextCollection, TextMode};
use quarry_eval::trec::Qrels;
use quarry_rank::calibrate::{Calibration, FitReport};
use quarry_rank::hubness::HubnessMethod;
use serde_json::json;

/// Names a hit's document as the qrels do.
pub type DocName<'a> = &'a dyn Fn(PointId) -> Option<String>;

/// Fits the calibration of `mode` on `queries` (`(id, text)`, judged in `qrels`; documents named
/// by `doc_name`) through the engine, which stores it.
pub fn fit_calibration(
    col: &TextCollection,
    queries: &[(String, String)],
    qrels: &Qrels,
    mode: TextMode,
    depth: usize,
    keep: f64,
    doc_name: DocName<'_>,
) -> Result<(Calibration, FitReport)> {
    let judged: Vec<&(String, String)> = queries.iter().filter(|q| qrels.get(&q.0).is_some()).collect();
    let texts: Vec<String> = judged.iter().map(|q| q.1.clone()).collect();
    let relevant = |i: usize, id: PointId| {
        let grades = judged.get(i).and_then(|q| qrels.get(&q.0));
        doc_name(id).and_then(|d| grades.and_then(|g| g.get(&d))).is_some_and(|g| *g > 0)
    };
    Ok(col.fit_calibration(&texts, &relevant, mode, depth, keep)?)
}

/// Parses a hubness method name: `qb` (QB-Norm) or `db` (DBNorm), with optional temperatures.
pub fn method_of(
    name: &str,
    beta: Option<f64>,
    beta_gallery: Option<f64>,
    dynamic: bool,
) -> Result<HubnessMethod> {
    let m = match name {
        "qb" | "qbnorm" | "qb-norm" => HubnessMethod::QbNorm { beta: beta.unwrap_or(20.0), dynamic },
        "db" | "dbnorm" | "db-norm" => HubnessMethod::DbNorm {
            beta_query: beta.unwrap_or(1.0 / 1.99),
            beta_gallery: beta_gallery.unwrap_or(3.0),
            dynamic,
        },
        other => bail!("hubness method {other:?}: use qb (QB-Norm) or db (DBNorm)"),
    };
    m.check()?;
    Ok(m)
}

/// Quality setting counts for display.
pub fn describe(q: &Quality) -> serde_json::Value {
    json!({
        "calibrations": q.spec.calibration,
        "hubness": q.spec.hubness.as_ref().map(|h| json!({"method": h.method, "strength": h.strength})),
        "null_sample": q.null_sample.as_ref().map(|m| m.rows),
        "query_bank": q.query_bank.as_ref().map(|m| m.rows),
        "gallery_bank": q.gallery_bank.as_ref().map(|m| m.rows),
        "model": q.spec.model,
        "reports": q.spec.reports,
    })
}

/// Reads `(id, text)` queries: BEIR JSONL (`_id`, `text`) or plain lines (numbered from 0).
pub fn read_queries(path: &std::path::Path) -> Result<Vec<(String, String)>> {
    let raw = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut out = Vec::new();
    for (i, line) in raw.lines().filter(|l| !l.trim().is_empty()).enumerate() {
        if line.trim_start().starts_with('{') {
            let v: serde_json::Value =
                serde_json::from_str(line).with_context(|| format!("{}: query {}", path.display(), i + 1))?;
            let id = v
                .get("_id")
                .or_else(|| v.get("id"))
                .map_or_else(|| i.to_string(), |x| x.as_str().map_or_else(|| x.to_string(), str::to_string));
            let text = v.get("text").and_then(|t| t.as_str()).unwrap_or_default().to_string();
            out.push((id, text));
        } else {
            out.push((i.to_string(), line.to_string()));
        }
    }
    Ok(out)
}

fn open_text(
    dir: &std::path::Path,
    collection: &str,
) -> Result<(quarry_engine::Database, std::sync::Arc<TextCollection>)> {
    let db =
        quarry_engine::Database::open_existing(dir).with_context(|| format!("opening {}", dir.display()))?;
    let col = db.text_collection(collection)?;
    Ok((db, col))
}

/// Arguments of `quarry calibrate`.
#[derive(clap::Args)]
pub struct CalibrateArgs {
    /// Database folder.
    #[arg(long)]
    dir: std::path::PathBuf,
    /// Text collection.
    #[arg(long)]
    collection: String,
    /// Judged queries (BEIR queries JSONL with `_id` and `text`).
    #[arg(long, required_unless_present = "training_free")]
    queries: Option<std::path::PathBuf>,
    /// Judgements (BEIR TSV or TREC qrels); documents are named by `--doc-key` in the payload,
    /// else by point id.
    #[arg(long, required_unless_present = "training_free")]
    qrels: Option<std::path::PathBuf>,
    /// Ranking mode to calibrate: dense, bm25 or hybrid.
    #[arg(long, default_value = "dense")]
    mode: TextMode,
    /// Hits per query used for fitting (include hard negatives).
    #[arg(long, default_value_t = 100)]
    depth: usize,
    /// Fraction of the judged relevant hits the stored threshold keeps.
    #[arg(long, default_value_t = 0.99)]
    keep: f64,
    /// Payload key naming documents in the qrels.
    #[arg(long, default_value = "_id")]
    doc_key: String,
    /// No judgements: the training-free rule for dense queries (keep z ≥ --z over a null sample).
    #[arg(long)]
    training_free: bool,
    /// Training-free rule: standard deviations above the null mean.
    #[arg(long, default_value_t = 3.0)]
    z: f64,
    /// Remove every calibration and hubness setting instead.
    #[arg(long)]
    remove: bool,
}

/// Runs `quarry calibrate`.
pub fn run_calibrate(a: CalibrateArgs) -> Result<()> {
    let (_db, col) = open_text(&a.dir, &a.collection)?;
    if a.remove {
        col.set_quality(None)?;
        println!("{}", json!({"collection": a.collection, "quality": null}));
        return Ok(());
    }
    if a.training_free {
        let cal = col.fit_training_free(a.z)?;
        println!("{}", json!({"collection": a.collection, "mode": "dense", "calibration": cal}));
        return Ok(());
    }
    let (Some(qpath), Some(rpath)) = (&a.queries, &a.qrels) else {
        bail!("--queries and --qrels are needed")
    };
    let queries = read_queries(qpath)?;
    let qrels = quarry_eval::trec::read_qrels(rpath)?;
    let key = a.doc_key.clone();
    let docs = col.docs().clone();
    let name = move |id: PointId| -> Option<String> {
        let p = docs.payload(id)?;
        Some(match p.get(&key) {
            Some(v) => v.as_str().map_or_else(|| v.to_string(), str::to_string),
            None => id.to_string(),
        })
    };
    let judged: Vec<(String, String)> = queries.into_iter().filter(|q| qrels.get(&q.0).is_some()).collect();
    if judged.is_empty() {
        bail!("no query of {} has judgements in {}", qpath.display(), rpath.display());
    }
    let (cal, report) = fit_calibration(&col, &judged, &qrels, a.mode, a.depth, a.keep, &name)?;
    println!(
        "{}",
        json!({"collection": a.collection, "mode": mode_key(a.mode), "calibration": cal, "report": report})
    );
    Ok(())
}

/// Arguments of `quarry hubness`.
#[derive(clap::Args)]
pub struct HubnessArgs {
    /// Database folder.
    #[arg(long)]
    dir: std::path::PathBuf,
    /// Text collection.
    #[arg(long)]
    collection: String,
    /// Bank of queries (sampled or logged; JSONL with `text`, or lines).
    #[arg(long)]
    bank: std::path::PathBuf,
    /// qb (QB-Norm) or db (DBNorm).
    #[arg(long, default_value = "qb")]
    method: String,
    /// Query-bank temperature (default 20 for qb, 1/1.99 for db).
    #[arg(long)]
    beta: Option<f64>,
    /// Gallery-bank temperature (db; default 3).
    #[arg(long)]
    beta_gallery: Option<f64>,
    /// Share of the inverted-softmax penalty applied, in (0, 1].
    #[arg(long, default_value_t = 0.2)]
    strength: f64,
    /// Dynamic variant: correct only queries whose top hit some bank query ranks first.
    #[arg(long)]
    dynamic: bool,
    /// Documents sampled into the gallery bank (db).
    #[arg(long, default_value_t = quarry_engine::text::GALLERY_BANK)]
    gallery: usize,
}

/// Runs `quarry hubness`.
pub fn run_hubness(a: HubnessArgs) -> Result<()> {
    let (_db, col) = open_text(&a.dir, &a.collection)?;
    let bank = crate::commands::bench::embed::read_texts(&a.bank)?;
    let method = method_of(&a.method, a.beta, a.beta_gallery, a.dynamic)?;
    let report = col.fit_hubness(&bank, method, a.strength, a.gallery)?;
    println!("{}", json!({"collection": a.collection, "hubness": report}));
    Ok(())
}

/// Arguments of `quarry stats`.
#[derive(clap::Args)]
pub struct StatsArgs {
    /// Database folder.
    #[arg(long)]
    dir: std::path::PathBuf,
    /// Collection.
    #[arg(long)]
    collection: String,
    /// Measure hubness: the k-occurrence skewness of the dense top-k of `--queries` (and with
    /// the fitted correction, if any).
    #[arg(long, requires = "queries")]
    hubness: bool,
    /// Queries for the hubness measurement (JSONL with `text`, or lines).
    #[arg(long)]
    queries: Option<std::path::PathBuf>,
    /// k of the k-occurrence.
    #[arg(short = 'k', long = "k", default_value_t = 10)]
    k: usize,
}

/// Runs `quarry stats`.
pub fn run_stats(a: StatsArgs) -> Result<()> {
    let db = quarry_engine::Database::open_existing(&a.dir)
        .with_context(|| format!("opening {}", a.dir.display()))?;
    let docs = db.collection(&a.collection)?;
    let mut out = json!({"collection": a.collection, "points": docs.count(None)});
    if docs.schema().text.is_some() {
        let col = db.text_collection(&a.collection)?;
        let s = col.bm25_stats();
        out["bm25"] = json!({"docs": s.docs, "avgdl": s.avgdl, "terms": s.terms});
        if let Some(q) = col.quality() {
            out["quality"] = describe(&q);
        }
        if a.hubness {
            let path = a.queries.as_ref().context("--hubness needs --queries")?;
            let texts = crate::commands::bench::embed::read_texts(path)?;
            out["hubness"] =
                json!({"queries": texts.len(), "k": a.k, "skewness": col.skewness(&texts, a.k, false)?});
            if col.quality().is_some_and(|q| q.spec.hubness.is_some()) {
                out["hubness"]["skewness_corrected"] = json!(col.skewness(&texts, a.k, true)?);
            }
        }
    } else if a.hubness {
        bail!("hubness is measured on text collections (their queries are texts)");
    }
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

/// Embeds query texts with `model` and maps them into the collection's space (the engine's
/// [`TextCollection::embed_aligned`] with the database's cached encoder).
pub fn aligned_vectors(
    db: &quarry_engine::Database,
    col: &TextCollection,
    model: &str,
    texts: &[String],
) -> Result<Vec<Vec<f32>>> {
    let encoder = db.model(model)?;
    Ok(col.embed_aligned(model, &encoder, texts)?)
}

/// Arguments of `quarry align`.
#[derive(clap::Args)]
pub struct AlignArgs {
    /// Database folder.
    #[arg(long)]
    dir: std::path::PathBuf,
    /// Text collection (embedded by its own model).
    #[arg(long)]
    collection: String,
    /// The new model (folder or name) whose queries should search this collection.
    #[arg(long)]
    model: String,
    /// Documents embedded by both models to fit the map (at least the larger dimension).
    #[arg(long, default_value_t = 1000)]
    pairs: usize,
    /// Fit a plain orthogonal map instead of the centred one (which subtracts each space's
    /// mean and aligns the centred directions: much better between different models).
    #[arg(long)]
    plain: bool,
    /// Prefix the new model puts before queries (e.g. bge's retrieval instruction).
    #[arg(long, default_value = "")]
    query_prefix: String,
}

/// Runs `quarry align`.
pub fn run_align(a: AlignArgs) -> Result<()> {
    let (db, col) = open_text(&a.dir, &a.collection)?;
    let enc = db.model(&a.model)?;
    let t = std::time::Instant::now();
    let report = col.fit_alignment(&a.model, &enc, a.pairs, !a.plain, &a.query_prefix)?;
    println!(
        "{}",
        json!({
            "collection": a.collection,
            "model": a.model,
            "pairs": report.pairs,
            "mean_cosine": report.mean_cosine,
            "residual": report.residual,
            "identity_residual": report.identity_residual.is_finite().then_some(report.identity_residual),
            "seconds": t.elapsed().as_secs_f64(),
        })
    );
    Ok(())
}

/// Arguments of `quarry tune-fusion`.
#[derive(clap::Args)]
pub struct TuneFusionArgs {
    /// Database folder.
    #[arg(long)]
    dir: std::path::PathBuf,
    /// Text collection (with a model: hybrid queries).
    #[arg(long)]
    collection: String,
    /// Judged queries (BEIR queries JSONL with `_id` and `text`).
    #[arg(long)]
    queries: std::path::PathBuf,
    /// Judgements (BEIR TSV or TREC qrels); documents named by `--doc-key` in the payload, else
    /// by point id.
    #[arg(long)]
    qrels: std::path::PathBuf,
    /// Payload key naming documents in the qrels.
    #[arg(long, default_value = "_id")]
    doc_key: String,
    /// Candidates per list.
    #[arg(long, default_value_t = 100)]
    depth: usize,
}

/// Runs `quarry tune-fusion`: chooses the collection's hybrid fusion on judged queries.
pub fn run_tune_fusion(a: TuneFusionArgs) -> Result<()> {
    let (_db, col) = open_text(&a.dir, &a.collection)?;
    let queries = read_queries(&a.queries)?;
    let qrels = quarry_eval::trec::read_qrels(&a.qrels)?;
    let mut point_of = std::collections::HashMap::new();
    col.docs().for_each_payload(|id, p| {
        let name = p
            .get(&a.doc_key)
            .map_or_else(|| id.to_string(), |v| v.as_str().map_or_else(|| v.to_string(), str::to_string));
        point_of.insert(name, id);
    });
    let judged: Vec<(String, std::collections::HashSet<PointId>)> = queries
        .into_iter()
        .filter_map(|(qid, text)| {
            let j = qrels.get(&qid)?;
            Some((
                text,
                j.iter().filter(|(_, g)| **g > 0).filter_map(|(d, _)| point_of.get(d).copied()).collect(),
            ))
        })
        .collect();
    if judged.is_empty() {
        bail!("no query of {} has judgements in {}", a.queries.display(), a.qrels.display());
    }
    let (texts, relevant): (Vec<String>, Vec<_>) = judged.into_iter().unzip();
    let (_, report) = col.fit_fusion(&texts, &relevant, a.depth)?;
    println!("{}", json!({"collection": a.collection, "fusion": report}));
    Ok(())
}
