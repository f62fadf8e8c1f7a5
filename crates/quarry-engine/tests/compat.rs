//! Golden files of the engine's on-disk formats (tests/compat/ at the repository root): a
//! database folder `engine-v1/` whose collection `docs` has two sealed segment folders, a
//! manifest with tombstones, payload indexes and an unsealed log tail (upserts, deletes, payload
//! merges, overwrites and key deletions), plus `engine-v1.qsnap`, a snapshot of that collection as
//! `Collection::snapshot` writes it. Today's code must open both (the folder from a temporary
//! copy: the one in git stays untouched) and answer exactly as when they were written: every
//! point equals a model replayed from the same operations, searches equal brute force, and the
//! answers listed in `engine-v1.expected.txt` are unchanged.
//!
//! To write the current version's files after an intentional format change (with a new version
//! number, and a new test for it: older versions' files are never rewritten):
//! `QUARRY_WRITE_GOLDEN=1 cargo test -p quarry-engine --test compat`. To re-list the expected
//! answers of every version after an intended change of behaviour: `QUARRY_WRITE_GOLDEN_LISTING=1`.

use quarry_core::Metric;
use quarry_engine::{Collection, CollectionSchema, Database, Filter, Point, PointId, VectorField};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
mod common;
use common::{copy_tree, golden, temp};
use std::path::Path;

/// The collection's name in the golden database.
const NAME: &str = "docs";
/// Seal threshold of the golden collection: step 1 and step 2 each seal exactly once.
const SEAL: usize = 12;

fn schema() -> CollectionSchema {
    let field = |name: &str, dim: usize, metric: Metric, index: &str| VectorField {
        name: name.into(),
        dim,
        metric: metric.to_string(),
        index: index.into(),
        on_disk: false,
        multivector: None,
    };
    let mut s = CollectionSchema::single(1, Metric::L2, "hnsw");
    s.vectors = vec![field("dense", 8, Metric::L2, "hnsw"), field("small", 4, Metric::Cosine, "hnsw+sq8")];
    s.payload_indexes = vec!["n".into(), "tag".into()];
    s.seal_threshold = SEAL;
    s
}

/// Deterministic vectors of a point (`seed`): 8 + 4 components, each k/8 + 1/16 (never zero).
fn vectors(seed: u64) -> Vec<Vec<f32>> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ (seed + 1).wrapping_mul(0xD6E8_FEB8_6659_FD93);
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        ((x >> 59) as f32 - 16.0) / 8.0 + 0.0625
    };
    let dense: Vec<f32> = (0..8).map(|_| next()).collect();
    let small: Vec<f32> = (0..4).map(|_| next()).collect();
    vec![dense, small]
}

fn uuid(s: &str) -> PointId {
    PointId::parse(s).expect("uuid")
}

fn uuids() -> [PointId; 2] {
    [uuid("6ba7b810-9dad-11d1-80b4-00c04fd430c8"), uuid("f47ac10b-58cc-4372-a567-0e02b2c3d479")]
}

/// The vectors seed of an id (UUIDs: 1000, 1001).
fn seed(id: PointId) -> u64 {
    match id {
        PointId::Num(n) => n,
        other => 1000 + uuids().iter().position(|u| *u == other).expect("known uuid") as u64,
    }
}

fn payload_of(id: PointId) -> Map<String, Value> {
    let i = seed(id);
    let tag = ["a", "b", "c"][(i % 3) as usize];
    let v = json!({"tag": tag, "n": i, "nested": {"even": i.is_multiple_of(2)}, "tags": [tag, "all"], "score": i as f64 * 0.25});
    v.as_object().cloned().expect("object")
}

fn point(id: PointId) -> Point {
    Point { id, vectors: vectors(seed(id)), payload: payload_of(id) }
}

/// `v` at unit length as a cosine field stores it (f64 norm, like the engine's flat rows).
fn unit(v: &[f32]) -> Vec<f32> {
    let norm = v.iter().map(|&x| x as f64 * x as f64).sum::<f64>().sqrt();
    let inv = quarry_core::unit_scale(norm).expect("not a zero row");
    v.iter().map(|&x| (x as f64 * inv) as f32).collect()
}

/// A point as the collection gives it back: the cosine field ("small") normalised, as Qdrant
/// stores cosine vectors.
fn stored(mut p: Point) -> Point {
    p.vectors[1] = unit(&p.vectors[1]);
    p
}

fn num(ids: &[u64]) -> Vec<PointId> {
    ids.iter().map(|&n| PointId::Num(n)).collect()
}

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().cloned().expect("object")
}

/// One write of the golden history.
enum Step {
    Upsert(Vec<PointId>),
    Delete(Vec<PointId>),
    SetPayload(Vec<PointId>, Map<String, Value>, bool),
    DeleteKeys(Vec<PointId>, Vec<String>),
}

/// The golden history, in three parts: 12 upserts (sealed: segment 0); a delete, a payload merge
/// and 11 upserts (sealed: segment 1, with rows 3 and 5 of segment 0 tombstoned); then the
/// unsealed log tail (11 slots, under the seal threshold).
fn history() -> Vec<Vec<Step>> {
    let [u0, u1] = uuids();
    let mut tail_ids = num(&(23..29).collect::<Vec<_>>());
    tail_ids.extend([u0, u1]);
    vec![
        vec![Step::Upsert(num(&(0..12).collect::<Vec<_>>()))],
        vec![
            Step::Delete(num(&[3])),
            Step::SetPayload(num(&[5]), obj(json!({"tag": "z"})), false),
            Step::Upsert(num(&(12..23).collect::<Vec<_>>())),
        ],
        vec![
            Step::Upsert(tail_ids),
            Step::Delete(num(&[1, 25])),
            Step::SetPayload(num(&[14]), obj(json!({"extra": 1})), false),
            Step::DeleteKeys(num(&[24]), vec!["n".into()]),
            Step::SetPayload(num(&[0]), obj(json!({"only": true})), true),
        ],
    ]
}

/// The points the history leaves, replayed in memory.
fn model() -> BTreeMap<PointId, Point> {
    let mut m = BTreeMap::new();
    for step in history().into_iter().flatten() {
        match step {
            Step::Upsert(ids) => {
                for id in ids {
                    m.insert(id, stored(point(id)));
                }
            }
            Step::Delete(ids) => {
                for id in &ids {
                    m.remove(id);
                }
            }
            Step::SetPayload(ids, p, overwrite) => {
                for id in ids {
                    if let Some(pt) = m.get_mut(&id) {
                        if overwrite {
                            pt.payload.clear();
                        }
                        pt.payload.extend(p.clone());
                    }
                }
            }
            Step::DeleteKeys(ids, keys) => {
                for id in ids {
                    if let Some(pt) = m.get_mut(&id) {
                        for k in &keys {
                            pt.payload.remove(k);
                        }
                    }
                }
            }
        }
    }
    m
}

/// Writes the golden database and snapshot (only with `QUARRY_WRITE_GOLDEN`).
fn write_golden(dir: &Path, snap: &Path) {
    let _ = std::fs::remove_dir_all(dir);
    let db = Database::open(dir).expect("create golden database");
    let c = db.create_collection(NAME, schema()).expect("create");
    for part in history() {
        for step in part {
            let _changed = match step {
                Step::Upsert(ids) => c.upsert(ids.into_iter().map(point).collect()).expect("upsert"),
                Step::Delete(ids) => c.delete(&ids).expect("delete"),
                Step::SetPayload(ids, p, o) => c.set_payload(&ids, p, o).expect("set payload"),
                Step::DeleteKeys(ids, k) => c.delete_payload_keys(&ids, &k).expect("delete keys"),
            };
        }
        c.wait_for_sealing();
        assert_eq!(c.last_seal_error(), None);
    }
    assert_eq!(c.segment_count(), 2, "two seals");
    c.snapshot(snap).expect("snapshot");
    drop(c);
    drop(db);
    // The lock file holds the writer's PID: not part of the format.
    let _ = std::fs::remove_file(dir.join("LOCK"));
}

/// Queries of the answer listing: (name, field, query seed, k, filter).
fn queries() -> Vec<(&'static str, &'static str, u64, usize, Option<Value>)> {
    vec![
        ("dense-7", "dense", 7, 5, None),
        ("small-13", "small", 13, 5, None),
        ("dense-20-tag-a", "dense", 20, 5, Some(json!({"must": [{"key": "tag", "match": {"value": "a"}}]}))),
        (
            "dense-2-range",
            "dense",
            2,
            8,
            Some(
                json!({"must": [{"key": "n", "range": {"gte": 10, "lt": 25}}], "must_not": [{"has_id": [12]}]}),
            ),
        ),
        (
            "small-1001-should",
            "small",
            1001,
            5,
            Some(
                json!({"should": [{"key": "nested.even", "match": {"value": true}}, {"has_id": ["6ba7b810-9dad-11d1-80b4-00c04fd430c8"]}]}),
            ),
        ),
        ("dense-22-z", "dense", 22, 3, Some(json!({"must": [{"key": "tag", "match": {"any": ["z", "c"]}}]}))),
    ]
}

fn filter(v: &Option<Value>) -> Option<Filter> {
    v.as_ref().map(|v| Filter::from_json(v).expect("valid filter"))
}

/// Every answer of the listing: the points in id order, counts, and searches (ids and scores to
/// 4 decimals, so the listing does not depend on the SIMD kernel's rounding).
fn answers(c: &Collection) -> String {
    let mut out = String::new();
    let (points, next) = c.scroll_from(None, 1000, None, true);
    assert_eq!(next, None);
    out += &format!("count {}\n", c.count(None));
    for p in &points {
        let payload = serde_json::to_string(&p.payload).expect("json");
        out +=
            &format!("point {} dense={:?} small={:?} payload={payload}\n", p.id, p.vectors[0], p.vectors[1]);
    }
    for (name, field, q, k, f) in queries() {
        let f = filter(&f);
        out += &format!("count-{name} {}\n", c.count(f.as_ref()));
        let vs = vectors(q);
        let v = &vs[usize::from(field == "small")];
        let hits = c.search(v, Some(field), k, f.as_ref()).expect("search");
        // (+ 0.0: an exact match scores -0 under L2; print it as 0.)
        let line: Vec<String> = hits.iter().map(|h| format!("{} {:.4}", h.id, h.score + 0.0)).collect();
        out += &format!("search-{name} {}\n", line.join(" "));
    }
    out
}

/// Checks `c` against the model: every point (vectors and payload), counts, and brute-force
/// search ids.
fn check_against_model(c: &Collection, what: &str) {
    let m = model();
    assert_eq!(c.count(None), m.len(), "{what}: count");
    assert_eq!(m.len(), 28, "the history leaves 28 points");
    for (id, want) in &m {
        let got = c.get(*id).unwrap_or_else(|| panic!("{what}: point {id} missing"));
        assert_eq!(&got, want, "{what}: point {id}");
    }
    for gone in num(&[1, 3, 25]) {
        assert!(c.get(gone).is_none(), "{what}: {gone} was deleted");
    }
    let p = |n: u64| c.payload(PointId::Num(n)).expect("present");
    assert_eq!(Value::Object(p(0)), json!({"only": true}), "{what}: overwritten payload");
    assert_eq!(p(5)["tag"], json!("z"), "{what}: merged payload of a sealed point");
    assert_eq!(p(14)["extra"], json!(1), "{what}: merged payload in the tail");
    assert!(!p(24).contains_key("n") && p(24).contains_key("tag"), "{what}: deleted key");
    assert_eq!(c.payload_indexes(), vec!["n".to_string(), "tag".to_string()], "{what}: payload indexes");
    for (name, field, q, k, f) in queries() {
        let f = filter(&f);
        let fi = usize::from(field == "small");
        let vs = vectors(q);
        let v = vs[fi].as_slice();
        let metric = if fi == 0 { Metric::L2 } else { Metric::Cosine };
        let score = |x: &[f32]| -> f64 {
            let dot: f64 = v.iter().zip(x).map(|(a, b)| f64::from(*a) * f64::from(*b)).sum();
            let norm = |y: &[f32]| y.iter().map(|a| f64::from(*a).powi(2)).sum::<f64>().sqrt();
            match metric {
                Metric::L2 => {
                    -v.iter().zip(x).map(|(a, b)| (f64::from(*a) - f64::from(*b)).powi(2)).sum::<f64>()
                }
                _ => dot / (norm(v) * norm(x)),
            }
        };
        let mut brute: Vec<(f64, PointId)> = m
            .values()
            .filter(|p| f.as_ref().is_none_or(|f| f.matches(p.id, &p.payload)))
            .map(|p| (score(&p.vectors[fi]), p.id))
            .collect();
        assert_eq!(c.count(f.as_ref()), brute.len(), "{what}: count of {name}");
        brute.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        let want: Vec<PointId> = brute.iter().take(k).map(|x| x.1).collect();
        let got: Vec<PointId> =
            c.search(v, Some(field), k, f.as_ref()).expect("search").iter().map(|h| h.id).collect();
        assert_eq!(got, want, "{what}: search {name} against brute force");
    }
}

/// Reads section 1 of the framed file at `path` (docs/FORMAT.md, "Framing") without the engine.
fn framed_section_1(path: &Path, magic: &[u8; 8]) -> Vec<u8> {
    let b = std::fs::read(path).expect("read framed file");
    assert_eq!(&b[..8], magic, "{}: magic", path.display());
    let u64_at = |at: usize| u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes")) as usize;
    let (kind, offset, len) =
        (u32::from_le_bytes(b[64..68].try_into().expect("4 bytes")), u64_at(72), u64_at(80));
    assert_eq!(kind, 1);
    b[offset..offset + len].to_vec()
}

/// Version 1 (vectors in `points.qseg`, graphs in `graph-<f>.*`): written by earlier builds,
/// never rewritten; its listing was updated once when cosine vectors started to come back
/// normalised (decision 0014), its searches unchanged.
#[test]
fn engine_v1_golden_database_and_snapshot_open_and_answer_as_written() {
    check_golden("engine-v1", false);
}

/// Version 2 (each field's index folder holds the only copy of the rows).
#[test]
fn engine_v2_golden_database_and_snapshot_open_and_answer_as_written() {
    check_golden("engine-v2", std::env::var_os("QUARRY_WRITE_GOLDEN").is_some());
}

fn check_golden(name: &str, write: bool) {
    let dir = golden(name);
    let snap = golden(&format!("{name}.qsnap"));
    let expected_path = golden(&format!("{name}.expected.txt"));
    let v1 = name == "engine-v1";
    if write {
        write_golden(&dir, &snap);
        let work = temp(&format!("write-{name}"));
        copy_tree(&dir, &work);
        let db = Database::open(&work).expect("reopen");
        std::fs::write(&expected_path, answers(&db.collection(NAME).expect("docs"))).expect("write expected");
        drop(db);
        let _ = std::fs::remove_dir_all(&work);
    }

    // The golden folder holds every engine format: schema, log tail, manifest, two segments.
    let col = dir.join("collections").join(NAME);
    for f in [
        "schema.json",
        "wal.log",
        "manifest.qman",
        "segments/00000000/points.qseg",
        "segments/00000001/points.qseg",
    ] {
        assert!(col.join(f).is_file(), "golden file {f} is missing");
    }
    if v1 {
        assert!(
            col.join("segments/00000000/graph-0.hnsw").is_file()
                && col.join("segments/00000000/graph-1.sq8").is_dir()
        );
    } else {
        assert!(
            col.join("segments/00000000/index-0/graph.qhnsw").is_file()
                && col.join("segments/00000000/index-1/codes.qcodes").is_file()
        );
    }
    let manifest: Value = serde_json::from_slice(&framed_section_1(&col.join("manifest.qman"), b"QRYMANI\0"))
        .expect("manifest JSON");
    assert_eq!(manifest["generation"], json!(2));
    assert_eq!(manifest["checkpoint_seq"], json!(4), "records 1-4 are in the segments");
    assert_eq!(
        manifest["segments"],
        json!([{"id": 0, "points": 12, "dead": [3, 5]}, {"id": 1, "points": 12, "dead": []}])
    );
    let wal = std::fs::read(col.join("wal.log")).expect("wal");
    assert_eq!(&wal[..8], b"QRYWAL\0\0");
    assert_eq!(
        u64::from_le_bytes(wal[12..20].try_into().expect("8 bytes")),
        5,
        "the log was cut at the checkpoint"
    );

    // Opened from a copy (opening may rewrite files; the golden folder stays as committed).
    let work = temp(&format!("db-{name}"));
    copy_tree(&dir, &work);
    {
        let db = Database::open(&work).expect("golden database opens");
        assert_eq!(db.collection_names(), vec![NAME.to_string()]);
        let c = db.collection(NAME).expect("docs");
        assert_eq!(c.schema(), &schema());
        assert_eq!(c.segment_count(), 2);
        check_against_model(&c, "golden database");
        if std::env::var_os("QUARRY_WRITE_GOLDEN_LISTING").is_some() {
            // Re-list the answers of a folder that is not rewritten (an intended change of what
            // the engine answers; the diff is reviewed in git).
            std::fs::write(&expected_path, answers(&c)).expect("write expected");
        }
        let want = std::fs::read_to_string(&expected_path).expect("expected answers");
        assert_eq!(answers(&c), want, "answers differ from when the golden database was written");

        // The snapshot restores into a new collection answering the same.
        let snap_copy = work.join("copy.qsnap");
        std::fs::copy(&snap, &snap_copy).expect("copy snapshot");
        let r = db.restore_snapshot(&snap_copy, "restored").expect("golden snapshot restores");
        assert_eq!(r.segment_count(), 0, "a restored collection starts unsealed");
        assert_eq!(r.schema(), &schema());
        check_against_model(&r, "restored snapshot");
        let want = std::fs::read_to_string(&expected_path).expect("expected answers");
        assert_eq!(answers(&r), want, "the restored snapshot answers differently");

        // Today's code keeps writing to the old files: a write, a merge of everything, a reopen.
        c.upsert(vec![point(PointId::Num(500))]).expect("upsert");
        c.wait_for_sealing();
        c.optimize().expect("optimize");
    }
    let db = Database::open(&work).expect("reopen after writing");
    let c = db.collection(NAME).expect("docs");
    assert_eq!(c.count(None), model().len() + 1);
    assert_eq!(c.get(PointId::Num(500)), Some(stored(point(PointId::Num(500)))));
    assert_eq!(c.segment_count(), 1);
    assert_eq!(db.collection("restored").expect("restored").count(None), model().len());
    drop((c, db));
    let _ = std::fs::remove_dir_all(&work);
}
