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
    /// Token vectors for late interaction (multi-vector fields, MaxSim) instead of one vector per
    /// text: `--out` gets every text's token vectors (unit length, special tokens left out) as one
    /// `[tokens, dim]` float32 matrix, and `--offsets-out` where each text's rows start.
    #[arg(long)]
    tokens: bool,
    /// With `--tokens`: where each text's token rows start, an int64 `.npy` of `texts + 1` values
    /// (default: `--out` with `.offsets.npy` for its extension).
    #[arg(long, requires = "tokens")]
    offsets_out: Option<PathBuf>,
}

/// The offsets file `quarry embed --tokens` writes next to token file `out` by default.
pub fn default_offsets_path(out: &std::path::Path) -> PathBuf {
    out.with_extension("offsets.npy")
}

/// Reads token sets `quarry embed --tokens` wrote: the `[tokens, dim]` matrix and its offsets.
pub fn read_token_sets(
    tokens: &std::path::Path,
    offsets: &std::path::Path,
) -> Result<quarry_ann::fde::TokenSets> {
    let t = quarry_eval::io::npy::read_npy(tokens)?;
    let dim = t.cols();
    let data = t.data.into_f32();
    let o = quarry_eval::io::npy::read_npy(offsets)?;
    let offs: Vec<u32> = match o.data {
        quarry_eval::io::npy::NpyData::I64(v) => v
            .into_iter()
            .map(|x| {
                u32::try_from(x)
                    .map_err(|_| anyhow::anyhow!("{}: offset {x} out of range", offsets.display()))
            })
            .collect::<Result<_>>()?,
        quarry_eval::io::npy::NpyData::I32(v) => v
            .into_iter()
            .map(|x| {
                u32::try_from(x)
                    .map_err(|_| anyhow::anyhow!("{}: offset {x} out of range", offsets.display()))
            })
            .collect::<Result<_>>()?,
        quarry_eval::io::npy::NpyData::U32(v) => v,
        other => anyhow::bail!("{}: offsets must be integers, found {:?}", offsets.display(), other.dtype()),
    };
    quarry_ann::fde::TokenSets::from_parts(dim, data, offs)
        .with_context(|| format!("token sets {} + {}", tokens.display(), offsets.display()))
}

/// Runs `quarry embed`.
pub fn run(a: Args) -> Result<()> {
    let dir = quarry_text::locate::model_dir(&a.model)?;
    let enc = quarry_text::SentenceEncoder::load(&dir)?;
    let texts = read_texts(&a.texts)?;
    let t = Instant::now();
    if a.tokens {
        return run_tokens(&a, &enc, &texts, t, &dir);
    }
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
    write_ids(&a)?;
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

/// `quarry embed --tokens`: every text's token vectors and their offsets.
fn run_tokens(
    a: &Args,
    enc: &quarry_text::SentenceEncoder,
    texts: &[String],
    t: Instant,
    dir: &std::path::Path,
) -> Result<()> {
    let bar = progress::bar(texts.len() as u64, "embedding tokens", false);
    let mut data = Vec::new();
    let mut offsets = vec![0i64];
    for chunk in texts.chunks(a.batch.max(1) * 16) {
        let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
        for v in enc.encode_tokens(&refs, a.batch)? {
            offsets.push(offsets[offsets.len() - 1] + (v.len() / enc.dim()) as i64);
            data.extend_from_slice(&v);
        }
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    let m = quarry_core::Matrix::new(data, enc.dim())?;
    quarry_eval::io::npy::write_npy_f32(&a.out, &m)?;
    let off_path = a.offsets_out.clone().unwrap_or_else(|| default_offsets_path(&a.out));
    quarry_eval::io::npy::write_npy_i64(&off_path, &offsets, 1, offsets.len())?;
    write_ids(a)?;
    let s = t.elapsed().as_secs_f64();
    eprintln!(
        "embedded {} texts into {} token vectors ({:.1} per text) with {} in {s:.1} s ({:.1} texts/s) into {} + {}",
        texts.len(),
        m.rows(),
        m.rows() as f64 / texts.len().max(1) as f64,
        dir.display(),
        texts.len() as f64 / s,
        a.out.display(),
        off_path.display()
    );
    Ok(())
}

/// Writes the texts' ids (`--ids-out`), if asked.
fn write_ids(a: &Args) -> Result<()> {
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
    Ok(())
}
