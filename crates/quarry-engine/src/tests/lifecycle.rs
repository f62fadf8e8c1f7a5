//! Batch search, merges, payload indexes changed at run time, scrolling, deleted collections,
//! payload key deletes, damaged snapshots and logs.

use super::*;

#[test]
fn batch_search_equals_single_searches_and_payload_updates_are_filtered() {
    let dir = temp("batch");
    let db = Database::open(&dir).expect("open");
    let mut schema = CollectionSchema::single(8, Metric::Cosine, "hnsw");
    schema.seal_threshold = 300;
    schema.fsync = false;
    schema.payload_indexes = vec!["tag".into()];
    let c = db.create_collection("c", schema).expect("create");
    let points: Vec<Point> = (0..1000u64)
        .map(|i| {
            point(i, (0..8).map(|j| ((i * 31 + j * 7) % 17) as f32 - 8.0).collect(), json!({"tag": "old"}))
        })
        .collect();
    for chunk in points.chunks(100) {
        c.upsert(chunk.to_vec()).expect("upsert");
    }
    c.wait_for_sealing();
    // Mark some points, sealed and unsealed, then filter on the new value.
    let marked: Vec<PointId> = (0..1000).step_by(13).map(PointId::Num).collect();
    let n = c
        .set_payload(&marked, json!({"tag": "new"}).as_object().cloned().unwrap_or_default(), false)
        .expect("set payload");
    assert_eq!(n, marked.len());
    let big = json!({"tag": "x".repeat(70_000)}).as_object().cloned().unwrap_or_default();
    assert!(c.set_payload(&marked, big, true).is_err(), "over the payload limit: rejected");
    let filter = Filter::parse(r#"{"must": [{"key": "tag", "match": {"value": "new"}}]}"#).expect("filter");
    assert_eq!(c.count(Some(&filter)), marked.len());
    assert_eq!(c.count(None), 1000, "a payload update does not duplicate points");
    let queries: Vec<Vec<f32>> =
        (0..20).map(|q| (0..8).map(|j| ((q * 5 + j) % 9) as f32 - 4.0).collect()).collect();
    let opts = SearchOptions::default();
    let batch = c.search_batch(&queries, None, 5, Some(&filter), &opts).expect("batch");
    for (q, got) in queries.iter().zip(&batch) {
        assert_eq!(got, &c.search_with(q, None, 5, Some(&filter), &opts).expect("single"));
        assert!(got.iter().all(|h| marked.contains(&h.id) && h.payload["tag"] == "new"));
    }
    // Overwrite replaces the whole payload, and survives a reopen.
    c.set_payload_by_filter(&filter, json!({"k": 1}).as_object().cloned().unwrap_or_default(), true)
        .expect("overwrite");
    drop(c);
    drop(db);
    let db = Database::open(&dir).expect("reopen");
    let c = db.collection("c").expect("c");
    assert_eq!(c.count(Some(&filter)), 0);
    let p = c.get(marked[0]).expect("present");
    assert_eq!(serde_json::Value::Object(p.payload), json!({"k": 1}));
    assert!(c.search_batch(&[vec![1.0; 7]], None, 5, None, &opts).is_err(), "wrong dimension");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn many_seals_merge_the_newer_half_and_keep_every_point() {
    let dir = temp("tiers");
    let db = Database::open(&dir).expect("open");
    let mut schema = CollectionSchema::single(4, Metric::L2, "hnsw");
    schema.seal_threshold = 100;
    schema.fsync = false;
    let c = db.create_collection("c", schema).expect("create");
    let vec_of = |id: u64| -> Vec<f32> { (0..4).map(|j| ((id * 37 + j * 11) % 997) as f32).collect() };
    let mut max_segments = 0;
    for batch in 0..40u64 {
        let pts: Vec<Point> =
            (batch * 100..batch * 100 + 100).map(|i| point(i, vec_of(i), json!({}))).collect();
        c.upsert(pts).expect("upsert");
        c.wait_for_sealing();
        if batch % 3 == 0 {
            c.delete(&[PointId::Num(batch * 100)]).expect("delete");
        }
        max_segments = max_segments.max(c.segment_count());
    }
    assert!(max_segments <= crate::collection::MAX_SEGMENTS + 1, "segments stay bounded: {max_segments}");
    let check = |c: &Collection| {
        for i in (0..4000u64).step_by(7) {
            let deleted = i % 300 == 0 && (i / 100) % 3 == 0;
            assert_eq!(c.get(PointId::Num(i)).is_none(), deleted, "id {i}");
            if !deleted {
                let hits = c.search(&vec_of(i), None, 1, None).expect("search");
                assert_eq!(hits[0].score, 0.0, "{i} is its own nearest neighbour");
            }
        }
    };
    check(&c);
    drop(c);
    drop(db);
    let db = Database::open(&dir).expect("reopen");
    check(&db.collection("c").expect("c"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn payload_indexes_created_and_dropped_at_run_time_keep_answers_and_survive_reopen() {
    let dir = temp("pidx-runtime");
    let filters = [
        r#"{"must": [{"key": "g", "match": {"value": 3}}]}"#,
        r#"{"must": [{"key": "g", "range": {"gte": 2, "lt": 5}}]}"#,
        r#"{"must": [{"key": "g", "match": {"any": [1, 7]}}, {"key": "s", "match": {"value": "x1"}}]}"#,
    ];
    let answers = |c: &Collection| -> Vec<(usize, Vec<ScoredPoint>)> {
        filters
            .iter()
            .map(|f| {
                let filter = Filter::parse(f).expect(f);
                let hits = c.search(&[1.0, 2.0], None, 9, Some(&filter)).expect("search");
                (c.count(Some(&filter)), hits)
            })
            .collect()
    };
    let before;
    {
        let db = Database::open(&dir).expect("open");
        let c = db.create_collection("c", CollectionSchema::single(2, Metric::L2, "flat")).expect("create");
        let pts: Vec<Point> = (0..300u64)
            .map(|i| {
                point(i, vec![i as f32, (i % 13) as f32], json!({"g": i % 10, "s": format!("x{}", i % 3)}))
            })
            .collect();
        c.upsert(pts).expect("upsert");
        c.delete(&[PointId::Num(3), PointId::Num(13)]).expect("delete");
        before = answers(&c);
        assert!(c.create_payload_index("g").expect("create index"));
        assert!(!c.create_payload_index("g").expect("again"), "already indexed");
        assert!(c.create_payload_index("s").expect("create index"));
        assert!(c.create_payload_index("").is_err() && c.create_payload_index("a..b").is_err());
        assert_eq!(c.payload_indexes(), vec!["g".to_string(), "s".to_string()]);
        assert_eq!(answers(&c), before);
        // Points written after the index exist are indexed too.
        c.upsert(vec![point(1000, vec![0.0, 0.0], json!({"g": 3}))]).expect("upsert");
        c.delete(&[PointId::Num(1000)]).expect("delete");
        assert_eq!(answers(&c), before);
        assert!(c.delete_payload_index("s").expect("drop"));
        assert!(!c.delete_payload_index("s").expect("drop again"));
        assert_eq!(c.current_schema().payload_indexes, vec!["g".to_string()]);
    }
    let db = Database::open(&dir).expect("reopen");
    let c = db.collection("c").expect("c");
    assert_eq!(c.payload_indexes(), vec!["g".to_string()], "recorded in schema.json");
    assert_eq!(answers(&c), before);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn scroll_from_pages_cover_every_match_once_in_id_order() {
    let dir = temp("scroll-from");
    let db = Database::open(&dir).expect("open");
    let c = db.create_collection("c", CollectionSchema::single(2, Metric::L2, "flat")).expect("create");
    let pts: Vec<Point> =
        (0..97u64).map(|i| point(i * 3, vec![i as f32, 1.0], json!({"odd": i % 2 == 1}))).collect();
    c.upsert(pts).expect("upsert");
    let filter = Filter::parse(r#"{"must": [{"key": "odd", "match": {"value": true}}]}"#).expect("filter");
    for (f, want) in [(None, 97usize), (Some(&filter), 48)] {
        for limit in [1usize, 7, 48, 200] {
            let (mut seen, mut start) = (Vec::new(), None);
            loop {
                let (page, next) = c.scroll_from(start, limit, f, false);
                assert!(page.len() <= limit);
                assert!(page.iter().all(|p| p.vectors.is_empty()), "no vectors unless asked");
                seen.extend(page.iter().map(|p| p.id));
                match next {
                    Some(n) => start = Some(n),
                    None => break,
                }
            }
            assert_eq!(seen.len(), want, "limit {limit}");
            assert!(seen.windows(2).all(|w| w[0] < w[1]), "ascending, no repeats");
        }
    }
    let (page, _) = c.scroll_from(Some(PointId::Num(6)), 2, None, true);
    assert_eq!(page.iter().map(|p| p.id).collect::<Vec<_>>(), vec![PointId::Num(6), PointId::Num(9)]);
    assert_eq!(page[0].vectors, vec![vec![2.0, 1.0]], "vectors when asked");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn deleted_collections_are_gone_and_their_names_reusable() {
    let dir = temp("drop");
    {
        let db = Database::open(&dir).expect("open");
        let c = db.create_collection("c", CollectionSchema::single(2, Metric::L2, "flat")).expect("create");
        c.upsert(vec![point(1, vec![1.0, 2.0], json!({}))]).expect("upsert");
        c.flush().expect("flush");
        assert!(db.delete_collection("c").expect("delete"));
        assert!(!db.delete_collection("c").expect("again"));
        assert!(matches!(db.collection("c"), Err(quarry_core::Error::NotFound(_))));
        let c = db.create_collection("c", CollectionSchema::single(3, Metric::L2, "flat")).expect("reuse");
        assert_eq!(c.count(None), 0, "a new, empty collection");
        // A deletion cut short after the rename leaves a hidden folder: removed on open.
        std::fs::create_dir_all(dir.join("collections/.deleted-x-1")).expect("mkdir");
    }
    let db = Database::open(&dir).expect("reopen");
    assert_eq!(db.collection_names(), vec!["c".to_string()]);
    assert_eq!(db.collection("c").expect("c").schema().vectors[0].dim, 3);
    assert!(!dir.join("collections/.deleted-x-1").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn payload_keys_deleted_in_one_operation_leave_indexes_and_other_keys_right_across_reopen() {
    let dir = temp("unset-keys");
    let filter = |f: &str| Filter::parse(f).expect(f);
    let (has_g, g_is_3, s_is_x1) = (
        r#"{"must": [{"key": "g", "range": {"gte": 0}}]}"#,
        r#"{"must": [{"key": "g", "match": {"value": 3}}]}"#,
        r#"{"must": [{"key": "s", "match": {"value": "x1"}}]}"#,
    );
    {
        let db = Database::open(&dir).expect("open");
        let mut schema = CollectionSchema::single(2, Metric::L2, "hnsw");
        schema.payload_indexes = vec!["g".into()];
        schema.seal_threshold = 100;
        let c = db.create_collection("c", schema).expect("create");
        let pts: Vec<Point> = (0..300u64)
            .map(|i| point(i, vec![i as f32, 1.0], json!({"g": i % 10, "s": format!("x{}", i % 3), "t": i})))
            .collect();
        c.upsert(pts).expect("upsert");
        c.wait_for_sealing();
        assert_eq!(c.payload_index_info("g"), Some((Some("integer"), 300)));
        assert_eq!(c.payload_index_info("s"), None, "not indexed");
        // Points 0..150 (sealed and unsealed alike) lose g and t; 999 is absent; "zz" is held by none.
        let ids: Vec<PointId> = (0..150).chain([999]).map(PointId::Num).collect();
        let keys = vec!["g".to_string(), "t".to_string(), "zz".to_string()];
        assert_eq!(c.delete_payload_keys(&ids, &keys).expect("unset"), 150);
        assert_eq!(c.delete_payload_keys(&ids, &keys).expect("again"), 0, "nothing left to remove");
        assert_eq!(
            c.payload(PointId::Num(4)).expect("4"),
            json!({"s": "x1"}).as_object().cloned().expect("map")
        );
        assert_eq!(c.payload(PointId::Num(204)).expect("204")["g"], json!(4));
        assert_eq!(c.count(None), 300, "no point is lost");
        assert_eq!(c.payload_index_info("g"), Some((Some("integer"), 150)), "live holders only");
        assert!(c.create_payload_index("s").expect("index s"));
        assert_eq!(c.payload_index_info("s"), Some((Some("keyword"), 300)));
        c.upsert(vec![point(5000, vec![0.0, 0.0], json!({"f": 0.5}))]).expect("upsert");
        assert!(c.create_payload_index("f").expect("index f"));
        assert_eq!(c.payload_index_info("f"), Some((Some("float"), 1)));
        c.delete(&[PointId::Num(5000)]).expect("delete");
        assert_eq!(c.payload_index_info("f"), Some((Some("float"), 0)));
    }
    let db = Database::open(&dir).expect("reopen");
    let c = db.collection("c").expect("c");
    let check = |c: &Collection| {
        assert_eq!(c.payload_index_info("g"), Some((Some("integer"), 150)));
        assert_eq!(c.count(Some(&filter(has_g))), 150);
        assert_eq!(c.count(Some(&filter(g_is_3))), 15, "the indexed key answers only for 150..300");
        assert_eq!(c.count(Some(&filter(s_is_x1))), 100, "other keys untouched");
        let hits = c.search(&[3.0, 1.0], None, 5, Some(&filter(g_is_3))).expect("search");
        assert_eq!(
            hits.iter().map(|h| h.id).collect::<Vec<_>>(),
            vec![PointId::Num(153)]
                .into_iter()
                .chain([163, 173, 183, 193].map(PointId::Num))
                .collect::<Vec<_>>()
        );
        assert_eq!(c.get(PointId::Num(4)).expect("4").vectors[0], vec![4.0, 1.0], "vectors kept");
    };
    check(&c);
    c.optimize().expect("optimize");
    check(&c);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A snapshot file with valid checksums whose log holds a point of the wrong dimension: restoring
/// it is an error naming the file, and the database is left as it was (no collection, no folder).
/// The same log as a collection's WAL makes `Database::open` an error, never a panic.
#[test]
fn snapshots_and_logs_with_wrong_dimensions_are_errors_not_panics() {
    let dir = temp("wrong-dim");
    let schema = CollectionSchema::single(4, Metric::L2, "flat");
    let bad_point = point(7, vec![1.0, 2.0, 3.0], json!({"a": 1}));
    let log = quarry_store::wal::encode_log(&[Op::Upsert(vec![bad_point]).encode()]).expect("log");
    let schema_bytes = serde_json::to_vec(&schema).expect("schema json");
    let mut out = Vec::new();
    out.extend_from_slice(&crate::collection::SNAPSHOT_MAGIC);
    out.extend_from_slice(&crate::collection::SNAPSHOT_VERSION.to_le_bytes());
    out.extend_from_slice(&(schema_bytes.len() as u64).to_le_bytes());
    out.extend_from_slice(&schema_bytes);
    out.extend_from_slice(&(log.len() as u64).to_le_bytes());
    out.extend_from_slice(&log);
    let crc = quarry_store::checksum(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    let file = temp("wrong-dim-file").with_extension("qsnap");
    std::fs::write(&file, &out).expect("write snapshot");
    {
        let db = Database::open(&dir).expect("open");
        db.create_collection("kept", schema.clone())
            .expect("create")
            .upsert(vec![point(1, vec![1.0; 4], json!({}))])
            .expect("upsert");
        let err = db.restore_snapshot(&file, "r").expect_err("wrong dimension");
        let msg = err.to_string();
        assert!(matches!(err, quarry_core::Error::Corrupt { .. }), "{msg}");
        assert!(msg.contains("wrong dimension") && msg.contains(&file.display().to_string()), "{msg}");
        assert_eq!(db.collection_names(), vec!["kept".to_string()]);
        assert!(db.collection("r").is_err());
    }
    let names: Vec<String> = std::fs::read_dir(dir.join("collections"))
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().to_string())
        .collect();
    assert_eq!(names, vec!["kept".to_string()], "nothing left behind");
    // The same records as a collection's log: opening the database is an error naming the log.
    let broken = dir.join("collections").join("broken");
    std::fs::create_dir_all(&broken).expect("mkdir");
    schema.save(&broken).expect("schema");
    std::fs::write(broken.join(crate::collection::WAL_FILE), &log).expect("wal");
    let err = Database::open(&dir).expect_err("a log of the wrong dimension");
    let msg = err.to_string();
    assert!(msg.contains("wrong dimension") && msg.contains("wal.log") && msg.contains("record 1"), "{msg}");
    // More vector fields than the schema has: also an error, not an index out of bounds.
    let mut two = point(8, vec![1.0; 4], json!({}));
    two.vectors.push(vec![1.0; 4]);
    let log2 = quarry_store::wal::encode_log(&[Op::Upsert(vec![two]).encode()]).expect("log");
    std::fs::write(broken.join(crate::collection::WAL_FILE), &log2).expect("wal");
    let err = Database::open(&dir).expect_err("too many fields");
    assert!(err.to_string().contains("vector fields"), "{err}");
    std::fs::remove_dir_all(&broken).expect("remove");
    let db = Database::open(&dir).expect("reopen without the broken collection");
    assert_eq!(db.collection("kept").expect("kept").count(None), 1);
    drop(db);
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_file(&file);
}

/// One open database per folder: a second open (here in the same process) is refused with an
/// error naming the folder and the holder's PID; after the first closes, the folder opens again.
#[test]
fn a_database_folder_has_one_opener_at_a_time() {
    let dir = temp("lock");
    let db = Database::open(&dir).expect("open");
    let err = Database::open(&dir).expect_err("second opener");
    assert!(matches!(err, quarry_core::Error::Conflict(_)), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains(&dir.display().to_string()) && msg.contains(&format!("PID {}", std::process::id())),
        "{msg}"
    );
    drop(db);
    Database::open(&dir).expect("reopen after close");
    assert!(Database::open_existing(&temp("lock-missing")).is_err());
    assert!(!temp("lock-missing").exists(), "open_existing creates nothing");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Group commit, counted at the log file: 8 writers making 50 single-point upserts each (400
/// batches, every one acknowledged only after an fsync) on a disk whose fsync takes 2 ms need
/// fewer fsyncs than batches — writers that queue while one fsync runs share the next — and
/// each fsync follows exactly one write of the log. Every acknowledged point survives a reopen.
#[test]
fn group_commit_shares_fsyncs_between_concurrent_writers() {
    use quarry_testkit::faults::{FaultPlan, FaultyFile};
    use std::sync::Arc;
    let dir = temp("group-fsyncs");
    Database::open(&dir)
        .expect("open")
        .create_collection("c", CollectionSchema::single(2, Metric::L2, "flat"))
        .expect("create");
    let plan = Arc::new(FaultPlan::slow_sync(std::time::Duration::from_millis(2)));
    let p2 = plan.clone();
    let opener: collection::StoreOpener = Arc::new(move |path| {
        FaultyFile::open(path, p2.clone()).map(|f| Box::new(f) as Box<dyn quarry_store::LogStore>)
    });
    let (writers, each) = (8u64, 50u64);
    {
        let db = Database::open_with(&dir, Some(opener)).expect("open");
        let c = db.collection("c").expect("c");
        let (w0, s0) = (plan.writes(), plan.syncs());
        let threads: Vec<_> = (0..writers)
            .map(|t| {
                let c = c.clone();
                std::thread::spawn(move || {
                    for i in 0..each {
                        let id = t * 1000 + i;
                        c.upsert(vec![point(id, vec![id as f32, 0.0], json!({}))]).expect("acknowledged");
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("writer");
        }
        let (writes, syncs) = (plan.writes() - w0, plan.syncs() - s0);
        let batches = writers * each;
        eprintln!("{batches} batches, {writes} log writes, {syncs} fsyncs");
        assert!(syncs < batches, "group commit shared no fsync: {syncs} fsyncs for {batches} batches");
        assert_eq!(writes, syncs, "one write per fsync");
        assert_eq!(c.count(None), batches as usize);
    }
    let db = Database::open(&dir).expect("reopen");
    assert_eq!(db.collection("c").expect("c").count(None), (writers * each) as usize);
    drop(db);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Found by the `filter_json` fuzz target: integer range bounds beyond ±9e15 were clamped and
/// integral floats ≥ 9e15 were not indexed, so a payload index answered differently from a scan.
/// The same filters on the same points, with and without payload indexes, give the same points.
#[test]
fn payload_indexes_agree_with_scans_on_huge_integers() {
    let dir = temp("huge-ints");
    let db = Database::open(&dir).expect("open");
    let mut indexed = CollectionSchema::single(2, Metric::L2, "flat");
    indexed.payload_indexes = vec!["big".into()];
    let a = db.create_collection("indexed", indexed).expect("create");
    let b = db.create_collection("scanned", CollectionSchema::single(2, Metric::L2, "flat")).expect("create");
    let values = [
        json!(1_000_000_000_000_001i64),
        json!(9_007_199_254_740_993i64),
        json!(16_000_000_000_000_000i64),
        json!(1.6e16),
        json!(-9_223_372_036_854_775_807i64),
        json!(i64::MAX),
        json!(-5),
        json!(3.5),
    ];
    let points: Vec<Point> = values
        .iter()
        .enumerate()
        .map(|(i, v)| point(i as u64, vec![i as f32, 0.0], json!({ "big": v })))
        .collect();
    a.upsert(points.clone()).expect("upsert");
    b.upsert(points).expect("upsert");
    for f in [
        r#"{"must": [{"key": "big", "range": {"gt": 1000000000000000.0}}]}"#,
        r#"{"must": [{"key": "big", "range": {"gte": 9007199254740992, "lte": 9007199254740994}}]}"#,
        r#"{"must": [{"key": "big", "range": {"lt": -9000000000000000000}}]}"#,
        r#"{"must": [{"key": "big", "range": {"gte": 9.2e18}}]}"#,
        r#"{"must": [{"key": "big", "match": {"value": 16000000000000000}}]}"#,
        r#"{"must": [{"exists": {"key": "big"}}, {"key": "big", "range": {"gt": 1000000000000000.0}}]}"#,
    ] {
        let filter = Filter::parse(f).expect("filter");
        let (mut x, mut y) = (a.matching_ids(&filter), b.matching_ids(&filter));
        x.sort();
        y.sort();
        assert_eq!(x, y, "{f}");
        assert_eq!(a.count(Some(&filter)), b.count(Some(&filter)), "{f}");
    }
    drop((a, b));
    drop(db);
    let _ = std::fs::remove_dir_all(&dir);
}
