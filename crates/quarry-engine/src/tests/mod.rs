//! Engine tests: round trips through reopen, read-your-writes, bad input rejected whole with
//! stored data untouched, filters against a hand oracle, search against brute force, UUID ids,
//! torn WAL tails, the WAL operation codec (`basics`); the model-based, concurrency, fault
//! injection and disk-full tests (`durability`); payload indexes, sealed segments, value graphs,
//! snapshots and index specs (`segments`); batches, merges, payload-index changes, scrolling,
//! deletes and damaged inputs (`lifecycle`); collections on object storage (`remote`).

mod basics;
mod durability;
mod lifecycle;
mod multivector;
mod remote;
mod segments;

pub(super) use super::*;
pub(super) use quarry_core::Metric;
pub(super) use serde_json::{json, Map, Value};
pub(super) use std::path::PathBuf;

pub(super) fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("quarry-engine-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

pub(super) fn point(id: u64, v: Vec<f32>, payload: Value) -> Point {
    let payload: Map<String, Value> = payload.as_object().cloned().unwrap_or_default();
    Point { id: PointId::Num(id), vectors: vec![v], payload }
}

/// `v` scaled to unit length (how a cosine field stores it).
pub(super) fn unit(v: &[f32]) -> Vec<f32> {
    let norm = v.iter().map(|&x| x as f64 * x as f64).sum::<f64>().sqrt();
    let inv = quarry_core::unit_scale(norm).expect("not a zero row");
    v.iter().map(|&x| (x as f64 * inv) as f32).collect()
}

/// Reference similarity in f64.
pub(super) fn quarry_testkit_score(metric: Metric, q: &[f32], x: &[f32]) -> f64 {
    let dot: f64 = q.iter().zip(x).map(|(a, b)| *a as f64 * *b as f64).sum();
    let nq: f64 = q.iter().map(|a| (*a as f64).powi(2)).sum::<f64>().sqrt();
    let nx: f64 = x.iter().map(|a| (*a as f64).powi(2)).sum::<f64>().sqrt();
    match metric {
        Metric::L2 => -q.iter().zip(x).map(|(a, b)| (*a as f64 - *b as f64).powi(2)).sum::<f64>(),
        Metric::Cosine => dot / (nq * nx),
        _ => dot,
    }
}
