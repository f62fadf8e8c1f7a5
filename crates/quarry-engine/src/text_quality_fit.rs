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

/// Binary nDCG@10 of `ranked` against the `relevant` set.
fn ndcg10(ranked: &[PointId], relevant: &std::collections::HashSet<PointId>) -> f64 {
    let dcg: f64 = ranked
        .iter()
        .take(10)
        .enumerate()
        .filter(|(_, id)| relevant.contains(id))
        .map(|(i, _)| 1.0 / ((i + 2) as f64).log2())
        .sum();
    let ideal: f64 = (0..relevant.len().min(10)).map(|i| 1.0 / ((i + 2) as f64).log2()).sum();
    if ideal > 0.0 {
        dcg / ideal
    } else {
        0.0
    }
}

impl TextCollection {
    /// Chooses and stores the fusion of hybrid queries from judged queries (`relevant[i]`: the
    /// relevant documents of `queries[i]`): reciprocal rank fusion (k = 60) or a convex
    /// combination of min-max normalised scores with the dense weight in 0, 0.1, …, 1 (0 and 1
    /// are BM25 and dense alone), by mean nDCG@10 over the queries' top-`depth` lists; ties keep
    /// the default (equal weights). Returns the choice and every candidate's mean nDCG@10.
    pub fn fit_fusion(
        &self,
        queries: &[String],
        relevant: &[std::collections::HashSet<PointId>],
        depth: usize,
    ) -> Result<(quarry_rank::fusion::Fusion, serde_json::Value)> {
        use quarry_rank::fusion::{fuse, Fusion, Norm};
        if queries.is_empty() || queries.len() != relevant.len() || depth == 0 {
            return Err(Error::InvalidArgument(
                "fitting a fusion needs judged queries (one relevant set each) and a depth ≥ 1".into(),
            ));
        }
        let vectors = self.embed_queries(queries)?;
        let mut lists: Vec<[Vec<(PointId, f64)>; 2]> = Vec::with_capacity(queries.len());
        for (q, v) in queries.iter().zip(vectors) {
            let run = |mode: TextMode, v: Option<Vec<f32>>| -> Result<Vec<(PointId, f64)>> {
                let mut tq = TextQuery::new(q, mode, depth);
                tq.with_payload = false;
                tq.vectors = v.map(|v| vec![v]);
                Ok(self.search(&tq, None)?.into_iter().map(|h| (h.id, h.score)).collect())
            };
            lists.push([run(TextMode::Dense, Some(v))?, run(TextMode::Bm25, None)?]);
        }
        let mut candidates: Vec<(String, Fusion)> =
            vec![("weighted 0.5".into(), crate::text_query::default_hybrid_fusion())];
        candidates.push(("rrf 60".into(), Fusion::Rrf { k: 60.0 }));
        for i in (0..=10).filter(|&i| i != 5) {
            let w = f64::from(i) / 10.0;
            candidates.push((
                format!("weighted {w:.1}"),
                Fusion::Weighted { weights: vec![w, 1.0 - w], norm: Norm::MinMax },
            ));
        }
        let mut report = serde_json::Map::new();
        let mut best: Option<(f64, Fusion)> = None;
        for (name, f) in candidates {
            let mut total = 0.0;
            for (l, rel) in lists.iter().zip(relevant) {
                let fused = fuse(l, &f, 10)?;
                total += ndcg10(&fused.iter().map(|x| x.0).collect::<Vec<_>>(), rel);
            }
            let mean = total / lists.len() as f64;
            report.insert(name, serde_json::json!(mean));
            if best.as_ref().is_none_or(|b| mean > b.0 + 1e-12) {
                best = Some((mean, f));
            }
        }
        let (_, chosen) = best.ok_or_else(|| Error::InvalidArgument("no fusion candidate".into()))?;
        let mut quality = self.quality().unwrap_or_default();
        if quality.spec.fusion.as_ref().unwrap_or(&crate::text_query::default_hybrid_fusion()) != &chosen {
            // The hybrid calibration was fitted on the old fusion's scores: it no longer applies.
            quality.spec.calibration.remove("hybrid");
        }
        quality.spec.fusion = Some(chosen.clone());
        let report = serde_json::json!({"queries": queries.len(), "ndcg_cut_10": report, "chosen": chosen});
        quality.spec.reports.insert("fusion".into(), report.clone());
        self.set_quality(Some(quality))?;
        Ok((chosen, report))
    }
}
