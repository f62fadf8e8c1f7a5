//! Unit tests of qrels/run parsing and crash-safe, round-trip-exact run writing.

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use quarry_core::Error;

use super::*;

fn p() -> &'static Path {
    Path::new("mem.txt")
}

/// A fresh, empty directory under the system temp dir for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("quarry-trec-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

fn malformed_at(err: Error, want_line: &str) -> String {
    match err {
        Error::Malformed { location, message, .. } => {
            assert_eq!(location, want_line, "wrong location; message: {message}");
            message
        }
        other => panic!("expected Malformed, got {other:?}"),
    }
}

#[test]
fn qrels_trec_and_beir_layouts() {
    let (q, f) =
        Qrels::parse_with_format("1 0 d1 1\n1 0 d2 0\n\n2 Q0 d1 -1\r\n1 0 d1 2\n", p()).expect("trec");
    assert_eq!(f, QrelsFormat::Trec);
    assert_eq!((q.len(), q.num_judgements()), (2, 3));
    assert_eq!(q.rel("1", "d1"), Some(2), "duplicate judgement: last wins");
    assert_eq!(q.rel("2", "d1"), Some(-1));
    assert_eq!(q.num_relevant("1", 1), 1);
    let (b, f) = Qrels::parse_with_format("query-id\tcorpus-id\tscore\nq1\tdocA\t1\nq1\tdocB\t2\n", p())
        .expect("beir");
    assert_eq!(f, QrelsFormat::Beir);
    assert_eq!(b.rel("q1", "docB"), Some(2));
    assert_eq!(b.num_judgements(), 2);
    let headerless = Qrels::parse("\u{feff}q1\tdocA\t1\n", p()).expect("beir without header");
    assert_eq!(headerless.rel("q1", "docA"), Some(1));
    assert!(Qrels::parse("", p()).expect("empty").is_empty());
}

#[test]
fn qrels_errors_name_the_line() {
    let msg = malformed_at(Qrels::parse("1 0 d1 1\n1 0 d2\n", p()).expect_err("3 columns in TREC"), "line 2");
    assert!(msg.contains("found 3"), "{msg}");
    let msg = malformed_at(Qrels::parse("1 0 d1 1\n\n1 0 d2 x\n", p()).expect_err("bad rel"), "line 3");
    assert!(msg.contains("\"x\""), "{msg}");
    malformed_at(Qrels::parse("a b\n", p()).expect_err("2 columns"), "line 1");
    malformed_at(Qrels::parse("h1\th2\th3\nq\td\t1.5\n", p()).expect_err("float grade"), "line 2");
    match read_qrels(Path::new("/nonexistent/quarry/qrels.txt")) {
        Err(Error::Io { action, .. }) => assert_eq!(action, "reading"),
        other => panic!("expected Io error, got {other:?}"),
    }
}

#[test]
fn run_parsing() {
    let text = "q1 Q0 d1 9 0.5 tag extra fields\nq1 Q0 d2 1 1e-3 tag\n\nq2 Q0 d1 1 -2 other\n";
    let r = Run::parse(text, p()).expect("valid run");
    assert_eq!((r.len(), r.num_results(), r.tag()), (2, 3, Some("tag")));
    assert_eq!(r.get("q1").expect("q1"), &[("d1".to_string(), 0.5), ("d2".to_string(), 0.001)]);
    let msg = malformed_at(
        Run::parse("q Q0 a 1 1 t\nq Q0 b 2 1 t\nq Q0 a 3 0 t\n", p()).expect_err("dup"),
        "line 3",
    );
    assert!(msg.contains("\"a\"") && msg.contains("line 1"), "{msg}");
    // The same docno under different queries is fine.
    Run::parse("q Q0 a 1 1 t\nr Q0 a 1 1 t\n", p()).expect("distinct queries");
    malformed_at(Run::parse("q Q0 a 1 1 t\nq Q0 b 2 1\n", p()).expect_err("5 columns"), "line 2");
    malformed_at(Run::parse("q Q0 a 1 high t\n", p()).expect_err("bad score"), "line 1");
    malformed_at(Run::parse("q Q0 a 1 NaN t\n", p()).expect_err("NaN"), "line 1");
}

#[test]
fn run_write_read_round_trip_is_exact() {
    let dir = scratch("roundtrip");
    let path = dir.join("run.trec");
    let next_after_03 = f32::from_bits(0.3f32.to_bits() + 1);
    let tricky =
        [0.1f32, 0.1, 1.0 / 3.0, 1e-8, f32::MAX, f32::MIN_POSITIVE / 4.0, -0.0, 0.0, next_after_03, 0.3];
    let hits: Vec<(String, f32)> = tricky.iter().enumerate().map(|(i, &s)| (format!("doc{i}"), s)).collect();
    write_ranked(&path, [("q1", hits.clone()), ("q2", Vec::new())], "quarry").expect("write");
    let back = read_run(&path).expect("read back");
    let got = back.get("q1").expect("q1 present");
    assert_eq!(got.len(), hits.len());
    for ((d, s), (d2, s2)) in hits.iter().zip(got) {
        assert_eq!(d, d2);
        // The f32 text is read as the nearest f64, which narrows back to exactly the f32.
        assert_eq!((*s2 as f32).to_bits(), s.to_bits(), "{d}: wrote {s:e}, read {s2:e}");
    }
    assert_eq!(got[0].1, got[1].1, "ties survive");
    assert!(got[8].1 > got[9].1, "adjacent f32 values stay ordered");
    let text = std::fs::read_to_string(&path).expect("read text");
    assert!(text.starts_with("q1 Q0 doc0 1 0.1 quarry\nq1 Q0 doc1 2 0.1 quarry\n"), "{text}");

    // f64 runs round-trip through write_run too.
    let path2 = dir.join("run2.trec");
    write_run(&path2, &back, "again").expect("write_run");
    assert_eq!(read_run(&path2).expect("read").get("q1"), back.get("q1"));
    let leftovers: Vec<_> = std::fs::read_dir(&dir).expect("list").filter_map(|e| e.ok()).collect();
    assert_eq!(leftovers.len(), 2, "no temporary files left behind");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn run_writer_rejects_bad_input_and_discards_on_drop() {
    let dir = scratch("writer");
    let path = dir.join("run.trec");
    let mut w = RunWriter::create(&path, "t").expect("create");
    assert!(w.write_query("q 1", &[("d", 1.0f32)]).is_err(), "whitespace in qid");
    assert!(w.write_query("q", &[("d", f32::NAN)]).is_err(), "NaN score");
    assert!(w.write_query("r", &[("d", 1.0f32), ("d", 0.5)]).is_err(), "repeated docno");
    w.write_query("s", &[("d", 1.0f32)]).expect("valid query");
    assert!(w.write_query("s", &[("e", 1.0f32)]).is_err(), "query written twice");
    drop(w);
    assert_eq!(std::fs::read_dir(&dir).expect("list").count(), 0, "dropped writer leaves nothing");
    assert!(RunWriter::create(&path, "bad tag").is_err());
    assert!(Run::new().insert_query("q", &[("d", f64::NAN)]).is_err());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn qrels_write_read_round_trip() {
    let dir = scratch("qrels");
    let path = dir.join("qrels.txt");
    let q = Qrels::parse("b 0 x 2\na 0 y -1\na 0 z 0\n", p()).expect("parse");
    write_qrels(&path, &q).expect("write");
    assert_eq!(read_qrels(&path).expect("read"), q);
    let _ = std::fs::remove_dir_all(&dir);
}

proptest! {
    /// Shortest f32 text read as f64 narrows back to the same f32 and keeps the order of any
    /// two scores, so a written run sorts (and ties) exactly like the in-memory f32 results.
    #[test]
    fn f32_score_text_round_trips_and_keeps_order(a in any::<u32>(), b in any::<u32>()) {
        let (a, b) = (f32::from_bits(a), f32::from_bits(b));
        prop_assume!(a.is_finite() && b.is_finite());
        let ra: f64 = a.to_text().parse().expect("parses");
        let rb: f64 = b.to_text().parse().expect("parses");
        prop_assert_eq!((ra as f32).to_bits(), a.to_bits());
        prop_assert_eq!(ra.partial_cmp(&rb), a.partial_cmp(&b));
    }
}

/// Ragnarök requests (candidates with scores, or without: by position) and responses
/// (references in order) read as runs, as JSONL, one object or an array; bad records named.
#[test]
fn ragnarok_requests_and_responses_read_as_runs() {
    use super::parse_ragnarok;
    let p = std::path::Path::new("rag.jsonl");
    let req = r#"{"query": {"qid": "q1", "text": "t"}, "candidates": [{"docid": "d1", "score": 2.5, "doc": {"segment": "s"}}, {"docid": "d2", "score": 1.0, "doc": {"segment": "s"}}]}
{"query": {"qid": 7, "text": "u"}, "candidates": [{"docid": "a", "doc": {}}, {"docid": "b", "doc": {}}, {"docid": "a", "doc": {}}]}"#;
    let run = parse_ragnarok(req, p).expect("requests");
    assert_eq!(run.get("q1"), Some(&[("d1".to_string(), 2.5), ("d2".to_string(), 1.0)][..]));
    assert_eq!(
        run.get("7"),
        Some(&[("a".to_string(), 3.0), ("b".to_string(), 2.0)][..]),
        "by position, first kept"
    );
    let mixed = r#"{"query": {"qid": "m", "text": "t"}, "candidates": [{"docid": "x", "score": 0.8}, {"docid": "y", "score": null}]}"#;
    let run = parse_ragnarok(mixed, p).expect("mixed");
    assert_eq!(run.get("m"), Some(&[("x".to_string(), 2.0), ("y".to_string(), 1.0)][..]), "by position");
    let resp = r#"[{"run_id": "r", "topic_id": "q1", "topic": "t", "references": ["d9", "d1"], "response_length": 3, "answer": [{"text": "x", "citations": [0]}]}]"#;
    let run = parse_ragnarok(resp, p).expect("responses");
    assert_eq!(run.get("q1"), Some(&[("d9".to_string(), 2.0), ("d1".to_string(), 1.0)][..]));
    for (bad, why) in [
        (r#"{"candidates": []}"#, "qid"),
        (r#"{"query": {"qid": "q"}, "candidates": ["just text"]}"#, "docid"),
        (r#"{"topic_id": "q", "answer": []}"#, "neither"),
        ("{\"query\": {\"qid\": \"q\"}, \"candidates\": []}\n{oops", "line 2"),
    ] {
        let e = parse_ragnarok(bad, p).expect_err(bad).to_string();
        assert!(e.contains(why) && e.contains("rag.jsonl"), "{bad}: {e}");
    }
}
