//! Database commands over an embedded Quarry database folder (`--dir`): `collection create`,
//! `ingest` (JSONL points in durable batches, printing `acked <total>` after each), `count`,
//! `get`, and the collection mode of `search` (`search_collection`). Bad input is an error that
//! names it (with the JSONL line number); a batch with one bad point is rejected whole, and the
//! batches acknowledged before it stay stored.

use anyhow::{bail, Context, Result};
use quarry_core::Metric;
use quarry_engine::{
    CollectionSchema, Database, Filter, PassageMode, Point, PointId, TextDoc, TextMode, TextQuery, TextSpec,
};
use std::io::{BufRead, Write};
use std::path::PathBuf;

/// `quarry collection …`.
#[derive(clap::Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once per process
pub enum CollectionCommand {
    /// Create a collection with one vector field (dense, or a set of vectors per point with
    /// --multivector), or a text collection.
    Create(CreateArgs),
    /// Write a consistent snapshot of a collection to one file (writes may continue).
    Snapshot(SnapshotArgs),
    /// Restore a snapshot file as a new collection.
    Restore(RestoreArgs),
    /// The collections of a database folder, with their point counts.
    List(ListArgs),
    /// One collection's schema, points, segments and bytes on disk.
    Info(InfoArgs),
    /// Delete a collection and its files.
    Delete(DeleteArgs),
}

/// Arguments of `quarry collection list`.
#[derive(clap::Args)]
pub struct ListArgs {
    /// Database folder.
    #[arg(long)]
    dir: PathBuf,
    /// One JSON object per collection instead of a table.
    #[arg(long)]
    json: bool,
}

/// Arguments of `quarry collection info`.
#[derive(clap::Args)]
pub struct InfoArgs {
    /// Database folder.
    #[arg(long)]
    dir: PathBuf,
    /// Collection name.
    #[arg(long, alias = "name")]
    collection: String,
}

/// Arguments of `quarry collection delete`.
#[derive(clap::Args)]
pub struct DeleteArgs {
    /// Database folder.
    #[arg(long)]
    dir: PathBuf,
    /// Collection name.
    #[arg(long, alias = "name")]
    collection: String,
}

/// Bytes of the files under `dir` (recursively).
pub(crate) fn folder_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir).map_or(0, |rd| {
        rd.flatten()
            .map(|e| match e.file_type() {
                Ok(t) if t.is_dir() => folder_bytes(&e.path()),
                _ => e.metadata().map_or(0, |m| m.len()),
            })
            .sum()
    })
}

/// One collection described as JSON: name, points, segments, bytes on disk, schema.
fn describe(db: &Database, dir: &std::path::Path, name: &str) -> Result<serde_json::Value> {
    let c = db.collection(name)?;
    Ok(serde_json::json!({
        "name": name,
        "points": c.count(None),
        "segments": c.segment_count(),
        "disk_bytes": folder_bytes(&dir.join("collections").join(name)),
        "schema": serde_json::to_value(c.schema())?,
    }))
}

/// Arguments of `quarry collection snapshot`.
#[derive(clap::Args)]
pub struct SnapshotArgs {
    /// Database folder.
    #[arg(long)]
    dir: PathBuf,
    /// Collection name.
    #[arg(long)]
    collection: String,
    /// Snapshot file to write.
    #[arg(long)]
    out: PathBuf,
}

/// Arguments of `quarry collection restore`.
#[derive(clap::Args)]
pub struct RestoreArgs {
    /// Database folder (created if missing).
    #[arg(long)]
    dir: PathBuf,
    /// Name of the new collection.
    #[arg(long)]
    name: String,
    /// Snapshot file.
    #[arg(long)]
    snapshot: PathBuf,
}

/// Arguments of `quarry collection create`.
#[derive(clap::Args)]
pub struct CreateArgs {
    /// Database folder (created if missing).
    #[arg(long)]
    dir: PathBuf,
    /// Collection name (1-64 letters, digits, '_' or '-').
    #[arg(long)]
    name: String,
    /// Vector dimension (not with --text: the model sets it).
    #[arg(long, required_unless_present = "text")]
    dim: Option<usize>,
    /// A text collection: documents carry text, indexed for BM25 and (with --model) embedded.
    #[arg(long)]
    text: bool,
    /// Text collections: the sentence model (folder or name); without it, BM25 only.
    #[arg(long, requires = "text")]
    model: Option<String>,
    /// Text collections: BM25 k1.
    #[arg(long, requires = "text", default_value_t = 1.2)]
    k1: f32,
    /// Text collections: BM25 b.
    #[arg(long, requires = "text", default_value_t = 0.75)]
    b: f32,
    /// Text collections: long documents as the best of overlapping passages (max) or their first
    /// window (truncate).
    #[arg(long, requires = "text", default_value = "max")]
    passages: String,
    /// Text collections: BM25 analyzer settings as JSON, e.g. `{"stemmer": null, "stopwords":
    /// "none"}` or `{"token_pattern": "(?u)\\w\\w+", "ascii_folding": true}` (unset keys keep
    /// the English defaults).
    #[arg(long, requires = "text")]
    analyzer: Option<String>,
    /// Similarity metric: cosine, ip or l2.
    #[arg(long, default_value = "cosine")]
    metric: Metric,
    /// Index of sealed segments: flat, hnsw or spann, optionally with codes (+sq8, +sq4, +pq,
    /// +pq<M>, +rabitq, +rabitq<B>), e.g. hnsw+rabitq4 or spann+rabitq4.
    #[arg(long, default_value = "hnsw")]
    index: String,
    /// Keep sealed segments' f32 rows on disk (memory-mapped, resident only where read; codes
    /// and graph links stay in memory), like Qdrant's `on_disk`.
    #[arg(long)]
    on_disk: bool,
    /// Largest payload in bytes of JSON (default 64 KiB; 16 MiB for text collections).
    #[arg(long)]
    max_payload_bytes: Option<usize>,
    /// Acknowledge writes without fsync (survives a process crash, not power loss).
    #[arg(long)]
    no_fsync: bool,
    /// Payload key (dotted path) to index; repeat for several.
    #[arg(long = "index-payload")]
    index_payload: Vec<String>,
    /// Unsealed points that trigger a background seal into an indexed segment (0: only
    /// `optimize` seals).
    #[arg(long, default_value_t = 50_000)]
    seal_threshold: usize,
    /// A multi-vector field (late interaction, scored by MaxSim): each point holds a set of
    /// vectors (with --text: the model's token vectors). Candidates from `muvera` encodings
    /// (default) or the per-token heuristic (`tokens`), indexed by --index.
    #[arg(long, num_args = 0..=1, default_missing_value = "muvera", value_parser = ["muvera", "tokens"])]
    multivector: Option<String>,
    /// Multi-vector fields: candidates re-ranked by exact MaxSim per segment (muvera), or nearest
    /// vectors per query vector (tokens).
    #[arg(long, requires = "multivector")]
    rerank: Option<usize>,
    /// Multi-vector fields: most vectors per point (default 1024).
    #[arg(long, requires = "multivector")]
    max_vectors: Option<usize>,
    /// Multi-vector fields: MUVERA settings as JSON, e.g. `{"repetitions": 10, "simhash_bits": 4,
    /// "projection": 16, "final_dim": 2048}`.
    #[arg(long, requires = "multivector")]
    fde: Option<String>,
}

/// Runs `quarry collection …`.
pub fn collection(cmd: CollectionCommand) -> Result<()> {
    match cmd {
        CollectionCommand::Create(a) => {
            // A create that fails (a missing model, a bad option) leaves no database folder it made.
            let dir = a.dir.clone();
            let existed = dir.exists();
            let made = create(a);
            if made.is_err() && !existed {
                let _ = std::fs::remove_dir_all(&dir);
            }
            made
        }
        CollectionCommand::Snapshot(a) => {
            let db =
                Database::open_existing(&a.dir).with_context(|| format!("opening {}", a.dir.display()))?;
            let bytes = db.collection(&a.collection)?.snapshot(&a.out)?;
            println!("snapshot of {} written to {} ({bytes} log bytes)", a.collection, a.out.display());
            Ok(())
        }
        CollectionCommand::Restore(a) => {
            let db = Database::open(&a.dir).with_context(|| format!("opening {}", a.dir.display()))?;
            let c = db.restore_snapshot(&a.snapshot, &a.name)?;
            println!("restored {} points into collection {}", c.count(None), a.name);
            Ok(())
        }
        CollectionCommand::List(a) => {
            let db =
                Database::open_existing(&a.dir).with_context(|| format!("opening {}", a.dir.display()))?;
            let names = db.collection_names();
            if names.is_empty() && !a.json {
                println!("no collections in {}", a.dir.display());
            }
            for name in names {
                let d = describe(&db, &a.dir, &name)?;
                if a.json {
                    println!("{d}");
                } else {
                    let v = &d["schema"]["vectors"];
                    let fields: Vec<String> = v
                        .as_array()
                        .map(|f| {
                            f.iter()
                                .map(|f| format!("{}d {}", f["dim"], f["index"].as_str().unwrap_or("?")))
                                .collect()
                        })
                        .unwrap_or_default();
                    println!(
                        "{name}\t{} points\t{} segments\t{:.1} MB\t{}",
                        d["points"],
                        d["segments"],
                        d["disk_bytes"].as_u64().unwrap_or(0) as f64 / 1e6,
                        fields.join(", ")
                    );
                }
            }
            Ok(())
        }
        CollectionCommand::Info(a) => {
            let db =
                Database::open_existing(&a.dir).with_context(|| format!("opening {}", a.dir.display()))?;
            println!("{}", serde_json::to_string_pretty(&describe(&db, &a.dir, &a.collection)?)?);
            Ok(())
        }
        CollectionCommand::Delete(a) => {
            let db =
                Database::open_existing(&a.dir).with_context(|| format!("opening {}", a.dir.display()))?;
            if !db.delete_collection(&a.collection)? {
                bail!("no collection {:?} in {}", a.collection, a.dir.display());
            }
            println!("deleted collection {}", a.collection);
            Ok(())
        }
    }
}

/// `quarry collection create`: opens (or creates) the database and creates the collection.
fn create(a: CreateArgs) -> Result<()> {
    let db = Database::open(&a.dir).with_context(|| format!("opening {}", a.dir.display()))?;
    let text = if a.text {
        let mut spec = TextSpec::new(a.model.clone());
        spec.bm25 = quarry_text::Bm25Params { k1: a.k1, b: a.b };
        if let Some(json) = &a.analyzer {
            spec.analyzer = serde_json::from_str(json).with_context(|| format!("--analyzer {json}"))?;
        }
        spec.passages.mode = match a.passages.as_str() {
            "max" => PassageMode::Max,
            "truncate" => PassageMode::Truncate,
            p => bail!("--passages {p:?}: use max or truncate"),
        };
        Some(spec)
    } else {
        None
    };
    let dim = match (&a.model, a.dim) {
        (Some(m), _) => db.model(m)?.dim(),
        (None, Some(d)) => d,
        (None, None) => 0,
    };
    let mut schema = CollectionSchema::single(dim.max(1), a.metric, &a.index);
    schema.vectors.iter_mut().for_each(|f| f.on_disk = a.on_disk);
    if let Some(kind) = &a.multivector {
        let mut mv = quarry_engine::MultiVectorConfig { candidates: kind.clone(), ..Default::default() };
        if let Some(r) = a.rerank {
            if kind == "tokens" {
                mv.per_token = r;
            } else {
                mv.rerank = r;
            }
        }
        if let Some(m) = a.max_vectors {
            mv.max_vectors = m;
        }
        if let Some(json) = &a.fde {
            mv.fde = serde_json::from_str(json).with_context(|| format!("--fde {json}"))?;
        }
        schema.vectors.iter_mut().for_each(|f| f.multivector = Some(mv.clone()));
    }
    if a.text && a.model.is_none() {
        schema.vectors.clear();
    }
    let text_default = if a.text { 16 << 20 } else { 65_536 };
    schema.max_payload_bytes = a.max_payload_bytes.unwrap_or(text_default);
    schema.fsync = !a.no_fsync;
    schema.payload_indexes = a.index_payload.clone();
    schema.seal_threshold = a.seal_threshold;
    schema.text = text;
    db.create_collection(&a.name, schema)?;
    match (a.text, &a.model) {
        (true, Some(m)) => println!(
            "created text collection {} (model {m}, {dim}-d{}, {})",
            a.name,
            if a.multivector.is_some() { " token vectors, MaxSim" } else { "" },
            a.index
        ),
        (true, None) => println!("created text collection {} (BM25 only)", a.name),
        _ => println!(
            "created collection {} ({dim}-d{}, {}, {}{})",
            a.name,
            match &a.multivector {
                Some(k) => format!(" vector sets, MaxSim, {k} candidates"),
                None => String::new(),
            },
            a.metric,
            a.index,
            if a.on_disk { ", rows on disk" } else { "" }
        ),
    }
    Ok(())
}

/// Arguments of `quarry ingest`.
#[derive(clap::Args)]
pub struct IngestArgs {
    /// Database folder (created with --files if missing).
    #[arg(long)]
    pub(crate) dir: PathBuf,
    /// Collection name (with --files, a text collection, created if missing).
    #[arg(long)]
    pub(crate) collection: String,
    /// JSONL file: one point per line, `{"id": …, "vector": […], "payload": {…}}`, or for a
    /// text collection `{"id": …, "text": "…", "payload": {…}}` (`-`: stdin).
    #[arg(long, required_unless_present = "files", conflicts_with = "files")]
    jsonl: Option<PathBuf>,
    /// Documents to read, chunk and index: files, folders (recursively) and glob patterns
    /// (`"notes/**/*.md"`); plain text, Markdown, HTML and PDF. Unchanged files are skipped,
    /// changed ones replaced; one that cannot be read is reported and the others go on.
    #[arg(long, num_args = 1..)]
    pub(crate) files: Vec<PathBuf>,
    /// With --files: also delete the chunks of files that no longer exist.
    #[arg(long, requires = "files")]
    pub(crate) prune: bool,
    /// With --files: leave out chunks that duplicate, exactly or nearly, a chunk of another file
    /// (duplicates are reported either way).
    #[arg(long, requires = "files")]
    pub(crate) drop_duplicates: bool,
    /// With --files: near-duplicate chunks differ in at most this many bits of their 64-bit
    /// SimHash fingerprints (0: exact duplicates only).
    #[arg(long, default_value_t = 3, requires = "files")]
    pub(crate) near_distance: u32,
    /// With --files, creating the collection: its sentence model (a folder or a name; default
    /// all-MiniLM-L6-v2 when it is found locally, else BM25 only; `none`: BM25 only).
    #[arg(long, requires = "files")]
    pub(crate) model: Option<String>,
    /// With --files, creating the collection: most model tokens per chunk.
    #[arg(long, requires = "files")]
    pub(crate) chunk_tokens: Option<usize>,
    /// With --files, creating the collection: tokens consecutive chunks share.
    #[arg(long, requires = "files")]
    pub(crate) chunk_overlap: Option<usize>,
    /// With --files: print the report as JSON on stdout.
    #[arg(long, requires = "files")]
    pub(crate) json: bool,
    /// Points (with --files: chunks) per durable batch.
    #[arg(long, default_value_t = 1000)]
    pub(crate) batch: usize,
}

/// Runs `quarry ingest`: prints `acked <total>` after every durable batch.
pub fn ingest(a: IngestArgs) -> Result<()> {
    if a.batch == 0 {
        bail!("--batch must be at least 1");
    }
    let Some(jsonl) = a.jsonl.clone() else { return crate::commands::docs::ingest_files(&a) };
    let db = Database::open_existing(&a.dir).with_context(|| format!("opening {}", a.dir.display()))?;
    let col = db.collection(&a.collection)?;
    let schema = col.schema().clone();
    let text = if schema.text.is_some() { Some(db.text_collection(&a.collection)?) } else { None };
    let reader: Box<dyn BufRead> = if jsonl.as_os_str() == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        let f = std::fs::File::open(&jsonl).with_context(|| format!("opening {}", jsonl.display()))?;
        Box::new(std::io::BufReader::new(f))
    };
    let stdout = std::io::stdout();
    let mut total = 0usize;
    let mut batch = Vec::with_capacity(a.batch);
    let flush = |batch: &mut Vec<Item>, total: &mut usize| -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let items = std::mem::take(batch);
        *total += match &text {
            Some(t) => t.upsert(items.into_iter().filter_map(Item::doc).collect())?,
            None => col.upsert(items.into_iter().filter_map(Item::point).collect())?,
        };
        let mut out = stdout.lock();
        writeln!(out, "acked {total}")?;
        out.flush()?;
        Ok(())
    };
    let mut batch_first_line = 1;
    for (i, line) in reader.lines().enumerate() {
        let n = i + 1;
        let line = line.with_context(|| format!("{} line {n}: reading", jsonl.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let parsed = serde_json::from_str::<serde_json::Value>(&line)
            .map_err(|e| json_error(&line, &e))
            .and_then(|v| {
                if text.is_some() {
                    text_doc(&v).map(Item::Doc)
                } else {
                    Point::from_json(&v, &schema).map(Item::Point).map_err(anyhow::Error::from)
                }
            });
        match parsed {
            Ok(p) => batch.push(p),
            Err(e) => bail!(
                "{} line {n}: {e:#}; the batch from line {batch_first_line} was not written ({total} points acknowledged before it)",
                jsonl.display()
            ),
        }
        if batch.len() == a.batch {
            flush(&mut batch, &mut total)?;
            batch_first_line = n + 1;
        }
    }
    flush(&mut batch, &mut total)?;
    eprintln!("ingested {total} points into {}", a.collection);
    Ok(())
}

/// One parsed JSONL line of `quarry ingest`.
enum Item {
    Point(Point),
    Doc(TextDoc),
}

impl Item {
    fn point(self) -> Option<Point> {
        match self {
            Item::Point(p) => Some(p),
            Item::Doc(_) => None,
        }
    }
    fn doc(self) -> Option<TextDoc> {
        match self {
            Item::Doc(d) => Some(d),
            Item::Point(_) => None,
        }
    }
}

/// A text document from `{"id": …, "text": "…", "payload": {…}}` (the payload is optional).
fn text_doc(v: &serde_json::Value) -> Result<TextDoc> {
    let id = PointId::from_json(v.get("id").context("missing \"id\"")?)?;
    let text = match v.get("text") {
        Some(serde_json::Value::String(t)) => t.clone(),
        Some(_) => bail!("\"text\" must be a string"),
        None => bail!("missing \"text\" (the collection is a text collection)"),
    };
    let payload = match v.get("payload") {
        None | Some(serde_json::Value::Null) => serde_json::Map::new(),
        Some(serde_json::Value::Object(m)) => m.clone(),
        Some(_) => bail!("\"payload\" must be an object"),
    };
    Ok(TextDoc { id, text, payload })
}

/// Arguments of `quarry count`.
#[derive(clap::Args)]
pub struct CountArgs {
    /// Database folder.
    #[arg(long)]
    dir: PathBuf,
    /// Collection name.
    #[arg(long)]
    collection: String,
    /// Count only points passing this filter (Qdrant's JSON dialect).
    #[arg(long)]
    filter: Option<String>,
}

/// Runs `quarry count`: prints the number.
pub fn count(a: CountArgs) -> Result<()> {
    let db = Database::open_existing(&a.dir).with_context(|| format!("opening {}", a.dir.display()))?;
    let col = db.collection(&a.collection)?;
    let filter = a.filter.as_deref().map(Filter::parse).transpose()?;
    println!("{}", col.count(filter.as_ref()));
    Ok(())
}

/// Arguments of `quarry get`.
#[derive(clap::Args)]
pub struct GetArgs {
    /// Database folder.
    #[arg(long)]
    dir: PathBuf,
    /// Collection name.
    #[arg(long)]
    collection: String,
    /// Point id (an integer or a UUID).
    #[arg(long)]
    id: String,
}

/// Runs `quarry get`: prints the point as one JSON object.
pub fn get(a: GetArgs) -> Result<()> {
    let db = Database::open_existing(&a.dir).with_context(|| format!("opening {}", a.dir.display()))?;
    let col = db.collection(&a.collection)?;
    let id = PointId::parse(&a.id)?;
    match col.get(id) {
        Some(p) => {
            println!("{}", p.to_json(col.schema()));
            Ok(())
        }
        None => bail!("no point with id {id} in collection {}", a.collection),
    }
}

/// `quarry search --dir D --collection C --text "…" [--text "…"] [--mode] [--explain]`: one JSON
/// object (with `--json`) or text lines with the ranked documents of a text collection; several
/// texts are one need, fused.
/// Quality options of a text search.
#[derive(Debug, Clone, Default)]
pub struct TextExtras {
    /// `min_relevance`: a probability, or `auto` for the calibration's stored threshold.
    pub min_relevance: Option<String>,
    /// Hubness re-scoring.
    pub hubness: bool,
    /// A new model embedding the query texts, mapped into the collection's space.
    pub query_model: Option<String>,
    /// A cross-encoder re-ranking the first hits, and how many.
    pub rerank: Option<(String, usize)>,
    /// Weight of the cross-encoder against the first stage in the re-ranked head.
    pub rerank_blend: f64,
    /// How a hybrid query fuses its lists (none: the collection's fitted fusion, else the
    /// default).
    pub fusion: Option<quarry_rank::fusion::Fusion>,
}

#[allow(clippy::too_many_arguments)]
pub fn search_text(
    dir: &std::path::Path,
    collection: &str,
    texts: &[String],
    mode: Option<TextMode>,
    k: usize,
    filter: Option<&str>,
    explain: bool,
    json: bool,
    extras: &TextExtras,
) -> Result<()> {
    let db = Database::open_existing(dir).with_context(|| format!("opening {}", dir.display()))?;
    let col = db.text_collection(collection)?;
    let (mode, hits) = text_hits(&db, &col, texts, mode, k, filter, explain, extras)?;
    // The fusions a query used, named with --explain: the hybrid one (its own, else the fitted,
    // else the default) and, for several texts, the one across them.
    let mut fusions = serde_json::Map::new();
    if explain {
        if mode == TextMode::Hybrid {
            let mut q = TextQuery::new(&texts[0], mode, k);
            q.fusion = extras.fusion.clone();
            fusions.insert("fusion".into(), serde_json::to_value(col.hybrid_fusion(&q))?);
        }
        if texts.len() > 1 {
            let q = TextQuery::new(&texts[0], mode, k);
            fusions.insert("multi_fusion".into(), serde_json::to_value(&q.multi_fusion)?);
        }
    }
    print_text_hits(&col, mode, &hits, json, &fusions)
}

/// A text search as `quarry search --text` runs it: the query built from the options (mode by
/// default hybrid with a model, else BM25), searched, and re-ranked by a cross-encoder when
/// `extras` names one. Shared with `quarry context`.
#[allow(clippy::too_many_arguments)]
pub fn text_hits(
    db: &Database,
    col: &quarry_engine::TextCollection,
    texts: &[String],
    mode: Option<TextMode>,
    k: usize,
    filter: Option<&str>,
    explain: bool,
    extras: &TextExtras,
) -> Result<(TextMode, Vec<quarry_engine::TextHit>)> {
    let Some(first) = texts.first() else { bail!("a text query needs a text") };
    let filter = filter.map(Filter::parse).transpose()?;
    let mode = mode.unwrap_or(if col.spec().model.is_some() { TextMode::Hybrid } else { TextMode::Bm25 });
    let mut q = TextQuery::new(first, mode, k);
    q.texts = texts.to_vec();
    q.explain = explain;
    q.fusion = extras.fusion.clone();
    q.hubness = extras.hubness;
    if let (Some(model), TextMode::Dense | TextMode::Hybrid) = (&extras.query_model, mode) {
        q.vectors = Some(crate::commands::quality::aligned_vectors(db, col, model, texts)?);
    }
    q.min_relevance = match extras.min_relevance.as_deref() {
        None => None,
        Some("auto") => Some(col.calibrated_threshold(mode)?),
        Some(v) => {
            Some(v.parse::<f64>().with_context(|| format!("--min-relevance {v:?}: a probability or auto"))?)
        }
    };
    let mut hits = col.search(&q, filter.as_ref())?;
    if let Some((model, depth)) = &extras.rerank {
        let reranker = db.reranker(model)?;
        hits = col.rerank(first, hits, &reranker, *depth, extras.rerank_blend)?;
    }
    Ok((mode, hits))
}

/// Prints text hits as `quarry search --text` does: one JSON object, or ranked lines.
fn print_text_hits(
    col: &quarry_engine::TextCollection,
    mode: TextMode,
    hits: &[quarry_engine::TextHit],
    json: bool,
    fusions: &serde_json::Map<String, serde_json::Value>,
) -> Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        let hits: Vec<serde_json::Value> = hits
            .iter()
            .map(|h| {
                let mut o = serde_json::json!({"id": h.id.to_json(), "score": h.score, "payload": h.payload});
                if let Some(r) = h.relevance {
                    o["relevance"] = serde_json::json!(r);
                }
                if let Some(e) = &h.explain {
                    o["explain"] = serde_json::to_value(e).unwrap_or_default();
                }
                o
            })
            .collect();
        let mut o = serde_json::json!({"mode": mode, "hits": hits});
        for (k, v) in fusions {
            o[k] = v.clone();
        }
        writeln!(out, "{o}")?;
    } else {
        for (k, v) in fusions {
            writeln!(out, "{k}: {v}")?;
        }
        let key = &col.spec().key;
        for (i, h) in hits.iter().enumerate() {
            let text = h.payload.get(key).and_then(|t| t.as_str()).unwrap_or_default();
            let short: String =
                text.chars().take(100).map(|c| if c.is_whitespace() { ' ' } else { c }).collect();
            let rel = h.relevance.map(|r| format!(" p={r:.3}")).unwrap_or_default();
            writeln!(out, "{:>3}. {} {:.4}{rel}  {short}", i + 1, h.id, h.score)?;
            for c in h.explain.iter().flatten() {
                let terms: Vec<String> =
                    c.terms.iter().map(|t| format!("{}={:.3}", t.term, t.score)).collect();
                writeln!(
                    out,
                    "       {} (query {}): rank {}, score {:.4}{}{}",
                    c.source,
                    c.query,
                    c.rank,
                    c.score,
                    c.passage.map(|p| format!(", passage {p}")).unwrap_or_default(),
                    if terms.is_empty() { String::new() } else { format!(", terms {}", terms.join(" ")) }
                )?;
            }
        }
    }
    Ok(())
}

/// `quarry search --dir D --collection C --vector-file Q [-k] [--filter JSON] [--json] [--ef N]
/// [--no-rescore]`: one line per query, `{"query": id, "hits": [{"id", "score", "payload"}]}`
/// with `--json`, else text; the query id is the JSONL record's `"id"` (else the row number).
#[allow(clippy::too_many_arguments)]
pub fn search_collection(
    dir: &std::path::Path,
    collection: &str,
    vector_file: &std::path::Path,
    field: Option<&str>,
    k: usize,
    filter: Option<&str>,
    json: bool,
    opts: quarry_engine::SearchOptions,
) -> Result<()> {
    let db = Database::open_existing(dir).with_context(|| format!("opening {}", dir.display()))?;
    let col = db.collection(collection)?;
    let filter = filter.map(Filter::parse).transpose()?;
    let f = col.schema().field(field)?;
    let queries: Vec<Vec<f32>> = match col.schema().vectors[f].multivector {
        Some(_) => query_sets(vector_file, &col.schema().vectors[f])?,
        None => {
            let m = crate::load::queries(vector_file, None)?;
            (0..m.rows()).map(|i| m.row(i).to_vec()).collect()
        }
    };
    // Query ids as the file gives them (JSONL `"id"`), else the row number.
    let ids: Vec<serde_json::Value> = match vector_file.extension().is_some_and(|e| e == "jsonl") {
        true => quarry_eval::io::jsonl::read_jsonl(vector_file)
            .map(|recs| {
                recs.iter()
                    .map(|r| match &r.id {
                        quarry_eval::io::jsonl::RecordId::U64(n) => serde_json::json!(n),
                        quarry_eval::io::jsonl::RecordId::String(s) => serde_json::json!(s),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        false => Vec::new(),
    };
    let mut out = std::io::stdout().lock();
    for (i, q) in queries.iter().enumerate() {
        let qid = ids.get(i).cloned().unwrap_or_else(|| serde_json::json!(i));
        let hits =
            col.search_with(q, field, k, filter.as_ref(), &opts).with_context(|| format!("query {qid}"))?;
        if json {
            let hits: Vec<serde_json::Value> = hits
                .iter()
                .map(|h| serde_json::json!({"id": h.id.to_json(), "score": h.score, "payload": h.payload}))
                .collect();
            writeln!(out, "{}", serde_json::json!({"query": qid, "hits": hits}))?;
        } else {
            let line: Vec<String> = hits.iter().map(|h| format!("{}:{:.4}", h.id, h.score)).collect();
            let label = qid.as_str().map_or_else(|| qid.to_string(), str::to_string);
            writeln!(out, "query {label}: {}", line.join(" "))?;
        }
    }
    Ok(())
}

/// Query sets of a multi-vector field: token vectors from `quarry embed --tokens` (an `.npy` with
/// its `.offsets.npy`), or JSONL with one array of vectors per line (or `{"vector": [[…], …]}`).
fn query_sets(path: &std::path::Path, field: &quarry_engine::VectorField) -> Result<Vec<Vec<f32>>> {
    if path.extension().is_some_and(|e| e == "npy") {
        let sets = crate::commands::embed::read_token_sets(
            path,
            &crate::commands::embed::default_offsets_path(path),
        )?;
        if sets.dim() != field.dim {
            bail!(
                "{}: vectors of {} values, the field has dimension {}",
                path.display(),
                sets.dim(),
                field.dim
            );
        }
        return Ok((0..sets.len() as u32).map(|i| sets.get(i).unwrap_or_default().to_vec()).collect());
    }
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, line)| {
            let v: serde_json::Value = serde_json::from_str(line).map_err(|e| json_error(line, &e))?;
            let v = v.get("vector").cloned().unwrap_or(v);
            Ok(field.parse_value(&v, &format!("{} line {}", path.display(), i + 1))?)
        })
        .collect()
}

/// A JSON syntax error, with the non-finite hint when a NaN or infinity caused it.
fn json_error(text: &str, e: &serde_json::Error) -> anyhow::Error {
    match quarry_core::non_finite_hint(text.as_bytes(), e.line(), e.column(), &e.to_string()) {
        Some(h) => anyhow::anyhow!("{e} ({h})"),
        None => anyhow::Error::msg(e.to_string()),
    }
}
