//! Payload indexes, sealed segments of every index spec, value graphs, snapshots, group commit.

use super::*;

#[test]
fn payload_indexes_never_change_answers() {
    let dir = temp("pidx");
    let db = Database::open(&dir).expect("open");
    let plain =
        db.create_collection("plain", CollectionSchema::single(2, Metric::L2, "flat")).expect("create");
    let mut schema = CollectionSchema::single(2, Metric::L2, "flat");
    schema.payload_indexes = vec!["g".into(), "tags".into(), "x".into(), "m.k".into(), "s".into()];
    let indexed = db.create_collection("indexed", schema).expect("create");
    let mut points = Vec::new();
    for i in 0..600u64 {
        let x = if i % 7 == 0 { json!(i as f64 + 0.5) } else { json!(i % 50) };
        let payload = json!({"g": i % 10, "tags": [i % 3, i % 4], "x": x, "m": {"k": format!("k{}", i % 6)}, "s": i % 2 == 0});
        points.push(point(i, vec![i as f32, (i % 17) as f32], payload));
    }
    plain.upsert(points.clone()).expect("upsert");
    indexed.upsert(points).expect("upsert");
    // Replace and delete some, so dead slots are in the index.
    let again: Vec<Point> =
        (0..50u64).map(|i| point(i, vec![0.0, 0.0], json!({"g": 99, "tags": [], "x": 1.25}))).collect();
    plain.upsert(again.clone()).expect("upsert");
    indexed.upsert(again).expect("upsert");
    let gone: Vec<PointId> = (100..160).map(PointId::Num).collect();
    plain.delete(&gone).expect("delete");
    indexed.delete(&gone).expect("delete");
    let filters = [
        r#"{"must": [{"key": "g", "match": {"value": 3}}]}"#,
        r#"{"must": [{"key": "g", "match": {"any": [1, 99]}}, {"key": "s", "match": {"value": true}}]}"#,
        r#"{"must": [{"key": "tags", "match": {"value": 2}}]}"#,
        r#"{"must": [{"key": "x", "range": {"gte": 10, "lt": 30}}]}"#,
        r#"{"must": [{"key": "x", "range": {"gt": 1}}, {"key": "g", "range": {"lte": 2}}]}"#,
        r#"{"must": [{"key": "x", "match": {"value": 1.25}}]}"#,
        r#"{"must": [{"key": "m.k", "match": {"value": "k5"}}], "must_not": [{"key": "g", "match": {"value": 5}}]}"#,
        r#"{"should": [{"key": "g", "match": {"value": 1}}, {"key": "g", "match": {"value": 2}}]}"#,
        r#"{"must": [{"key": "g", "match": {"value": 4}}, {"has_id": [4, 14, 24, 999]}]}"#,
        r#"{"must": [{"key": "g", "match": {"except": [1, 2, 3]}}]}"#,
    ];
    for f in filters {
        let filter = Filter::parse(f).expect(f);
        assert_eq!(indexed.count(Some(&filter)), plain.count(Some(&filter)), "{f}");
        for q in [[0.0, 0.0], [300.0, 5.0], [599.0, 16.0]] {
            let a = indexed.search(&q, None, 7, Some(&filter)).expect("search");
            let b = plain.search(&q, None, 7, Some(&filter)).expect("search");
            assert_eq!(a, b, "{f}");
        }
    }
    let filter = Filter::parse(r#"{"must": [{"key": "g", "match": {"value": 7}}]}"#).expect("filter");
    assert_eq!(
        indexed.delete_by_filter(&filter).expect("delete"),
        plain.delete_by_filter(&filter).expect("delete")
    );
    assert_eq!(indexed.count(None), plain.count(None));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sealed_graph_segments_answer_like_brute_force() {
    let dir = temp("segments");
    let db = Database::open(&dir).expect("open");
    let mut schema = CollectionSchema::single(16, Metric::Cosine, "hnsw");
    schema.seal_threshold = 1000;
    schema.fsync = false;
    schema.payload_indexes = vec!["g".into()];
    let c = db.create_collection("c", schema).expect("create");
    let mut s = 0x1234_5678u64;
    let mut rnd = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    };
    let centres: Vec<Vec<f32>> = (0..20).map(|_| (0..16).map(|_| rnd() * 4.0).collect()).collect();
    let mut points: Vec<Point> = (0..3500u64)
        .map(|i| {
            point(i, centres[(i % 20) as usize].iter().map(|x| x + rnd()).collect(), json!({"g": i % 10}))
        })
        .collect();
    for chunk in points.chunks(250) {
        c.upsert(chunk.to_vec()).expect("upsert");
    }
    c.wait_for_sealing();
    assert!(c.segment_count() >= 1, "sealed in the background once 1000 points were unsealed");
    // Deletes and replacements of sealed points.
    let gone: Vec<PointId> = (0..3500).step_by(9).map(PointId::Num).collect();
    c.delete(&gone).expect("delete");
    for i in (1..3500u64).step_by(31).filter(|i| i % 9 != 0) {
        let v: Vec<f32> = (0..16).map(|_| rnd()).collect();
        points[i as usize] = point(i, v, json!({"g": i % 10}));
        c.upsert(vec![points[i as usize].clone()]).expect("replace");
    }
    let live: Vec<&Point> = points.iter().filter(|p| !gone.contains(&p.id)).collect();
    let filter = Filter::parse(r#"{"must": [{"key": "g", "match": {"any": [1, 2, 3]}}]}"#).expect("filter");
    let check = |c: &Collection, label: &str| {
        for f in [None, Some(&filter)] {
            let mut found = 0;
            for qi in 0..50 {
                let q: Vec<f32> = centres[qi % 20]
                    .iter()
                    .enumerate()
                    .map(|(j, x)| x + ((qi * 7 + j) % 5) as f32 * 0.1)
                    .collect();
                let got = c.search_ef(&q, None, 10, f, 128).expect("search");
                let mut want: Vec<(f64, PointId)> = live
                    .iter()
                    .filter(|p| f.is_none_or(|f| f.matches(p.id, &p.payload)))
                    .map(|p| (-quarry_testkit_score(Metric::Cosine, &q, &p.vectors[0]), p.id))
                    .collect();
                want.sort_by(|a, b| a.0.total_cmp(&b.0));
                let want: Vec<PointId> = want.into_iter().take(10).map(|(_, id)| id).collect();
                for h in &got {
                    assert!(!gone.contains(&h.id), "{label}: deleted {} returned", h.id);
                    assert!(f.is_none_or(|f| f.matches(h.id, &h.payload)), "{label}: filter violated");
                    // Graphs walk f16 rows here (unit rows); the answers are re-scored from f32.
                    let p = live.iter().find(|p| p.id == h.id).expect("a live point");
                    let exact = quarry_testkit_score(Metric::Cosine, &q, &p.vectors[0]);
                    assert!((h.score as f64 - exact).abs() < 1e-5, "{label}: score {} vs {exact}", h.score);
                }
                let scores: Vec<f32> = got.iter().map(|h| h.score).collect();
                assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{label}: best first");
                found += got.iter().filter(|h| want.contains(&h.id)).count();
            }
            let recall = found as f64 / 500.0;
            assert!(recall >= 0.95, "{label} filter={}: recall {recall}", f.is_some());
        }
    };
    check(&c, "3 segments + tail");
    let exact_points = |c: &Collection, label: &str| {
        assert_eq!(c.count(None), live.len(), "{label}: count");
        for p in &live {
            // Cosine rows are stored normalised (as Qdrant does).
            let want = Point { vectors: vec![unit(&p.vectors[0])], ..(*p).clone() };
            assert_eq!(c.get(p.id), Some(want), "{label}: point {}", p.id);
        }
        for id in &gone {
            assert!(c.get(*id).is_none(), "{label}: deleted {id} is back");
        }
    };
    // Reopen: the sealed segments come from their folders (graphs are not rebuilt), tombstones
    // from the manifest, the tail from the log.
    c.wait_for_sealing();
    let segments = c.segment_count();
    drop(c);
    drop(db);
    let db = Database::open(&dir).expect("reopen");
    let c = db.collection("c").expect("collection");
    assert_eq!(c.segment_count(), segments, "segments loaded from disk");
    exact_points(&c, "reopened");
    check(&c, "reopened segments + replayed tail");
    let col_dir = c.dir().to_path_buf();
    let old_log = std::fs::read(col_dir.join(crate::collection::WAL_FILE)).expect("read log");
    c.optimize().expect("optimize");
    assert_eq!(c.segment_count(), 1, "optimize merges into one graph");
    check(&c, "1 merged segment");
    let new_log = std::fs::metadata(col_dir.join(crate::collection::WAL_FILE)).expect("log").len();
    assert_eq!(new_log, quarry_store::wal::HEADER, "the checkpoint emptied the log");
    drop(c);
    drop(db);
    let db = Database::open(&dir).expect("reopen");
    let c = db.collection("c").expect("collection");
    assert_eq!(c.segment_count(), 1);
    exact_points(&c, "merged, reopened");
    check(&c, "merged, reopened");
    // A crash after the manifest was written but before the log was cut: the old log comes back
    // and the records the manifest covers are skipped (deleted points stay deleted).
    drop(c);
    drop(db);
    std::fs::write(col_dir.join(crate::collection::WAL_FILE), &old_log).expect("restore old log");
    std::fs::create_dir_all(col_dir.join("segments/99999999")).expect("orphan folder");
    let db = Database::open(&dir).expect("reopen");
    let c = db.collection("c").expect("collection");
    assert!(!col_dir.join("segments/99999999").exists(), "unnamed segment folders are removed");
    exact_points(&c, "old log over the merged manifest");
    check(&c, "old log over the merged manifest");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn payload_value_graphs_answer_single_value_filters() {
    let dir = temp("valuegraphs");
    let db = Database::open(&dir).expect("open");
    let mut schema = CollectionSchema::single(8, Metric::L2, "hnsw");
    schema.seal_threshold = 0;
    schema.fsync = false;
    schema.payload_indexes = vec!["g".into()];
    schema.payload_graphs = true;
    let c = db.create_collection("c", schema).expect("create");
    let mut s = 0xABCDEFu64;
    let mut rnd = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 40) as f32 / (1u64 << 24) as f32
    };
    let points: Vec<Point> =
        (0..9000u64).map(|i| point(i, (0..8).map(|_| rnd()).collect(), json!({"g": i % 2}))).collect();
    c.upsert(points.clone()).expect("upsert");
    c.optimize().expect("optimize");
    let gone: Vec<PointId> = (0..9000).step_by(11).map(PointId::Num).collect();
    c.delete(&gone).expect("delete");
    let filter = Filter::parse(r#"{"must": [{"key": "g", "match": {"value": 1}}]}"#).expect("filter");
    let mut found = 0;
    for qi in 0..40 {
        let q: Vec<f32> = (0..8).map(|j| ((qi * 3 + j) % 7) as f32 / 7.0).collect();
        let got = c.search_ef(&q, None, 10, Some(&filter), 128).expect("search");
        assert_eq!(got.len(), 10);
        for h in &got {
            assert!(!gone.contains(&h.id), "deleted {} returned", h.id);
            assert_eq!(h.payload["g"], json!(1), "filter respected");
        }
        let mut want: Vec<(f64, PointId)> = points
            .iter()
            .filter(|p| !gone.contains(&p.id) && filter.matches(p.id, &p.payload))
            .map(|p| (-quarry_testkit_score(Metric::L2, &q, &p.vectors[0]), p.id))
            .collect();
        want.sort_by(|a, b| a.0.total_cmp(&b.0));
        found += got.iter().filter(|h| want.iter().take(10).any(|w| w.1 == h.id)).count();
    }
    let recall = found as f64 / 400.0;
    assert!(recall >= 0.95, "value-graph recall {recall}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn snapshots_are_consistent_while_writes_continue_and_restore_elsewhere() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let dir = temp("snap-src");
    let db = Database::open(&dir).expect("open");
    let mut schema = CollectionSchema::single(4, Metric::L2, "flat");
    schema.fsync = false;
    let c = db.create_collection("c", schema).expect("create");
    c.upsert((0..1000u64).map(|i| point(i, vec![i as f32; 4], json!({"i": i}))).collect()).expect("upsert");
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (c, stop) = (c.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut i = 1000u64;
            while !stop.load(Ordering::Relaxed) {
                c.upsert(vec![point(i, vec![i as f32; 4], json!({"i": i}))]).expect("upsert");
                i += 1;
            }
            i
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(20));
    let before = c.count(None);
    let file = temp("snap-file").with_extension("qsnap");
    c.snapshot(&file).expect("snapshot while writing");
    let after = c.count(None);
    stop.store(true, Ordering::Relaxed);
    let written = writer.join().expect("writer");
    let other = temp("snap-dst");
    let db2 = Database::open(&other).expect("open");
    let r = db2.restore_snapshot(&file, "restored").expect("restore");
    let n = r.count(None);
    assert!(n >= before && n <= after, "a consistent prefix: {before} <= {n} <= {after}");
    // Exactly the points 0..n, each as written.
    for i in 0..n as u64 {
        let p = r.get(PointId::Num(i)).expect("present");
        assert_eq!(p.vectors[0], vec![i as f32; 4]);
    }
    assert!(r.get(PointId::Num(n as u64)).is_none());
    assert!(written as usize >= after);
    // Damaged snapshot files are refused with a clear error.
    let mut bytes = std::fs::read(&file).expect("read");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    std::fs::write(&file, &bytes).expect("write");
    let err = db2.restore_snapshot(&file, "again").expect_err("damaged");
    assert!(err.to_string().contains("checksum"), "{err}");
    assert!(db2.restore_snapshot(&file, "restored").is_err(), "existing name");
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&other);
}

#[test]
fn group_commit_acknowledges_every_concurrent_writer() {
    let dir = temp("group");
    let db = Database::open(&dir).expect("open");
    let c = db.create_collection("c", CollectionSchema::single(2, Metric::L2, "flat")).expect("create");
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let c = c.clone();
            std::thread::spawn(move || {
                for i in 0..150u64 {
                    let id = t * 1000 + i;
                    c.upsert(vec![point(id, vec![id as f32, 1.0], json!({"t": t}))]).expect("acknowledged");
                    assert!(c.get(PointId::Num(id)).is_some(), "read your write");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("writer");
    }
    assert_eq!(c.count(None), 600);
    drop(c);
    drop(db);
    let db = Database::open(&dir).expect("reopen");
    let c = db.collection("c").expect("c");
    assert_eq!(c.count(None), 600, "every acknowledged write is in the log");
    for t in 0..4u64 {
        for i in 0..150u64 {
            assert_eq!(
                c.get(PointId::Num(t * 1000 + i)).expect("present").vectors[0],
                vec![(t * 1000 + i) as f32, 1.0]
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn index_specs_flat_is_exact_and_hnsw_sq8_finds_neighbours_across_reopen() {
    let bad = CollectionSchema::single(4, Metric::L2, "ivf");
    let err = bad.check().expect_err("unknown index spec");
    assert!(err.to_string().contains("use flat, hnsw or spann"), "{err}");
    let mut s = 0x9e37_79b9u64;
    let mut rnd = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    };
    let points: Vec<Point> =
        (0..2500u64).map(|i| point(i, (0..12).map(|_| rnd()).collect(), json!({"g": i % 7}))).collect();
    let queries: Vec<Vec<f32>> = (0..40).map(|_| (0..12).map(|_| rnd()).collect()).collect();
    let filter = Filter::parse(r#"{"must": [{"key": "g", "match": {"any": [1, 2]}}]}"#).expect("filter");
    for spec in ["flat", "hnsw+sq8"] {
        let dir = temp(&format!("spec-{}", spec.replace('+', "-")));
        let db = Database::open(&dir).expect("open");
        let mut schema = CollectionSchema::single(12, Metric::L2, spec);
        schema.seal_threshold = 0;
        schema.fsync = false;
        let c = db.create_collection("c", schema).expect("create");
        for chunk in points.chunks(500) {
            c.upsert(chunk.to_vec()).expect("upsert");
        }
        c.optimize().expect("optimize");
        if spec == "hnsw+sq8" {
            // Codes only (before any delete: a few thousand live rows after one are scanned
            // exactly): the codes' ranking with their estimated scores, close to the exact ones.
            let opts = crate::SearchOptions { ef: 64, with_payload: false, rescore: false, candidates: None };
            let (mut found, mut differs) = (0, 0);
            for q in &queries {
                let fast = c.search_with(q, None, 10, None, &opts).expect("codes only");
                let exact = c.search_ef(q, None, 10, None, 64).expect("exact");
                assert_eq!(fast.len(), 10);
                for h in &fast {
                    if let Some(e) = exact.iter().find(|e| e.id == h.id) {
                        found += 1;
                        assert!(
                            (h.score - e.score).abs() <= 0.05 * e.score.abs().max(1.0),
                            "{} vs {}",
                            h.score,
                            e.score
                        );
                        differs += usize::from(h.score != e.score);
                    }
                }
            }
            assert!(found as f64 / (10 * queries.len()) as f64 >= 0.9, "codes-only recall {found}");
            assert!(differs > 0, "codes-only scores are all exact: rows were read");
        }
        c.delete(&[PointId::Num(3), PointId::Num(10)]).expect("delete");
        let check = |c: &Collection, label: &str| {
            for f in [None, Some(&filter)] {
                let mut found = 0;
                for q in &queries {
                    let got = c.search_ef(q, None, 10, f, 64).expect("search");
                    let mut want: Vec<(f64, PointId)> = points
                        .iter()
                        .filter(|p| !matches!(p.id, PointId::Num(3 | 10)))
                        .filter(|p| f.is_none_or(|f| f.matches(p.id, &p.payload)))
                        .map(|p| (-quarry_testkit_score(Metric::L2, q, &p.vectors[0]), p.id))
                        .collect();
                    want.sort_by(|a, b| a.0.total_cmp(&b.0));
                    let want: Vec<PointId> = want.into_iter().take(10).map(|(_, id)| id).collect();
                    if spec == "flat" {
                        let ids: Vec<PointId> = got.iter().map(|h| h.id).collect();
                        assert_eq!(ids, want, "{label}: flat segments are exact");
                    }
                    found += got.iter().filter(|h| want.contains(&h.id)).count();
                }
                let recall = found as f64 / (10 * queries.len()) as f64;
                assert!(recall >= 0.95, "{label} {spec} filter={}: recall {recall}", f.is_some());
            }
        };
        check(&c, "built");
        drop(c);
        drop(db);
        let db = Database::open(&dir).expect("reopen");
        let c = db.collection("c").expect("collection");
        assert_eq!(c.segment_count(), 1);
        check(&c, "reopened");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
