//! Multi-vector fields: MaxSim search against an f64 brute force (unsealed, sealed with MUVERA,
//! with the per-token heuristic, exact with `flat`), filters, reopen and replay, reading vectors
//! back, and bad input rejected whole.

use super::*;

/// Deterministic pseudo-random values in [-1, 1).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f32 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
}

const DIM: usize = 8;

/// A token set of `n` vectors near one of 20 topic centres (so MaxSim has structure to find).
fn token_set(rng: &mut Rng, centres: &[Vec<f32>], n: usize) -> Vec<f32> {
    let c = &centres[((rng.next() + 1.0) * 10.0) as usize % centres.len()];
    (0..n).flat_map(|_| c.iter().map(|&x| x + 0.6 * rng.next()).collect::<Vec<_>>()).collect()
}

fn schema(candidates: &str, index: &str) -> CollectionSchema {
    let mut s = CollectionSchema::single(DIM, Metric::Cosine, index);
    s.vectors[0].multivector = Some(MultiVectorConfig {
        candidates: candidates.into(),
        max_vectors: 12,
        rerank: 60,
        per_token: 30,
        fde: FdeConfig { repetitions: 10, simhash_bits: 3, projection: 0, ..FdeConfig::default() },
        ..MultiVectorConfig::default()
    });
    s.seal_threshold = 0;
    s
}

/// f64 MaxSim of unit-length copies of the vectors (cosine).
fn maxsim(q: &[f32], d: &[f32]) -> f64 {
    let u = |v: &[f32]| -> Vec<f64> {
        let n = v.iter().map(|&x| x as f64 * x as f64).sum::<f64>().sqrt();
        v.iter().map(|&x| x as f64 / n).collect()
    };
    q.chunks(DIM)
        .map(|a| {
            let a = u(a);
            d.chunks(DIM)
                .map(|b| u(b).iter().zip(&a).map(|(x, y)| x * y).sum::<f64>())
                .fold(f64::MIN, f64::max)
        })
        .sum()
}

struct Data {
    docs: Vec<Vec<f32>>,
    queries: Vec<Vec<f32>>,
}

fn data(n: usize, nq: usize) -> Data {
    let mut rng = Rng(7);
    let centres: Vec<Vec<f32>> = (0..20).map(|_| (0..DIM).map(|_| rng.next()).collect()).collect();
    let docs = (0..n).map(|i| token_set(&mut rng, &centres, 1 + i % 12)).collect();
    let queries = (0..nq).map(|i| token_set(&mut rng, &centres, 1 + i % 5)).collect();
    Data { docs, queries }
}

fn load(c: &Collection, d: &Data) {
    let points: Vec<Point> = d
        .docs
        .iter()
        .enumerate()
        .map(|(i, v)| point(i as u64, v.clone(), json!({"even": i % 2 == 0})))
        .collect();
    for chunk in points.chunks(200) {
        c.upsert(chunk.to_vec()).expect("upsert");
    }
}

/// Mean recall@10 of the collection's answers against the f64 oracle over the docs that pass
/// `keep`; also checks every returned score against the oracle.
fn recall(c: &Collection, d: &Data, filter: Option<&Filter>, keep: impl Fn(usize) -> bool) -> f64 {
    recall_with(c, d, filter, keep, &SearchOptions::default())
}

fn recall_with(
    c: &Collection,
    d: &Data,
    filter: Option<&Filter>,
    keep: impl Fn(usize) -> bool,
    opts: &SearchOptions,
) -> f64 {
    let mut sum = 0.0;
    for q in &d.queries {
        let hits = c.search_with(q, None, 10, filter, opts).expect("search");
        let mut truth: Vec<(f64, u64)> = d
            .docs
            .iter()
            .enumerate()
            .filter(|(i, _)| keep(*i))
            .map(|(i, v)| (maxsim(q, v), i as u64))
            .collect();
        truth.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        let kth = truth[9].0;
        for h in &hits {
            let PointId::Num(id) = h.id else { panic!("numeric ids") };
            assert!(keep(id as usize), "hit {id} does not pass the filter");
            let want = maxsim(q, &d.docs[id as usize]);
            assert!((h.score as f64 - want).abs() < 1e-4, "score {} of {id}, oracle {want}", h.score);
        }
        // Ties at the 10th score count as found.
        sum += hits.iter().filter(|h| h.score as f64 >= kth - 1e-5).count().min(10) as f64 / 10.0;
    }
    sum / d.queries.len() as f64
}

#[test]
fn maxsim_search_against_brute_force_before_and_after_sealing() {
    let d = data(1500, 40);
    for (candidates, index, floor) in [
        ("muvera", "hnsw", 0.9),
        ("tokens", "hnsw", 0.9),
        ("muvera", "flat", 1.0),
        ("muvera", "hnsw+sq8", 0.9),
    ] {
        let dir = temp(&format!("mv-{candidates}-{index}"));
        let db = Database::open(&dir).expect("open");
        let c = db.create_collection("c", schema(candidates, index)).expect("create");
        load(&c, &d);
        assert_eq!(recall(&c, &d, None, |_| true), 1.0, "the unsealed tail is scored exactly");
        c.optimize().expect("optimize");
        assert_eq!(c.segment_count(), 1);
        let r = recall(&c, &d, None, |_| true);
        assert!(r >= floor, "{candidates} over {index}: recall@10 {r} < {floor}");
        let even =
            Filter::from_json(&json!({"must": [{"key": "even", "match": {"value": true}}]})).expect("filter");
        let rf = recall(&c, &d, Some(&even), |i| i % 2 == 0);
        assert!(rf >= floor, "{candidates} over {index}, filtered: recall@10 {rf} < {floor}");
        // New points join the tail; sealed and unsealed answers merge.
        let extra = d.docs[0].clone();
        c.upsert(vec![point(5000, extra.clone(), json!({}))]).expect("upsert");
        let hits = c.search(&extra, None, 2, None).expect("search");
        assert!(hits.iter().any(|h| h.id == PointId::Num(5000)), "a tail point is found: {hits:?}");
        drop((c, db));
        // Reopen: segments load, the tail replays.
        let db = Database::open(&dir).expect("reopen");
        let c = db.collection("c").expect("c");
        let r2 = recall(&c, &d, Some(&even), |i| i % 2 == 0);
        assert_eq!(r2, rf, "same answers after reopening");
        let p = c.get(PointId::Num(3)).expect("point 3");
        let want: Vec<f32> = d.docs[3].chunks(DIM).flat_map(unit).collect();
        assert_eq!(p.vectors[0], want, "a multi-vector value reads back as its unit-length vectors");
        assert_eq!(c.get(PointId::Num(5000)).expect("tail point").vectors[0].len(), extra.len());
        drop((c, db));
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn multivector_values_and_queries_are_validated() {
    let dir = temp("mv-bad");
    let db = Database::open(&dir).expect("open");
    let c = db.create_collection("c", schema("muvera", "hnsw")).expect("create");
    c.upsert(vec![point(1, vec![1.0; DIM], json!({}))]).expect("one vector is a set of one");
    let cases: Vec<(Vec<f32>, &str)> = vec![
        (vec![], "missing or empty"),
        (vec![1.0; DIM + 3], "do not split into vectors of dimension 8"),
        ([vec![1.0; DIM], vec![f32::NAN; DIM]].concat(), "vector 1"),
        (vec![1.0; DIM * 13], "13 vectors, more than the field's maximum of 12"),
        ([vec![1.0; DIM], vec![0.0; DIM]].concat(), "zero"),
    ];
    for (v, msg) in cases {
        let err =
            c.upsert(vec![point(2, vec![1.0; DIM], json!({})), point(3, v, json!({}))]).expect_err("bad");
        assert!(err.to_string().contains(msg), "{err} should say {msg}");
    }
    assert_eq!(c.count(None), 1, "nothing of a rejected batch is stored");
    assert!(c.search(&[1.0; DIM + 1], None, 3, None).is_err(), "a query not made of whole vectors");
    assert!(c.search(&[], None, 3, None).is_err(), "an empty query");
    assert_eq!(c.search(&[1.0; DIM * 3], None, 3, None).expect("three query vectors").len(), 1);
    // JSON: a multi-vector value is an array of vectors.
    let s = schema("muvera", "hnsw");
    let ok = Point::from_json(
        &json!({"id": 9, "vector": [[1, 0, 0, 0, 0, 0, 0, 0], [0, 1, 0, 0, 0, 0, 0, 0]]}),
        &s,
    )
    .expect("nested arrays");
    assert_eq!(ok.vectors[0].len(), 2 * DIM);
    assert_eq!(ok.to_json(&s)["vector"].as_array().map(Vec::len), Some(2), "written back as two vectors");
    for (v, msg) in [
        (json!([1, 0, 0, 0, 0, 0, 0, 0]), "vector 0 must be an array"),
        (json!([]), "at least one vector"),
        (json!([[1, 0, 0]]), "dimension"),
        (json!([[1, 0, 0, 0, 0, 0, 0, "x"]]), "component 7 is not a number"),
    ] {
        let err = Point::from_json(&json!({"id": 9, "vector": v}), &s).expect_err("bad json");
        assert!(err.to_string().contains(msg), "{err} should say {msg}");
    }
    // Schemas.
    let mut l2 = schema("muvera", "hnsw");
    l2.vectors[0].metric = "l2".into();
    assert!(l2.check().expect_err("l2").to_string().contains("not l2"));
    let mut unknown = schema("plaid", "hnsw");
    assert!(unknown.check().expect_err("unknown").to_string().contains("muvera or tokens"));
    unknown.vectors[0].multivector =
        Some(MultiVectorConfig { comparator: "sum".into(), ..Default::default() });
    assert!(unknown.check().expect_err("comparator").to_string().contains("max_sim"));
    // A one-vector field refuses a set of vectors with a clear error.
    let one =
        db.create_collection("one", CollectionSchema::single(DIM, Metric::Cosine, "flat")).expect("create");
    one.upsert(vec![point(1, vec![1.0; DIM], json!({}))]).expect("upsert");
    let err = one.search(&[1.0; DIM * 2], None, 3, None).expect_err("two vectors");
    assert!(err.to_string().contains("not a multi-vector field"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn value_segments_answer_one_value_filters_of_multivector_fields() {
    let d = data(8300, 20);
    let dir = temp("mv-subs");
    let db = Database::open(&dir).expect("open");
    let mut s = schema("muvera", "hnsw");
    s.payload_indexes = vec!["even".into()];
    s.payload_graphs = true;
    let c = db.create_collection("c", s).expect("create");
    load(&c, &d);
    c.optimize().expect("optimize");
    let even =
        Filter::from_json(&json!({"must": [{"key": "even", "match": {"value": true}}]})).expect("filter");
    // Deep re-ranking (candidates per segment) makes the answers near exact: what is checked here
    // is that the value segments give the right points, scores and filter.
    let deep = SearchOptions { candidates: Some(1500), ef: 1500, ..SearchOptions::default() };
    let r = recall_with(&c, &d, Some(&even), |i| i % 2 == 0, &deep);
    assert!(r >= 0.95, "filtered through value segments: recall@10 {r}");
    // Deletes reach the value segments as liveness.
    c.delete(&[PointId::Num(0), PointId::Num(2)]).expect("delete");
    let hits = c.search(&d.docs[2], None, 3, Some(&even)).expect("search");
    assert!(hits.iter().all(|h| h.id != PointId::Num(2) && h.id != PointId::Num(0)), "{hits:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sealed_multivector_searches_return_k_hits_and_flat_value_segments_filter() {
    let d = data(600, 3);
    for candidates in ["muvera", "tokens"] {
        let dir = temp(&format!("mv-k-{candidates}"));
        let db = Database::open(&dir).expect("open");
        let mut s = schema(candidates, "hnsw");
        if let Some(mv) = s.vectors[0].multivector.as_mut() {
            mv.rerank = 5;
            mv.per_token = 1;
        }
        let c = db.create_collection("c", s).expect("create");
        load(&c, &d);
        c.optimize().expect("optimize");
        for q in &d.queries {
            assert_eq!(
                c.search(q, None, 150, None).expect("search").len(),
                150,
                "{candidates}: k beyond the depth"
            );
        }
        drop((c, db));
        let _ = std::fs::remove_dir_all(&dir);
    }
    // A flat multi-vector field with value segments: a one-value filter still filters.
    let d = data(8300, 3);
    let dir = temp("mv-flat-subs");
    let db = Database::open(&dir).expect("open");
    let mut s = schema("muvera", "flat");
    s.payload_indexes = vec!["even".into()];
    s.payload_graphs = true;
    let c = db.create_collection("c", s).expect("create");
    load(&c, &d);
    c.optimize().expect("optimize");
    c.delete(&[PointId::Num(4)]).expect("delete");
    let even =
        Filter::from_json(&json!({"must": [{"key": "even", "match": {"value": true}}]})).expect("filter");
    let hits = c.search(&d.docs[4], None, 20, Some(&even)).expect("search");
    assert_eq!(hits.len(), 20);
    assert!(hits.iter().all(|h| matches!(h.id, PointId::Num(n) if n % 2 == 0 && n != 4)), "{hits:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
