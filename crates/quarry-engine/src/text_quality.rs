//! The quality steps of text queries, over the settings in [`crate::quality`]: hubness
//! re-scoring of dense candidates (per-document normalisers computed on first use and cached
//! until the settings change) and the calibrated relevance cut-off of the final ranking.

use super::{List, TextCollection};
use crate::id::PointId;
use crate::quality::{AlignmentSpec, Matrix, Quality};
use crate::text_query::TextHit;
use crate::text_query::TextMode;
use quarry_core::{Error, Result};
use quarry_linalg::procrustes::Alignment;
use quarry_rank::calibrate::NullStats;
use quarry_rank::feedback::FeedbackDoc;
use quarry_rank::hubness::{rescore_with_strength, Normalisers};
use quarry_text::{CrossEncoder, SentenceEncoder};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

/// Loaded settings with the caches derived from them.
#[derive(Debug)]
pub(super) struct QualityState {
    q: Quality,
    norms: Mutex<HashMap<PointId, Normalisers>>,
    activation: HashSet<PointId>,
}

impl QualityState {
    pub(super) fn new(q: Quality) -> Arc<QualityState> {
        let activation = q
            .spec
            .hubness
            .as_ref()
            .map(|h| h.activation.iter().filter_map(|v| PointId::from_json(v).ok()).collect())
            .unwrap_or_default();
        Arc::new(QualityState { q, norms: Mutex::new(HashMap::new()), activation })
    }
}

/// Self-similarity above which a gallery-bank row is taken to be the document itself.
const SELF_DOT: f64 = 1.0 - 1e-6;

impl TextCollection {
    /// The collection's quality settings, if any were fitted.
    pub fn quality(&self) -> Option<Quality> {
        self.quality.read().unwrap_or_else(PoisonError::into_inner).as_ref().map(|s| s.q.clone())
    }

    /// Replaces the quality settings (checked, then written crash-safely; `None` removes them).
    pub fn set_quality(&self, q: Option<Quality>) -> Result<()> {
        let dir = self.docs.dir();
        let mut slot = self.quality.write().unwrap_or_else(PoisonError::into_inner);
        match q {
            Some(q) => {
                self.dense_dim()?;
                q.check(self.docs.schema().vectors[0].dim)?;
                q.save(dir)?;
                *slot = Some(QualityState::new(q));
            }
            None => {
                let path = dir.join(crate::quality::QUALITY_FILE);
                if path.exists() {
                    std::fs::remove_file(&path).map_err(|e| Error::io("removing", &path, e))?;
                    quarry_store::sync_folder(dir)?;
                }
                *slot = None;
            }
        }
        Ok(())
    }

    /// The dense dimension, or an error for collections without single dense vectors.
    fn dense_dim(&self) -> Result<usize> {
        let f = self.docs.schema().vectors.first();
        match f {
            Some(f) if self.encoder.is_some() && f.multivector.is_none() => Ok(f.dim),
            _ => Err(Error::InvalidArgument(format!(
                "collection {:?}: calibration, hubness, feedback, model maps and fusion fitting work on single-vector dense collections",
                self.docs.name()
            ))),
        }
    }

    /// Embeds query texts with the collection's model and query prefix.
    pub fn embed_queries(&self, texts: &[String]) -> Result<Vec<Vec<f32>>> {
        self.dense_dim()?;
        self.embed(texts, &self.spec.query_prefix)
    }

    /// A seeded uniform sample of up to `n` stored documents.
    fn sample_points(&self, n: usize, seed: u64) -> Vec<crate::point::Point> {
        let mut ids: Vec<PointId> = Vec::new();
        self.docs.for_each_payload(|id, _| ids.push(id));
        ids.sort_unstable();
        let mut state = seed ^ 0x9e37_79b9_7f4a_7c15;
        for i in (1..ids.len()).rev() {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ids.swap(i, ((state >> 33) % (i as u64 + 1)) as usize);
        }
        ids.iter().take(n).filter_map(|id| self.docs.get(*id)).collect()
    }

    /// A seeded uniform sample of up to `n` documents' vectors (for null samples and gallery
    /// banks).
    pub fn sample_documents(&self, n: usize, seed: u64) -> Result<Matrix> {
        self.dense_dim()?;
        let rows: Vec<Vec<f32>> =
            self.sample_points(n, seed).into_iter().filter_map(|p| p.vectors.into_iter().next()).collect();
        Matrix::from_rows(&rows)
    }

    /// Fits and stores the orthogonal map from `model` (its encoder) into the collection's
    /// space, from `pairs` sampled documents embedded by both (the stored vector and the other
    /// model's embedding of the stored text); queries naming `model` are then embedded by it
    /// (after `query_prefix`) and mapped. Returns the fit's report.
    pub fn fit_alignment(
        &self,
        model: &str,
        encoder: &SentenceEncoder,
        pairs: usize,
        centred: bool,
        query_prefix: &str,
    ) -> Result<quarry_linalg::procrustes::FitReport> {
        let d_old = self.dense_dim()?;
        // Only documents with both a stored text and a vector pair up.
        let pairs: Vec<(String, Vec<f32>)> = self
            .sample_points(pairs, 3)
            .into_iter()
            .filter_map(|p| {
                let text = p.payload.get(&self.spec.key).and_then(serde_json::Value::as_str)?.to_string();
                Some((text, p.vectors.into_iter().next()?))
            })
            .collect();
        let texts: Vec<&str> = pairs.iter().map(|p| p.0.as_str()).collect();
        let old: Vec<f32> = pairs.iter().flat_map(|p| p.1.iter().copied()).collect();
        let new = encoder.encode(&texts, super::BATCH)?;
        let (map, report) = Alignment::fit(new.as_slice(), encoder.dim(), &old, d_old, centred)?;
        let mut q = self.quality().unwrap_or_default();
        q.spec.alignments.insert(
            model.to_string(),
            AlignmentSpec {
                d_new: map.d_new,
                d_old: map.d_old,
                centred,
                query_prefix: query_prefix.to_string(),
                report: serde_json::json!({
                    "pairs": report.pairs,
                    "mean_cosine": report.mean_cosine,
                    "residual": report.residual,
                    "identity_residual": report.identity_residual.is_finite().then_some(report.identity_residual),
                }),
            },
        );
        q.alignments.insert(model.to_string(), map);
        self.set_quality(Some(q))?;
        Ok(report)
    }

    /// The query prefix of an aligned model (none if the model has no map here).
    pub fn alignment_prefix(&self, model: &str) -> Option<String> {
        let slot = self.quality.read().unwrap_or_else(PoisonError::into_inner);
        slot.as_ref()?.q.spec.alignments.get(model).map(|a| a.query_prefix.clone())
    }

    /// Query texts embedded by `model` (its `encoder`, after the prefix stored with its map) and
    /// mapped into the collection's space: the dense vectors of a model-upgrade query.
    pub fn embed_aligned(
        &self,
        model: &str,
        encoder: &SentenceEncoder,
        texts: &[String],
    ) -> Result<Vec<Vec<f32>>> {
        let prefix = self.alignment_prefix(model).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "collection {:?} has no map for queries of model {model:?}: fit one with `quarry align`",
                self.docs.name()
            ))
        })?;
        let with: Vec<String> = texts.iter().map(|t| format!("{prefix}{t}")).collect();
        let refs: Vec<&str> = with.iter().map(String::as_str).collect();
        let m = encoder.encode(&refs, super::BATCH)?;
        let raw: Vec<Vec<f32>> = (0..m.rows()).map(|r| m.row(r).to_vec()).collect();
        self.align_queries(model, &raw)
    }

    /// Dense list after Rocchio feedback: a first pass of `fb.docs` documents, the query moved
    /// toward their vectors, then the final pass.
    pub(super) fn dense_with_feedback(
        &self,
        q: &[f32],
        depth: usize,
        filter: Option<&crate::filter::Filter>,
        ef: usize,
        fb: &crate::text_query::Feedback,
    ) -> Result<List> {
        self.dense_dim()?;
        let first = self.dense_list(q, fb.docs.max(1), filter, ef)?;
        let vectors: Vec<Vec<f32>> = first
            .iter()
            .filter_map(|h| self.docs.get(h.0).and_then(|p| p.vectors.into_iter().next()))
            .collect();
        let refs: Vec<&[f32]> = vectors.iter().map(Vec::as_slice).collect();
        let moved = fb.rocchio.apply(q, &refs, &[])?;
        self.dense_list(&moved, depth, filter, ef)
    }

    /// BM25 list after RM3 expansion from the first pass's `fb.docs` documents.
    pub(super) fn bm25_with_feedback(
        &self,
        text: &str,
        depth: usize,
        admitted: Option<&HashSet<PointId>>,
        fb: &crate::text_query::Feedback,
    ) -> Result<List> {
        let first = self.bm25_list(text, fb.docs.max(1), admitted);
        let lex = self.lexical.read().unwrap_or_else(PoisonError::into_inner);
        let docs: Vec<FeedbackDoc> = first
            .iter()
            .filter_map(|h| {
                lex.num_of
                    .get(&h.0)
                    .map(|&n| FeedbackDoc { terms: lex.index.doc_terms(n), score: f64::from(h.1) })
            })
            .collect();
        let expanded = fb.rm3.expand(&lex.index.analyzer().terms(text), &docs)?;
        let admit = |n: u32| admitted.is_none_or(|a| a.contains(&lex.id_of[n as usize]));
        let mut list: List = lex
            .index
            .search_weighted(&expanded, depth, Some(&admit))
            .into_iter()
            .map(|(n, s)| (lex.id_of[n as usize], s, None))
            .collect();
        list.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        Ok(list)
    }

    /// The fusion a hybrid query uses: its own, else the collection's fitted one, else
    /// [`crate::text::default_hybrid_fusion`].
    pub fn hybrid_fusion(&self, query: &crate::text_query::TextQuery) -> quarry_rank::fusion::Fusion {
        if let Some(f) = &query.fusion {
            return f.clone();
        }
        let slot = self.quality.read().unwrap_or_else(PoisonError::into_inner);
        slot.as_ref()
            .and_then(|s| s.q.spec.fusion.clone())
            .unwrap_or_else(crate::text_query::default_hybrid_fusion)
    }

    /// The stored threshold of the calibration for `mode` (what `min_relevance: auto` means).
    pub fn calibrated_threshold(&self, mode: TextMode) -> Result<f64> {
        let key = mode_key(mode);
        let slot = self.quality.read().unwrap_or_else(PoisonError::into_inner);
        slot.as_ref().and_then(|s| s.q.spec.calibration.get(key)).map(|c| c.threshold).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "collection {:?} has no calibration for {key} queries: fit one with `quarry calibrate --mode {key}`",
                self.docs.name()
            ))
        })
    }

    /// The re-ranking stage of a cascade: the first `depth` of `hits` (ranked for `query`) are
    /// scored by the cross-encoder ([`TextCollection::cross_scores`]) and re-ordered by
    /// [`blend_head`] with weight `blend` on the cross-encoder (1: its logit alone); the hits
    /// after them keep their order below.
    pub fn rerank(
        &self,
        query: &str,
        hits: Vec<TextHit>,
        reranker: &CrossEncoder,
        depth: usize,
        blend: f64,
    ) -> Result<Vec<TextHit>> {
        let n = depth.min(hits.len());
        let logits = self.cross_scores(query, &hits[..n], reranker)?;
        blend_head(hits, &logits, blend)
    }

    /// The cross-encoder's logit for `query` and each hit's document text (from the payload,
    /// fetched when the hits carry none).
    pub fn cross_scores(&self, query: &str, hits: &[TextHit], reranker: &CrossEncoder) -> Result<Vec<f32>> {
        let from = |p: &serde_json::Map<String, serde_json::Value>| {
            p.get(&self.spec.key).and_then(serde_json::Value::as_str).map(str::to_string)
        };
        let texts: Vec<String> = hits
            .iter()
            .map(|h| {
                from(&h.payload)
                    .or_else(|| self.docs.payload(h.id).as_ref().and_then(from))
                    .unwrap_or_default()
            })
            .collect();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        reranker.score(query, &refs, 16)
    }

    /// Maps query vectors of `model` into the collection's space through the stored map.
    pub fn align_queries(&self, model: &str, vectors: &[Vec<f32>]) -> Result<Vec<Vec<f32>>> {
        let slot = self.quality.read().unwrap_or_else(PoisonError::into_inner).clone();
        let map = slot.as_ref().and_then(|s| s.q.alignments.get(model)).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "collection {:?} has no map for queries of model {model:?}: fit one with `quarry align`",
                self.docs.name()
            ))
        })?;
        vectors.iter().map(|v| map.apply(v)).collect()
    }

    /// A query vector's null statistics over the stored null sample (none without one).
    pub fn null_stats(&self, q: &[f32]) -> Option<NullStats> {
        let slot = self.quality.read().unwrap_or_else(PoisonError::into_inner);
        let m = slot.as_ref()?.q.null_sample.as_ref()?;
        (m.cols == q.len()).then(|| NullStats::from_scores(&m.dots(q))).flatten()
    }

    /// Re-scores a dense list by the fitted hubness correction and re-sorts it.
    pub(super) fn apply_hubness(&self, list: &mut List) -> Result<()> {
        let state = self.quality.read().unwrap_or_else(PoisonError::into_inner).clone();
        let fitted =
            state.as_ref().and_then(|s| Some((s, s.q.spec.hubness.as_ref()?, s.q.query_bank.as_ref()?)));
        let Some((state, h, qb)) = fitted else {
            return Err(Error::InvalidArgument(format!(
                "collection {:?} has no hubness correction: fit one with `quarry hubness`",
                self.docs.name()
            )));
        };
        let active = match (h.method.dynamic(), list.first()) {
            (true, Some(top)) => {
                let a = state.activation.contains(&top.0);
                (a, a)
            }
            _ => (true, true),
        };
        for item in list.iter_mut() {
            let cached = state.norms.lock().unwrap_or_else(PoisonError::into_inner).get(&item.0).copied();
            let z = match cached {
                Some(z) => z,
                None => {
                    let Some(v) = self.docs.get(item.0).and_then(|p| p.vectors.into_iter().next()) else {
                        continue;
                    };
                    let gallery: Vec<f64> = state
                        .q
                        .gallery_bank
                        .as_ref()
                        .map(|g| g.dots(&v).into_iter().filter(|s| *s < SELF_DOT).collect())
                        .unwrap_or_default();
                    let z = Normalisers::of(&h.method, &qb.dots(&v), &gallery);
                    state.norms.lock().unwrap_or_else(PoisonError::into_inner).insert(item.0, z);
                    z
                }
            };
            item.1 = rescore_with_strength(&h.method, f64::from(item.1), &z, active, h.strength) as f32;
        }
        list.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        Ok(())
    }

    /// Each hit's calibrated relevance for `mode` (non-increasing down `scores`); `qvec` is the
    /// dense query vector (for the null feature).
    pub(super) fn relevance(&self, mode: TextMode, qvec: Option<&[f32]>, scores: &[f64]) -> Result<Vec<f64>> {
        let key = mode_key(mode);
        let state = self.quality.read().unwrap_or_else(PoisonError::into_inner).clone();
        let cal = state.as_ref().and_then(|s| s.q.spec.calibration.get(key)).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "collection {:?} has no calibration for {key} queries: fit one with `quarry calibrate --mode {key}`",
                self.docs.name()
            ))
        })?;
        let null = if cal.needs_null() { qvec.and_then(|q| self.null_stats(q)) } else { None };
        if cal.needs_null() && null.is_none() {
            return Err(Error::InvalidArgument(format!(
                "the {key} calibration needs the query's dense vector and the stored null sample"
            )));
        }
        cal.probabilities(scores, null)
    }
}

/// The calibration key of a mode.
pub fn mode_key(mode: TextMode) -> &'static str {
    match mode {
        TextMode::Dense => "dense",
        TextMode::Bm25 => "bm25",
        TextMode::Hybrid => "hybrid",
    }
}

/// Re-orders the head of `hits` (as many as `logits`) by a convex combination of min-max
/// normalised scores, `blend` on the cross-encoder's logits and `1 − blend` on the first stage's
/// scores (quarry-rank's weighted fusion: the one implementation). The rest keep their order and
/// scores; the head's scores become the combination (in [0, 1]) raised by one above the rest's
/// best, so scores still fall with rank.
pub fn blend_head(mut hits: Vec<TextHit>, logits: &[f32], blend: f64) -> Result<Vec<TextHit>> {
    use quarry_rank::fusion::{fuse, Fusion, Norm};
    if !(0.0..=1.0).contains(&blend) {
        return Err(Error::InvalidArgument(format!("re-rank blend {blend} is not in [0, 1]")));
    }
    let n = logits.len().min(hits.len());
    let rest = hits.split_off(n);
    let by_logit = {
        let mut l: Vec<(usize, f64)> =
            logits.iter().take(n).enumerate().map(|(i, s)| (i, f64::from(*s))).collect();
        l.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        l
    };
    let first: Vec<(usize, f64)> = hits.iter().enumerate().map(|(i, h)| (i, h.score)).collect();
    let fused = fuse(
        &[by_logit, first],
        &Fusion::Weighted { weights: vec![blend, 1.0 - blend], norm: Norm::MinMax },
        n,
    )?;
    let floor = rest.first().map_or(0.0, |h| h.score + 1.0);
    let mut slots: Vec<Option<TextHit>> = hits.into_iter().map(Some).collect();
    let mut out: Vec<TextHit> = fused
        .into_iter()
        .filter_map(|(i, s)| {
            let mut h = slots.get_mut(i)?.take()?;
            h.score = floor + s;
            Some(h)
        })
        .collect();
    out.extend(rest);
    Ok(out)
}
