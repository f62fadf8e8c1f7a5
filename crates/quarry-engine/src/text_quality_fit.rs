//! Fitting a text collection's quality settings (the one implementation the CLI, the server and
//! Python call): the relevance calibration of a mode from judged queries or the training-free
//! rule, the hubness correction from a bank of queries, and the k-occurrence skewness of a query
//! set.

use super::TextCollection;
use crate::id::PointId;
use crate::quality::{HubnessSpec, Matrix};
use crate::text_query::{TextMode, TextQuery};
use quarry_core::{Error, Result};
use quarry_rank::calibrate::{self, Calibration, Feature, FitReport, JudgedList};
use quarry_rank::hubness::HubnessMethod;

/// Documents drawn into the null sample of dense calibrations.
pub const NULL_SAMPLE: usize = 1000;
/// Documents drawn into a DBNorm gallery bank by default.
pub const GALLERY_BANK: usize = 2000;

impl TextCollection {
    /// Draws the null sample if the settings have none yet (stored).
    fn ensure_null_sample(&self) -> Result<crate::quality::Quality> {
        let mut q = self.quality().unwrap_or_default();
        if q.null_sample.is_none() {
            q.null_sample = Some(self.sample_documents(NULL_SAMPLE, 1)?);
            self.set_quality(Some(q.clone()))?;
        }
        Ok(q)
    }

    /// Fits and stores the calibration of `mode` from judged queries: each query's top `depth`
    /// hits, `relevant(i, id)` saying whether hit `id` of query `i` is relevant; the threshold
    /// keeps `keep` of the relevant hits. Dense calibrations use score, null-z and gap; the
    /// others score and gap.
    pub fn fit_calibration(
        &self,
        queries: &[String],
        relevant: &dyn Fn(usize, PointId) -> bool,
        mode: TextMode,
        depth: usize,
        keep: f64,
    ) -> Result<(Calibration, FitReport)> {
        if queries.is_empty() || depth == 0 {
            return Err(Error::InvalidArgument("a calibration needs judged queries and a depth ≥ 1".into()));
        }
        let dense = mode == TextMode::Dense;
        let mut quality = if dense { self.ensure_null_sample()? } else { self.quality().unwrap_or_default() };
        // Dense queries are embedded once: the vectors serve the search and the null statistics.
        let vectors = if dense { Some(self.embed_queries(queries)?) } else { None };
        let mut lists = Vec::with_capacity(queries.len());
        for (i, text) in queries.iter().enumerate() {
            let mut tq = TextQuery::new(text, mode, depth);
            tq.with_payload = false;
            tq.vectors = vectors.as_ref().map(|v| vec![v[i].clone()]);
            let hits = self.search(&tq, None)?;
            lists.push(JudgedList {
                scores: hits.iter().map(|h| h.score).collect(),
                relevant: hits.iter().map(|h| relevant(i, h.id)).collect(),
                null: vectors.as_ref().and_then(|v| self.null_stats(&v[i])),
            });
        }
        let features: &[Feature] = if dense {
            &[Feature::Score, Feature::NullZ, Feature::Gap]
        } else {
            &[Feature::Score, Feature::Gap]
        };
        let (cal, report) = calibrate::fit(&lists, features, keep)?;
        let key = super::mode_key(mode);
        quality.spec.calibration.insert(key.to_string(), cal.clone());
        quality.spec.model = self.spec.model.clone();
        quality.spec.reports.insert(
            format!("calibration.{key}"),
            serde_json::to_value(&report).map_err(|e| Error::InvalidArgument(e.to_string()))?,
        );
        self.set_quality(Some(quality))?;
        Ok((cal, report))
    }

    /// Stores the training-free calibration for dense queries: `p = sigmoid(z − z_tau)` over
    /// the null sample (keep `z ≥ z_tau` at `min_relevance` ½).
    pub fn fit_training_free(&self, z_tau: f64) -> Result<Calibration> {
        if !z_tau.is_finite() {
            return Err(Error::InvalidArgument("z_tau must be finite".into()));
        }
        let mut quality = self.ensure_null_sample()?;
        let cal = Calibration::training_free(z_tau);
        quality.spec.calibration.insert("dense".into(), cal.clone());
        quality.spec.model = self.spec.model.clone();
        self.set_quality(Some(quality))?;
        Ok(cal)
    }

    /// Fits and stores the hubness correction from a bank of (sampled or logged) query texts:
    /// the bank's vectors, for DBNorm a `gallery`-document sample, for dynamic variants the
    /// documents some bank query ranks first.
    pub fn fit_hubness(
        &self,
        bank: &[String],
        method: HubnessMethod,
        strength: f64,
        gallery: usize,
    ) -> Result<serde_json::Value> {
        if bank.len() < 10 {
            return Err(Error::InvalidArgument(format!(
                "a query bank needs at least 10 queries, got {}",
                bank.len()
            )));
        }
        method.check()?;
        let mut quality = self.quality().unwrap_or_default();
        let vectors = self.embed_queries(bank)?;
        let mut activation = Vec::new();
        if method.dynamic() {
            for v in &vectors {
                if let Some(h) = self.docs.search(v, None, 1, None)?.first() {
                    activation.push(h.id.to_json());
                }
            }
            activation.sort_by_key(|v| v.to_string());
            activation.dedup();
        }
        quality.query_bank = Some(Matrix::from_rows(&vectors)?);
        quality.gallery_bank = match method.beta_gallery() {
            Some(_) => Some(self.sample_documents(gallery, 2)?),
            None => None,
        };
        let report = serde_json::json!({"bank_queries": bank.len(), "method": method, "strength": strength});
        quality.spec.hubness = Some(HubnessSpec { method, strength, activation });
        quality.spec.model = self.spec.model.clone();
        quality.spec.reports.insert("hubness".into(), report.clone());
        self.set_quality(Some(quality))?;
        Ok(report)
    }

    /// Hubness of `queries`: the k-occurrence skewness of their dense top `k`, with or without
    /// the fitted correction.
    pub fn skewness(&self, queries: &[String], k: usize, corrected: bool) -> Result<f64> {
        let vectors = self.embed_queries(queries)?;
        let mut lists = Vec::with_capacity(queries.len());
        for (q, v) in queries.iter().zip(vectors) {
            let mut tq = TextQuery::new(q, TextMode::Dense, k);
            tq.with_payload = false;
            tq.hubness = corrected;
            tq.vectors = Some(vec![v]);
            lists.push(self.search(&tq, None)?.into_iter().map(|h| h.id).collect::<Vec<PointId>>());
        }
        Ok(quarry_rank::hubness::hubness(&lists))
    }
}
