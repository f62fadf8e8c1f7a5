//! BEIR dataset folders: `corpus.jsonl`, `queries.jsonl` and `qrels/<split>.tsv`.
//!
//! Corpus lines are `{"_id", "title", "text", ...}` (a missing or null `title` reads as empty), query
//! lines `{"_id", "text", ...}`; other keys (e.g. `metadata`) are ignored. An `_id` may be a string or
//! an integer (kept as its decimal text). Duplicate ids are rejected, naming the line. Qrels are read
//! by [`crate::trec::read_qrels`].

use std::collections::HashSet;
use std::path::Path;

use quarry_core::{Error, Result};
use serde_json::{Map, Value};

use super::jsonl::{kind, lines, parse_object};
use super::read_file;
use crate::trec::{read_qrels, Qrels};

/// A corpus document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BeirDoc {
    /// The document id (`_id`).
    pub id: String,
    /// The title (empty when absent).
    pub title: String,
    /// The body text.
    pub text: String,
}

/// A query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BeirQuery {
    /// The query id (`_id`).
    pub id: String,
    /// The query text.
    pub text: String,
}

/// A loaded BEIR dataset: documents and queries in file order, and the judgements of one split.
#[derive(Debug, Clone)]
pub struct BeirDataset {
    /// The corpus, in file order.
    pub corpus: Vec<BeirDoc>,
    /// All queries in `queries.jsonl`, in file order (including unjudged ones).
    pub queries: Vec<BeirQuery>,
    /// The judgements of the requested split.
    pub qrels: Qrels,
}

/// Loads the BEIR folder `dir` with the judgements of `split` (`qrels/<split>.tsv`, e.g. `"test"`).
pub fn read_beir(dir: &Path, split: &str) -> Result<BeirDataset> {
    let qrels_path = dir.join("qrels").join(format!("{split}.tsv"));
    if !qrels_path.is_file() {
        let available = std::fs::read_dir(dir.join("qrels"))
            .map(|entries| {
                let mut names: Vec<String> = entries
                    .filter_map(|e| e.ok()?.file_name().to_str()?.strip_suffix(".tsv").map(str::to_string))
                    .collect();
                names.sort();
                names.join(", ")
            })
            .unwrap_or_default();
        return Err(Error::InvalidArgument(format!(
            "{}: no qrels for split {split:?} (available splits: {})",
            qrels_path.display(),
            if available.is_empty() { "none" } else { &available }
        )));
    }
    Ok(BeirDataset {
        corpus: read_beir_corpus(&dir.join("corpus.jsonl"))?,
        queries: read_beir_queries(&dir.join("queries.jsonl"))?,
        qrels: read_qrels(&qrels_path)?,
    })
}

/// Reads a BEIR `corpus.jsonl`.
pub fn read_beir_corpus(path: &Path) -> Result<Vec<BeirDoc>> {
    parse_beir_corpus(&read_file(path)?, path)
}

/// Reads a BEIR `queries.jsonl`.
pub fn read_beir_queries(path: &Path) -> Result<Vec<BeirQuery>> {
    parse_beir_queries(&read_file(path)?, path)
}

/// Parses the lines of a BEIR `corpus.jsonl` (`path` only names the file in errors).
pub fn parse_beir_corpus(bytes: &[u8], path: &Path) -> Result<Vec<BeirDoc>> {
    let mut seen = HashSet::new();
    lines(bytes)
        .map(|(n, line)| {
            let map = parse_object(line, n, path)?;
            let id = unique_id(&map, n, path, &mut seen)?;
            let title = text_field(&map, "title", n, path)?.unwrap_or_default();
            let text = text_field(&map, "text", n, path)?.ok_or_else(|| missing("text", n, path))?;
            Ok(BeirDoc { id, title, text })
        })
        .collect()
}

/// Parses the lines of a BEIR `queries.jsonl` (`path` only names the file in errors).
pub fn parse_beir_queries(bytes: &[u8], path: &Path) -> Result<Vec<BeirQuery>> {
    let mut seen = HashSet::new();
    lines(bytes)
        .map(|(n, line)| {
            let map = parse_object(line, n, path)?;
            let id = unique_id(&map, n, path, &mut seen)?;
            let text = text_field(&map, "text", n, path)?.ok_or_else(|| missing("text", n, path))?;
            Ok(BeirQuery { id, text })
        })
        .collect()
}

fn missing(key: &str, n: usize, path: &Path) -> Error {
    Error::malformed(path, format!("line {n}"), format!("missing {key:?}"))
}

fn unique_id(map: &Map<String, Value>, n: usize, path: &Path, seen: &mut HashSet<String>) -> Result<String> {
    let id = match map.get("_id") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(num)) if num.is_u64() || num.is_i64() => num.to_string(),
        Some(other) => {
            return Err(Error::malformed(
                path,
                format!("line {n}"),
                format!("\"_id\" must be a string or an integer, found {}", kind(other)),
            ))
        }
        None => return Err(missing("_id", n, path)),
    };
    if !seen.insert(id.clone()) {
        return Err(Error::malformed(path, format!("line {n}"), format!("duplicate \"_id\" {id:?}")));
    }
    Ok(id)
}

/// A string field; `None` when absent or null.
fn text_field(map: &Map<String, Value>, key: &str, n: usize, path: &Path) -> Result<Option<String>> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(Error::malformed(
            path,
            format!("line {n}"),
            format!("{key:?} must be a string, found {}", kind(other)),
        )),
    }
}
