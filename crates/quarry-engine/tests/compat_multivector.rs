//! Golden files of multi-vector fields (tests/compat/engine-mv-v1/ at the repository root): a
//! database whose collection `late` has a dense field and two multi-vector fields (`muvera`
//! candidates over `hnsw`, and the per-token heuristic over `flat`), one sealed segment (its
//! `index-<f>-tokens/` folders: `tokens.flat` + `offsets.qmv`, version 1) and an unsealed log tail,
//! plus `engine-mv-v1.qsnap`, a snapshot of it. Today's code must open both (the folder from a
//! temporary copy) and find every point as written and MaxSim answers equal to an f64 brute force.
//!
//! To write them after an intentional format change (with a new version and a new test):
//! `QUARRY_WRITE_GOLDEN=1 cargo test -p quarry-engine --test compat_multivector`.

use quarry_core::Metric;
use quarry_engine::{
    Collection, CollectionSchema, Database, FdeConfig, MultiVectorConfig, Point, PointId, VectorField,
};
use serde_json::{json, Map};
mod common;
use common::{copy_tree, golden, temp};
use std::path::Path;

const NAME: &str = "late";
const DIM: usize = 4;

fn schema() -> CollectionSchema {
    let field = |name: &str, index: &str, multivector: Option<MultiVectorConfig>| VectorField {
        name: name.into(),
        dim: DIM,
        metric: Metric::Cosine.to_string(),
        index: index.into(),
        on_disk: false,
        multivector,
    };
    let mut s = CollectionSchema::single(1, Metric::Cosine, "hnsw");
    s.vectors = vec![
        field("dense", "hnsw", None),
        field(
            "colbert",
            "hnsw",
            Some(MultiVectorConfig {
                fde: FdeConfig { repetitions: 4, simhash_bits: 3, projection: 8, ..FdeConfig::default() },
                ..Default::default()
            }),
        ),
        field(
            "tokens",
            "flat",
            Some(MultiVectorConfig { candidates: "tokens".into(), ..Default::default() }),
        ),
    ];
    s.seal_threshold = 24;
    s
}

/// Deterministic values in [-1, 1) (no zero vector: 0.05 is added to the first coordinate).
fn values(seed: u64, n: usize) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|i| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 23) as f32 - 1.0) + if i % DIM == 0 { 0.05 } else { 0.0 }
        })
        .collect()
}

/// Point `i` as written: a dense vector and two sets of 1 + i % 5 and 1 + i % 3 vectors.
fn point(i: u64) -> Point {
    Point {
        id: PointId::Num(i),
        vectors: vec![
            values(i, DIM),
            values(1000 + i, DIM * (1 + i as usize % 5)),
            values(2000 + i, DIM * (1 + i as usize % 3)),
        ],
        payload: Map::from_iter([("i".to_string(), json!(i))]),
    }
}

fn unit_rows(v: &[f32]) -> Vec<f32> {
    v.chunks(DIM)
        .flat_map(|r| {
            let n = r.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>().sqrt();
            r.iter().map(move |&x| (f64::from(x) / n) as f32).collect::<Vec<_>>()
        })
        .collect()
}

fn maxsim(q: &[f32], d: &[f32]) -> f64 {
    let (q, d) = (unit_rows(q), unit_rows(d));
    q.chunks(DIM)
        .map(|a| {
            d.chunks(DIM)
                .map(|b| a.iter().zip(b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum::<f64>())
                .fold(f64::MIN, f64::max)
        })
        .sum()
}

fn write_golden(dir: &Path, snap: &Path) {
    let _ = std::fs::remove_dir_all(dir);
    let db = Database::open(dir).expect("create golden database");
    let c = db.create_collection(NAME, schema()).expect("create");
    c.upsert((0..24).map(point).collect()).expect("upsert");
    c.wait_for_sealing();
    assert_eq!(c.segment_count(), 1, "one seal");
    c.upsert((24..30).map(point).collect()).expect("upsert tail");
    c.delete(&[PointId::Num(3), PointId::Num(27)]).expect("delete");
    c.snapshot(snap).expect("snapshot");
    drop(c);
    drop(db);
    let _ = std::fs::remove_file(dir.join("LOCK"));
}

fn check(c: &Collection, what: &str) {
    let present: Vec<u64> = (0..30).filter(|i| ![3, 27].contains(i)).collect();
    assert_eq!(c.count(None), present.len(), "{what}: count");
    for &i in &present {
        let got = c.get(PointId::Num(i)).unwrap_or_else(|| panic!("{what}: point {i} missing"));
        let want = point(i);
        for f in 0..3 {
            let w = unit_rows(&want.vectors[f]);
            assert_eq!(got.vectors[f].len(), w.len(), "{what}: point {i} field {f}");
            assert!(
                got.vectors[f].iter().zip(&w).all(|(a, b)| (a - b).abs() < 1e-6),
                "{what}: point {i} field {f}"
            );
        }
    }
    for (qs, field, fi) in [(7u64, "colbert", 1usize), (11, "tokens", 2)] {
        let q = values(5000 + qs, DIM * 3);
        let mut brute: Vec<(f64, u64)> =
            present.iter().map(|&i| (maxsim(&q, &point(i).vectors[fi]), i)).collect();
        brute.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        let hits = c.search(&q, Some(field), 5, None).expect("search");
        let got: Vec<u64> =
            hits.iter().map(|h| if let PointId::Num(n) = h.id { n } else { u64::MAX }).collect();
        let want: Vec<u64> = brute.iter().take(5).map(|x| x.1).collect();
        assert_eq!(got, want, "{what}: {field} MaxSim against brute force");
    }
}

#[test]
fn multivector_golden_files_open_and_answer() {
    let dir = golden("engine-mv-v1");
    let snap = golden("engine-mv-v1.qsnap");
    if std::env::var_os("QUARRY_WRITE_GOLDEN").is_some() {
        write_golden(&dir, &snap);
    }
    assert!(dir.join("collections").join(NAME).join("segments").exists(), "golden folder present");
    let copy = temp("mv-db");
    copy_tree(&dir, &copy);
    {
        let db = Database::open(&copy).expect("open golden copy");
        let c = db.collection(NAME).expect("collection");
        check(&c, "golden folder");
    }
    let restored = temp("mv-restored");
    let db = Database::open(&restored).expect("open");
    let c = db.restore_snapshot(&snap, "back").expect("restore golden snapshot");
    check(&c, "golden snapshot");
    drop((c, db));
    let _ = std::fs::remove_dir_all(&copy);
    let _ = std::fs::remove_dir_all(&restored);
}
