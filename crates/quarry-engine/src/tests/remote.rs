//! Collections on object storage (`crate::remote`): a writer node writes through, read-only
//! nodes with empty caches serve the same answers from the store alone, follow later writes,
//! refuse writes, lose no acknowledged write when the writer's disk is lost, and report a
//! damaged object for its collection while serving the others.

use super::*;
use quarry_store::objects::{LocalObjects, Objects};
use std::sync::Arc;

fn store(name: &str) -> Arc<dyn Objects> {
    Arc::new(LocalObjects::open(&temp(name)).expect("store"))
}

fn points(from: u64, to: u64) -> Vec<Point> {
    (from..to)
        .map(|i| {
            let v: Vec<f32> = (0..8).map(|d| ((i * 31 + d * 7) % 23) as f32 - 11.0).collect();
            point(i, v, json!({"i": i, "g": i % 5}))
        })
        .collect()
}

fn answers(c: &Collection) -> Vec<Vec<ScoredPoint>> {
    [[1.0f32; 8], [-3.0, 2.0, 0.0, 1.0, 5.0, -1.0, 0.5, 2.0]]
        .iter()
        .map(|q| c.search(q, None, 10, None).expect("search"))
        .collect()
}

#[test]
fn a_collection_written_through_is_served_by_read_only_nodes() {
    let objects = store("remote-store");
    let a = temp("remote-writer");
    let writer = Database::open_replicated(&a, objects.clone()).expect("writer");
    let c = writer.create_collection("c", CollectionSchema::single(8, Metric::L2, "hnsw")).expect("create");
    c.upsert(points(0, 300)).expect("upsert");
    c.optimize().expect("seal"); // a segment and manifest version 1
    c.upsert(points(300, 350)).expect("upsert"); // only in the log
    c.delete(&[PointId::Num(7), PointId::Num(301)]).expect("delete");
    assert!(objects.list("collections/c/manifest/").expect("list").len() == 1);
    assert!(!objects.list("collections/c/wal/").expect("list").is_empty());

    // A node with an empty cache answers exactly as the writer does.
    let cache = temp("remote-cache");
    let reader = Database::open_mirror(objects.clone(), &cache).expect("mirror");
    let rc = reader.collection("c").expect("collection");
    assert_eq!(rc.count(None), 348);
    assert_eq!(answers(&rc), answers(&c));
    assert!(rc.get(PointId::Num(7)).is_none() && rc.get(PointId::Num(349)).is_some());
    // Read-only: writes and schema changes are refused with the reason.
    let err = rc.upsert(points(900, 901)).expect_err("read-only");
    assert!(err.to_string().contains("read-only"), "{err}");
    assert!(reader.create_collection("d", CollectionSchema::single(8, Metric::L2, "flat")).is_err());
    assert!(rc.create_payload_index("g").is_err());

    // Later writes, a seal and a new collection reach the reader on refresh.
    c.upsert(points(350, 420)).expect("upsert");
    c.optimize().expect("seal again");
    c.upsert(points(420, 430)).expect("upsert");
    let d = writer.create_collection("d", CollectionSchema::single(8, Metric::L2, "flat")).expect("create");
    d.upsert(points(0, 20)).expect("upsert");
    assert_eq!(reader.refresh().expect("refresh"), 2);
    assert_eq!(reader.refresh().expect("nothing new"), 0);
    let rc = reader.collection("c").expect("collection");
    assert_eq!(rc.count(None), c.count(None));
    assert_eq!(answers(&rc), answers(&c));
    assert_eq!(reader.collection("d").expect("d").count(None), 20);
    // Old log batches (covered by an older version) are collected; the reader still replays.
    assert!(objects.list("collections/c/manifest/").expect("list").len() == 2);
    // A third seal merges everything into one segment: the oldest version and the segments only
    // it named leave the store; what the two retained versions name stays.
    c.optimize().expect("seal 3");
    let versions = objects.list("collections/c/manifest/").expect("list");
    assert_eq!(versions.len(), crate::remote::RETAINED_VERSIONS, "{versions:?}");
    let segs: std::collections::BTreeSet<String> = objects
        .list("collections/c/segments/")
        .expect("list")
        .iter()
        .filter_map(|k| k.split('/').nth(3).map(str::to_string))
        .collect();
    assert!(segs.len() <= 3, "segments kept: {segs:?}");
    c.upsert(points(420, 430)).expect("upsert");
    assert_eq!(reader.refresh().expect("refresh"), 1);
    assert_eq!(answers(&reader.collection("c").expect("c")), answers(&c));

    // The writer's node is lost (no clean shutdown, its disk gone): every acknowledged write
    // is still served, by a fresh reader and by a replacement writer rebuilt from the store.
    let expected = answers(&c);
    let count = c.count(None);
    drop((c, d));
    drop(writer);
    std::fs::remove_dir_all(&a).expect("lose the writer's disk");
    let fresh = Database::open_mirror(objects.clone(), &temp("remote-cache2")).expect("mirror");
    assert_eq!(fresh.collection("c").expect("c").count(None), count);
    assert_eq!(answers(&fresh.collection("c").expect("c")), expected);
    let b = temp("remote-writer2");
    let writer2 = Database::open_replicated(&b, objects.clone()).expect("replacement writer");
    let c2 = writer2.collection("c").expect("c");
    assert_eq!(c2.count(None), count);
    c2.upsert(points(430, 440)).expect("the replacement writes on");
    assert_eq!(reader.refresh().expect("refresh"), 1);
    assert_eq!(reader.collection("c").expect("c").count(None), count + 10);

    // A second writer of the same store is refused once the first has moved ahead.
    let other = temp("remote-writer3");
    {
        let w3 = Database::open_replicated(&other, objects.clone()).expect("third writer");
        drop(w3);
    }
    writer2.collection("c").expect("c").optimize().expect("seal");
    let err = Database::open_replicated(&other, objects.clone()).expect_err("behind the store");
    assert!(err.to_string().contains("another writer"), "{err}");
    drop(writer2);

    // A damaged object: the reader names it and keeps serving the other collection.
    let seg = objects.list("collections/d/wal/").expect("list").into_iter().next().expect("a log batch of d");
    let mut bytes = objects.get(&seg).expect("get").expect("object");
    let n = bytes.len();
    bytes[n - 1] ^= 0x40;
    objects.put(&seg, &bytes).expect("damage");
    let damaged = Database::open_mirror(objects.clone(), &temp("remote-cache3")).expect("mirror");
    let errors = damaged.mirror_errors();
    assert!(errors.get("d").is_some_and(|e| e.contains("wal")), "{errors:?}");
    assert_eq!(damaged.collection("c").expect("c").count(None), count + 10);
    for d in [a, b, other, cache] {
        let _ = std::fs::remove_dir_all(d);
    }
}

/// Points in `dim` dimensions spread over clusters (so SPANN has real posting lists).
fn spread(from: u64, to: u64, dim: usize) -> Vec<Point> {
    (from..to)
        .map(|i| {
            let c = (i % 17) as f32;
            let v: Vec<f32> = (0..dim)
                .map(|d| {
                    c * ((d % 3) as f32 - 1.0) + (((i * 2654435761 + d as u64 * 97) % 1000) as f32) / 500.0
                })
                .collect();
            point(i, v, json!({"i": i}))
        })
        .collect()
}

#[test]
fn spann_lists_and_rows_are_read_by_range_through_a_small_cache() {
    use quarry_ann::spann::{POSTINGS_FILE, VECTORS_FILE};
    for spec in ["spann", "spann+sq8"] {
        let objects = store(&format!("remote-spann-store-{}", spec.len()));
        let writer =
            Database::open_replicated(&temp(&format!("remote-spann-w-{}", spec.len())), objects.clone())
                .expect("writer");
        let c =
            writer.create_collection("s", CollectionSchema::single(24, Metric::L2, spec)).expect("create");
        c.upsert(spread(0, 3000, 24)).expect("upsert");
        c.optimize().expect("seal");
        let stored: u64 = objects
            .list("collections/s/segments/")
            .expect("list")
            .iter()
            .filter(|k| k.ends_with(POSTINGS_FILE) || k.ends_with(VECTORS_FILE))
            .map(|k| objects.size(k).expect("size").unwrap_or(0))
            .sum();
        assert!(stored > 200_000, "{spec}: {stored} bytes of lists and rows");

        // A node with a cache of a tenth of those bytes, blocks of 4 KiB.
        let cache_dir = temp(&format!("remote-spann-cache-{}", spec.len()));
        let cache = crate::RangeCache { bytes: stored / 10, block: 4096, in_flight: 8 };
        let reader = Database::open_mirror_with(objects.clone(), &cache_dir, cache).expect("mirror");
        let rc = reader.collection("s").expect("collection");
        // The lists and rows were not downloaded.
        let local = crate::remote::files_under(&cache_dir.join("collections")).expect("list");
        assert!(
            !local.iter().any(|p| p.ends_with(POSTINGS_FILE) || p.ends_with(VECTORS_FILE)),
            "{spec}: {local:?}"
        );
        let blocks = reader.range_cache().expect("a read-only node has a cache");
        for q in spread(5000, 5040, 24) {
            let want = c.search(&q.vectors[0], None, 10, None).expect("writer");
            let got = rc.search(&q.vectors[0], None, 10, None).expect("reader");
            assert_eq!(got, want, "{spec}: same answer from the store");
            assert!(blocks.used() <= stored / 10, "{spec}: cache over budget");
        }
        let requests = blocks.stats.requests.load(std::sync::atomic::Ordering::Relaxed);
        assert!(requests > 0, "{spec}: lists were fetched");
        // Vectors read back come from the rows object.
        assert_eq!(rc.get(PointId::Num(123)), c.get(PointId::Num(123)), "{spec}");
        // Deleting the block cache mid-run only costs fetches.
        std::fs::remove_dir_all(cache_dir.join("blocks")).expect("drop the cache");
        let q = spread(6000, 6001, 24).remove(0);
        assert_eq!(
            rc.search(&q.vectors[0], None, 10, None).expect("reader"),
            c.search(&q.vectors[0], None, 10, None).expect("writer"),
            "{spec}"
        );
    }
}
