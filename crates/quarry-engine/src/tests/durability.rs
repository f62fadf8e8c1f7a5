//! A model-based test against a reference replay, concurrent writers and readers, injected
//! faults and a full disk: acknowledged writes are never lost.

use super::*;

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
