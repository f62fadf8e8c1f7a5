//! Files as documents of a text collection (`quarry ingest --files`): each file is read
//! (`quarry_docs`: plain text, Markdown, HTML, PDF), cut into chunks by the collection's model
//! tokens ([`TextSpec::chunking`](crate::TextSpec)), and each chunk becomes a document whose
//! payload names where it came from.
//!
//! * A chunk's id is stable: a 128-bit hash of its file's canonical path and its ordinal, so
//!   re-ingesting a changed file overwrites its chunks in place and deletes the ones past its
//!   new end.
//! * A file whose content hash (SHA-256) is the one stored is skipped; one that cannot be read
//!   is reported with the reason and the others go on.
//! * `prune` deletes the chunks of files that no longer exist.
//! * Every chunk's normalised-text hash and SimHash fingerprint are kept; a chunk equal to, or
//!   within `near_distance` bits of, a chunk of another file (stored or ingested before it in
//!   the run) is reported, and left out with `drop_duplicates`.
//!
//! Payload of a chunk: `source` (canonical path), `title`, `format`, `headings` (outermost
//! first), `start` / `end` (bytes of the file; for PDF, of the extracted text of the page),
//! `page` / `page_end` (PDF), `chunk` / `chunks` (ordinal, count in the file), `tokens`, `hash`
//! (SHA-256 of the normalised text), `simhash` (16 hex digits), `file_hash`.

use super::TextCollection;
use crate::id::PointId;
use crate::text_query::TextDoc;
use quarry_core::Result;
use quarry_docs::chunk::Words;
use quarry_docs::hash::{normalize, sha256_hex};
use quarry_docs::{chunk, read_bytes, simhash, Format, NearDuplicates, Tokens};
use serde_json::{json, Map, Value};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

/// Settings of one ingest of files.
#[derive(Debug, Clone, Copy)]
pub struct IngestOptions {
    /// Delete the chunks of files that no longer exist.
    pub prune: bool,
    /// Leave out chunks that duplicate (exactly or nearly) a chunk of another file.
    pub drop_duplicates: bool,
    /// Most differing bits of 64 for two chunks' SimHash fingerprints to count as near
    /// duplicates (0: exact duplicates only).
    pub near_distance: u32,
    /// Chunks embedded and written together.
    pub batch: usize,
}

impl Default for IngestOptions {
    /// No pruning, duplicates reported not dropped, 3 bits, 128 chunks per write.
    fn default() -> Self {
        IngestOptions { prune: false, drop_duplicates: false, near_distance: 3, batch: 128 }
    }
}

/// What happened to one file.
#[derive(Debug, Clone, PartialEq)]
pub enum FileOutcome {
    /// New: its chunks were written.
    Added {
        /// Chunks written.
        chunks: usize,
    },
    /// Changed since it was ingested: its chunks were rewritten.
    Replaced {
        /// Chunks written.
        chunks: usize,
        /// Chunks of the old version past the new end, deleted.
        removed: usize,
    },
    /// The same bytes as the version stored: nothing written.
    Unchanged,
    /// Not ingested (stored chunks, if any, are kept): why.
    Failed(String),
}

/// One file's part in an ingest.
#[derive(Debug, Clone, PartialEq)]
pub struct FileReport {
    /// The file as given.
    pub path: PathBuf,
    /// What happened.
    pub outcome: FileOutcome,
}

/// A chunk found to duplicate another.
#[derive(Debug, Clone, PartialEq)]
pub struct Duplicate {
    /// Its file and ordinal, `source#chunk`.
    pub chunk: String,
    /// The chunk it duplicates, `source#chunk`.
    pub of: String,
    /// Differing bits of their fingerprints (0: the same normalised text).
    pub distance: u32,
    /// Whether it was left out.
    pub dropped: bool,
}

/// The outcome of an ingest.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IngestReport {
    /// Every file, in the order given.
    pub files: Vec<FileReport>,
    /// Chunks written.
    pub chunks_written: usize,
    /// Chunks deleted (past a changed file's end, or of pruned files).
    pub chunks_removed: usize,
    /// Duplicate chunks found.
    pub duplicates: Vec<Duplicate>,
    /// Files whose chunks were pruned (they no longer exist).
    pub pruned: Vec<String>,
}

impl IngestReport {
    /// Files whose outcome satisfies `f`.
    pub fn count(&self, f: impl Fn(&FileOutcome) -> bool) -> usize {
        self.files.iter().filter(|r| f(&r.outcome)).count()
    }

    /// The report as JSON: `files` (each `path`, `outcome` added / replaced / unchanged /
    /// failed, `chunks`, `removed`, `reason`), `chunks_written`, `chunks_removed`, `duplicates`
    /// (`chunk`, `of`, `distance`, `dropped`), `pruned`.
    pub fn to_json(&self) -> Value {
        let files: Vec<Value> = self
            .files
            .iter()
            .map(|f| {
                let path = f.path.display().to_string();
                match &f.outcome {
                    FileOutcome::Added { chunks } => {
                        json!({"path": path, "outcome": "added", "chunks": chunks})
                    }
                    FileOutcome::Replaced { chunks, removed } => {
                        json!({"path": path, "outcome": "replaced", "chunks": chunks, "removed": removed})
                    }
                    FileOutcome::Unchanged => json!({"path": path, "outcome": "unchanged"}),
                    FileOutcome::Failed(why) => json!({"path": path, "outcome": "failed", "reason": why}),
                }
            })
            .collect();
        let dups: Vec<Value> = self
            .duplicates
            .iter()
            .map(|d| json!({"chunk": d.chunk, "of": d.of, "distance": d.distance, "dropped": d.dropped}))
            .collect();
        json!({"files": files, "chunks_written": self.chunks_written, "chunks_removed": self.chunks_removed,
               "duplicates": dups, "pruned": self.pruned})
    }
}

/// What the collection holds of one file.
#[derive(Default)]
struct Stored {
    file_hash: String,
    ids: Vec<PointId>,
}

/// The stable id of chunk `ordinal` of the file at `source`.
fn chunk_id(source: &str, ordinal: usize) -> PointId {
    super::stable_id(&format!("{source}#{ordinal}"))
}

/// Counting with the model's tokenizer.
struct ModelTokens<'a>(&'a quarry_text::SentenceEncoder);

impl Tokens for ModelTokens<'_> {
    fn spans(&self, text: &str) -> Vec<std::ops::Range<usize>> {
        self.0.token_spans(text).unwrap_or_else(|_| Words.spans(text))
    }
}

impl TextCollection {
    /// What chunking and context budgets count: the model's tokens, or without a model
    /// [`Words`].
    pub fn tokens(&self) -> Box<dyn Tokens + '_> {
        match &self.encoder {
            Some(e) => Box::new(ModelTokens(e)),
            None => Box::new(Words),
        }
    }

    /// Ingests `files` as chunked documents (see the module docs), calling `progress` after each
    /// file. Storage failures end it with an error; a file that cannot be read does not.
    pub fn ingest_files(
        &self,
        files: &[PathBuf],
        opts: &IngestOptions,
        progress: &mut dyn FnMut(&FileReport),
    ) -> Result<IngestReport> {
        // Sources whose stored chunks this run rewrites or prunes: their old chunks are no
        // owners of duplicates (else a chunk moved from a changed file to another would be
        // dropped as a duplicate of a chunk about to be deleted, and stored nowhere).
        let sources: Vec<String> = files
            .iter()
            .map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone()).to_string_lossy().into_owned())
            .collect();
        let mut stored: HashMap<String, Stored> = HashMap::new();
        let mut owners: Vec<(String, u64, String, Option<u64>)> = Vec::new();
        self.docs.for_each_payload(|id, p| {
            let Some(source) = p.get("source").and_then(Value::as_str) else { return };
            let s = stored.entry(source.to_string()).or_default();
            s.ids.push(id);
            if let Some(h) = p.get("file_hash").and_then(Value::as_str) {
                s.file_hash = h.to_string();
            }
            let ordinal = p.get("chunk").and_then(Value::as_u64).unwrap_or(0);
            let hash = p.get("hash").and_then(Value::as_str).unwrap_or_default().to_string();
            let fp = p.get("simhash").and_then(Value::as_str).and_then(|s| u64::from_str_radix(s, 16).ok());
            owners.push((source.to_string(), ordinal, hash, fp));
        });
        let in_run: HashSet<&str> = sources.iter().map(String::as_str).collect();
        // Files of this run whose bytes are the version stored: read and hashed once, here.
        let unchanged: HashSet<&str> = sources
            .iter()
            .zip(files)
            .filter(|(s, p)| {
                stored
                    .get(*s)
                    .is_some_and(|old| std::fs::read(p).is_ok_and(|b| sha256_hex(&b) == old.file_hash))
            })
            .map(|(s, _)| s.as_str())
            .collect();
        let rewritten: HashSet<String> = stored
            .keys()
            .filter(|s| {
                let here = in_run.contains(s.as_str());
                (here && !unchanged.contains(s.as_str())) || (opts.prune && !here && !Path::new(s).exists())
            })
            .cloned()
            .collect();
        let mut exact: HashMap<String, String> = HashMap::new();
        let mut near: NearDuplicates<String> = NearDuplicates::new(opts.near_distance);
        for (source, ordinal, hash, fp) in owners.into_iter().filter(|o| !rewritten.contains(&o.0)) {
            let owner = format!("{source}#{ordinal}");
            if !hash.is_empty() {
                exact.entry(hash).or_insert_with(|| owner.clone());
            }
            if let Some(fp) = fp {
                near.insert(fp, owner);
            }
        }
        let tokens = self.tokens();
        let mut report = IngestReport::default();
        let mut pending: Vec<TextDoc> = Vec::new();
        let mut stale: Vec<PointId> = Vec::new();
        let mut seen: HashSet<String> = HashSet::new();
        let flush =
            |pending: &mut Vec<TextDoc>, stale: &mut Vec<PointId>, report: &mut IngestReport| -> Result<()> {
                if !pending.is_empty() {
                    report.chunks_written += self.upsert(std::mem::take(pending))?;
                }
                if !stale.is_empty() {
                    report.chunks_removed += self.delete(&std::mem::take(stale))?;
                }
                Ok(())
            };
        for (path, source) in files.iter().zip(&sources) {
            let source = source.as_str();
            seen.insert(source.to_string());
            let old = stored.get(source);
            let found = if unchanged.contains(source) {
                Ok(None)
            } else {
                self.file_chunks(path, source, tokens.as_ref())
            };
            let outcome = match found {
                Err(reason) => FileOutcome::Failed(reason),
                Ok(None) => FileOutcome::Unchanged,
                Ok(Some(docs)) => {
                    let n = docs.len();
                    let mut kept = Vec::with_capacity(n);
                    for d in docs {
                        let ordinal = d.payload.get("chunk").and_then(Value::as_u64).unwrap_or(0);
                        let me = format!("{source}#{ordinal}");
                        let hash =
                            d.payload.get("hash").and_then(Value::as_str).unwrap_or_default().to_string();
                        let fp = d
                            .payload
                            .get("simhash")
                            .and_then(Value::as_str)
                            .and_then(|s| u64::from_str_radix(s, 16).ok())
                            .unwrap_or(0);
                        // Chunks of the same file are never each other's duplicates (overlap makes
                        // them alike). Owners are `source#ordinal`; the source may contain '#'.
                        let other = |owner: &String| owner.rsplit_once('#').is_none_or(|(s, _)| s != source);
                        let dup = match exact.get(&hash).filter(|o| other(o)) {
                            Some(o) => Some((o.clone(), 0)),
                            None => near.find(fp).filter(|(o, _)| other(o)),
                        };
                        if let Some((of, distance)) = dup {
                            report.duplicates.push(Duplicate {
                                chunk: me.clone(),
                                of,
                                distance,
                                dropped: opts.drop_duplicates,
                            });
                            if opts.drop_duplicates {
                                continue;
                            }
                        }
                        exact.entry(hash).or_insert_with(|| me.clone());
                        near.insert(fp, me);
                        kept.push(d);
                    }
                    let new_ids: HashSet<PointId> = kept.iter().map(|d| d.id).collect();
                    let removed: Vec<PointId> = old
                        .map(|o| o.ids.iter().copied().filter(|id| !new_ids.contains(id)).collect())
                        .unwrap_or_default();
                    let written = kept.len();
                    let outcome = match old {
                        Some(_) => FileOutcome::Replaced { chunks: written, removed: removed.len() },
                        None => FileOutcome::Added { chunks: written },
                    };
                    pending.extend(kept);
                    stale.extend(removed);
                    if pending.len() >= opts.batch.max(1) {
                        flush(&mut pending, &mut stale, &mut report)?;
                    }
                    outcome
                }
            };
            let r = FileReport { path: path.clone(), outcome };
            progress(&r);
            report.files.push(r);
        }
        if opts.prune {
            let mut gone: Vec<(&String, &Stored)> =
                stored.iter().filter(|(s, _)| !seen.contains(*s) && !Path::new(s).exists()).collect();
            gone.sort_by(|a, b| a.0.cmp(b.0));
            for (source, s) in gone {
                stale.extend(s.ids.iter().copied());
                report.pruned.push(source.clone());
            }
        }
        flush(&mut pending, &mut stale, &mut report)?;
        Ok(report)
    }

    /// The chunks of the file at `path` as documents; an error is the reason it cannot be
    /// ingested.
    fn file_chunks(
        &self,
        path: &Path,
        source: &str,
        tokens: &dyn Tokens,
    ) -> std::result::Result<Option<Vec<TextDoc>>, String> {
        let format = Format::of(path).ok_or_else(|| {
            "not a format Quarry reads (.txt, .md, .html, .pdf, or no extension for plain text)".to_string()
        })?;
        let bytes = std::fs::read(path).map_err(|e| format!("reading: {e}"))?;
        let file_hash = sha256_hex(&bytes);
        let doc = read_bytes(&bytes, format).map_err(|e| match e {
            quarry_core::Error::InvalidArgument(m) => m,
            e => e.to_string(),
        })?;
        // A chunk fits the model's window with its special tokens ([CLS], [SEP]), so the model
        // sees all of it.
        let mut spec = self.spec.chunking;
        if let Some(e) = &self.encoder {
            spec.max_tokens = spec.max_tokens.min(e.config().max_seq_length.saturating_sub(2).max(8));
            spec.overlap = spec.overlap.min(spec.max_tokens / 2);
        }
        let chunks = chunk(&doc, &spec, tokens);
        if chunks.is_empty() {
            return Err(match format {
                Format::Pdf => "no text to extract (a scanned PDF holds images only)".into(),
                _ => "no text".into(),
            });
        }
        let n = chunks.len();
        Ok(Some(
            chunks
                .into_iter()
                .enumerate()
                .map(|(i, c)| {
                    let mut payload = Map::new();
                    payload.insert("source".into(), json!(source));
                    if let Some(t) = &doc.title {
                        payload.insert("title".into(), json!(t));
                    }
                    payload.insert("format".into(), json!(format.name()));
                    payload.insert("headings".into(), json!(c.headings));
                    payload.insert("start".into(), json!(c.range.start));
                    payload.insert("end".into(), json!(c.range.end));
                    if let Some(p) = c.page {
                        payload.insert("page".into(), json!(p));
                        payload.insert("page_end".into(), json!(c.page_end.unwrap_or(p)));
                    }
                    payload.insert("chunk".into(), json!(i));
                    payload.insert("chunks".into(), json!(n));
                    payload.insert("tokens".into(), json!(c.tokens));
                    payload.insert("hash".into(), json!(sha256_hex(normalize(&c.text).as_bytes())));
                    payload.insert("simhash".into(), json!(format!("{:016x}", simhash(&c.text))));
                    payload.insert("file_hash".into(), json!(file_hash));
                    TextDoc { id: chunk_id(source, i), text: c.text, payload }
                })
                .collect(),
        ))
    }
}
