//! Text collections: documents given as text, stored in their payload, indexed for BM25 (one
//! collection-wide index, so statistics span every segment) and embedded by a sentence model
//! into the collection's vector field; queries ranked dense, BM25 or hybrid (rank or score
//! fusion), several query texts for one need fused into one ranking, every hit able to explain
//! its score.
//!
//! Long documents: passage 0 (what the model sees of the whole text, truncated at its window)
//! is the document's own vector; with [`PassageMode::Max`] the later passages (overlapping
//! windows) live in a companion collection in `<collection>/passages/` (payload: the document's
//! payload without its text, plus `_doc` and `_passage`), and a document's dense score is the
//! best of its passages. The BM25 index lives in memory and is rebuilt from the stored texts
//! when the collection opens; the log and segments stay the only durable state.

use crate::collection::{Collection, ScoredPoint, SearchOptions};
use crate::filter::Filter;
use crate::id::PointId;
use crate::point::Point;
use crate::schema::CollectionSchema;
use crate::text_lexical::Lexical;
pub use crate::text_query::{
    default_hybrid_fusion, Component, Feedback, TextDoc, TextHit, TextMode, TextQuery,
};
pub use crate::text_spec::{PassageMode, PassageSpec, TextSpec};
use quarry_core::{Error, Result};
use quarry_rank::fusion::fuse;
use quarry_text::{Analyzer, Bm25Index, SentenceEncoder};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

#[path = "text_context.rs"]
mod text_context;
#[path = "text_ingest.rs"]
mod text_ingest;
#[path = "text_quality.rs"]
mod text_quality;
#[path = "text_quality_fit.rs"]
mod text_quality_fit;
pub use text_context::{Context, ContextPassage, ContextRequest};
pub use text_ingest::{Duplicate, FileOutcome, FileReport, IngestOptions, IngestReport};
pub use text_quality::{blend_head, mode_key};
pub use text_quality_fit::{GALLERY_BANK, NULL_SAMPLE};

/// A ranked list: `(document, score, passage)`, best first.
type List = Vec<(PointId, f32, Option<u32>)>;

/// A collection of text documents (see the module documentation).
pub struct TextCollection {
    docs: Arc<Collection>,
    passages: Option<Arc<Collection>>,
    spec: TextSpec,
    encoder: Option<Arc<SentenceEncoder>>,
    lexical: RwLock<Lexical>,
    /// Serialises writes (the log, the passages and the BM25 index change together).
    write: Mutex<()>,
    /// Calibration and hubness settings (`quality.qq`), with their caches.
    quality: RwLock<Option<Arc<text_quality::QualityState>>>,
}

impl std::fmt::Debug for TextCollection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextCollection").field("name", &self.docs.name()).field("spec", &self.spec).finish()
    }
}

impl Drop for TextCollection {
    fn drop(&mut self) {
        if let Some(p) = &self.passages {
            p.wait_for_sealing();
        }
    }
}

const DOC_KEY: &str = "_doc";
const PASSAGE_KEY: &str = "_passage";
/// File in `passages/` written once the companion is complete.
const PASSAGES_READY: &str = "READY";
/// Texts per forward pass when embedding.
const BATCH: usize = 128;

/// A stable 128-bit id for passage `p` of document `doc`.
fn passage_id(doc: PointId, p: u32) -> PointId {
    stable_id(&format!("{doc}#{p}"))
}

/// A stable 128-bit id for `key` (FNV-1a, two lanes).
fn stable_id(key: &str) -> PointId {
    let lane =
        |basis: u64| key.bytes().fold(basis, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3));
    let hi = lane(0xcbf2_9ce4_8422_2325);
    let lo = lane(0x6c62_272e_07bb_0142);
    PointId::Uuid((u128::from(hi) << 64) | u128::from(lo))
}

/// The schema of the passage companion of `schema`.
fn passage_schema(schema: &CollectionSchema) -> CollectionSchema {
    CollectionSchema {
        vectors: schema.vectors.clone(),
        max_payload_bytes: schema.max_payload_bytes,
        fsync: schema.fsync,
        payload_indexes: vec![DOC_KEY.into()],
        seal_threshold: schema.seal_threshold,
        payload_graphs: false,
        text: None,
    }
}

impl TextCollection {
    /// Opens the text view of `docs` (whose schema must have text settings), with `encoder` for
    /// its model (required when the schema names one): opens or creates the passage companion
    /// and builds the BM25 index from the stored texts.
    pub fn open(docs: Arc<Collection>, encoder: Option<Arc<SentenceEncoder>>) -> Result<TextCollection> {
        let spec = docs.schema().text.clone().ok_or_else(|| {
            Error::InvalidArgument(format!("collection {:?} has no text field", docs.name()))
        })?;
        if spec.model.is_some() != encoder.is_some() {
            return Err(Error::InvalidArgument(format!(
                "collection {:?}: a model encoder is needed exactly when the schema names a model",
                docs.name()
            )));
        }
        if let Some(e) = &encoder {
            let dim = docs.schema().vectors[0].dim;
            if e.dim() != dim {
                return Err(Error::DimensionMismatch {
                    expected: dim,
                    got: e.dim(),
                    context: format!("model of text collection {:?}", docs.name()),
                });
            }
        }
        let mut fresh = false;
        let passages = match (&encoder, spec.passages.mode) {
            (Some(_), PassageMode::Max) => {
                let dir = docs.dir().join("passages");
                // The marker is written once the companion holds every document's passages: a
                // restored snapshot, or a rebuild cut short by a crash, has none.
                fresh = !dir.join(PASSAGES_READY).exists();
                if !dir.join("schema.json").exists() {
                    std::fs::create_dir_all(&dir).map_err(|e| Error::io("creating", &dir, e))?;
                    passage_schema(docs.schema()).save(&dir)?;
                }
                Some(Collection::open(&format!("{}/passages", docs.name()), &dir, None)?)
            }
            _ => None,
        };
        let analyzer = Analyzer::new(&spec.analyzer)?;
        let mut texts: Vec<(PointId, String)> = Vec::new();
        docs.for_each_payload(|id, p| {
            texts.push((id, p.get(&spec.key).and_then(Value::as_str).unwrap_or_default().to_string()));
        });
        texts.sort_unstable_by_key(|t| t.0);
        let terms = analyze(&analyzer, texts.iter().map(|t| t.1.as_str()).collect());
        let mut lexical = Lexical {
            index: Bm25Index::new(analyzer, spec.bm25)?,
            num_of: HashMap::new(),
            id_of: Vec::new(),
        };
        for ((id, _), t) in texts.iter().zip(&terms) {
            lexical.put(*id, t);
        }
        let quality = match crate::quality::Quality::load(docs.dir())? {
            Some(q) => {
                q.check(docs.schema().vectors.first().map_or(0, |f| f.dim))?;
                Some(text_quality::QualityState::new(q))
            }
            None => None,
        };
        let tc = TextCollection {
            docs,
            passages,
            spec,
            encoder,
            lexical: RwLock::new(lexical),
            write: Mutex::new(()),
            quality: RwLock::new(quality),
        };
        if fresh {
            // Documents without their passages (a restored snapshot, an interrupted rebuild):
            // split and embed them again (upserts of the same passage ids are idempotent).
            if tc.docs.count(None) > 0 {
                tc.rebuild_passages()?;
            }
            let marker = tc.docs.dir().join("passages").join(PASSAGES_READY);
            quarry_store::write_atomic(&marker, |w| std::io::Write::write_all(w, b"1\n"))?;
        }
        Ok(tc)
    }

    /// The underlying collection of documents (vectors are passage 0's embeddings).
    pub fn docs(&self) -> &Arc<Collection> {
        &self.docs
    }

    /// The text settings.
    pub fn spec(&self) -> &TextSpec {
        &self.spec
    }

    /// Number of documents.
    pub fn count(&self) -> usize {
        self.docs.count(None)
    }

    /// Number of extra passages stored (documents longer than the model's window).
    pub fn extra_passages(&self) -> usize {
        self.passages.as_ref().map_or(0, |p| p.count(None))
    }

    /// BM25 statistics over the live documents.
    pub fn bm25_stats(&self) -> quarry_text::bm25::Bm25Stats {
        self.lexical.read().unwrap_or_else(PoisonError::into_inner).index.stats()
    }

    fn embed(&self, texts: &[String], prefix: &str) -> Result<Vec<Vec<f32>>> {
        let Some(enc) = &self.encoder else { return Ok(vec![Vec::new(); texts.len()]) };
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let with: Vec<String> = texts.iter().map(|t| format!("{prefix}{t}")).collect();
        let refs: Vec<&str> = with.iter().map(String::as_str).collect();
        if self.docs.schema().vectors.first().is_some_and(|f| f.multivector.is_some()) {
            // Late interaction: the model's token vectors, scored by MaxSim.
            return enc.encode_tokens(&refs, BATCH);
        }
        let m = enc.encode(&refs, BATCH)?;
        Ok((0..m.rows()).map(|r| m.row(r).to_vec()).collect())
    }

    /// Indexes `docs` (a later document with the same id replaces an earlier one): embeds their
    /// passages, logs them (acknowledged once durable), and updates the BM25 index. Returns the
    /// number of documents written. A failure part-way can leave the passages of a document
    /// newer than the document; retrying the write repairs it.
    pub fn upsert(&self, docs: Vec<TextDoc>) -> Result<usize> {
        if docs.is_empty() {
            return Ok(0);
        }
        // The last of each id wins, as in the log.
        let mut last: HashMap<PointId, usize> = HashMap::new();
        for (i, d) in docs.iter().enumerate() {
            last.insert(d.id, i);
        }
        let docs: Vec<TextDoc> =
            docs.into_iter().enumerate().filter(|(i, d)| last[&d.id] == *i).map(|x| x.1).collect();
        let key = &self.spec.key;
        let texts: Vec<String> = docs.iter().map(|d| d.text.clone()).collect();
        let doc_vecs = self.embed(&texts, &self.spec.document_prefix)?;
        // Later passages of long documents.
        let passage_points = self.passage_points(&docs)?;
        let points: Vec<Point> = docs
            .iter()
            .zip(doc_vecs)
            .map(|(d, v)| {
                let mut payload = d.payload.clone();
                payload.insert(key.clone(), Value::String(d.text.clone()));
                Point { id: d.id, vectors: if v.is_empty() { Vec::new() } else { vec![v] }, payload }
            })
            .collect();
        for p in &points {
            p.check(self.docs.schema())?;
        }
        let terms = analyze(
            self.lexical.read().unwrap_or_else(PoisonError::into_inner).index.analyzer(),
            texts.iter().map(String::as_str).collect(),
        );
        let _w = self.write.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(pc) = &self.passages {
            let ids: Vec<PointId> = docs.iter().map(|d| d.id).collect();
            pc.delete_by_filter(&doc_filter(&ids)?)?;
            for chunk in passage_points.chunks(4096) {
                pc.upsert(chunk.to_vec())?;
            }
        }
        let n = self.docs.upsert(points)?;
        let mut lex = self.lexical.write().unwrap_or_else(PoisonError::into_inner);
        for (d, t) in docs.iter().zip(&terms) {
            lex.put(d.id, t);
        }
        Ok(n)
    }

    /// Points of passages 1.. of `docs` (embedded with the document prefix), for the companion
    /// collection; none without one.
    fn passage_points(&self, docs: &[TextDoc]) -> Result<Vec<Point>> {
        let (Some(enc), Some(_)) = (&self.encoder, &self.passages) else { return Ok(Vec::new()) };
        let mut extra: Vec<(usize, u32, String)> = Vec::new();
        for (i, d) in docs.iter().enumerate() {
            let ps = enc.passages(&d.text, self.spec.passages.overlap)?;
            extra.extend(ps.into_iter().enumerate().skip(1).map(|(p, t)| (i, p as u32, t)));
        }
        let texts: Vec<String> = extra.iter().map(|e| e.2.clone()).collect();
        let vecs = self.embed(&texts, &self.spec.document_prefix)?;
        Ok(extra
            .iter()
            .zip(vecs)
            .map(|((i, p, _), v)| {
                let d = &docs[*i];
                let mut payload = d.payload.clone();
                payload.insert(DOC_KEY.into(), d.id.to_json());
                payload.insert(PASSAGE_KEY.into(), Value::from(*p));
                Point { id: passage_id(d.id, *p), vectors: vec![v], payload }
            })
            .collect())
    }

    /// Rebuilds the passage companion from the stored documents (after a snapshot restore, which
    /// carries the documents only).
    fn rebuild_passages(&self) -> Result<()> {
        let Some(pc) = &self.passages else { return Ok(()) };
        let key = &self.spec.key;
        let mut docs: Vec<TextDoc> = Vec::new();
        self.docs.for_each_payload(|id, p| {
            let mut payload = p.clone();
            let text = match payload.remove(key) {
                Some(Value::String(t)) => t,
                _ => String::new(),
            };
            docs.push(TextDoc { id, text, payload });
        });
        docs.sort_unstable_by_key(|d| d.id);
        for chunk in docs.chunks(BATCH * 2) {
            let points = self.passage_points(chunk)?;
            if !points.is_empty() {
                pc.upsert(points)?;
            }
        }
        Ok(())
    }

    /// Deletes documents by id (and their passages); returns how many were present.
    pub fn delete(&self, ids: &[PointId]) -> Result<usize> {
        if ids.is_empty() {
            return Ok(0);
        }
        let _w = self.write.lock().unwrap_or_else(PoisonError::into_inner);
        let n = self.docs.delete(ids)?;
        if let Some(pc) = &self.passages {
            pc.delete_by_filter(&doc_filter(ids)?)?;
        }
        let mut lex = self.lexical.write().unwrap_or_else(PoisonError::into_inner);
        for id in ids {
            lex.remove(*id);
        }
        Ok(n)
    }

    /// The document with `id` (its payload holds the text).
    pub fn get(&self, id: PointId) -> Option<Point> {
        self.docs.get(id)
    }

    /// Waits for background seals of the documents and the passages.
    pub fn wait_for_sealing(&self) {
        self.docs.wait_for_sealing();
        if let Some(p) = &self.passages {
            p.wait_for_sealing();
        }
    }

    /// Builds one graph segment of everything (documents and passages).
    pub fn optimize(&self) -> Result<()> {
        self.docs.optimize()?;
        if let Some(p) = &self.passages {
            p.optimize()?;
        }
        Ok(())
    }

    /// Dense list of one query vector: documents by their best passage, `depth` long.
    fn dense_list(&self, q: &[f32], depth: usize, filter: Option<&Filter>, ef: usize) -> Result<List> {
        let opts = SearchOptions { ef, with_payload: false, ..SearchOptions::default() };
        let mut best: HashMap<PointId, (f32, u32)> = HashMap::new();
        for h in self.docs.search_with(q, None, depth, filter, &opts)? {
            best.insert(h.id, (h.score, 0));
        }
        if let Some(pc) = &self.passages {
            if pc.count(None) > 0 {
                // Grow the passage list until it names `depth` distinct documents (or ends): a
                // document missing from it then cannot beat the ones found.
                let popts = SearchOptions { ef, with_payload: true, ..SearchOptions::default() };
                let mut want = depth;
                loop {
                    let hits: Vec<ScoredPoint> = pc.search_with(q, None, want, filter, &popts)?;
                    let mut seen: HashMap<PointId, (f32, u32)> = HashMap::new();
                    for h in &hits {
                        let doc = h.payload.get(DOC_KEY).map(PointId::from_json).transpose()?;
                        let p = h.payload.get(PASSAGE_KEY).and_then(Value::as_u64).unwrap_or(0) as u32;
                        if let Some(doc) = doc {
                            seen.entry(doc).or_insert((h.score, p));
                        }
                    }
                    if seen.len() >= depth || hits.len() < want {
                        let lex = self.lexical.read().unwrap_or_else(PoisonError::into_inner);
                        for (doc, (s, p)) in seen {
                            // A passage whose document is gone (an interrupted write) is skipped.
                            if !lex.num_of.contains_key(&doc) {
                                continue;
                            }
                            let e = best.entry(doc).or_insert((f32::NEG_INFINITY, p));
                            if s > e.0 {
                                *e = (s, p);
                            }
                        }
                        break;
                    }
                    want *= 2;
                }
            }
        }
        let mut list: List = best.into_iter().map(|(id, (s, p))| (id, s, Some(p))).collect();
        list.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        list.truncate(depth);
        Ok(list)
    }

    /// BM25 list of one query text, `depth` long.
    fn bm25_list(
        &self,
        text: &str,
        depth: usize,
        admitted: Option<&std::collections::HashSet<PointId>>,
    ) -> List {
        let lex = self.lexical.read().unwrap_or_else(PoisonError::into_inner);
        let admit = |n: u32| admitted.is_none_or(|a| a.contains(&lex.id_of[n as usize]));
        let mut list: List = lex
            .index
            .search(text, depth, Some(&admit))
            .into_iter()
            .map(|(n, s)| (lex.id_of[n as usize], s, None))
            .collect();
        // Ties by id (not by insertion order), as every other list.
        list.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        list
    }

    /// Ranks documents for `query` among those passing `filter`.
    pub fn search(&self, query: &TextQuery, filter: Option<&Filter>) -> Result<Vec<TextHit>> {
        if query.texts.is_empty() {
            return Err(Error::InvalidArgument("a text query needs at least one text".into()));
        }
        let dense = matches!(query.mode, TextMode::Dense | TextMode::Hybrid);
        let lexical = matches!(query.mode, TextMode::Bm25 | TextMode::Hybrid);
        if dense && self.encoder.is_none() {
            return Err(Error::InvalidArgument(format!(
                "collection {:?} has no model: only bm25 queries work",
                self.docs.name()
            )));
        }
        let single = query.texts.len() == 1 && query.mode != TextMode::Hybrid;
        // Hubness re-scoring re-orders the dense candidates: take the fusion depth.
        let depth = if single && !query.hubness { query.k } else { query.depth.max(query.k) };
        if let Some(m) = query.min_relevance {
            if !(0.0..=1.0).contains(&m) {
                return Err(Error::InvalidArgument(format!(
                    "min_relevance {m} is not a probability in [0, 1]"
                )));
            }
        }
        let qvecs = match (&query.vectors, dense) {
            (Some(v), _) => {
                let dim = self.docs.schema().vectors.first().map_or(0, |f| f.dim);
                if v.len() != query.texts.len() || v.iter().any(|x| x.len() != dim) {
                    return Err(Error::InvalidArgument(format!(
                        "a text query with vectors needs one {dim}-d vector per text ({} texts, {} vectors)",
                        query.texts.len(),
                        v.len()
                    )));
                }
                v.clone()
            }
            (None, true) => self.embed(&query.texts, &self.spec.query_prefix)?,
            (None, false) => Vec::new(),
        };
        let admitted = match (lexical, filter) {
            (true, Some(f)) => Some(self.docs.matching_ids(f).into_iter().collect()),
            _ => None,
        };
        // lists[i] = (query, source, list)
        let mut lists: Vec<(usize, &'static str, List)> = Vec::new();
        for (qi, text) in query.texts.iter().enumerate() {
            if dense {
                let mut list = match &query.feedback {
                    Some(fb) => self.dense_with_feedback(&qvecs[qi], depth, filter, query.ef, fb)?,
                    None => self.dense_list(&qvecs[qi], depth, filter, query.ef)?,
                };
                if query.hubness {
                    self.apply_hubness(&mut list)?;
                }
                lists.push((qi, "dense", list));
            }
            if lexical {
                let list = match &query.feedback {
                    Some(fb) => self.bm25_with_feedback(text, depth, admitted.as_ref(), fb)?,
                    None => self.bm25_list(text, depth, admitted.as_ref()),
                };
                lists.push((qi, "bm25", list));
            }
        }
        let as_scores = |l: &List| l.iter().map(|(id, s, _)| (*id, f64::from(*s))).collect::<Vec<_>>();
        let ranked: Vec<(PointId, f64)> = if single {
            as_scores(&lists[0].2)
        } else {
            let per_query: Vec<Vec<(PointId, f64)>> = (0..query.texts.len())
                .map(|qi| {
                    let mine: Vec<Vec<(PointId, f64)>> =
                        lists.iter().filter(|l| l.0 == qi).map(|l| as_scores(&l.2)).collect();
                    if mine.len() == 1 {
                        Ok(mine.into_iter().next().unwrap_or_default())
                    } else {
                        fuse(&mine, &self.hybrid_fusion(query), depth)
                    }
                })
                .collect::<Result<_>>()?;
            if per_query.len() == 1 {
                per_query.into_iter().next().unwrap_or_default()
            } else {
                fuse(&per_query, &query.multi_fusion, depth)?
            }
        };
        let mut ranked = ranked;
        ranked.truncate(query.k);
        let relevance = match query.min_relevance {
            Some(min) => {
                let scores: Vec<f64> = ranked.iter().map(|r| r.1).collect();
                let p = self.relevance(query.mode, qvecs.first().map(Vec::as_slice), &scores)?;
                let keep = p.iter().take_while(|x| **x >= min).count();
                ranked.truncate(keep);
                Some(p)
            }
            None => None,
        };
        let lex = self.lexical.read().unwrap_or_else(PoisonError::into_inner);
        let mut hits = Vec::with_capacity(ranked.len());
        for (rank, (id, score)) in ranked.into_iter().enumerate() {
            let payload =
                if query.with_payload { self.docs.payload(id).unwrap_or_default() } else { Map::new() };
            let explain = query.explain.then(|| {
                lists
                    .iter()
                    .filter_map(|(qi, source, l)| {
                        let rank = l.iter().position(|x| x.0 == id)?;
                        let (_, s, passage) = l[rank];
                        let terms = match (*source, lex.num_of.get(&id)) {
                            ("bm25", Some(&n)) => lex.index.explain(&query.texts[*qi], n),
                            _ => Vec::new(),
                        };
                        Some(Component { query: *qi, source, rank: rank + 1, score: s, passage, terms })
                    })
                    .collect()
            });
            let relevance = relevance.as_ref().and_then(|p| p.get(rank).copied());
            hits.push(TextHit { id, score, payload, explain, relevance });
        }
        Ok(hits)
    }
}

/// Analyses `texts` on all threads (one analyzer clone per task).
fn analyze(analyzer: &Analyzer, texts: Vec<&str>) -> Vec<Vec<String>> {
    use rayon::prelude::*;
    texts.par_iter().map_init(|| analyzer.clone(), |a, t| a.terms(t)).collect()
}

/// A filter matching passages of the documents `ids`.
fn doc_filter(ids: &[PointId]) -> Result<Filter> {
    let any: Vec<Value> = ids.iter().map(|id| id.to_json()).collect();
    let json = serde_json::json!({"must": [{"key": DOC_KEY, "match": {"any": any}}]});
    Filter::parse(&json.to_string())
}
