//! Fitting and measuring a text collection's quality steps, shared by `quarry calibrate`,
//! `quarry hubness`, `quarry stats --hubness` and `quarry beir --calibrate / --hubness`:
//! a relevance calibration fitted on judged queries (or the training-free rule), a hubness
//! correction over a bank of queries, and the k-occurrence skewness of a query set.

use anyhow::{bail, Result};
use quarry_engine::quality::{HubnessSpec, Matrix, Quality};
use quarry_engine::text::mode_key;
use quarry_engine::{PointId, TextCollection, TextMode, TextQuery};
use quarry_eval::trec::Qrels;
use quarry_rank::calibrate::{self, Calibration, Feature, FitReport, JudgedList};
use quarry_rank::hubness::{hubness, HubnessMethod};
use serde_json::json;

/// Names a hit's document as the qrels do.
pub type DocName<'a> = &'a dyn Fn(PointId) -> Option<String>;

/// Size of the null sample drawn for dense calibrations.
pub const NULL_SAMPLE: usize = 1000;

/// Fits the calibration of `mode` on `queries` (`(id, text)`, judged in `qrels`): each query's
/// top `depth` hits with their judgements; a dense calibration also draws (or reuses) the null
/// sample. Stores it in the collection's quality settings and returns the fit's report.
pub fn fit_calibration(
    col: &TextCollection,
    queries: &[(String, String)],
    qrels: &Qrels,
    mode: TextMode,
    depth: usize,
    keep: f64,
    doc_name: DocName<'_>,
) -> Result<(Calibration, FitReport)> {
    let mut quality = col.quality().unwrap_or_default();
    let dense = mode == TextMode::Dense;
    if dense && quality.null_sample.is_none() {
        quality.null_sample = Some(col.sample_documents(NULL_SAMPLE, 1)?);
        col.set_quality(Some(quality.clone()))?;
    }
    let mut lists = Vec::with_capacity(queries.len());
    for (qid, text) in queries {
        let Some(judged) = qrels.get(qid) else { continue };
        let mut tq = TextQuery::new(text, mode, depth);
        tq.with_payload = false;
        let hits = col.search(&tq, None)?;
        let null = if dense {
            let v = col.embed_queries(std::slice::from_ref(text))?;
            v.first().and_then(|v| col.null_stats(v))
        } else {
            None
        };
        lists.push(JudgedList {
            scores: hits.iter().map(|h| h.score).collect(),
            relevant: hits
                .iter()
                .map(|h| doc_name(h.id).and_then(|d| judged.get(&d)).is_some_and(|g| *g > 0))
                .collect(),
            null,
        });
    }
    let features: &[Feature] =
        if dense { &[Feature::Score, Feature::NullZ, Feature::Gap] } else { &[Feature::Score, Feature::Gap] };
    let (cal, report) = calibrate::fit(&lists, features, keep)?;
    quality.spec.calibration.insert(mode_key(mode).to_string(), cal.clone());
    quality.spec.model = col.spec().model.clone();
    quality.spec.reports.insert(format!("calibration.{}", mode_key(mode)), serde_json::to_value(&report)?);
    col.set_quality(Some(quality))?;
    Ok((cal, report))
}

/// Stores the training-free calibration for dense queries (`p = sigmoid(z − z_tau)`).
pub fn training_free_calibration(col: &TextCollection, z_tau: f64) -> Result<Calibration> {
    let mut quality = col.quality().unwrap_or_default();
    if quality.null_sample.is_none() {
        quality.null_sample = Some(col.sample_documents(NULL_SAMPLE, 1)?);
    }
    let cal = Calibration::training_free(z_tau);
    quality.spec.calibration.insert("dense".into(), cal.clone());
    quality.spec.model = col.spec().model.clone();
    col.set_quality(Some(quality))?;
    Ok(cal)
}

/// Settings of a hubness fit.
#[derive(Debug, Clone)]
pub struct HubnessFit {
    /// QB-Norm or DBNorm with temperatures.
    pub method: HubnessMethod,
    /// Strength in (0, 1].
    pub strength: f64,
    /// Documents in the gallery bank (DBNorm).
    pub gallery: usize,
}

/// Fits the hubness correction from a bank of query texts and stores it.
pub fn fit_hubness(col: &TextCollection, bank: &[String], fit: &HubnessFit) -> Result<serde_json::Value> {
    if bank.len() < 10 {
        bail!("a query bank needs at least 10 queries, got {}", bank.len());
    }
    let mut quality = col.quality().unwrap_or_default();
    let vectors = col.embed_queries(bank)?;
    let mut activation = Vec::new();
    if fit.method.dynamic() {
        for v in &vectors {
            let hits = col.docs().search(v, None, 1, None)?;
            if let Some(h) = hits.first() {
                activation.push(h.id.to_json());
            }
        }
        activation.sort_by_key(|v| v.to_string());
        activation.dedup();
    }
    quality.query_bank = Some(Matrix::from_rows(&vectors)?);
    quality.gallery_bank = match fit.method.beta_gallery() {
        Some(_) => Some(col.sample_documents(fit.gallery, 2)?),
        None => None,
    };
    quality.spec.hubness =
        Some(HubnessSpec { method: fit.method.clone(), strength: fit.strength, activation });
    quality.spec.model = col.spec().model.clone();
    let report = json!({"bank_queries": bank.len(), "method": fit.method, "strength": fit.strength});
    quality.spec.reports.insert("hubness".into(), report.clone());
    col.set_quality(Some(quality))?;
    Ok(report)
}

/// k-occurrence skewness of the dense top-`k` lists of `queries`, with or without the fitted
/// hubness correction.
pub fn skewness(col: &TextCollection, queries: &[String], k: usize, corrected: bool) -> Result<f64> {
    let mut lists = Vec::with_capacity(queries.len());
    for q in queries {
        let mut tq = TextQuery::new(q, TextMode::Dense, k);
        tq.with_payload = false;
        tq.hubness = corrected;
        lists.push(col.search(&tq, None)?.into_iter().map(|h| h.id).collect::<Vec<PointId>>());
    }
    Ok(hubness(&lists))
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
