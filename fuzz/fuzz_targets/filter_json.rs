//! Fuzz target: the Qdrant-dialect filter parser (`quarry_engine::Filter::parse` / `from_json`)
//! and the server's filter conversions (`quarry_server::qdrant::convert::{filter, both}`) on
//! arbitrary text. Nothing may panic, and an accepted filter must give the same answer every way
//! it is evaluated: `Filter::matches` over every point (the oracle), `Collection::count` and
//! `matching_ids` (answered from the payload indexes where they apply), a filtered search over a
//! sealed segment and the unsealed tail (every hit passes, none is missing), and combined with
//! itself by `convert::both` (the conjunction of two valid filters is valid and agrees).
//!
//! The collection (created once per process in a scratch folder) has 64 points with varied
//! payloads: strings, small and huge integers, floats, booleans, nulls, arrays, nested objects;
//! seven keys are indexed; 40 points are sealed into a segment, a few of those deleted.
#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use quarry_core::Metric;
use quarry_engine::{Collection, CollectionSchema, Database, Filter, Point, PointId};
use quarry_server::qdrant::convert;
use serde_json::{json, Map, Value};
use std::collections::BTreeSet;
use std::sync::{Arc, OnceLock};

struct Fixture {
    _db: Database,
    c: Arc<Collection>,
    points: Vec<Point>,
}

static FIXTURE: OnceLock<Fixture> = OnceLock::new();

fn payload(i: u64) -> Map<String, Value> {
    let big = [
        0,
        1,
        -1,
        1 << 53,
        (1 << 53) + 1,
        10_000_000_000_000_000,
        -10_000_000_000_000_000,
        i64::MAX,
        i64::MIN,
    ];
    let mut p = json!({
        "tag": (["a", "b", "c", "d"][(i % 4) as usize]),
        "n": i as i64 - 20,
        "f": i as f64 * 0.75 - 3.0,
        "flag": i % 3 == 0,
        "tags": [(["x", "y"][(i % 2) as usize]), "all", i % 5],
        "nested": {"k": i % 4, "s": format!("s{}", i % 3), "list": [{"v": i % 2}, {"v": 7}]},
        "mixed": if i % 2 == 0 { json!(i) } else { json!(format!("{i}")) },
    });
    let o = p.as_object_mut().expect("object");
    match i % 5 {
        0 => drop(o.remove("tag")),
        1 => drop(o.insert("tag".into(), Value::Null)),
        2 => drop(o.insert("tags".into(), json!([]))),
        _ => {}
    }
    // Integers beyond f64 precision (`big`: only integers), beyond i64 (`huge`), and integral
    // floats beyond 2^53 beside an equal integer (`bigf`).
    o.insert("big".into(), json!(big[(i % big.len() as u64) as usize]));
    if i % 4 == 1 {
        o.insert("huge".into(), json!([u64::MAX, 1u64 << 63][(i % 8 / 4) as usize]));
    }
    o.insert(
        "bigf".into(),
        [json!(16_000_000_000_000_000i64), json!(1.6e16), json!(9.5e15)][(i % 3) as usize].clone(),
    );
    o.clone()
}

fn fixture() -> &'static Fixture {
    FIXTURE.get_or_init(|| {
        let dir = common::scratch("filter_json");
        let db = Database::open(&dir).expect("scratch database");
        let mut schema = CollectionSchema::single(4, Metric::L2, "hnsw");
        schema.fsync = false;
        schema.seal_threshold = 0;
        schema.payload_indexes =
            ["tag", "n", "tags", "nested.k", "big", "huge", "bigf"].map(String::from).to_vec();
        let c = db.create_collection("f", schema).expect("collection");
        let point = |i: u64| Point {
            id: if i % 9 == 4 { PointId::Uuid((u128::from(i) << 64) | 0xabc) } else { PointId::Num(i) },
            vectors: vec![(0..4).map(|d| ((i * 7 + d * 3) % 11) as f32 - 5.0).collect()],
            payload: payload(i),
        };
        c.upsert((0..40).map(point).collect()).expect("upsert");
        c.optimize().expect("seal");
        c.upsert((40..64).map(point).collect()).expect("upsert");
        c.delete(&[PointId::Num(3), PointId::Num(17), PointId::Num(45)]).expect("delete");
        let (points, _) = c.scroll_from(None, 1000, None, false);
        Fixture { _db: db, c, points }
    })
}

/// Checks every way of evaluating `f` against the oracle `Filter::matches`.
fn check(fx: &Fixture, f: &Filter) {
    let want: BTreeSet<PointId> =
        fx.points.iter().filter(|p| f.matches(p.id, &p.payload)).map(|p| p.id).collect();
    assert_eq!(fx.c.count(Some(f)), want.len(), "count agrees with the oracle");
    let got: BTreeSet<PointId> = fx.c.matching_ids(f).into_iter().collect();
    assert_eq!(got, want, "matching_ids agrees with the oracle");
    let hits = fx.c.search(&[0.5, -1.0, 2.0, 0.0], None, 5, Some(f)).expect("search");
    assert_eq!(hits.len(), want.len().min(5), "a filtered search misses no admitted point");
    assert!(hits.iter().all(|h| want.contains(&h.id)), "every hit passes the filter");
    let (page, _) = fx.c.scroll_from(None, 1000, Some(f), false);
    assert_eq!(page.iter().map(|p| p.id).collect::<BTreeSet<_>>(), want, "scroll agrees");
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let parsed = Filter::parse(text);
    let Ok(value) = serde_json::from_str::<Value>(text) else {
        assert!(parsed.is_err(), "text that is not JSON is no filter");
        return;
    };
    let via_value = Filter::from_json(&value);
    assert_eq!(parsed.as_ref().ok(), via_value.as_ref().ok(), "parse and from_json agree");
    let converted = convert::filter(Some(&value));
    assert_eq!(converted.is_ok(), value.is_null() || parsed.is_ok(), "convert::filter agrees");
    let Ok(f) = parsed else { return };
    let fx = fixture();
    check(fx, &f);
    // Two valid filters combine into a valid one that holds where both do.
    let both = convert::both(Some(&value), Some(&value))
        .unwrap_or_else(|e| panic!("two valid filters do not combine: {}", e.message))
        .expect("a filter");
    for p in &fx.points {
        assert_eq!(both.matches(p.id, &p.payload), f.matches(p.id, &p.payload), "both(f, f) = f");
    }
    check(fx, &both);
});
