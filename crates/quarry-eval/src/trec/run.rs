//! TREC run files: `qid Q0 docno rank score tag`, whitespace separated.
//!
//! As in trec_eval, the rank column is ignored (evaluation re-sorts by score), fields after the
//! tag are ignored, and a docno listed twice for one query is an error. Scores are kept as f64,
//! the type trec_eval reads them into.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use quarry_core::{Error, Result};

use super::write::TrecScore;

/// Retrieval results: for each query id, the retrieved `(docno, score)` pairs in file order.
///
/// Invariants (checked on construction): no NaN score, no docno twice within a query.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Run {
    queries: BTreeMap<String, Vec<(String, f64)>>,
    tag: Option<String>,
}

impl Run {
    /// An empty run.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the results of query `qid` (any order; evaluation sorts them).
    ///
    /// Fails if `qid` is already present, a docno repeats, or a score is NaN.
    pub fn insert_query<D: AsRef<str>, S: TrecScore>(&mut self, qid: &str, hits: &[(D, S)]) -> Result<()> {
        if self.queries.contains_key(qid) {
            return Err(Error::InvalidArgument(format!("query {qid:?} is already in the run")));
        }
        let mut seen = HashSet::with_capacity(hits.len());
        let mut list = Vec::with_capacity(hits.len());
        for (docno, score) in hits {
            let docno = docno.as_ref();
            let score = score.to_f64();
            if !seen.insert(docno) {
                return Err(Error::InvalidArgument(format!("docno {docno:?} repeated in query {qid:?}")));
            }
            if score.is_nan() {
                return Err(Error::InvalidArgument(format!(
                    "NaN score for docno {docno:?} in query {qid:?}"
                )));
            }
            list.push((docno.to_string(), score));
        }
        self.queries.insert(qid.to_string(), list);
        Ok(())
    }

    /// The results of one query, in file (insertion) order.
    pub fn get(&self, qid: &str) -> Option<&[(String, f64)]> {
        self.queries.get(qid).map(Vec::as_slice)
    }

    /// Whether the run has results for `qid`.
    pub fn contains_query(&self, qid: &str) -> bool {
        self.queries.contains_key(qid)
    }

    /// Number of queries with results.
    pub fn len(&self) -> usize {
        self.queries.len()
    }

    /// Whether the run has no results at all.
    pub fn is_empty(&self) -> bool {
        self.queries.is_empty()
    }

    /// Total number of result lines.
    pub fn num_results(&self) -> usize {
        self.queries.values().map(Vec::len).sum()
    }

    /// The run tag of the first line read, if the run came from a file.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The query ids, in byte order.
    pub fn query_ids(&self) -> impl Iterator<Item = &str> {
        self.queries.keys().map(String::as_str)
    }

    /// Every query with its results, in query-id byte order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[(String, f64)])> {
        self.queries.iter().map(|(q, hits)| (q.as_str(), hits.as_slice()))
    }

    /// Parses run text; `path` is only used in error messages.
    pub fn parse(text: &str, path: &Path) -> Result<Run> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut run = Run::new();
        // docno -> line of first occurrence, per query, to name both lines of a duplicate.
        let mut seen: HashMap<String, HashMap<String, usize>> = HashMap::new();
        for (idx, line) in text.lines().enumerate() {
            let lineno = idx + 1;
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.is_empty() {
                continue;
            }
            let [qid, _q0, docno, _rank, score, tag, ..] = fields.as_slice() else {
                return Err(Error::malformed(
                    path,
                    format!("line {lineno}"),
                    format!("expected 6 columns (qid Q0 docno rank score tag), found {}", fields.len()),
                ));
            };
            let score: f64 = score.parse().map_err(|_| {
                Error::malformed(path, format!("line {lineno}"), format!("score {score:?} is not a number"))
            })?;
            if score.is_nan() {
                return Err(Error::malformed(path, format!("line {lineno}"), "score is NaN"));
            }
            if let Some(first) = seen.entry(qid.to_string()).or_default().insert(docno.to_string(), lineno) {
                return Err(Error::malformed(
                    path,
                    format!("line {lineno}"),
                    format!("duplicate docno {docno:?} for query {qid:?} (first on line {first})"),
                ));
            }
            if run.tag.is_none() {
                run.tag = Some(tag.to_string());
            }
            run.queries.entry(qid.to_string()).or_default().push((docno.to_string(), score));
        }
        Ok(run)
    }
}

/// Reads a run file: a TREC run (see [`Run::parse`]), or a TREC RAG (Ragnarök) request or
/// response file when it is JSON ([`super::parse_ragnarok`]).
pub fn read_run(path: &Path) -> Result<Run> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io("reading", path, e))?;
    if super::ragnarok::looks_like_json(&text) {
        return super::ragnarok::parse_ragnarok(&text, path);
    }
    Run::parse(&text, path)
}
