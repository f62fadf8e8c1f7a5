//! Round trips, bad input, filters and search against oracles, UUID ids, torn WAL tails.

use super::*;

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
