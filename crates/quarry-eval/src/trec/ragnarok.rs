//! Runs in the TREC 2024 RAG (Ragnarök) formats, so the retrieval part of a RAG run from that
//! ecosystem can be evaluated like a TREC run:
//!
//! * a **request** (the input of generation): `{"query": {"qid", "text"}, "candidates":
//!   [{"docid", "score", "doc": {…}}]}` — the candidates are the ranking (their scores; when
//!   any candidate has none, every one ranks by its position);
//! * a **response** (the output of generation): `{"topic_id", "topic", "references": [docid…],
//!   "answer": […]}` — the references, in order, are the ranking (scored `n - i`).
//!
//! A file holds one object per line (JSONL), one object, or an array of objects. A candidate
//! listed twice for one query keeps its first place.

use super::Run;
use quarry_core::{Error, Result};
use serde_json::Value;
use std::path::Path;

/// Whether `text` looks like JSON (a Ragnarök file) rather than a TREC run.
pub(crate) fn looks_like_json(text: &str) -> bool {
    text.trim_start().starts_with(['{', '['])
}

/// Parses a Ragnarök request or response file (see the module docs); `path` names it in errors.
pub fn parse_ragnarok(text: &str, path: &Path) -> Result<Run> {
    let at = |what: String| Error::InvalidArgument(format!("{}: {what}", path.display()));
    let objects: Vec<(usize, Value)> = match serde_json::from_str::<Value>(text) {
        Ok(Value::Array(items)) => items.into_iter().enumerate().map(|(i, v)| (i + 1, v)).collect(),
        Ok(v) => vec![(1, v)],
        Err(_) => text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| {
                serde_json::from_str::<Value>(l)
                    .map(|v| (i + 1, v))
                    .map_err(|e| at(format!("line {}: {e}", i + 1)))
            })
            .collect::<Result<_>>()?,
    };
    let mut run = Run::new();
    for (n, v) in objects {
        let (qid, ranking) = ranking(&v).map_err(|m| at(format!("record {n}: {m}")))?;
        run.insert_query(&qid, &ranking).map_err(|e| at(format!("record {n}: {e}")))?;
    }
    Ok(run)
}

/// A string or number as a string.
fn id_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The query id and `(docid, score)` ranking of one request or response.
fn ranking(v: &Value) -> std::result::Result<(String, Vec<(String, f64)>), String> {
    let mut out: Vec<(String, f64)> = Vec::new();
    let mut push = |docid: String, score: f64| {
        if !out.iter().any(|(d, _)| *d == docid) {
            out.push((docid, score));
        }
    };
    if let Some(cands) = v.get("candidates") {
        let qid = v
            .get("query")
            .and_then(|q| q.get("qid"))
            .and_then(id_string)
            .ok_or("a request needs \"query\": {\"qid\", \"text\"}")?;
        let cands = cands.as_array().ok_or("\"candidates\" must be an array")?;
        let n = cands.len();
        // Scores when every candidate has one; else (some missing or null) all rank by position,
        // as mixing the two scales would scramble the ranking.
        let scored = cands.iter().all(|c| c.get("score").is_some_and(|s| !s.is_null()));
        for (i, c) in cands.iter().enumerate() {
            let docid = c
                .get("docid")
                .and_then(id_string)
                .ok_or_else(|| format!("candidate {} has no \"docid\" (nothing to evaluate)", i + 1))?;
            let score = match c.get("score") {
                Some(s) if scored => {
                    s.as_f64().ok_or_else(|| format!("candidate {docid:?}: \"score\" must be a number"))?
                }
                _ => (n - i) as f64,
            };
            push(docid, score);
        }
        return Ok((qid, out));
    }
    if let Some(refs) = v.get("references") {
        let qid = v
            .get("topic_id")
            .or_else(|| v.get("narrative_id"))
            .and_then(id_string)
            .ok_or("a response needs \"topic_id\"")?;
        let refs = refs.as_array().ok_or("\"references\" must be an array")?;
        let n = refs.len();
        for (i, r) in refs.iter().enumerate() {
            let docid = id_string(r).ok_or_else(|| format!("reference {} is not a docid", i + 1))?;
            push(docid, (n - i) as f64);
        }
        return Ok((qid, out));
    }
    Err("neither a request (\"candidates\") nor a response (\"references\")".into())
}
