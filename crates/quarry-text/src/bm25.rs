//! BM25 (Robertson & Zaragoza, "The Probabilistic Relevance Framework: BM25 and Beyond",
//! Foundations and Trends in IR 3(4), 2009), in the Lucene variant with idf always positive
//! (Kamphuis, de Vries, Boytsov & Lin, "Which BM25 Do You Mean? A Large-Scale Reproducibility
//! Study of Scoring Variants", ECIR 2020; as in tantivy `src/query/bm25.rs`), over an in-memory
//! inverted index:
//! a term dictionary, postings `(document, term frequency)` in insertion order, exact document
//! lengths, and a forward list per document so deletes update the statistics exactly.
//!
//! ```text
//! score(q, d) = Σ_{t in q} idf(t) · tf·(k1 + 1) / (tf + k1·(1 − b + b·|d|/avgdl))
//! idf(t)      = ln(1 + (N − df + 0.5) / (df + 0.5))
//! ```
//!
//! Conventions, fixed and tested: `N`, `df` and `avgdl` count live documents only (a delete
//! updates them at once, unlike Lucene, which counts deleted documents until a merge); lengths are
//! exact token counts after analysis (no one-byte length quantisation); a term repeated in the
//! query counts once per occurrence (summed clauses, as a Lucene boolean query of term clauses);
//! query terms unknown to the index contribute nothing; ties rank by document number.

use crate::analyzer::Analyzer;
use quarry_core::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// BM25's free parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bm25Params {
    /// Term-frequency saturation (≥ 0; 0: a match counts its idf once).
    pub k1: f32,
    /// Length normalisation in [0, 1] (0: document length is ignored).
    pub b: f32,
}

impl Default for Bm25Params {
    /// Lucene's, tantivy's and Elasticsearch's defaults: k1 = 1.2, b = 0.75.
    fn default() -> Self {
        Bm25Params { k1: 1.2, b: 0.75 }
    }
}

impl Bm25Params {
    /// Checks the ranges (k1 finite and ≥ 0, b in [0, 1]).
    pub fn check(&self) -> Result<()> {
        if !(self.k1.is_finite() && self.k1 >= 0.0) {
            return Err(Error::InvalidArgument(format!("bm25 k1 = {} (use a finite value >= 0)", self.k1)));
        }
        if !(0.0..=1.0).contains(&self.b) {
            return Err(Error::InvalidArgument(format!("bm25 b = {} (use a value in [0, 1])", self.b)));
        }
        Ok(())
    }
}

/// One query term's share of a document's score.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TermScore {
    /// The analysed term.
    pub term: String,
    /// Its frequency in the document.
    pub tf: u32,
    /// Live documents holding it.
    pub df: u32,
    /// Its inverse document frequency.
    pub idf: f32,
    /// Its contribution to the score.
    pub score: f32,
}

/// Collection-wide statistics.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Bm25Stats {
    /// Live documents (`N`).
    pub docs: u64,
    /// Mean length of live documents in terms (`avgdl`).
    pub avgdl: f64,
    /// Distinct terms ever indexed.
    pub terms: usize,
}

/// A BM25 index of documents numbered from 0 in insertion order (numbers are never reused).
#[derive(Debug, Clone)]
pub struct Bm25Index {
    analyzer: Analyzer,
    params: Bm25Params,
    term_ids: HashMap<String, u32>,
    names: Vec<String>,
    /// Per term: `(document, tf)`, documents ascending; may hold dead documents.
    postings: Vec<Vec<(u32, u32)>>,
    /// Per term: live documents holding it, and dead entries still in its postings.
    df: Vec<u32>,
    stale: Vec<u32>,
    doc_len: Vec<u32>,
    /// Per document: its `(term, tf)` (emptied when it is removed).
    doc_terms: Vec<Box<[(u32, u32)]>>,
    live: Vec<bool>,
    n_live: u64,
    total_len: u64,
}

impl Bm25Index {
    /// An empty index analysing with `analyzer` and scoring with `params` (checked).
    pub fn new(analyzer: Analyzer, params: Bm25Params) -> Result<Bm25Index> {
        params.check()?;
        Ok(Bm25Index {
            analyzer,
            params,
            term_ids: HashMap::new(),
            names: Vec::new(),
            postings: Vec::new(),
            df: Vec::new(),
            stale: Vec::new(),
            doc_len: Vec::new(),
            doc_terms: Vec::new(),
            live: Vec::new(),
            n_live: 0,
            total_len: 0,
        })
    }

    /// The analyzer (to analyse texts in parallel before [`Bm25Index::insert_terms`]).
    pub fn analyzer(&self) -> &Analyzer {
        &self.analyzer
    }

    /// The scoring parameters.
    pub fn params(&self) -> Bm25Params {
        self.params
    }

    /// Analyses and indexes `text`; returns its document number.
    pub fn insert(&mut self, text: &str) -> u32 {
        let terms = self.analyzer.terms(text);
        self.insert_terms(&terms)
    }

    /// Indexes a document given as analysed terms; returns its document number.
    pub fn insert_terms(&mut self, terms: &[String]) -> u32 {
        let doc = self.doc_len.len() as u32;
        let mut counts: HashMap<u32, u32> = HashMap::new();
        for t in terms {
            let id = match self.term_ids.get(t.as_str()) {
                Some(&id) => id,
                None => {
                    let id = self.names.len() as u32;
                    self.term_ids.insert(t.clone(), id);
                    self.names.push(t.clone());
                    self.postings.push(Vec::new());
                    self.df.push(0);
                    self.stale.push(0);
                    id
                }
            };
            *counts.entry(id).or_default() += 1;
        }
        let mut list: Vec<(u32, u32)> = counts.into_iter().collect();
        list.sort_unstable();
        for &(t, tf) in &list {
            self.postings[t as usize].push((doc, tf));
            self.df[t as usize] += 1;
        }
        self.doc_len.push(terms.len() as u32);
        self.doc_terms.push(list.into_boxed_slice());
        self.live.push(true);
        self.n_live += 1;
        self.total_len += terms.len() as u64;
        doc
    }

    /// Removes document `doc` (nothing if it is unknown or already removed); the statistics
    /// change at once, and a term's postings are compacted when most of them are dead.
    pub fn remove(&mut self, doc: u32) {
        let d = doc as usize;
        if !self.live.get(d).copied().unwrap_or(false) {
            return;
        }
        self.live[d] = false;
        self.n_live -= 1;
        self.total_len -= u64::from(self.doc_len[d]);
        for &(t, _) in std::mem::take(&mut self.doc_terms[d]).iter() {
            let t = t as usize;
            self.df[t] -= 1;
            self.stale[t] += 1;
            if self.stale[t] as usize * 2 > self.postings[t].len() {
                let live = &self.live;
                self.postings[t].retain(|&(x, _)| live[x as usize]);
                self.stale[t] = 0;
            }
        }
    }

    /// Whether `doc` is indexed and not removed.
    pub fn contains(&self, doc: u32) -> bool {
        self.live.get(doc as usize).copied().unwrap_or(false)
    }

    /// Collection-wide statistics.
    pub fn stats(&self) -> Bm25Stats {
        Bm25Stats { docs: self.n_live, avgdl: self.avgdl(), terms: self.names.len() }
    }

    fn avgdl(&self) -> f64 {
        if self.n_live == 0 {
            0.0
        } else {
            self.total_len as f64 / self.n_live as f64
        }
    }

    /// `ln(1 + (N − df + 0.5) / (df + 0.5))` with the current `N`.
    pub fn idf(&self, df: u32) -> f32 {
        let n = self.n_live as f64;
        let df = f64::from(df);
        (1.0 + (n - df + 0.5) / (df + 0.5)).ln() as f32
    }

    /// Known term ids of the analysed query, repeats kept.
    fn query_ids(&self, query: &str) -> Vec<u32> {
        self.analyzer.terms(query).iter().filter_map(|t| self.term_ids.get(t.as_str()).copied()).collect()
    }

    /// `1 / (k1·(1 − b + b·|d|/avgdl))` parts: the denominator's length term for `doc`.
    #[inline]
    fn norm(&self, doc: u32, avgdl: f32) -> f32 {
        let Bm25Params { k1, b } = self.params;
        let rel = if avgdl > 0.0 { self.doc_len[doc as usize] as f32 / avgdl } else { 0.0 };
        k1 * (1.0 - b + b * rel)
    }

    /// The best `k` live documents for `query` that `admit` accepts (all if none), as
    /// `(document, score)`, best first, ties by document number. Only documents sharing a term
    /// with the query score (above 0); others are never returned.
    pub fn search(&self, query: &str, k: usize, admit: Option<&dyn Fn(u32) -> bool>) -> Vec<(u32, f32)> {
        let ids: Vec<(u32, f32)> = self.query_ids(query).into_iter().map(|t| (t, 1.0)).collect();
        self.search_ids(&ids, k, admit)
    }

    /// [`Bm25Index::search`] for a weighted query of analysed terms (an expanded query, e.g.
    /// RM3's): a document scores `Σ weight · BM25(term)`; unknown terms are ignored.
    pub fn search_weighted(
        &self,
        terms: &[(String, f64)],
        k: usize,
        admit: Option<&dyn Fn(u32) -> bool>,
    ) -> Vec<(u32, f32)> {
        let ids: Vec<(u32, f32)> = terms
            .iter()
            .filter(|(_, w)| w.is_finite() && *w > 0.0)
            .filter_map(|(t, w)| self.term_ids.get(t.as_str()).map(|&id| (id, *w as f32)))
            .collect();
        self.search_ids(&ids, k, admit)
    }

    /// A live document's analysed terms with their counts (empty for an unknown or removed one).
    pub fn doc_terms(&self, doc: u32) -> Vec<(String, u32)> {
        if !self.contains(doc) {
            return Vec::new();
        }
        self.doc_terms[doc as usize].iter().map(|&(t, c)| (self.names[t as usize].clone(), c)).collect()
    }

    fn search_ids(
        &self,
        ids: &[(u32, f32)],
        k: usize,
        admit: Option<&dyn Fn(u32) -> bool>,
    ) -> Vec<(u32, f32)> {
        if ids.is_empty() || k == 0 || self.n_live == 0 {
            return Vec::new();
        }
        let avgdl = self.avgdl() as f32;
        let k1p1 = self.params.k1 + 1.0;
        let mut acc = vec![0f32; self.doc_len.len()];
        let mut touched: Vec<u32> = Vec::new();
        for &(t, weight) in ids {
            let idf = self.idf(self.df[t as usize]) * weight;
            for &(doc, tf) in &self.postings[t as usize] {
                if !self.live[doc as usize] {
                    continue;
                }
                let tf = tf as f32;
                let a = &mut acc[doc as usize];
                if *a == 0.0 {
                    touched.push(doc);
                }
                *a += idf * tf * k1p1 / (tf + self.norm(doc, avgdl));
            }
        }
        let mut hits: Vec<(u32, f32)> = touched
            .into_iter()
            .filter(|&d| admit.is_none_or(|f| f(d)))
            .map(|d| (d, acc[d as usize]))
            .filter(|&(_, s)| s > 0.0)
            .collect();
        let order = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
        if hits.len() > k {
            hits.select_nth_unstable_by(k - 1, order);
            hits.truncate(k);
        }
        hits.sort_unstable_by(order);
        hits
    }

    /// Each query term's contribution to `doc`'s score (in query order; terms the document lacks
    /// contribute 0). Their sum is the score [`Bm25Index::search`] gives it.
    pub fn explain(&self, query: &str, doc: u32) -> Vec<TermScore> {
        let avgdl = self.avgdl() as f32;
        let live = self.contains(doc);
        self.analyzer
            .terms(query)
            .into_iter()
            .map(|term| {
                let t = self.term_ids.get(term.as_str()).copied();
                let df = t.map_or(0, |t| self.df[t as usize]);
                let tf = match (t, live) {
                    (Some(t), true) => {
                        let terms = &self.doc_terms[doc as usize];
                        terms.binary_search_by_key(&t, |&(x, _)| x).map_or(0, |i| terms[i].1)
                    }
                    _ => 0,
                };
                let idf = self.idf(df);
                let score = if tf == 0 {
                    0.0
                } else {
                    let tf = tf as f32;
                    idf * tf * (self.params.k1 + 1.0) / (tf + self.norm(doc, avgdl))
                };
                TermScore { term, tf, df, idf, score }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyzer::{AnalyzerConfig, StopWords};
    use proptest::prelude::*;

    fn plain() -> Analyzer {
        let cfg = AnalyzerConfig {
            stopwords: StopWords::Named("none".into()),
            stemmer: None,
            ..Default::default()
        };
        Analyzer::new(&cfg).expect("analyzer")
    }

    fn worked(params: Bm25Params) -> Bm25Index {
        let mut ix = Bm25Index::new(plain(), params).expect("index");
        for d in ["a b a", "b c", "c c c d"] {
            ix.insert(d);
        }
        ix
    }

    #[test]
    fn worked_example_matches_the_reference() {
        // The formula in the module doc, by hand: N = 3, avgdl = 3, query "a c",
        // idf(a) = ln(1 + 2.5/1.5), idf(c) = ln(1 + 1.5/2.5).
        for (params, want) in [
            (Bm25Params { k1: 1.2, b: 0.75 }, [1.348_64_f32, 0.544_215, 0.689_339]),
            (Bm25Params { k1: 0.9, b: 0.4 }, [1.285225, 0.501689, 0.666423]),
        ] {
            let ix = worked(params);
            assert!((ix.idf(1) - 0.980829).abs() < 1e-5);
            assert!((ix.idf(2) - 0.470004).abs() < 1e-5);
            let hits = ix.search("a c", 10, None);
            assert_eq!(hits.iter().map(|h| h.0).collect::<Vec<_>>(), [0, 2, 1]);
            for (doc, score) in hits {
                assert!((score - want[doc as usize]).abs() < 1e-5, "doc {doc}: {score}");
                let sum: f32 = ix.explain("a c", doc).iter().map(|t| t.score).sum();
                assert!((sum - score).abs() < 1e-6);
            }
        }
    }

    #[test]
    fn oracle_properties() {
        let ix = worked(Bm25Params::default());
        // idf is positive and decreasing in df.
        let idfs: Vec<f32> = (0..=3).map(|df| ix.idf(df)).collect();
        assert!(idfs.windows(2).all(|w| w[0] > w[1]) && idfs[3] > 0.0);
        // k1 = 0: a matching term contributes exactly its idf.
        let z = worked(Bm25Params { k1: 0.0, b: 0.75 });
        let hits = z.search("c", 10, None);
        assert!(hits.iter().all(|&(_, s)| (s - z.idf(2)).abs() < 1e-6));
        // b = 0: length does not matter; b > 0: longer documents score lower at equal tf.
        let mut flat = Bm25Index::new(plain(), Bm25Params { k1: 1.2, b: 0.0 }).expect("index");
        let mut norm = Bm25Index::new(plain(), Bm25Params::default()).expect("index");
        for d in ["x y", "x y y y y y", "z"] {
            flat.insert(d);
            norm.insert(d);
        }
        let f = flat.search("x", 10, None);
        assert!((f[0].1 - f[1].1).abs() < 1e-6);
        let n = norm.search("x", 10, None);
        assert_eq!(n[0].0, 0);
        assert!(n[0].1 > n[1].1);
        // Score grows with tf and saturates below idf·(k1 + 1).
        let mut tf = Bm25Index::new(plain(), Bm25Params { k1: 1.2, b: 0.0 }).expect("index");
        for i in 1..=40 {
            tf.insert(&vec!["w"; i].join(" "));
        }
        tf.insert("other");
        let s = tf.search("w", 100, None);
        let mut by_doc = s.clone();
        by_doc.sort_by_key(|h| h.0);
        assert!(by_doc.windows(2).all(|w| w[1].1 > w[0].1));
        assert!(by_doc.iter().all(|h| h.1 < tf.idf(40) * 2.2));
        // Unknown query terms and empty queries match nothing.
        assert!(ix.search("nothing here", 10, None).is_empty());
        assert!(ix.search("", 10, None).is_empty());
    }

    #[test]
    fn admit_filters_and_bad_params_are_errors() {
        let ix = worked(Bm25Params::default());
        let hits = ix.search("a c", 10, Some(&|d| d != 0));
        assert_eq!(hits.iter().map(|h| h.0).collect::<Vec<_>>(), [2, 1]);
        assert!(Bm25Index::new(plain(), Bm25Params { k1: -1.0, b: 0.5 }).is_err());
        assert!(Bm25Index::new(plain(), Bm25Params { k1: 1.0, b: 1.5 }).is_err());
        assert!(Bm25Params { k1: f32::NAN, b: 0.5 }.check().is_err());
    }

    /// Brute-force BM25 over the live documents (the oracle).
    fn brute(docs: &[(Vec<String>, bool)], query: &[String], p: Bm25Params) -> Vec<(u32, f32)> {
        let live: Vec<usize> = (0..docs.len()).filter(|&i| docs[i].1).collect();
        let n = live.len() as f64;
        let avgdl = live.iter().map(|&i| docs[i].0.len()).sum::<usize>() as f64 / n.max(1.0);
        let mut out = Vec::new();
        for &i in &live {
            let d = &docs[i].0;
            let mut s = 0f64;
            for t in query {
                let tf = d.iter().filter(|x| *x == t).count() as f64;
                if tf == 0.0 {
                    continue;
                }
                let df = live.iter().filter(|&&j| docs[j].0.contains(t)).count() as f64;
                let idf = (1.0 + (n - df + 0.5) / (df + 0.5)).ln();
                let (k1, b) = (f64::from(p.k1), f64::from(p.b));
                s += idf * tf * (k1 + 1.0) / (tf + k1 * (1.0 - b + b * d.len() as f64 / avgdl));
            }
            if s > 0.0 {
                out.push((i as u32, s as f32));
            }
        }
        out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Inserts and removes in any order give the scores of brute force over the live docs
        /// (statistics are exact after deletes and postings compaction).
        #[test]
        fn matches_brute_force_under_deletes(
            docs in prop::collection::vec(prop::collection::vec(0u8..12, 0..12), 1..40),
            dels in prop::collection::vec(any::<prop::sample::Index>(), 0..30),
            query in prop::collection::vec(0u8..14, 1..5),
            k1 in 0.0f32..2.0, b in 0.0f32..1.0,
        ) {
            let p = Bm25Params { k1, b };
            let mut ix = Bm25Index::new(plain(), p).expect("index");
            let words = |v: &[u8]| v.iter().map(|w| format!("w{w}")).collect::<Vec<_>>();
            let mut model: Vec<(Vec<String>, bool)> = Vec::new();
            for d in &docs {
                let terms = words(d);
                ix.insert_terms(&terms);
                model.push((terms, true));
            }
            for i in dels {
                let d = i.index(docs.len());
                ix.remove(d as u32);
                model[d].1 = false;
            }
            let q = words(&query);
            let want = brute(&model, &q, p);
            let got = ix.search(&q.join(" "), docs.len(), None);
            prop_assert_eq!(got.len(), want.len());
            for (g, w) in got.iter().zip(&want) {
                prop_assert!((g.1 - w.1).abs() <= 1e-4 * w.1.max(1.0), "{:?} vs {:?}", g, w);
            }
            prop_assert_eq!(ix.stats().docs as usize, model.iter().filter(|d| d.1).count());
        }
    }
}
