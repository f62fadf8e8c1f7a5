//! Crash-safe writing of TREC run files.
//!
//! Every file goes through [`quarry_store::atomic::AtomicFile`] (temporary sibling, fsync, rename,
//! directory fsync), so a reader never sees a half-written run. Scores are
//! printed with Rust's shortest round-trip formatting of their own type (f32 or f64), so reading
//! the file back gives exactly the scores — and therefore exactly the ties — that were written.

use std::collections::HashSet;
use std::path::Path;

use quarry_core::{Error, Result};

use super::run::Run;
use quarry_store::atomic::AtomicFile;

/// A score type that can be written to a run file without losing precision.
pub trait TrecScore: Copy {
    /// The score widened to f64 (exact for f32).
    fn to_f64(self) -> f64;
    /// The shortest decimal text that parses back to exactly this value in its own type.
    fn to_text(self) -> String;
}

impl TrecScore for f32 {
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
    fn to_text(self) -> String {
        self.to_string()
    }
}

impl TrecScore for f64 {
    fn to_f64(self) -> f64 {
        self
    }
    fn to_text(self) -> String {
        self.to_string()
    }
}

/// Streams ranked results into a TREC run file, one query at a time.
///
/// Lines are `qid Q0 docno rank score tag` with ranks 1..n in the order given. Call
/// [`RunWriter::finish`] to move the file into place; dropping the writer discards it.
pub struct RunWriter {
    file: AtomicFile,
    tag: String,
    seen_queries: HashSet<String>,
}

impl RunWriter {
    /// Starts writing `path` with run tag `tag` (a non-empty token without whitespace).
    pub fn create(path: &Path, tag: &str) -> Result<Self> {
        check_token("run tag", tag)?;
        Ok(Self { file: AtomicFile::create(path)?, tag: tag.to_string(), seen_queries: HashSet::new() })
    }

    /// Writes the ranked `hits` (best first) of query `qid`.
    ///
    /// Fails on an id that is empty or contains whitespace, a NaN score, a docno repeated within
    /// the query, or a query written twice — each would make a file trec_eval rejects or
    /// misreads.
    pub fn write_query<D: AsRef<str>, S: TrecScore>(&mut self, qid: &str, hits: &[(D, S)]) -> Result<()> {
        check_token("query id", qid)?;
        if !self.seen_queries.insert(qid.to_string()) {
            return Err(Error::InvalidArgument(format!("query {qid:?} written twice to the run")));
        }
        let mut docs = HashSet::with_capacity(hits.len());
        let mut text = String::with_capacity(hits.len() * 40);
        for (rank, (docno, score)) in hits.iter().enumerate() {
            let docno = docno.as_ref();
            check_token("docno", docno)?;
            if !docs.insert(docno) {
                return Err(Error::InvalidArgument(format!("docno {docno:?} repeated in query {qid:?}")));
            }
            if score.to_f64().is_nan() {
                return Err(Error::InvalidArgument(format!(
                    "NaN score for docno {docno:?} in query {qid:?}"
                )));
            }
            text.push_str(&format!("{qid} Q0 {docno} {} {} {}\n", rank + 1, score.to_text(), self.tag));
        }
        self.file.write_bytes(text.as_bytes())
    }

    /// Flushes, fsyncs and renames the file into place.
    pub fn finish(self) -> Result<()> {
        self.file.commit()
    }
}

fn check_token(what: &str, s: &str) -> Result<()> {
    if s.is_empty() || s.chars().any(char::is_whitespace) {
        return Err(Error::InvalidArgument(format!(
            "{what} {s:?} must be non-empty and contain no whitespace"
        )));
    }
    Ok(())
}

/// Writes `run` to `path` with run tag `tag`, each query's results in their stored order.
pub fn write_run(path: &Path, run: &Run, tag: &str) -> Result<()> {
    write_ranked(path, run.iter(), tag)
}

/// Writes ranked results `(qid, hits best first)` to `path` with run tag `tag`.
///
/// `hits` may be `Vec<(String, f32)>`, `&[(&str, f64)]`, …; see [`RunWriter::write_query`].
pub fn write_ranked<I, Q, H, D, S>(path: &Path, queries: I, tag: &str) -> Result<()>
where
    I: IntoIterator<Item = (Q, H)>,
    Q: AsRef<str>,
    H: AsRef<[(D, S)]>,
    D: AsRef<str>,
    S: TrecScore,
{
    let mut writer = RunWriter::create(path, tag)?;
    for (qid, hits) in queries {
        writer.write_query(qid.as_ref(), hits.as_ref())?;
    }
    writer.finish()
}
