//! `quarry ingest --files PATH…`: documents (plain text, Markdown, HTML, PDF; files, folders,
//! glob patterns) read, chunked by the collection's model tokens and indexed into a text
//! collection, created on first use. A progress bar while it runs, then a summary: files added,
//! replaced, unchanged and failed (each with its reason), chunks written and removed, duplicates,
//! pruned files.

use super::db::IngestArgs;
use anyhow::{Context, Result};
use quarry_engine::quarry_docs::{files, ChunkSpec};
use quarry_engine::{Database, FileOutcome, IngestOptions, IngestReport, TextSpec};

/// The model a new document collection gets when none is named, if it is found locally.
const DEFAULT_MODEL: &str = "all-MiniLM-L6-v2";

/// Runs `quarry ingest --files …`.
pub fn ingest_files(a: &IngestArgs) -> Result<()> {
    let paths = files::expand(&a.files)?;
    let db = Database::open(&a.dir).with_context(|| format!("opening {}", a.dir.display()))?;
    let col = match db.text_collection(&a.collection) {
        Ok(c) => {
            if a.model.is_some() || a.chunk_tokens.is_some() || a.chunk_overlap.is_some() {
                eprintln!(
                    "note: {} exists; --model and --chunk-* apply only when ingest creates it",
                    a.collection
                );
            }
            c
        }
        Err(_) if db.collection(&a.collection).is_ok() => {
            anyhow::bail!("{} is a vector collection: --files needs a text collection", a.collection)
        }
        Err(_) => {
            let model = match &a.model {
                Some(m) if m == "none" => None,
                Some(m) => Some(m.clone()),
                None => match quarry_text::locate::installed_model_dir(DEFAULT_MODEL) {
                    Ok(_) => Some(DEFAULT_MODEL.to_string()),
                    Err(_) => {
                        eprintln!(
                            "note: no sentence model found locally ({DEFAULT_MODEL}); the collection is BM25 only \
                             (give --model, see README \"Models\")"
                        );
                        None
                    }
                },
            };
            let mut spec = TextSpec::new(model);
            let d = ChunkSpec::default();
            spec.chunking = ChunkSpec {
                max_tokens: a.chunk_tokens.unwrap_or(d.max_tokens),
                overlap: a.chunk_overlap.unwrap_or(d.overlap),
            };
            spec.check()?;
            eprintln!(
                "creating text collection {} ({}, chunks of {} tokens sharing {})",
                a.collection,
                spec.model.as_deref().unwrap_or("BM25 only"),
                spec.chunking.max_tokens,
                spec.chunking.overlap
            );
            db.create_text_collection(&a.collection, spec, "hnsw")?
        }
    };
    let opts = IngestOptions {
        prune: a.prune,
        drop_duplicates: a.drop_duplicates,
        near_distance: a.near_distance,
        batch: a.batch,
    };
    let bar = crate::progress::bar(paths.len() as u64, "files", a.json);
    let report = col.ingest_files(&paths, &opts, &mut |r| {
        bar.inc(1);
        if let FileOutcome::Failed(why) = &r.outcome {
            bar.suspend(|| eprintln!("skipped {}: {why}", r.path.display()));
        }
    })?;
    bar.finish_and_clear();
    col.wait_for_sealing();
    if a.json {
        println!("{}", report.to_json());
    }
    eprintln!("{}", summary(&report, &a.collection, col.count()));
    Ok(())
}

/// The one-paragraph summary printed at the end.
fn summary(r: &IngestReport, collection: &str, total: usize) -> String {
    let added = r.count(|o| matches!(o, FileOutcome::Added { .. }));
    let replaced = r.count(|o| matches!(o, FileOutcome::Replaced { .. }));
    let unchanged = r.count(|o| *o == FileOutcome::Unchanged);
    let failed = r.count(|o| matches!(o, FileOutcome::Failed(_)));
    let mut s = format!(
        "{} files: {added} added, {replaced} replaced, {unchanged} unchanged, {failed} failed; \
         {} chunks written, {} removed; {collection} holds {total} chunks",
        r.files.len(),
        r.chunks_written,
        r.chunks_removed
    );
    if !r.duplicates.is_empty() {
        let dropped = r.duplicates.iter().filter(|d| d.dropped).count();
        let exact = r.duplicates.iter().filter(|d| d.distance == 0).count();
        s.push_str(&format!(
            "\n{} duplicate chunks ({exact} exact, {} near), {dropped} left out",
            r.duplicates.len(),
            r.duplicates.len() - exact
        ));
        for d in r.duplicates.iter().take(5) {
            s.push_str(&format!("\n  {} ≈ {} ({} bits)", d.chunk, d.of, d.distance));
        }
        if r.duplicates.len() > 5 {
            s.push_str(&format!("\n  … (--json lists all {})", r.duplicates.len()));
        }
    }
    if !r.pruned.is_empty() {
        s.push_str(&format!("\npruned {} files that no longer exist", r.pruned.len()));
    }
    for f in &r.files {
        if let FileOutcome::Failed(why) = &f.outcome {
            s.push_str(&format!("\nfailed: {}: {why}", f.path.display()));
        }
    }
    s
}
