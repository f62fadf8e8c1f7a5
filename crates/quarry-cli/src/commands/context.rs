//! `quarry context`: the best chunks of a text collection for a question, de-duplicated and
//! packed into a token budget, for an LLM: plain text with numbered citations, or (`--json`) a
//! TREC 2024 RAG / Ragnarök request (`{"query": {"text", "qid"}, "candidates": [{"docid",
//! "score", "doc": {"segment", …}}]}`). `--queries FILE` writes one request per query (JSONL), the
//! input of Ragnarök's generation step.

use anyhow::{bail, Context as _, Result};
use quarry_engine::{ContextRequest, Database, TextMode, TextQuery};
use std::io::Write;
use std::path::PathBuf;

/// Arguments of `quarry context`.
#[derive(clap::Args)]
pub struct Args {
    /// Database folder.
    #[arg(long)]
    dir: PathBuf,
    /// Text collection.
    #[arg(long)]
    collection: String,
    /// The question (repeat for several texts of one need, fused).
    #[arg(long, required_unless_present = "queries", conflicts_with = "queries")]
    query: Vec<String>,
    /// Questions from a file: BEIR `queries.jsonl` (`{"_id", "text"}`) or `qid<TAB>text` lines;
    /// one context per question.
    #[arg(long)]
    queries: Option<PathBuf>,
    /// The question's id in the output (default 0).
    #[arg(long, conflicts_with = "queries")]
    qid: Option<String>,
    /// Most tokens of passage text (the collection's model tokens; words without a model).
    #[arg(long, default_value_t = 1500)]
    budget_tokens: usize,
    /// Hits considered before de-duplication and packing.
    #[arg(short = 'k', long, default_value_t = 20)]
    k: usize,
    /// Ranking: dense, bm25 or hybrid (default: hybrid with a model, else bm25).
    #[arg(long)]
    mode: Option<TextMode>,
    /// Only documents whose payload matches this filter (Qdrant JSON, e.g.
    /// `{"must": [{"key": "format", "match": {"value": "pdf"}}]}`).
    #[arg(long)]
    filter: Option<String>,
    /// Near-duplicate hits differ in at most this many bits of their 64-bit SimHash fingerprints
    /// (0: only exact duplicates are left out).
    #[arg(long, default_value_t = 3)]
    near_distance: u32,
    /// Re-rank the first --rerank-depth hits with this cross-encoder (folder or name): the
    /// cascade's last stage.
    #[arg(long)]
    rerank: Option<String>,
    /// Hits re-ranked.
    #[arg(long, default_value_t = 20, requires = "rerank")]
    rerank_depth: usize,
    /// Weight of the cross-encoder against the first stage's score in the re-ranked head.
    #[arg(long, default_value_t = 0.5, requires = "rerank")]
    rerank_blend: f64,
    /// Re-score dense candidates by the fitted hubness correction.
    #[arg(long)]
    hubness: bool,
    /// Only hits whose calibrated relevance probability reaches this (`auto`: the stored
    /// threshold).
    #[arg(long)]
    min_relevance: Option<String>,
    /// Print the Ragnarök request JSON (one line per question) instead of text.
    #[arg(long)]
    json: bool,
}

/// Questions of a `--queries` file: (qid, text). BEIR JSONL through quarry-eval's reader.
fn read_queries(path: &std::path::Path) -> Result<Vec<(String, String)>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    if text.trim_start().starts_with('{') {
        let qs = quarry_eval::io::beir::parse_beir_queries(text.as_bytes(), path)?;
        return Ok(qs.into_iter().map(|q| (q.id, q.text)).collect());
    }
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let Some((qid, q)) = line.split_once('\t') else {
            bail!("{} line {}: expected qid<TAB>text (or BEIR JSONL)", path.display(), i + 1)
        };
        out.push((qid.trim().to_string(), q.trim().to_string()));
    }
    Ok(out)
}

/// Runs `quarry context`.
pub fn run(a: Args) -> Result<()> {
    if a.budget_tokens == 0 {
        bail!("--budget-tokens must be at least 1");
    }
    let db = Database::open_existing(&a.dir).with_context(|| format!("opening {}", a.dir.display()))?;
    let col = db.text_collection(&a.collection)?;
    let extras = super::db::TextExtras {
        min_relevance: a.min_relevance.clone(),
        hubness: a.hubness,
        query_model: None,
        rerank: a.rerank.clone().map(|m| (m, a.rerank_depth)),
        rerank_blend: a.rerank_blend,
        fusion: None,
    };
    let questions: Vec<(Option<String>, Vec<String>)> = match &a.queries {
        Some(path) => read_queries(path)?.into_iter().map(|(id, q)| (Some(id), vec![q])).collect(),
        None => vec![(a.qid.clone(), a.query.clone())],
    };
    let mut out = std::io::stdout().lock();
    for (i, (qid, texts)) in questions.iter().enumerate() {
        let (mode, hits) =
            super::db::text_hits(&db, &col, texts, a.mode, a.k, a.filter.as_deref(), false, &extras)?;
        let Some(first) = texts.first() else { continue };
        let mut query = TextQuery::new(first, mode, a.k);
        query.texts = texts.clone();
        let req = ContextRequest {
            qid: qid.clone(),
            near_distance: a.near_distance,
            ..ContextRequest::new(query, a.budget_tokens)
        };
        let ctx = col.context_of_hits(&req, hits);
        if a.json {
            writeln!(out, "{}", ctx.to_ragnarok())?;
        } else {
            if i > 0 {
                writeln!(out, "\n---\n")?;
            }
            write!(out, "{}", ctx.to_text())?;
        }
        if !a.json || a.queries.is_none() {
            eprintln!(
                "{} passages, {} of {} tokens ({} duplicates and {} over budget left out)",
                ctx.passages.len(),
                ctx.tokens,
                ctx.budget_tokens,
                ctx.duplicates,
                ctx.over_budget
            );
        }
    }
    Ok(())
}
