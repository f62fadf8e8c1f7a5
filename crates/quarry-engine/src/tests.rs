//! Engine tests: round trips through reopen, read-your-writes, bad input rejected whole with
//! stored data untouched, filters against a hand oracle, search against brute force, UUID ids,
//! torn WAL tails, the WAL operation codec.

use super::*;
use quarry_core::Metric;
use serde_json::{json, Map, Value};
use std::path::PathBuf;

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("quarry-engine-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn point(id: u64, v: Vec<f32>, payload: Value) -> Point {
    let payload: Map<String, Value> = payload.as_object().cloned().unwrap_or_default();
    Point { id: PointId::Num(id), vectors: vec![v], payload }
}

/// `v` scaled to unit length (how a cosine field stores it).
fn unit(v: &[f32]) -> Vec<f32> {
    let norm = v.iter().map(|&x| x as f64 * x as f64).sum::<f64>().sqrt();
    let inv = quarry_core::unit_scale(norm).expect("not a zero row");
    v.iter().map(|&x| (x as f64 * inv) as f32).collect()
}

#[test]
fn upsert_get_delete_count_survive_reopen() {
    let dir = temp("rt");
    {
        let db = Database::open(&dir).expect("open");
        let c =
            db.create_collection("c", CollectionSchema::single(3, Metric::Cosine, "hnsw")).expect("create");
        c.upsert(vec![
            point(1, vec![1.0, 0.0, 0.0], json!({"tag": "a", "n": 5})),
            point(2, vec![0.0, 1.0, 0.0], json!({"tag": "b"})),
        ])
        .expect("upsert");
        // Read your writes.
        assert_eq!(c.count(None), 2);
        assert_eq!(c.get(PointId::Num(1)).expect("present").vectors[0], vec![1.0, 0.0, 0.0]);
        c.upsert(vec![point(1, vec![0.5, 0.5, 0.0], json!({"tag": "c"}))]).expect("replace");
        assert_eq!(c.delete(&[PointId::Num(2), PointId::Num(99)]).expect("delete"), 1);
        assert!(
            db.create_collection("c", CollectionSchema::single(3, Metric::L2, "flat")).is_err(),
            "exists"
        );
    }
    let db = Database::open(&dir).expect("reopen");
    assert_eq!(db.collection_names(), vec!["c".to_string()]);
    let c = db.collection("c").expect("c");
    assert_eq!(c.count(None), 1);
    let p = c.get(PointId::Num(1)).expect("present");
    assert_eq!(
        (p.vectors[0].clone(), p.payload.get("tag").cloned()),
        (unit(&[0.5, 0.5, 0.0]), Some(json!("c"))),
        "cosine vectors come back normalised, as Qdrant stores them"
    );
    assert!(c.get(PointId::Num(2)).is_none(), "deleted stays deleted");
    assert!(db.collection("nope").expect_err("unknown").to_string().contains("unknown collection"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_input_rejects_the_whole_batch_and_keeps_data() {
    let dir = temp("bad");
    let db = Database::open(&dir).expect("open");
    let mut schema = CollectionSchema::single(2, Metric::L2, "flat");
    schema.max_payload_bytes = 64;
    let c = db.create_collection("c", schema).expect("create");
    c.upsert(vec![point(1, vec![1.0, 2.0], json!({}))]).expect("ok");
    let cases: Vec<(Vec<Point>, &str)> = vec![
        (vec![point(2, vec![1.0, 2.0], json!({})), point(3, vec![1.0], json!({}))], "wrong dimension"),
        (vec![point(4, vec![f32::NAN, 1.0], json!({}))], "non-finite"),
        (vec![point(5, vec![], json!({}))], "missing or empty"),
        (vec![point(6, vec![1.0, 1.0], json!({"big": "x".repeat(100)}))], "over the collection's limit"),
    ];
    for (batch, msg) in cases {
        let err = c.upsert(batch).expect_err("rejected");
        assert!(err.to_string().contains(msg), "{err} should say {msg}");
    }
    assert_eq!(c.count(None), 1, "nothing of a rejected batch is stored");
    let schema = c.schema().clone();
    for (v, msg) in [
        (json!({"id": -1, "vector": [1, 2]}), "unsigned"),
        (json!({"id": [1], "vector": [1, 2]}), "wrong type"),
        (json!({"id": "not-a-uuid", "vector": [1, 2]}), "neither"),
        (json!({"id": 1, "vector": [1, "x"]}), "not a number"),
        (json!({"id": 1}), "no \"vector\""),
    ] {
        let err = Point::from_json(&v, &schema).expect_err("bad point");
        assert!(err.to_string().contains(msg), "{err} should say {msg}");
    }
    drop(c);
    drop(db);
    let db = Database::open(&dir).expect("reopen");
    assert_eq!(db.collection("c").expect("c").count(None), 1);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn filters_match_a_hand_oracle() {
    let payload = |v: Value| v.as_object().cloned().unwrap_or_default();
    let p = payload(
        json!({"tag": "a", "n": 12, "tags": ["x", "y"], "meta": {"lang": "en", "year": 2020}, "flag": true, "none": null}),
    );
    let id = PointId::Num(7);
    let yes = [
        r#"{"must": [{"key": "tag", "match": {"value": "a"}}, {"key": "n", "range": {"gte": 10}}]}"#,
        r#"{"must": [{"key": "tags", "match": {"value": "y"}}]}"#,
        r#"{"must": [{"key": "meta.lang", "match": {"any": ["de", "en"]}}]}"#,
        r#"{"must": [{"key": "meta.year", "range": {"gt": 2019, "lt": 2021}}]}"#,
        r#"{"should": [{"key": "tag", "match": {"value": "z"}}, {"key": "flag", "match": {"value": true}}]}"#,
        r#"{"must_not": [{"key": "tag", "match": {"value": "b"}}]}"#,
        r#"{"must": [{"has_id": [3, 7]}]}"#,
        r#"{"must": [{"is_empty": {"key": "missing"}}, {"is_null": {"key": "none"}}]}"#,
        r#"{"must": [{"exists": {"key": "meta.lang"}}, {"exists": {"key": "tags"}}]}"#,
        r#"{"must_not": [{"exists": {"key": "none"}}, {"exists": {"key": "missing"}}]}"#,
        r#"{"must": [{"key": "n", "match": {"value": 12.0}}]}"#,
        r#"{"must": [{"key": "tag", "match": {"except": ["b", "c"]}}]}"#,
        r#"{"must": [{"should": [{"key": "n", "range": {"lt": 0}}, {"key": "tag", "match": {"value": "a"}}]}]}"#,
    ];
    for f in yes {
        assert!(Filter::parse(f).expect(f).matches(id, &p), "{f} should match");
    }
    let no = [
        r#"{"must": [{"key": "tag", "match": {"value": "b"}}]}"#,
        r#"{"must": [{"key": "n", "range": {"gt": 12}}]}"#,
        r#"{"should": [{"key": "tag", "match": {"value": "z"}}]}"#,
        r#"{"must_not": [{"key": "tags", "match": {"any": ["y"]}}]}"#,
        r#"{"must": [{"key": "missing", "match": {"value": 1}}]}"#,
        r#"{"must": [{"is_empty": {"key": "tags"}}]}"#,
    ];
    for f in no {
        assert!(!Filter::parse(f).expect(f).matches(id, &p), "{f} should not match");
    }
    for bad in [
        "not json",
        r#"{"must": [{"key": "a"}]}"#,
        r#"{"maybe": []}"#,
        r#"{"must": [{"key": "a", "range": {"around": 3}}]}"#,
        r#"{"must": [{"key": "a", "match": {"value": [1]}}]}"#,
        r#"[1, 2]"#,
    ] {
        assert!(Filter::parse(bad).expect_err(bad).to_string().contains("bad filter"), "{bad}");
    }
}

#[test]
fn search_equals_brute_force_with_and_without_filters() {
    let dir = temp("search");
    let db = Database::open(&dir).expect("open");
    for metric in [Metric::Cosine, Metric::InnerProduct, Metric::L2] {
        let name = format!("c{}", metric.name());
        let c = db.create_collection(&name, CollectionSchema::single(8, metric, "flat")).expect("create");
        let mut x = 0x9E3779B97F4A7C15u64;
        let mut rnd = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        };
        let points: Vec<Point> =
            (0..500u64).map(|i| point(i, (0..8).map(|_| rnd()).collect(), json!({"g": i % 10}))).collect();
        c.upsert(points.clone()).expect("upsert");
        let filter = Filter::parse(r#"{"must": [{"key": "g", "match": {"any": [1, 2]}}]}"#).expect("filter");
        for qi in 0..20 {
            let q: Vec<f32> = (0..8).map(|_| rnd()).collect();
            for f in [None, Some(&filter)] {
                let got: Vec<PointId> =
                    c.search(&q, None, 5, f).expect("search").iter().map(|h| h.id).collect();
                let mut want: Vec<(f64, PointId)> = points
                    .iter()
                    .filter(|p| f.is_none_or(|f| f.matches(p.id, &p.payload)))
                    .map(|p| (-quarry_testkit_score(metric, &q, &p.vectors[0]), p.id))
                    .collect();
                want.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
                let want: Vec<PointId> = want.into_iter().take(5).map(|(_, id)| id).collect();
                assert_eq!(got, want, "{metric} query {qi} filter {}", f.is_some());
            }
        }
        assert!(c.search(&[1.0; 7], None, 5, None).is_err(), "wrong query dimension");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Reference similarity in f64.
fn quarry_testkit_score(metric: Metric, q: &[f32], x: &[f32]) -> f64 {
    let dot: f64 = q.iter().zip(x).map(|(a, b)| *a as f64 * *b as f64).sum();
    let nq: f64 = q.iter().map(|a| (*a as f64).powi(2)).sum::<f64>().sqrt();
    let nx: f64 = x.iter().map(|a| (*a as f64).powi(2)).sum::<f64>().sqrt();
    match metric {
        Metric::L2 => -q.iter().zip(x).map(|(a, b)| (*a as f64 - *b as f64).powi(2)).sum::<f64>(),
        Metric::Cosine => dot / (nq * nx),
        _ => dot,
    }
}

#[test]
fn uuid_ids_named_fields_scroll_and_codec() {
    let dir = temp("uuid");
    let db = Database::open(&dir).expect("open");
    let schema: CollectionSchema = serde_json::from_value(json!({
        "vectors": [{"name": "text", "dim": 2, "metric": "cosine", "index": "hnsw"},
                    {"name": "image", "dim": 3, "metric": "l2", "index": "flat"}]
    }))
    .expect("schema");
    let c = db.create_collection("multi", schema.clone()).expect("create");
    let p = Point::from_json(
        &json!({"id": "550e8400-e29b-41d4-a716-446655440000", "vector": {"text": [1, 0], "image": [0, 0, 1]}, "payload": {"k": 1}}),
        &schema,
    )
    .expect("point");
    assert_eq!(p.id.to_string(), "550e8400-e29b-41d4-a716-446655440000");
    let set = Op::SetPayload {
        ids: vec![PointId::Num(7), p.id],
        payload: json!({"a": [1, 2], "b": null}).as_object().cloned().unwrap_or_default(),
        overwrite: true,
    };
    assert_eq!(Op::decode(&set.encode()).expect("decode"), set);
    let unset =
        Op::DeletePayloadKeys { ids: vec![PointId::Num(7), p.id], keys: vec!["a".into(), "ключ".into()] };
    assert_eq!(Op::decode(&unset.encode()).expect("decode"), unset);
    let encoded = unset.encode();
    for cut in 0..encoded.len() {
        assert!(Op::decode(&encoded[..cut]).is_err(), "a cut record is an error, not a panic");
    }
    let encoded = Op::Upsert(vec![p.clone()]).encode();
    assert_eq!(Op::decode(&encoded).expect("decode"), Op::Upsert(vec![p.clone()]));
    for cut in 0..encoded.len() {
        assert!(Op::decode(&encoded[..cut]).is_err(), "a cut record is an error, not a panic");
    }
    c.upsert(vec![p.clone()]).expect("upsert");
    assert!(c.search(&[1.0, 0.0], None, 1, None).is_err(), "two fields: name one");
    assert_eq!(c.search(&[0.0, 0.0, 1.0], Some("image"), 1, None).expect("search")[0].id, p.id);
    assert_eq!(c.get(p.id).expect("get").to_json(&schema)["vector"]["image"], json!([0.0, 0.0, 1.0]));
    for i in 0..25u64 {
        let q = Point {
            id: PointId::Num(i),
            vectors: vec![vec![1.0, 1.0], vec![0.0, 1.0, 0.0]],
            payload: Map::new(),
        };
        c.upsert(vec![q]).expect("upsert");
    }
    let (mut seen, mut cursor) = (Vec::new(), None);
    loop {
        let (page, next) = c.scroll(cursor, 10, None);
        seen.extend(page.iter().map(|p| p.id));
        match next {
            Some(n) => cursor = Some(n),
            None => break,
        }
    }
    assert_eq!(seen.len(), 26, "scroll visits every point once");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_torn_wal_tail_loses_only_the_unacknowledged_batch() {
    let dir = temp("torn");
    {
        let db = Database::open(&dir).expect("open");
        let c = db.create_collection("c", CollectionSchema::single(2, Metric::L2, "flat")).expect("create");
        c.upsert(vec![point(1, vec![1.0, 1.0], json!({}))]).expect("first");
        c.upsert(vec![point(2, vec![2.0, 2.0], json!({}))]).expect("second");
    }
    let wal = dir.join("collections/c").join(collection::WAL_FILE);
    let bytes = std::fs::read(&wal).expect("read");
    std::fs::write(&wal, &bytes[..bytes.len() - 3]).expect("tear");
    let db = Database::open(&dir).expect("reopen");
    let c = db.collection("c").expect("c");
    assert_eq!(c.count(None), 1);
    assert!(c.get(PointId::Num(1)).is_some() && c.get(PointId::Num(2)).is_none());
    c.upsert(vec![point(3, vec![3.0, 3.0], json!({}))]).expect("writes resume");
    drop(c);
    drop(db);
    assert_eq!(Database::open(&dir).expect("reopen").collection("c").expect("c").count(None), 2);
    let _ = std::fs::remove_dir_all(&dir);
}

mod model {
    //! Model-based test: random sequences of upserts, deletes (by id and by filter), payload
    //! updates, reopens and merges, with background seals (checkpoints) every 6 points, against an in-memory model (a
    //! map id → point); after every step, count, get, an unbounded search and a filtered count
    //! agree with the model.
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    #[derive(Debug, Clone)]
    enum Step {
        Upsert(Vec<(u64, [i8; 2], u8)>),
        Delete(Vec<u64>),
        DeleteGroup(u8),
        Reopen,
        Optimize,
        SetGroup(Vec<u64>, u8, bool),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            4 => prop::collection::vec((0u64..40, any::<[i8; 2]>(), 0u8..4), 1..8).prop_map(Step::Upsert),
            2 => prop::collection::vec(0u64..40, 1..5).prop_map(Step::Delete),
            1 => (0u8..4).prop_map(Step::DeleteGroup),
            1 => Just(Step::Reopen),
            1 => Just(Step::Optimize),
            1 => (prop::collection::vec(0u64..40, 1..6), 0u8..4, any::<bool>())
                .prop_map(|(ids, g, o)| Step::SetGroup(ids, g, o)),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
        #[test]
        fn engine_agrees_with_a_map_across_reopens(steps in prop::collection::vec(step(), 1..30)) {
            static RUN: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
            let dir = temp(&format!("model-{}", RUN.fetch_add(1, std::sync::atomic::Ordering::Relaxed)));
            let mut db = Database::open(&dir).expect("open");
            let mut schema = CollectionSchema::single(2, Metric::L2, "flat");
            schema.fsync = false; // reopen after a clean drop: the OS has the bytes; faster cases
            schema.seal_threshold = 6; // background seals, checkpoints and merges happen often
            db.create_collection("m", schema).expect("create");
            let mut model: BTreeMap<u64, ([i8; 2], u8)> = BTreeMap::new();
            for s in steps {
                let c = db.collection("m").expect("m");
                match s {
                    Step::Upsert(points) => {
                        let batch: Vec<Point> = points
                            .iter()
                            .map(|&(id, v, g)| point(id, vec![v[0] as f32, v[1] as f32], json!({"g": g})))
                            .collect();
                        c.upsert(batch).expect("upsert");
                        for (id, v, g) in points {
                            model.insert(id, (v, g));
                        }
                    }
                    Step::Delete(ids) => {
                        let ids: Vec<PointId> = ids.iter().map(|&i| PointId::Num(i)).collect();
                        c.delete(&ids).expect("delete");
                        for id in ids {
                            if let PointId::Num(n) = id {
                                model.remove(&n);
                            }
                        }
                    }
                    Step::DeleteGroup(g) => {
                        let f = Filter::parse(&format!(r#"{{"must": [{{"key": "g", "match": {{"value": {g}}}}}]}}"#)).expect("filter");
                        let n = c.delete_by_filter(&f).expect("delete by filter");
                        let before = model.len();
                        model.retain(|_, (_, mg)| *mg != g);
                        prop_assert_eq!(n, before - model.len());
                    }
                    Step::Reopen => {
                        drop(c);
                        drop(db);
                        db = Database::open(&dir).expect("reopen");
                    }
                    Step::Optimize => c.optimize().expect("optimize"),
                    Step::SetGroup(ids, g, overwrite) => {
                        let pids: Vec<PointId> = ids.iter().map(|&i| PointId::Num(i)).collect();
                        let payload = json!({"g": g}).as_object().cloned().unwrap_or_default();
                        c.set_payload(&pids, payload, overwrite).expect("set payload");
                        for id in ids {
                            if let Some(entry) = model.get_mut(&id) {
                                entry.1 = g;
                            }
                        }
                    }
                }
                let c = db.collection("m").expect("m");
                prop_assert_eq!(c.count(None), model.len());
                // Search sees exactly the live points (k covers them all).
                let mut found: Vec<u64> = c
                    .search(&[0.0, 0.0], None, 64, None)
                    .expect("search")
                    .iter()
                    .map(|h| match h.id { PointId::Num(n) => n, PointId::Uuid(_) => u64::MAX })
                    .collect();
                found.sort_unstable();
                prop_assert_eq!(found, model.keys().copied().collect::<Vec<_>>());
                for id in 0..40u64 {
                    let got = c.get(PointId::Num(id));
                    match model.get(&id) {
                        Some((v, g)) => {
                            let p = got.expect("present in the model");
                            prop_assert_eq!(p.vectors[0].clone(), vec![v[0] as f32, v[1] as f32]);
                            prop_assert_eq!(p.payload.get("g").cloned(), Some(json!(g)));
                        }
                        None => prop_assert!(got.is_none(), "id {} should be absent", id),
                    }
                }
                let f = Filter::parse(r#"{"must": [{"key": "g", "match": {"any": [1, 2]}}]}"#).expect("filter");
                prop_assert_eq!(c.count(Some(&f)), model.values().filter(|(_, g)| *g == 1 || *g == 2).count());
            }
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}

#[test]
fn concurrent_writers_and_readers_see_acknowledged_points() {
    // 2 writers (25,000 upserts, 8,333 deletes, 33,333 gets each) and 2 readers searching throughout.
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let dir = temp("conc");
    let db = Database::open(&dir).expect("open");
    let mut schema = CollectionSchema::single(4, Metric::L2, "hnsw");
    schema.fsync = false; // the contention is the point here; durability is tested elsewhere
    schema.seal_threshold = 12_000; // graph segments are sealed and checkpointed while threads run
    let c = db.create_collection("c", schema).expect("create");
    let vec_of = |id: u64| -> Vec<f32> { (0..4).map(|j| ((id * 31 + j * 7) % 101) as f32).collect() };
    let done = Arc::new(AtomicBool::new(false));
    let per_writer = 25_000u64;
    let writers: Vec<_> = (0..2u64)
        .map(|w| {
            let c = c.clone();
            std::thread::spawn(move || {
                for i in 0..per_writer {
                    let id = w * 1_000_000 + i;
                    c.upsert(vec![point(id, vec_of(id), json!({"w": w}))]).expect("upsert");
                    // Read your own write, by id and as its own nearest neighbour.
                    assert!(c.get(PointId::Num(id)).is_some(), "acknowledged {id} is visible");
                    if i % 50 == 0 {
                        let hits = c.search(&vec_of(id), None, 1, None).expect("search");
                        assert_eq!(hits[0].score, 0.0, "{id}: its own vector is at distance 0");
                    }
                    if i % 3 == 0 && i > 0 {
                        let gone = w * 1_000_000 + i - 1;
                        c.delete(&[PointId::Num(gone)]).expect("delete");
                        assert!(c.get(PointId::Num(gone)).is_none(), "deleted {gone} is gone");
                    }
                }
            })
        })
        .collect();
    let readers: Vec<_> = (0..2)
        .map(|r| {
            let (c, done) = (c.clone(), done.clone());
            std::thread::spawn(move || {
                let mut searches = 0u64;
                while !done.load(Ordering::Relaxed) {
                    let q = vec_of(searches * 13 + r);
                    let hits = c.search(&q, None, 5, None).expect("search");
                    // No torn reads: each hit's payload and score match the vector written with it,
                    // and hits come best first.
                    for w in hits.windows(2) {
                        assert!(w[0].score >= w[1].score);
                    }
                    for h in hits {
                        let PointId::Num(id) = h.id else { panic!("numeric ids only") };
                        assert_eq!(h.payload.get("w"), Some(&json!(id / 1_000_000)));
                        let want: f32 =
                            -q.iter().zip(vec_of(id)).map(|(a, b)| (a - b) * (a - b)).sum::<f32>();
                        assert!(
                            (h.score - want).abs() <= 1e-3 * want.abs().max(1.0),
                            "{id}: {} vs {want}",
                            h.score
                        );
                    }
                    searches += 1;
                }
                searches
            })
        })
        .collect();
    for w in writers {
        w.join().expect("writer");
    }
    done.store(true, Ordering::Relaxed);
    let searches: u64 = readers.into_iter().map(|r| r.join().expect("reader")).sum();
    // Every surviving id is present, every deleted one absent.
    let mut live = 0;
    for w in 0..2u64 {
        for i in 0..per_writer {
            let id = w * 1_000_000 + i;
            let deleted = i % 3 == 2 && i + 1 < per_writer;
            assert_eq!(c.get(PointId::Num(id)).is_none(), deleted, "id {id}");
            live += usize::from(!deleted);
        }
    }
    assert_eq!(c.count(None), live);
    assert!(searches > 0);
    c.wait_for_sealing();
    eprintln!(
        "concurrency: 2 writers ({} upserts, {} deletes, their gets and searches) + 2 readers ({searches} searches); {live} live points, {} sealed segments, 0 missing, 0 resurrected",
        2 * per_writer,
        2 * (per_writer / 3),
        c.segment_count()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn injected_faults_never_acknowledge_a_lost_write_and_the_database_reopens() {
    use quarry_testkit::faults::{FaultPlan, FaultyFile};
    use std::sync::Arc;
    type Arm = fn(u64) -> FaultPlan;
    let kinds: [(&str, Arm); 4] = [
        ("failed write", FaultPlan::failing_write),
        ("short write", FaultPlan::short_write),
        ("garbled write", FaultPlan::garbled_write),
        ("failed fsync", FaultPlan::failing_sync),
    ];
    let (mut acked_total, mut refused_total) = (0, 0);
    for (kind, arm) in kinds {
        for nth in 1..=4u64 {
            let dir = temp(&format!("fault-{}-{nth}", kind.replace(' ', "-")));
            Database::open(&dir)
                .expect("open")
                .create_collection("c", CollectionSchema::single(2, Metric::L2, "flat"))
                .expect("create");
            let plan = Arc::new(arm(nth));
            let p2 = plan.clone();
            let opener: collection::StoreOpener = Arc::new(move |path| {
                FaultyFile::open(path, p2.clone()).map(|f| Box::new(f) as Box<dyn quarry_store::LogStore>)
            });
            let (mut acked, mut refused) = (Vec::new(), Vec::new());
            {
                let db = Database::open_with(&dir, Some(opener)).expect("open with faults");
                let c = db.collection("c").expect("c");
                for b in 0..8u64 {
                    let batch: Vec<Point> = (0..5)
                        .map(|i| point(b * 10 + i, vec![b as f32, i as f32], json!({"b": b})))
                        .collect();
                    match c.upsert(batch) {
                        Ok(_) => acked.push(b),
                        Err(_) => refused.push(b),
                    }
                }
                assert_eq!(refused.len().min(1), 1, "{kind} #{nth}: the fault surfaced as an error");
                if kind != "failed fsync" {
                    assert_eq!(refused.len(), 1, "{kind} #{nth}: the log is cut back and stays usable");
                }
            }
            // Reopen without faults: it opens, every acknowledged batch is whole.
            let db = Database::open(&dir).expect("reopens after the fault");
            let c = db.collection("c").expect("c");
            for &b in &acked {
                for i in 0..5 {
                    let p = c
                        .get(PointId::Num(b * 10 + i))
                        .unwrap_or_else(|| panic!("{kind} #{nth}: acked batch {b} lost"));
                    assert_eq!(p.vectors[0], vec![b as f32, i as f32]);
                }
            }
            for &b in &refused {
                let present = (0..5).filter(|&i| c.get(PointId::Num(b * 10 + i)).is_some()).count();
                assert!(present == 0 || present == 5, "{kind} #{nth}: refused batch {b} half present");
                if kind != "failed fsync" {
                    assert_eq!(present, 0, "{kind} #{nth}: a refused write is not kept");
                }
            }
            acked_total += acked.len();
            refused_total += refused.len();
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
    eprintln!(
        "fault injection: 16 runs, {acked_total} batches acknowledged, {refused_total} refused, 0 lost"
    );
}

/// Disk full: on a 1 MiB tmpfs (mounted for the test; skipped where mounting is not allowed)
/// writes fail cleanly with an error, reads keep working, and once space is freed writes resume
/// in the same process, without a restart; everything acknowledged survives a reopen.
#[test]
fn disk_full_fails_cleanly_and_recovers_without_restart() {
    let mnt = temp("diskfull");
    std::fs::create_dir_all(&mnt).expect("mount point");
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(&mnt)
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        quarry_testkit::skip::missing("a 1 MiB tmpfs mount", "mounting needs root");
        return;
    }
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let _guard = Unmount(mnt.clone());
    let dir = mnt.join("db");
    let db = Database::open(&dir).expect("open");
    let c = db.create_collection("c", CollectionSchema::single(64, Metric::L2, "flat")).expect("create");
    // Ballast that will be deleted to free space.
    let ballast = mnt.join("ballast");
    std::fs::write(&ballast, vec![0u8; 256 << 10]).expect("ballast");
    let mut acked = 0u64;
    let mut failure = None;
    for b in 0..1000u64 {
        let batch: Vec<Point> =
            (0..20).map(|i| point(b * 20 + i, vec![(b * 20 + i) as f32; 64], json!({"b": b}))).collect();
        match c.upsert(batch) {
            Ok(_) => acked = b + 1,
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    let err = failure.expect("the disk fills up");
    assert!(err.to_string().contains("No space") || err.to_string().contains("space"), "{err}");
    // Reads keep working and see exactly what was acknowledged.
    assert_eq!(c.count(None), (acked * 20) as usize);
    assert!(c.get(PointId::Num(0)).is_some());
    assert_eq!(c.search(&[0.0; 64], None, 1, None).expect("search")[0].id, PointId::Num(0));
    // Free space: writes resume without reopening.
    std::fs::remove_file(&ballast).expect("free space");
    let more: Vec<Point> = (0..20).map(|i| point(1_000_000 + i, vec![1.0; 64], json!({}))).collect();
    c.upsert(more).expect("writes resume once space is freed");
    let n = c.count(None);
    drop(c);
    drop(db);
    let db = Database::open(&dir).expect("reopen");
    assert_eq!(db.collection("c").expect("c").count(None), n, "everything acknowledged survives");
    eprintln!(
        "disk full: {} points acknowledged before ENOSPC ({err}); writes resumed after freeing space",
        acked * 20
    );
}

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
