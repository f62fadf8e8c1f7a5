//! Tests of files as documents: a folder of 200 mixed documents (Markdown, HTML, PDF, plain
//! text, made by the test) ingested into a BM25 text collection; chunks with correct sources and
//! offsets; a changed file re-ingested alone; a corrupt PDF reported and skipped; pruning;
//! duplicates; and the context packed for an LLM from those chunks.

use crate::text::{ContextRequest, FileOutcome, IngestOptions, TextMode, TextQuery, TextSpec};
use crate::Database;
use quarry_docs::ChunkSpec;
use serde_json::Value;
use std::path::PathBuf;

fn temp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("quarry-ingest-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[test]
fn a_folder_of_mixed_documents_ingests_updates_prunes_and_gives_context() {
    let root = temp("mixed");
    let files_dir = root.join("docs");
    let mut paths = quarry_testkit::docs::mixed_folder(&files_dir, 200).expect("fixture");
    let corrupt = files_dir.join("broken.pdf");
    std::fs::write(&corrupt, b"%PDF-1.7\n1 0 obj << /Type /Catalog").expect("write");
    paths.push(corrupt.clone());
    let db = Database::open(&root.join("db")).expect("db");
    let mut spec = TextSpec::new(None);
    spec.chunking = ChunkSpec { max_tokens: 64, overlap: 8 };
    let col = db.create_text_collection("docs", spec, "hnsw").expect("create");
    let files = quarry_docs::files::expand(std::slice::from_ref(&files_dir)).expect("expand");
    assert_eq!(files.len(), 201, "every document and the broken PDF");
    let mut seen = 0;
    let report = col.ingest_files(&files, &IngestOptions::default(), &mut |_| seen += 1).expect("ingest");
    assert_eq!(seen, 201);
    assert_eq!(report.count(|o| matches!(o, FileOutcome::Added { .. })), 200);
    let failed: Vec<_> =
        report.files.iter().filter(|r| matches!(r.outcome, FileOutcome::Failed(_))).collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].path, corrupt);
    assert!(
        matches!(&failed[0].outcome, FileOutcome::Failed(m) if m.contains("PDF")),
        "{:?}",
        failed[0].outcome
    );
    assert_eq!(col.count(), report.chunks_written);
    assert!(report.chunks_written > 200, "{} chunks", report.chunks_written);

    // Every chunk names its file and where in it; for the text formats the range holds its
    // first words.
    let mut checked = 0;
    col.docs().for_each_payload(|_, p| {
        let source = p["source"].as_str().expect("source");
        let text = p["text"].as_str().expect("text");
        assert!(p["title"].as_str().is_some_and(|t| t.starts_with("Topic")), "{p:?}");
        assert!(p["tokens"].as_u64().expect("tokens") <= 64);
        let (a, b) = (p["start"].as_u64().expect("start") as usize, p["end"].as_u64().expect("end") as usize);
        match p["format"].as_str() {
            Some("pdf") => assert!(p["page"].as_u64().is_some_and(|n| n >= 1)),
            Some(_) => {
                let bytes = std::fs::read(source).expect("source file");
                let src = std::str::from_utf8(&bytes[a..b]).expect("utf-8");
                let first = text.split_whitespace().next().expect("word");
                assert!(src.contains(first), "{source} {a}..{b}: {src:?} lacks {first:?}");
                checked += 1;
            }
            None => panic!("no format"),
        }
    });
    assert!(checked > 100);

    // Unchanged files are skipped; a changed one is re-ingested alone and its extra chunks go.
    let md = files_dir.join("part0/doc0.md");
    let before = col.count();
    std::fs::write(&md, "# Topic 0\n\nA short replacement about basalt.\n").expect("rewrite");
    let again = col.ingest_files(&files, &IngestOptions::default(), &mut |_| {}).expect("again");
    assert_eq!(again.count(|o| *o == FileOutcome::Unchanged), 199);
    let replaced: Vec<_> =
        again.files.iter().filter(|r| matches!(r.outcome, FileOutcome::Replaced { .. })).collect();
    assert_eq!(replaced.len(), 1);
    assert_eq!(replaced[0].path, md);
    let FileOutcome::Replaced { chunks, removed } = replaced[0].outcome else { unreachable!() };
    assert_eq!(chunks, 1);
    assert_eq!(col.count(), before - removed);
    let hits = col.search(&TextQuery::new("basalt", TextMode::Bm25, 3), None).expect("search");
    assert!(hits[0].payload["source"].as_str().is_some_and(|s| s.ends_with("doc0.md")));

    // A deleted file's chunks stay until pruned.
    let gone = files_dir.join("part3/doc3.txt");
    std::fs::remove_file(&gone).expect("rm");
    let left = quarry_docs::files::expand(std::slice::from_ref(&files_dir)).expect("expand");
    let kept = col.ingest_files(&left, &IngestOptions::default(), &mut |_| {}).expect("no prune");
    assert!(kept.pruned.is_empty());
    let n = col.count();
    let pruned = col
        .ingest_files(&left, &IngestOptions { prune: true, ..Default::default() }, &mut |_| {})
        .expect("prune");
    assert_eq!(pruned.pruned.len(), 1);
    assert!(pruned.pruned[0].ends_with("doc3.txt"));
    assert!(col.count() < n);

    // Context: the best chunks for a topic, de-duplicated, within the budget, as a Ragnarök
    // request and as numbered text.
    let q = TextQuery::new("Document topic-42", TextMode::Bm25, 20);
    let ctx = col
        .context(&ContextRequest { qid: Some("q42".into()), ..ContextRequest::new(q, 120) }, None)
        .expect("context");
    assert!(ctx.tokens <= 120 && !ctx.passages.is_empty());
    assert!(
        ctx.passages[0].payload["source"].as_str().is_some_and(|s| s.contains("doc42.")),
        "{:?}",
        ctx.passages[0]
    );
    let r = ctx.to_ragnarok();
    assert_eq!(r["query"]["qid"], "q42");
    assert_eq!(r["query"]["text"], "Document topic-42");
    let c0 = &r["candidates"][0];
    assert!(c0["docid"].is_string() && c0["score"].is_number() && c0["doc"]["segment"].is_string());
    assert!(c0["doc"]["url"].as_str().is_some_and(|u| u.starts_with("file:///")));
    let text = ctx.to_text();
    assert!(text.starts_with("Question: Document topic-42\n") && text.contains("\n[1] Topic 42 ("), "{text}");
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn duplicates_are_reported_or_dropped_and_context_leaves_them_out() {
    let root = temp("dups");
    let dir = root.join("docs");
    std::fs::create_dir_all(&dir).expect("dir");
    let body = "Granite is an igneous rock made of quartz and feldspar, quarried for buildings and monuments across the world.";
    std::fs::write(dir.join("a.txt"), format!("{body}\n")).expect("a");
    std::fs::write(dir.join("b.md"), format!("{}\n", body.to_uppercase()))
        .expect("b: the same text, other case");
    std::fs::write(dir.join("c.txt"), format!("{}\n", body.replace("world", "globe")))
        .expect("c: one word changed");
    std::fs::write(dir.join("d.txt"), "Basalt is a dark volcanic rock that forms from lava flows.\n")
        .expect("d");
    let db = Database::open(&root.join("db")).expect("db");
    let col = db.create_text_collection("t", TextSpec::new(None), "flat").expect("create");
    let files = quarry_docs::files::expand(std::slice::from_ref(&dir)).expect("files");
    let report = col
        .ingest_files(&files, &IngestOptions { near_distance: 12, ..Default::default() }, &mut |_| {})
        .expect("ingest");
    let mut dups: Vec<(String, u32)> = report
        .duplicates
        .iter()
        .map(|d| (d.chunk.rsplit('/').next().unwrap_or_default().to_string(), d.distance))
        .collect();
    dups.sort();
    assert_eq!(dups.len(), 2, "{dups:?}");
    assert_eq!(dups[0], ("b.md#0".into(), 0));
    assert!(dups[1].0 == "c.txt#0" && dups[1].1 > 0, "{dups:?}");
    assert_eq!(col.count(), 4, "reported, not dropped");
    let q = TextQuery::new("granite quartz feldspar", TextMode::Bm25, 10);
    let ctx = col
        .context(&ContextRequest { near_distance: 12, ..ContextRequest::new(q, 1000) }, None)
        .expect("ctx");
    assert_eq!(ctx.passages.len(), 1, "{ctx:?}");
    assert_eq!(ctx.duplicates, 2);
    // Dropping: a fresh collection keeps one of the three.
    let col2 = db.create_text_collection("t2", TextSpec::new(None), "flat").expect("create");
    let r2 = col2
        .ingest_files(
            &files,
            &IngestOptions { near_distance: 12, drop_duplicates: true, ..Default::default() },
            &mut |_| {},
        )
        .expect("ingest");
    assert!(r2.duplicates.iter().all(|d| d.dropped));
    assert_eq!(col2.count(), 2);
    // A chunk moved from a changed file to a new one is not dropped as a duplicate of its old
    // copy, which the same run deletes: it stays stored once.
    std::fs::write(dir.join("d.txt"), "Obsidian is volcanic glass.\n").expect("d changed");
    std::fs::write(dir.join("e.txt"), "Basalt is a dark volcanic rock that forms from lava flows.\n")
        .expect("e");
    let files = quarry_docs::files::expand(std::slice::from_ref(&dir)).expect("files");
    let opts = IngestOptions { near_distance: 12, drop_duplicates: true, ..Default::default() };
    let r3 = col2.ingest_files(&files, &opts, &mut |_| {}).expect("move");
    assert!(!r3.duplicates.iter().any(|d| d.chunk.contains("e.txt")), "{:?}", r3.duplicates);
    let q = TextQuery::new("basalt lava", TextMode::Bm25, 5);
    let hits = col2.search(&q, None).expect("search");
    assert_eq!(hits.len(), 1, "{hits:?}");
    assert!(hits[0].payload["source"].as_str().is_some_and(|s| s.ends_with("e.txt")));
    // A budget smaller than the best hit cuts it at a token boundary.
    let q = TextQuery::new("granite", TextMode::Bm25, 10);
    let small = col2.context(&ContextRequest::new(q, 5), None).expect("small");
    assert_eq!(small.passages.len(), 1);
    assert!(small.passages[0].truncated && small.tokens == 5, "{small:?}");
    assert!(small.to_ragnarok()["candidates"][0]["doc"]["truncated"] == Value::Bool(true));
    let _ = std::fs::remove_dir_all(&root);
}
