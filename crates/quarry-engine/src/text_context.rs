//! Context for an LLM (`quarry context`, `/quarry/collections/{c}/context`, Python's
//! `Collection.context`): a text query's best hits, de-duplicated and packed into a token
//! budget, given as a TREC 2024 RAG (Ragnarök) request — `{"query": {"text", "qid"},
//! "candidates": [{"docid", "score", "doc": {"segment", "title", …}}]}` (Pradeep et al., 2024,
//! "Ragnarök: A Reusable RAG Framework and Baselines for TREC 2024 Retrieval-Augmented
//! Generation Track") — or as plain text with numbered citations.
//!
//! * Any search mode runs, with the collection's calibration, hubness correction and re-ranker
//!   as the query asks (the cascade when present).
//! * A hit is left out when its text equals an earlier one's (after normalising case and
//!   spaces), when its SimHash fingerprint is within `near_distance` bits of one, or when it
//!   covers more than half of an earlier hit's bytes of the same file (overlapping chunks).
//! * Hits are taken best first while they fit in the budget (the model's tokens); one that does
//!   not fit is skipped and later, shorter ones may still fit. When even the best hit alone is
//!   longer than the budget, it is cut at a token boundary to fit (`truncated`).

use super::TextCollection;
use crate::filter::Filter;
use crate::id::PointId;
use crate::text_query::{TextHit, TextQuery};
use quarry_core::Result;
use quarry_docs::hash::normalize;
use quarry_docs::{simhash, NearDuplicates};
use serde_json::{json, Map, Value};
use std::collections::HashSet;

/// What a context asks for.
#[derive(Debug, Clone)]
pub struct ContextRequest {
    /// The search (its `k`: candidates considered before de-duplication and packing).
    pub query: TextQuery,
    /// The query's id in the output (default `"0"`).
    pub qid: Option<String>,
    /// Most tokens of passage text.
    pub budget_tokens: usize,
    /// Near-duplicate distance in bits of 64 (0: exact duplicates only).
    pub near_distance: u32,
}

impl ContextRequest {
    /// A context of at most `budget_tokens` tokens from `query`'s hits, near duplicates within 3
    /// bits left out.
    pub fn new(query: TextQuery, budget_tokens: usize) -> ContextRequest {
        ContextRequest { query, qid: None, budget_tokens, near_distance: 3 }
    }
}

/// One passage of a context.
#[derive(Debug, Clone, PartialEq)]
pub struct ContextPassage {
    /// The document (chunk) id.
    pub id: PointId,
    /// Its search score.
    pub score: f64,
    /// Its rank in the search, from 1.
    pub rank: usize,
    /// Its text (cut to the budget when `truncated`).
    pub text: String,
    /// Tokens of `text`.
    pub tokens: usize,
    /// Whether the text was cut to fit the budget.
    pub truncated: bool,
    /// Its payload without the text.
    pub payload: Map<String, Value>,
}

/// A context for an LLM (see the module docs).
#[derive(Debug, Clone, PartialEq)]
pub struct Context {
    /// The query id.
    pub qid: String,
    /// The query text (the first, when the query has several).
    pub query: String,
    /// The passages, best first.
    pub passages: Vec<ContextPassage>,
    /// Tokens of the passages' texts.
    pub tokens: usize,
    /// The budget.
    pub budget_tokens: usize,
    /// Hits left out as duplicates of earlier ones.
    pub duplicates: usize,
    /// Hits left out for lack of room.
    pub over_budget: usize,
}

impl Context {
    /// The context as a Ragnarök request (docs/schemas/ragnarok-request.schema.json).
    pub fn to_ragnarok(&self) -> Value {
        let candidates: Vec<Value> = self
            .passages
            .iter()
            .map(|p| {
                let mut doc = Map::new();
                doc.insert("segment".into(), json!(p.text));
                let s = |k: &str| p.payload.get(k).and_then(Value::as_str);
                if let Some(t) = s("title") {
                    doc.insert("title".into(), json!(t));
                }
                if let Some(h) = p.payload.get("headings").and_then(Value::as_array).filter(|h| !h.is_empty())
                {
                    let parts: Vec<&str> = h.iter().filter_map(Value::as_str).collect();
                    doc.insert("headings".into(), json!(parts.join(" > ")));
                }
                if let Some(src) = s("source") {
                    doc.insert("url".into(), json!(file_url(src)));
                }
                for k in ["source", "start", "end", "page", "page_end"] {
                    if let Some(v) = p.payload.get(k) {
                        doc.insert(k.into(), v.clone());
                    }
                }
                if p.truncated {
                    doc.insert("truncated".into(), json!(true));
                }
                json!({"docid": p.id.to_string(), "score": p.score, "doc": doc})
            })
            .collect();
        json!({"query": {"text": self.query, "qid": self.qid}, "candidates": candidates})
    }

    /// [`Context::to_ragnarok`] with the packing's figures added at the top level: `tokens`,
    /// `duplicates`, `over_budget` (what the server and Python return).
    pub fn to_json(&self) -> Value {
        let mut v = self.to_ragnarok();
        v["tokens"] = json!(self.tokens);
        v["duplicates"] = json!(self.duplicates);
        v["over_budget"] = json!(self.over_budget);
        v
    }

    /// The context as plain text: the question, then each passage numbered `[n]` with its title
    /// and where it came from.
    pub fn to_text(&self) -> String {
        let mut out = format!("Question: {}\n", self.query);
        for (i, p) in self.passages.iter().enumerate() {
            let s = |k: &str| p.payload.get(k).and_then(Value::as_str);
            let mut head = format!("\n[{}]", i + 1);
            if let Some(t) = s("title") {
                head.push(' ');
                head.push_str(t);
            }
            let mut at = Vec::new();
            if let Some(src) = s("source") {
                at.push(src.to_string());
            }
            if let Some(pg) = p.payload.get("page").and_then(Value::as_u64) {
                at.push(format!("p. {pg}"));
            }
            if at.is_empty() {
                at.push(format!("id {}", p.id));
            }
            head.push_str(&format!(" ({})", at.join(", ")));
            out.push_str(&head);
            out.push('\n');
            out.push_str(p.text.trim());
            out.push('\n');
        }
        out
    }
}

/// `file://` URL of an absolute path (spaces and other unsafe bytes percent-encoded).
fn file_url(path: &str) -> String {
    if !path.starts_with('/') {
        return path.to_string();
    }
    let mut out = String::from("file://");
    for b in path.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'/' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

impl TextCollection {
    /// The context `req` asks for (see the module docs), over documents admitted by `filter`.
    pub fn context(&self, req: &ContextRequest, filter: Option<&Filter>) -> Result<Context> {
        let mut query = req.query.clone();
        query.with_payload = true;
        let hits = self.search(&query, filter)?;
        Ok(self.context_of_hits(req, hits))
    }

    /// The context of `hits` (best first, with payloads), as [`TextCollection::context`] packs
    /// them: for hits a later stage re-ranked (a cross-encoder).
    pub fn context_of_hits(&self, req: &ContextRequest, hits: Vec<TextHit>) -> Context {
        let tokens = self.tokens();
        let key = &self.spec.key;
        let mut exact: HashSet<String> = HashSet::new();
        let mut near: NearDuplicates<usize> = NearDuplicates::new(req.near_distance);
        let mut taken: Vec<(String, std::ops::Range<u64>)> = Vec::new();
        let mut out = Context {
            qid: req.qid.clone().unwrap_or_else(|| "0".into()),
            query: req.query.texts.first().cloned().unwrap_or_default(),
            passages: Vec::new(),
            tokens: 0,
            budget_tokens: req.budget_tokens,
            duplicates: 0,
            over_budget: 0,
        };
        for (rank, hit) in hits.into_iter().enumerate() {
            let mut payload = hit.payload;
            let text = match payload.remove(key) {
                Some(Value::String(t)) => t,
                _ => String::new(),
            };
            if text.trim().is_empty() {
                continue;
            }
            let norm = normalize(&text);
            let fp = simhash(&text);
            let range = match (
                payload.get("start").and_then(Value::as_u64),
                payload.get("end").and_then(Value::as_u64),
            ) {
                (Some(a), Some(b)) if b > a => Some(a..b),
                _ => None,
            };
            let source = payload.get("source").and_then(Value::as_str).map(str::to_string);
            let page = payload.get("page").and_then(Value::as_u64);
            // Byte ranges are exact for plain text and Markdown; an HTML block cut into windows
            // gives each the whole block's range, and PDF ranges are per page.
            let exact_range =
                matches!(payload.get("format").and_then(Value::as_str), Some("text" | "markdown"));
            let overlaps = match (&source, &range) {
                (Some(src), Some(r)) if page.is_none() && exact_range => taken.iter().any(|(s, t)| {
                    let common = r.end.min(t.end).saturating_sub(r.start.max(t.start));
                    s == src && 2 * common > (r.end - r.start).min(t.end - t.start)
                }),
                _ => false,
            };
            if exact.contains(&norm) || near.find(fp).is_some() || overlaps {
                out.duplicates += 1;
                continue;
            }
            let spans = tokens.spans(&text);
            let room = req.budget_tokens.saturating_sub(out.tokens);
            let (text, n, truncated) = if spans.len() <= room {
                (text, spans.len(), false)
            } else if out.passages.is_empty() && room > 0 {
                (text[..spans[room - 1].end].to_string(), room, true)
            } else {
                out.over_budget += 1;
                continue;
            };
            exact.insert(norm);
            near.insert(fp, rank);
            if let (Some(s), Some(r)) = (source, range) {
                taken.push((s, r));
            }
            out.tokens += n;
            out.passages.push(ContextPassage {
                id: hit.id,
                score: hit.score,
                rank: rank + 1,
                text,
                tokens: n,
                truncated,
                payload,
            });
        }
        out
    }
}
