//! One contract suite run against every object-storage backend: local disk always, the
//! in-memory `object_store` backend with the `object-store` feature, and S3 when
//! `QUARRY_S3_URL` names a bucket (scripts/test_s3.sh starts a local S3-compatible server and
//! sets it; with `QUARRY_REQUIRE_S3=1` a missing URL fails instead of skipping). Each backend
//! passes the same checks: object semantics, put-if-absent, the manifest chain, the race of 8
//! writers, log batches and the writer lease.

use quarry_store::commit::{
    decode_object, encode_object, Commit, Lease, LogObjects, ManifestChain, MANIFEST_MAGIC,
};
use quarry_store::objects::{open_url, Objects};
use std::sync::{Arc, Barrier};
use std::time::Duration;

fn backends(tag: &str) -> Vec<(String, Arc<dyn Objects>)> {
    let dir = std::env::temp_dir().join(format!("quarry-objects-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut out: Vec<(String, Arc<dyn Objects>)> =
        vec![("local".into(), open_url(&dir.display().to_string()).expect("local"))];
    #[cfg(feature = "object-store")]
    out.push(("memory".into(), open_url("memory://").expect("memory")));
    match std::env::var("QUARRY_S3_URL") {
        Ok(url) if !url.is_empty() => {
            // A fresh prefix per test and process: runs never see each other's objects.
            let url = format!("{}/{tag}-{}-{}", url.trim_end_matches('/'), std::process::id(), nanos());
            out.push(("s3".into(), open_url(&url).expect("s3")));
        }
        _ if std::env::var("QUARRY_REQUIRE_S3").is_ok_and(|v| v == "1") => {
            panic!("QUARRY_REQUIRE_S3=1 but QUARRY_S3_URL is not set (run scripts/test_s3.sh)")
        }
        _ => {}
    }
    out
}

fn nanos() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos())
}

#[test]
fn objects_behave_alike_on_every_backend() {
    for (name, o) in backends("basic") {
        assert_eq!(o.get("a/b").expect("get"), None, "{name}");
        o.put("a/b", b"one").expect("put");
        assert_eq!(o.get("a/b").expect("get").as_deref(), Some(&b"one"[..]), "{name}");
        o.put("a/b", b"two").expect("overwrite");
        assert_eq!(o.get("a/b").expect("get").as_deref(), Some(&b"two"[..]), "{name}");
        assert!(o.put_if_absent("a/c", b"first").expect("create"), "{name}");
        assert!(!o.put_if_absent("a/c", b"second").expect("exists"), "{name}");
        assert_eq!(
            o.get("a/c").expect("get").as_deref(),
            Some(&b"first"[..]),
            "{name}: the loser changed nothing"
        );
        o.put("a/d/e", b"0123456789").expect("put");
        o.put("ab", b"x").expect("put");
        assert_eq!(o.list("a/").expect("list"), vec!["a/b", "a/c", "a/d/e"], "{name}");
        assert_eq!(o.list("a").expect("list"), vec!["a/b", "a/c", "a/d/e", "ab"], "{name}");
        assert_eq!(o.get_range("a/d/e", 2..6).expect("range"), b"2345", "{name}");
        assert!(o.get_range("a/d/e", 5..20).is_err(), "{name}: a range past the end");
        assert!(o.get_range("a/none", 0..1).is_err(), "{name}: a missing object");
        // Several ranges at once come back in order, each exact; one bad range fails the call.
        assert_eq!(
            o.get_ranges("a/d/e", &[6..8, 0..2, 3..3]).expect("ranges"),
            vec![b"67".to_vec(), b"01".to_vec(), Vec::new()],
            "{name}"
        );
        assert!(o.get_ranges("a/d/e", &[0..2, 5..20]).is_err(), "{name}: a range past the end");
        assert!(o.get_ranges("a/none", &[0..1, 1..2]).is_err(), "{name}: a missing object");
        o.delete("a/b").expect("delete");
        o.delete("a/b").expect("delete twice");
        assert_eq!(o.get("a/b").expect("get"), None, "{name}");
        for bad in ["", "/abs", "a//b", "a/../b", "a/./b", "sp ace", "a/"] {
            assert!(o.put(bad, b"x").is_err(), "{name}: key {bad:?}");
            assert!(o.get(bad).is_err(), "{name}: key {bad:?}");
        }
    }
}

#[test]
fn the_manifest_chain_commits_once_per_version_and_validates_what_it_reads() {
    for (name, o) in backends("chain") {
        let chain = ManifestChain::new(o.clone(), "c/");
        assert_eq!(chain.latest().expect("latest"), None, "{name}");
        assert_eq!(chain.commit(1, b"v1").expect("commit"), Commit::Won);
        assert_eq!(chain.commit(1, b"other").expect("commit"), Commit::Lost);
        assert_eq!(chain.latest().expect("latest"), Some((1, b"v1".to_vec())), "{name}");
        let mut seen = Vec::new();
        let n = chain
            .commit_next(3, &mut |prev| {
                seen.push(prev.map(|(n, _)| n));
                Ok(b"v2".to_vec())
            })
            .expect("next");
        assert_eq!((n, seen), (2, vec![Some(1)]), "{name}");
        assert!(chain.commit(0, b"x").is_err());
        // A damaged version is an error naming it, never a silent fallback.
        let mut framed = encode_object(MANIFEST_MAGIC, b"v3");
        let last = framed.len() - 1;
        framed[last] ^= 1;
        assert!(o.put_if_absent("c/manifest/00000000000000000003", &framed).expect("put"));
        let err = chain.latest().expect_err("damaged");
        assert!(err.to_string().contains("00000000000000000003"), "{name}: {err}");
        o.put("c/manifest/00000000000000000003", &encode_object(*b"QRYWALB\0", b"v3")).expect("put");
        assert!(chain.latest().is_err(), "{name}: wrong magic");
        o.put("c/manifest/00000000000000000003", &encode_object(MANIFEST_MAGIC, b"v3")).expect("put");
        assert_eq!(chain.versions().expect("versions"), vec![1, 2, 3]);
        assert_eq!(chain.collect_garbage(2).expect("gc"), vec![1], "{name}");
        assert_eq!(chain.versions().expect("versions"), vec![2, 3]);
        // Stray keys in the folder are not versions.
        o.put("c/manifest/notes", b"x").expect("put");
        assert_eq!(chain.versions().expect("versions"), vec![2, 3]);
    }
    assert!(decode_object(MANIFEST_MAGIC, "k", b"short").is_err());
}

/// 8 writers race for every version: exactly one wins each round, and every winner's write is
/// the one stored (no acknowledged commit is lost or overwritten).
#[test]
fn eight_writers_race_one_winner_per_round() {
    let rounds: u64 = std::env::var("QUARRY_RACE_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(100);
    for (name, o) in backends("race") {
        let chain = ManifestChain::new(o.clone(), "race/");
        let barrier = Arc::new(Barrier::new(8));
        let handles: Vec<_> = (0..8u64)
            .map(|w| {
                let (chain, barrier) = (chain.clone(), barrier.clone());
                std::thread::spawn(move || {
                    let mut won = Vec::new();
                    for r in 1..=rounds {
                        barrier.wait();
                        if chain.commit(r, format!("writer {w} round {r}").as_bytes()).expect("commit")
                            == Commit::Won
                        {
                            won.push(r);
                        }
                    }
                    won
                })
            })
            .collect();
        let mut winners = vec![Vec::new(); rounds as usize + 1];
        for (w, h) in handles.into_iter().enumerate() {
            for r in h.join().expect("writer") {
                winners[r as usize].push(w);
            }
        }
        for r in 1..=rounds {
            assert_eq!(winners[r as usize].len(), 1, "{name}: round {r} winners {:?}", winners[r as usize]);
            let stored = chain.read(r).expect("read");
            assert_eq!(stored, format!("writer {} round {r}", winners[r as usize][0]).as_bytes(), "{name}");
        }
        eprintln!("{name}: {rounds} rounds × 8 writers, one winner each");
    }
}

#[test]
fn log_batches_survive_the_writer_and_refuse_a_second_writer_of_the_same_numbers() {
    for (name, o) in backends("wal") {
        let log = LogObjects::new(o.clone(), "w/");
        assert!(log.append(1, &[b"a".to_vec(), b"b".to_vec()]).expect("append"));
        assert!(log.append(3, &[b"c".to_vec()]).expect("append"));
        // Another writer with the same sequence numbers loses and changes nothing.
        assert!(!log.append(3, &[b"X".to_vec()]).expect("append"), "{name}");
        assert!(log.append(4, &[]).is_err());
        // A second reader of the same store (another node) sees every acknowledged record.
        let other = LogObjects::new(o.clone(), "w/");
        let all = other.read_from(1).expect("read");
        assert_eq!(all, vec![(1, b"a".to_vec()), (2, b"b".to_vec()), (3, b"c".to_vec())], "{name}");
        assert_eq!(other.read_from(2).expect("read").len(), 2);
        assert_eq!(log.remove_before(3).expect("remove"), 1);
        assert_eq!(log.read_from(0).expect("read"), vec![(3, b"c".to_vec())], "{name}");
        // A gap is corruption, named.
        assert!(log.append(9, &[b"z".to_vec()]).expect("append"));
        let err = log.read_from(0).expect_err("gap");
        assert!(err.to_string().contains("expected 4"), "{name}: {err}");
    }
}

#[test]
fn one_writer_holds_the_lease() {
    for (name, o) in backends("lease") {
        let mut a = Lease::acquire(o.clone(), "l/", "node-a", Duration::from_secs(60)).expect("a");
        let err = Lease::acquire(o.clone(), "l/", "node-b", Duration::from_secs(60)).expect_err("b refused");
        assert!(err.to_string().contains("node-a"), "{name}: {err}");
        a.renew().expect("renew");
        assert_eq!(a.epoch(), 2);
        // A lease given up (clean shutdown) is free at once.
        a.release().expect("release");
        let b = Lease::acquire(o.clone(), "l/", "node-b", Duration::from_secs(60)).expect("b after release");
        assert!(b.epoch() > 2);
        // An expired lease is taken over; the old holder's next renewal then fails.
        let mut short = Lease::acquire(o.clone(), "s/", "node-a", Duration::from_millis(1)).expect("short");
        std::thread::sleep(Duration::from_millis(20));
        let _b = Lease::acquire(o.clone(), "s/", "node-b", Duration::from_secs(60)).expect("take over");
        assert!(short.renew().is_err(), "{name}: the old holder lost the lease");
    }
}

#[test]
fn a_put_cut_short_leaves_no_object() {
    // On local disk a put stages a hidden temporary file first: one left by a killed writer is
    // neither listed nor read, and the key stays free for the next writer.
    let dir = std::env::temp_dir().join(format!("quarry-objects-cut-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let o = open_url(&dir.display().to_string()).expect("local");
    std::fs::create_dir_all(dir.join("manifest")).expect("mkdir");
    std::fs::write(dir.join("manifest/.00000000000000000001.tmp.1.0"), b"half").expect("write");
    assert_eq!(o.list("manifest/").expect("list"), Vec::<String>::new());
    let chain = ManifestChain::new(o.clone(), "");
    assert_eq!(chain.latest().expect("latest"), None);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The block cache returns exactly the inner store's bytes, merges a read's missing blocks into
/// one request per run, serves repeats from disk, survives its folder being deleted or a block
/// being damaged, and stays within its budget.
#[test]
fn the_block_cache_reads_through_merges_requests_and_heals() {
    use quarry_store::cache::CachedObjects;
    for (name, o) in backends("cache") {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
        o.put("seg/rows", &data).expect("put");
        let dir = std::env::temp_dir().join(format!("quarry-cache-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let cache = CachedObjects::open(o.clone(), &dir, 40_000, 4096, 4).expect("cache");
        let read = |r: std::ops::Range<u64>| cache.read_range("seg/rows", r).expect("read");
        assert_eq!(read(1000..9000), &data[1000..9000], "{name}");
        // Size (1) + blocks 0..=2 in one request (1).
        assert_eq!(cache.stats.requests.load(std::sync::atomic::Ordering::Relaxed), 2, "{name}");
        assert_eq!(read(0..12_288), &data[..12_288], "{name}");
        assert_eq!(cache.stats.requests.load(std::sync::atomic::Ordering::Relaxed), 2, "{name}: all hits");
        // A read with two gaps: two requests.
        assert_eq!(read(20_000..20_001), &data[20_000..20_001]);
        let before = cache.stats.requests.load(std::sync::atomic::Ordering::Relaxed);
        assert_eq!(read(16_000..30_000), &data[16_000..30_000], "{name}");
        assert_eq!(cache.stats.requests.load(std::sync::atomic::Ordering::Relaxed) - before, 2, "{name}");
        // The tail block is short; a range past the end is an error.
        assert_eq!(read(99_000..100_000), &data[99_000..], "{name}");
        assert!(cache.read_range("seg/rows", 99_000..100_001).is_err());
        assert!(cache.used() <= 40_000 + 4100, "{name}: {} bytes cached", cache.used());
        // Damage every cached block (a byte in each slot of the slab, written in place as a
        // failing disk would), then delete the folder: reads stay correct.
        let slab = dir.join("blocks.slab");
        let mut b = std::fs::read(&slab).expect("read");
        for at in (8..b.len()).step_by(4096) {
            b[at] ^= 0xff;
        }
        std::fs::OpenOptions::new()
            .write(true)
            .open(&slab)
            .and_then(|mut f| std::io::Write::write_all(&mut f, &b))
            .expect("damage in place");
        let before = cache.stats.requests.load(std::sync::atomic::Ordering::Relaxed);
        assert_eq!(read(0..50_000), &data[..50_000], "{name}: damaged blocks are fetched again");
        assert!(
            cache.stats.requests.load(std::sync::atomic::Ordering::Relaxed) > before,
            "{name}: refetched"
        );
        std::fs::remove_dir_all(&dir).expect("rm");
        assert_eq!(read(60_000..70_000), &data[60_000..70_000], "{name}: after the folder was deleted");
        assert_eq!(cache.get("seg/rows").expect("get").as_deref(), Some(&data[..]), "{name}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// Batched reads through a cache too small for them (blocks evicted while the batch is read)
/// return exactly the stored bytes, for ranges of every shape: inside one block, across blocks,
/// overlapping each other, empty, and at the object's end.
#[test]
fn batched_cache_reads_are_exact_under_eviction() {
    use quarry_store::cache::CachedObjects;
    let dir = std::env::temp_dir().join(format!("quarry-cache-batch-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let o: Arc<dyn Objects> =
        Arc::new(quarry_store::objects::LocalObjects::open(&dir.join("store")).expect("store"));
    let data: Vec<u8> = (0..50_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    o.put("k", &data).expect("put");
    for capacity in [0u64, 3 * 1024, 20 * 1024, 100_000] {
        let cache = CachedObjects::open(o.clone(), &dir.join(format!("c{capacity}")), capacity, 1024, 3)
            .expect("cache");
        let mut state = 0x1234_5678_u64 ^ capacity;
        let mut next = |n: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % n
        };
        for round in 0..200 {
            let ranges: Vec<std::ops::Range<u64>> = (0..1 + next(6))
                .map(|_| {
                    let a = next(50_001);
                    let len = [0, 1, 100, 1024, 3000][next(5) as usize];
                    a..(a + len).min(50_000)
                })
                .collect();
            let got = cache.read_ranges("k", &ranges).expect("read");
            for (r, g) in ranges.iter().zip(&got) {
                assert_eq!(
                    g.as_slice(),
                    &data[r.start as usize..r.end as usize],
                    "capacity {capacity}, round {round}, {r:?}"
                );
            }
            assert!(cache.used() <= capacity, "capacity {capacity}: {} bytes held", cache.used());
        }
        assert!(cache.read_ranges("k", &[0..10, 49_990..50_001]).is_err(), "past the end");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Once the cache is full, a block read once is not admitted (it would evict a block that may be
/// read again); read a second time, it is, and a third read is a hit.
#[test]
fn a_full_cache_admits_a_block_on_its_second_miss() {
    use quarry_store::cache::CachedObjects;
    use std::sync::atomic::Ordering::Relaxed;
    let dir = std::env::temp_dir().join(format!("quarry-cache-admit-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let o: Arc<dyn Objects> =
        Arc::new(quarry_store::objects::LocalObjects::open(&dir.join("store")).expect("store"));
    let data: Vec<u8> = (0..64 * 1024u32).map(|i| (i % 253) as u8).collect();
    o.put("k", &data).expect("put");
    // One shard of 4 slots of 1 KiB.
    let cache = CachedObjects::open(o, &dir.join("c"), 4 * 1024, 1024, 4).expect("cache");
    let read = |b: u64| {
        let got = cache.read_range("k", b * 1024..(b + 1) * 1024).expect("read");
        assert_eq!(got, &data[(b * 1024) as usize..((b + 1) * 1024) as usize], "block {b}");
    };
    for b in 0..4 {
        read(b); // free slots: admitted at once
    }
    let hits = |c: &CachedObjects| c.stats.hits.load(Relaxed);
    read(0);
    assert_eq!(hits(&cache), 1, "a block admitted while slots were free is a hit");
    let misses = cache.stats.misses.load(Relaxed);
    read(10);
    read(10);
    assert_eq!(cache.stats.misses.load(Relaxed) - misses, 2, "not admitted on its first miss");
    read(10);
    assert_eq!(hits(&cache), 2, "admitted on its second miss");
    assert!(cache.used() <= 4 * 1024);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Once the cache is full, a block it will not admit is fetched only in the bytes the read needs
/// (a row of 100 bytes costs 100 bytes, not its block), and the block admitted on its second
/// miss is fetched whole; the bytes read are right either way, across a block boundary too.
#[test]
fn a_block_not_admitted_is_fetched_only_in_the_bytes_needed() {
    use quarry_store::cache::CachedObjects;
    use std::sync::atomic::Ordering::Relaxed;
    let dir = std::env::temp_dir().join(format!("quarry-cache-partial-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let o: Arc<dyn Objects> =
        Arc::new(quarry_store::objects::LocalObjects::open(&dir.join("store")).expect("store"));
    let data: Vec<u8> = (0..64 * 1024u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    o.put("k", &data).expect("put");
    // One shard of 4 slots of 1 KiB, filled by the first four blocks.
    let cache = CachedObjects::open(o, &dir.join("c"), 4 * 1024, 1024, 4).expect("cache");
    for b in 0..4u64 {
        cache.read_range("k", b * 1024..(b + 1) * 1024).expect("fill");
    }
    let fetched = |c: &CachedObjects| c.stats.bytes_fetched.load(Relaxed);
    let before = fetched(&cache);
    assert_eq!(cache.read_range("k", 10_300..10_400).expect("first miss"), &data[10_300..10_400]);
    assert_eq!(fetched(&cache) - before, 100, "a block not admitted: only the bytes needed");
    // Two ranges in two adjacent blocks, neither admitted: one request, from the first byte
    // needed to the last.
    let (before, requests) = (fetched(&cache), cache.stats.requests.load(Relaxed));
    let got = cache.read_ranges("k", &[20_000..20_400, 20_500..20_600]).expect("two ranges");
    assert_eq!((&got[0][..], &got[1][..]), (&data[20_000..20_400], &data[20_500..20_600]));
    assert_eq!(fetched(&cache) - before, 600);
    assert_eq!(cache.stats.requests.load(Relaxed) - requests, 1, "adjacent blocks: one request");
    let before = fetched(&cache);
    assert_eq!(cache.read_range("k", 10_300..10_400).expect("second miss"), &data[10_300..10_400]);
    assert_eq!(fetched(&cache) - before, 1024, "admitted on its second miss: fetched whole");
    let hits = cache.stats.hits.load(Relaxed);
    assert_eq!(cache.read_range("k", 10_240..11_264).expect("hit"), &data[10_240..11_264]);
    assert_eq!(cache.stats.hits.load(Relaxed) - hits, 1, "then served from the cache");
    assert!(cache.used() <= 4 * 1024);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A store that answers ranged reads short (a broken proxy, a truncated object): the cache
/// reports it and keeps nothing of it, so later reads are not served a block with a hole.
#[test]
fn a_short_answer_is_an_error_and_is_not_cached() {
    use quarry_store::cache::CachedObjects;
    use std::ops::Range;
    #[derive(Debug)]
    struct Short(Arc<dyn Objects>);
    impl Objects for Short {
        fn get(&self, key: &str) -> quarry_core::Result<Option<Vec<u8>>> {
            self.0.get(key)
        }
        fn get_range(&self, key: &str, range: Range<u64>) -> quarry_core::Result<Vec<u8>> {
            let mut v = self.0.get_range(key, range)?;
            v.truncate(v.len().saturating_sub(1));
            Ok(v)
        }
        fn size(&self, key: &str) -> quarry_core::Result<Option<u64>> {
            self.0.size(key)
        }
        fn put(&self, key: &str, bytes: &[u8]) -> quarry_core::Result<()> {
            self.0.put(key, bytes)
        }
        fn put_if_absent(&self, key: &str, bytes: &[u8]) -> quarry_core::Result<bool> {
            self.0.put_if_absent(key, bytes)
        }
        fn list(&self, prefix: &str) -> quarry_core::Result<Vec<String>> {
            self.0.list(prefix)
        }
        fn delete(&self, key: &str) -> quarry_core::Result<()> {
            self.0.delete(key)
        }
        fn location(&self) -> String {
            "short".into()
        }
    }
    let dir = std::env::temp_dir().join(format!("quarry-cache-short-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let inner: Arc<dyn Objects> =
        Arc::new(quarry_store::objects::LocalObjects::open(&dir.join("store")).expect("store"));
    inner.put("k", &[7u8; 10_000]).expect("put");
    let cache = CachedObjects::open(Arc::new(Short(inner)), &dir.join("c"), 100_000, 1024, 4).expect("cache");
    let e = cache.read_ranges("k", std::slice::from_ref(&(0..3000))).expect_err("short").to_string();
    assert!(e.contains("bytes returned"), "{e}");
    assert_eq!(cache.used(), 0, "nothing of a short answer is cached");
    let _ = std::fs::remove_dir_all(&dir);
}
