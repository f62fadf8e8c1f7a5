//! Relevance judgements (qrels): TREC `qid iter docno rel` files and BEIR `qrels/*.tsv` files.
//!
//! [`read_qrels`] detects the layout from the first non-blank line: four whitespace-separated
//! columns is TREC, three is BEIR (`query-id corpus-id score`, whose header line is skipped).
//! A `(qid, docno)` pair judged twice keeps the last grade, as pytrec_eval (which takes a dict)
//! does.

use std::collections::BTreeMap;
use std::path::Path;

use quarry_core::{Error, Result};

use quarry_store::atomic::write_atomic;

/// Relevance judgements: for each query id, the judged documents and their integer grades.
///
/// Grades are trec_eval's `rel` values: a document is relevant at level `l` when `rel >= l`,
/// nDCG uses positive grades as gains, and a negative grade means "in the pool but unjudged"
/// (never relevant).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Qrels {
    queries: BTreeMap<String, BTreeMap<String, i32>>,
}

/// The layout of a qrels file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QrelsFormat {
    /// TREC: `qid iter docno rel`, whitespace separated; `iter` is ignored.
    Trec,
    /// BEIR: `query-id<TAB>corpus-id<TAB>score`, with an optional header line.
    Beir,
}

impl Qrels {
    /// An empty set of judgements.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that `docno` has grade `rel` for `qid`; returns the grade it replaces, if any.
    pub fn insert(&mut self, qid: impl Into<String>, docno: impl Into<String>, rel: i32) -> Option<i32> {
        self.queries.entry(qid.into()).or_default().insert(docno.into(), rel)
    }

    /// The judgements of one query (docno → grade), if the query has any.
    pub fn get(&self, qid: &str) -> Option<&BTreeMap<String, i32>> {
        self.queries.get(qid)
    }

    /// The grade of `docno` for `qid`, or `None` if it was not judged.
    pub fn rel(&self, qid: &str, docno: &str) -> Option<i32> {
        self.queries.get(qid).and_then(|docs| docs.get(docno)).copied()
    }

    /// Whether `qid` has at least one judgement.
    pub fn contains_query(&self, qid: &str) -> bool {
        self.queries.contains_key(qid)
    }

    /// Number of judged queries.
    pub fn len(&self) -> usize {
        self.queries.len()
    }

    /// Whether there are no judgements at all.
    pub fn is_empty(&self) -> bool {
        self.queries.is_empty()
    }

    /// Total number of `(qid, docno)` judgements.
    pub fn num_judgements(&self) -> usize {
        self.queries.values().map(BTreeMap::len).sum()
    }

    /// Number of documents judged relevant for `qid` at `level` (grade `>= level`, grade `>= 0`),
    /// trec_eval's `num_rel`.
    pub fn num_relevant(&self, qid: &str, level: i32) -> usize {
        self.get(qid).map_or(0, |docs| docs.values().filter(|&&r| r >= 0 && r >= level).count())
    }

    /// The query ids, in byte order.
    pub fn query_ids(&self) -> impl Iterator<Item = &str> {
        self.queries.keys().map(String::as_str)
    }

    /// Every query with its judgements, in query-id byte order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &BTreeMap<String, i32>)> {
        self.queries.iter().map(|(q, d)| (q.as_str(), d))
    }

    /// Parses qrels text in either layout; `path` is only used in error messages.
    pub fn parse(text: &str, path: &Path) -> Result<Qrels> {
        Self::parse_with_format(text, path).map(|(qrels, _)| qrels)
    }

    /// Parses qrels text and also reports which layout was detected.
    pub fn parse_with_format(text: &str, path: &Path) -> Result<(Qrels, QrelsFormat)> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut qrels = Qrels::new();
        let mut format = None;
        for (idx, line) in text.lines().enumerate() {
            let lineno = idx + 1;
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.is_empty() {
                continue;
            }
            let fmt = match format {
                Some(f) => f,
                None => {
                    let f = detect(&fields, path, lineno)?;
                    format = Some(f);
                    // A BEIR header (`query-id corpus-id score`) has a non-integer last column.
                    if f == QrelsFormat::Beir && fields[2].parse::<i32>().is_err() {
                        continue;
                    }
                    f
                }
            };
            let (qid, docno, rel) = match (fmt, fields.as_slice()) {
                (QrelsFormat::Trec, [qid, _iter, docno, rel]) => (*qid, *docno, *rel),
                (QrelsFormat::Beir, [qid, docno, rel]) => (*qid, *docno, *rel),
                _ => {
                    let want = if fmt == QrelsFormat::Trec {
                        "4 (qid iter docno rel)"
                    } else {
                        "3 (query-id corpus-id score)"
                    };
                    return Err(Error::malformed(
                        path,
                        format!("line {lineno}"),
                        format!("expected {want} columns, found {}", fields.len()),
                    ));
                }
            };
            let rel: i32 = rel.parse().map_err(|_| {
                Error::malformed(
                    path,
                    format!("line {lineno}"),
                    format!("relevance {rel:?} is not an integer"),
                )
            })?;
            qrels.insert(qid, docno, rel);
        }
        Ok((qrels, format.unwrap_or(QrelsFormat::Trec)))
    }

    /// The judgements as TREC qrels text (`qid 0 docno rel`, one per line, sorted by qid then docno).
    pub fn to_trec_string(&self) -> String {
        let mut out = String::new();
        for (qid, docs) in &self.queries {
            for (docno, rel) in docs {
                out.push_str(&format!("{qid} 0 {docno} {rel}\n"));
            }
        }
        out
    }
}

fn detect(fields: &[&str], path: &Path, lineno: usize) -> Result<QrelsFormat> {
    match fields.len() {
        4 => Ok(QrelsFormat::Trec),
        3 => Ok(QrelsFormat::Beir),
        n => Err(Error::malformed(
            path,
            format!("line {lineno}"),
            format!(
                "expected 4 columns (TREC `qid iter docno rel`) or 3 columns (BEIR `query-id corpus-id score`), found {n}"
            ),
        )),
    }
}

/// Reads a TREC or BEIR qrels file (layout auto-detected, see [`Qrels::parse`]).
pub fn read_qrels(path: &Path) -> Result<Qrels> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io("reading", path, e))?;
    Qrels::parse(&text, path)
}

/// Writes `qrels` as a TREC qrels file, crash-safely (temporary file, fsync, rename).
pub fn write_qrels(path: &Path, qrels: &Qrels) -> Result<()> {
    write_atomic(path, |w| w.write_all(qrels.to_trec_string().as_bytes()))
}
