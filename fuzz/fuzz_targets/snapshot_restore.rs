//! Fuzz target: restoring a collection snapshot (`Database::restore_snapshot`) from arbitrary
//! bytes into a database that lives for the whole process (one scratch folder). A damaged file
//! must be an error, never a panic; a snapshot that restores must be readable (count, scroll
//! with vectors, get, search on every field) and snapshot again to a file that restores to the
//! same points.
//!
//! Input: `[mode][rest]`. Mode 0: `rest` is the file. Mode 1: `rest` is the file without its
//! trailing checksum, which is appended (so the fuzzer gets past it). Mode 2: `rest = [u16 schema
//! length][schema JSON][records]`, records as u16-length-prefixed chunks: a well-formed snapshot
//! (magic, version, lengths, a log with valid record checksums, checksum) is built around them,
//! so the schema and the operations replayed on opening are what is fuzzed.
#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use quarry_engine::{Database, Point, PointId};
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

struct Fixture {
    dir: PathBuf,
    db: Database,
}

static FIXTURE: OnceLock<Mutex<Fixture>> = OnceLock::new();

fn fixture() -> &'static Mutex<Fixture> {
    FIXTURE.get_or_init(|| {
        let dir = common::scratch("snapshot_restore");
        let db = Database::open(&dir.join("db")).expect("scratch database");
        Mutex::new(Fixture { dir, db })
    })
}

/// A well-formed snapshot around `schema` and the log `records` (docs/FORMAT.md).
fn build(schema: &[u8], records: &[Vec<u8>]) -> Vec<u8> {
    let log = quarry_store::wal::encode_log(records).expect("records under the size limit");
    let mut out = b"QRYSNAP\0".to_vec();
    out.extend_from_slice(&1u32.to_le_bytes());
    out.extend_from_slice(&(schema.len() as u64).to_le_bytes());
    out.extend_from_slice(schema);
    out.extend_from_slice(&(log.len() as u64).to_le_bytes());
    out.extend_from_slice(&log);
    with_checksum(out)
}

fn with_checksum(mut b: Vec<u8>) -> Vec<u8> {
    let c = quarry_store::checksum(&b);
    b.extend_from_slice(&c.to_le_bytes());
    b
}

/// Whether two points are equal, vectors compared bit for bit (a restored log may hold NaN).
fn same(a: &Point, b: &Point) -> bool {
    let bits = |p: &Point| -> Vec<Vec<u32>> {
        p.vectors.iter().map(|v| v.iter().map(|x| x.to_bits()).collect()).collect()
    };
    a.id == b.id && a.payload == b.payload && bits(a) == bits(b)
}

/// Everything a caller may do with a restored collection, on every field.
fn exercise(c: &quarry_engine::Collection) -> Vec<PointId> {
    let n = c.count(None);
    let (page, _) = c.scroll_from(None, 64, None, true);
    assert_eq!(page.len(), n.min(64));
    let mut ids = Vec::new();
    for p in page {
        let got = c.get(p.id).expect("a scrolled point is there");
        assert!(same(&got, &p), "get agrees with scroll");
        let dims: Vec<usize> = p.vectors.iter().map(Vec::len).collect();
        let want: Vec<usize> = c.schema().vectors.iter().map(|f| f.dim).collect();
        assert_eq!(dims, want, "point {}: vectors of the schema's dimensions", p.id);
        ids.push(p.id);
    }
    for f in &c.schema().vectors {
        let q = vec![0.5f32; f.dim];
        let hits = c.search(&q, Some(&f.name), 5, None).expect("search of a valid query");
        assert!(hits.len() <= n.min(5));
    }
    ids
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let bytes = match mode % 3 {
        0 => rest.to_vec(),
        1 => with_checksum(rest.to_vec()),
        _ => {
            let n = rest.get(..2).map_or(0, |p| u16::from_le_bytes([p[0], p[1]]) as usize);
            let schema = rest.get(2..).map_or(&[][..], |s| &s[..n.min(s.len())]);
            let records = common::chunks(rest.get(2 + schema.len()..).unwrap_or_default());
            build(schema, &records)
        }
    };
    let fx = fixture().lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let file = fx.dir.join("in.qsnap");
    std::fs::write(&file, &bytes).expect("write the snapshot file");
    let clean = |name: &str| {
        if fx.db.delete_collection(name).expect("delete a restored collection") {
            return;
        }
        // A failed restore may leave a folder behind: remove it so the name is reusable.
        let _ = std::fs::remove_dir_all(fx.dir.join("db/collections").join(name));
    };
    match fx.db.restore_snapshot(&file, "r") {
        Err(_) => clean("r"),
        Ok(c) => {
            let ids = exercise(&c);
            // Snapshot again and restore: the same points.
            let again = fx.dir.join("again.qsnap");
            c.snapshot(&again).expect("snapshot of a restored collection");
            let r2 = fx.db.restore_snapshot(&again, "r2").expect("a written snapshot restores");
            assert_eq!(r2.count(None), c.count(None));
            for id in ids {
                let (a, b) = (r2.get(id).expect("restored again"), c.get(id).expect("present"));
                assert!(same(&a, &b), "point {id} survives snapshot and restore");
            }
            drop((c, r2));
            clean("r");
            clean("r2");
        }
    }
});
