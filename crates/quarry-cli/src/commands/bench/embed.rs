//! `quarry bench embed`: sentence-embedding throughput of a model folder on a text file, measured
//! the way `scripts/peer_embed.py` measures sentence-transformers (PyTorch): the same texts, the
//! same batch size, a warm-up pass, then timed passes over every text; one JSON row.

use anyhow::{bail, Context, Result};
use serde_json::json;
use std::path::PathBuf;
use std::time::Instant;

/// Arguments of `quarry bench embed`.
#[derive(clap::Args)]
pub struct EmbedArgs {
    /// Model folder or name (looked up as quarry-text does: QUARRY_MODELS, ~/.cache/quarry/models,
    /// the Hugging Face cache).
    #[arg(long, default_value = "all-MiniLM-L6-v2")]
    model: String,
    /// Texts: JSONL with a "text" field per line (BEIR queries/corpus), or plain lines.
    #[arg(long)]
    texts: PathBuf,
    /// Use only the first N texts.
    #[arg(long)]
    n: Option<usize>,
    /// Texts per forward pass.
    #[arg(long, default_value_t = 256)]
    batch: usize,
    /// Timed passes (the median throughput is reported).
    #[arg(long, default_value_t = 3)]
    passes: usize,
}

/// Reads texts from JSONL (`text`, with `title` prepended when present) or plain lines.
pub fn read_texts(path: &std::path::Path) -> Result<Vec<String>> {
    let raw = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut out = Vec::new();
    for (i, line) in raw.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        if line.trim_start().starts_with('{') {
            let v: serde_json::Value =
                serde_json::from_str(line).with_context(|| format!("{}: line {}", path.display(), i + 1))?;
            let text = v.get("text").and_then(|t| t.as_str()).unwrap_or_default();
            let title = v.get("title").and_then(|t| t.as_str()).unwrap_or_default();
            out.push(if title.is_empty() { text.to_string() } else { format!("{title} {text}") });
        } else {
            out.push(line.to_string());
        }
    }
    Ok(out)
}

/// Runs `quarry bench embed`.
pub fn run(a: EmbedArgs) -> Result<()> {
    let dir = quarry_text::locate::model_dir(&a.model)?;
    let t = Instant::now();
    let enc = quarry_text::SentenceEncoder::load(&dir)?;
    let load_s = t.elapsed().as_secs_f64();
    let mut texts = read_texts(&a.texts)?;
    if let Some(n) = a.n {
        texts.truncate(n);
    }
    if texts.is_empty() {
        bail!("{}: no texts", a.texts.display());
    }
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let tokens: usize = refs.iter().map(|t| enc.token_ids(t).map(|v| v.len()).unwrap_or(0)).sum();
    enc.encode(&refs[..refs.len().min(a.batch)], a.batch)?; // warm-up
    let mut rates = Vec::new();
    for p in 0..a.passes.max(1) {
        let t = Instant::now();
        let m = enc.encode(&refs, a.batch)?;
        let s = t.elapsed().as_secs_f64();
        rates.push(texts.len() as f64 / s);
        eprintln!(
            "pass {}: {} texts in {s:.2} s ({:.1} texts/s), dim {}",
            p + 1,
            m.rows(),
            texts.len() as f64 / s,
            m.dim()
        );
    }
    rates.sort_by(f64::total_cmp);
    let median = rates[rates.len() / 2];
    println!(
        "{}",
        json!({"system": format!("quarry {} (candle 0.11)", env!("CARGO_PKG_VERSION")), "op": "embed",
               "model": dir.display().to_string(), "texts": texts.len(), "mean_tokens": tokens as f64 / texts.len() as f64,
               "batch": a.batch, "threads": rayon::current_num_threads(), "texts_per_s": median,
               "passes": rates, "load_seconds": load_s})
    );
    Ok(())
}
