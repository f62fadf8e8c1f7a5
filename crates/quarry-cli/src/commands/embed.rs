//! `quarry embed`: texts (BEIR JSONL with `_id`, `title`, `text`; or plain lines) to an `.npy`
//! matrix of sentence vectors with a local model, plus their ids in row order — the input of
//! `quarry search --base/--query … --doc-ids/--query-ids`.

use crate::commands::bench::embed::read_texts;
use crate::progress;
use anyhow::{Context, Result};
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

/// Arguments of `quarry embed`.
#[derive(clap::Args)]
pub struct Args {
    /// Model folder or name (QUARRY_MODELS, ~/.cache/quarry/models, the Hugging Face cache).
    #[arg(long, default_value = "all-MiniLM-L6-v2")]
    model: String,
    /// Texts: JSONL with "text" (and "title", prepended) per line, or plain lines.
    #[arg(long)]
    texts: PathBuf,
    /// Output matrix (.npy, f32, one row per text).
    #[arg(long)]
    out: PathBuf,
    /// Also write the texts' ids ("_id", else "id", else the line number) one per line.
    #[arg(long)]
    ids_out: Option<PathBuf>,
    /// Texts per forward pass.
    #[arg(long, default_value_t = 64)]
    batch: usize,
}

/// Runs `quarry embed`.
pub fn run(a: Args) -> Result<()> {
    let dir = quarry_text::locate::model_dir(&a.model)?;
    let enc = quarry_text::SentenceEncoder::load(&dir)?;
    let texts = read_texts(&a.texts)?;
    let t = Instant::now();
    let bar = progress::bar(texts.len() as u64, "embedding", false);
    let mut data = Vec::with_capacity(texts.len() * enc.dim());
    // Chunks of many batches: length sorting works within a chunk, the bar moves between them.
    for chunk in texts.chunks(a.batch.max(1) * 16) {
        let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
        data.extend_from_slice(enc.encode(&refs, a.batch)?.as_slice());
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    let m = quarry_core::Matrix::new(data, enc.dim())?;
    quarry_eval::io::npy::write_npy_f32(&a.out, &m)?;
    if let Some(path) = &a.ids_out {
        let raw = std::fs::read_to_string(&a.texts)?;
        let mut f = std::io::BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
        );
        for (i, line) in raw.lines().filter(|l| !l.trim().is_empty()).enumerate() {
            let id = serde_json::from_str::<serde_json::Value>(line)
                .ok()
                .and_then(|v| {
                    v.get("_id")
                        .or_else(|| v.get("id"))
                        .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_string))
                })
                .unwrap_or_else(|| i.to_string());
            writeln!(f, "{id}")?;
        }
        f.flush()?;
    }
    let s = t.elapsed().as_secs_f64();
    eprintln!(
        "embedded {} texts with {} in {s:.1} s ({:.1} texts/s) into {}",
        texts.len(),
        dir.display(),
        texts.len() as f64 / s,
        a.out.display()
    );
    Ok(())
}
