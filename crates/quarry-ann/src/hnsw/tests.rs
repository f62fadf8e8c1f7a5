//! HNSW tests: the conformance suite, structural invariants (link caps M and 2M, no self-loops or
//! duplicates, a neighbour at level l has level ≥ l; Malkov & Yashunin, TPAMI 2020), exactness at
//! ef = N, determinism, recall monotone in ef, filters at 50%..0.1%, deletes and re-inserts, and
//! recall on real embeddings when the shared data is present.

use super::*;
use crate::flat::{FlatIndex, FlatParams};
use quarry_core::{IdFilter, Matrix, Metric, SearchParams, VectorIndex};
use quarry_testkit::{conformance, gen};
use std::collections::HashSet;

fn one_thread<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    rayon::ThreadPoolBuilder::new().num_threads(1).build().expect("pool").install(f)
}

fn build(m: &Matrix, metric: Metric) -> HnswIndex {
    HnswIndex::build(m, metric, HnswParams::default()).expect("valid")
}

/// Mean recall@k of `got` against the exact answer among `allowed` ids.
fn recall(
    index: &HnswIndex,
    base: &Matrix,
    queries: &Matrix,
    k: usize,
    s: &HnswSearch,
    f: Option<&IdFilter>,
) -> f64 {
    let exact = FlatIndex::build(base, index.metric(), FlatParams::default()).expect("valid");
    let mut hits = 0usize;
    let mut total = 0usize;
    for q in queries.iter() {
        let got = index.search_with(q, k, s, f).expect("ok");
        let pq = exact.prepare(q, || "q".into()).expect("ok");
        let ids: Box<dyn Iterator<Item = u32>> = match f {
            Some(f) => Box::new(f.iter()),
            None => Box::new(0..base.rows() as u32),
        };
        let want: HashSet<u32> = exact
            .search_ids(pq.as_slice(), ids.filter(|id| !index.deleted.contains(*id)), k)
            .iter()
            .map(|h| h.id)
            .collect();
        assert_eq!(got.len(), want.len(), "k results whenever k pass the filter");
        hits += got.iter().filter(|h| want.contains(&h.id)).count();
        total += want.len();
    }
    hits as f64 / total.max(1) as f64
}

#[test]
fn passes_conformance_suite() {
    // 0.9: raw inner product on unnormalised clustered data is the hard case for graphs (inner
    // product is not a metric; a point need not be its own nearest neighbour).
    conformance::run_all(&|m, metric| Box::new(build(m, metric)) as Box<dyn VectorIndex>, 0.9);
}

#[test]
fn structural_invariants_hold() {
    let base = gen::clustered(3000, 16, 30, 0.5, 1);
    let index = build(&base, Metric::L2);
    let g = &index.graph;
    let entry = index.entry().expect("non-empty");
    assert_eq!(entry.level, *g.levels.iter().max().expect("levels") as usize);
    let mut buf = Vec::new();
    for id in 0..g.len() as u32 {
        for l in 0..=g.levels[id as usize] as usize {
            g.read(id, l, &mut buf);
            assert!(buf.len() <= g.cap(l), "node {id} level {l}: {} links", buf.len());
            assert!(!buf.contains(&id), "self-loop at {id}");
            assert_eq!(buf.iter().collect::<HashSet<_>>().len(), buf.len(), "duplicate links at {id}");
            assert!(buf.iter().all(|&nb| g.levels[nb as usize] as usize >= l), "link below its level");
        }
    }
    // Level distribution: P(L >= 1) = 1/M.
    let n = 100_000;
    let mut state = 7u64;
    let levels = super::builder::tests_support::levels(n, 16, &mut state);
    let above = levels.iter().filter(|&&l| l >= 1).count() as f64;
    assert!((above - n as f64 / 16.0).abs() < 3.0 * (n as f64 / 16.0).sqrt() + 1.0, "{above}");
}

#[test]
fn exhaustive_ef_is_exact_and_recall_grows_with_ef() {
    let base = gen::clustered(1500, 24, 20, 0.7, 2);
    let queries = gen::clustered(40, 24, 20, 0.7, 3);
    for metric in [Metric::InnerProduct, Metric::Cosine, Metric::L2] {
        let index = build(&base, metric);
        let full = recall(&index, &base, &queries, 10, &HnswSearch::ef(1500), None);
        assert!(full >= 0.999, "{metric}: ef = N gives {full}");
    }
    let index = build(&base, Metric::L2);
    let mut last = 0.0;
    for ef in [10, 20, 40, 80, 160] {
        let r = recall(&index, &base, &queries, 10, &HnswSearch::ef(ef), None);
        assert!(r + 0.02 >= last, "recall fell from {last} to {r} at ef {ef}");
        last = r;
    }
}

#[test]
fn single_thread_build_is_deterministic() {
    let base = gen::clustered(800, 12, 10, 0.5, 4);
    let a = one_thread(|| build(&base, Metric::Cosine));
    let b = one_thread(|| build(&base, Metric::Cosine));
    let (mut x, mut y) = (Vec::new(), Vec::new());
    for id in 0..800u32 {
        for l in 0..=a.graph.levels[id as usize] as usize {
            a.graph.read(id, l, &mut x);
            b.graph.read(id, l, &mut y);
            assert_eq!(x, y);
        }
    }
}

#[test]
fn filters_return_only_admitted_ids_with_good_recall() {
    let base = gen::clustered(20_000, 16, 50, 0.6, 5);
    let queries = gen::clustered(30, 16, 50, 0.6, 6);
    let index = build(&base, Metric::L2);
    for (fraction, min_recall) in [(0.5, 0.9), (0.1, 0.9), (0.01, 0.999), (0.001, 0.999)] {
        let step = (1.0 / fraction) as u32;
        let filter = IdFilter::from_ids((0..20_000u32).filter(|i| (i * 7919) % step == 0));
        let r = recall(&index, &base, &queries, 10, &HnswSearch::ef(64), Some(&filter));
        assert!(r >= min_recall, "filter passing {fraction}: recall {r}");
        for q in queries.iter().take(5) {
            let hits = index.search_with(q, 10, &HnswSearch::ef(64), Some(&filter)).expect("ok");
            assert!(hits.iter().all(|h| filter.contains(h.id)));
        }
    }
    let tiny = IdFilter::from_ids([3, 99, 12_345]);
    let hits = index.search_with(queries.row(0), 10, &HnswSearch::default(), Some(&tiny)).expect("ok");
    assert_eq!(hits.iter().map(|h| h.id).collect::<HashSet<_>>(), HashSet::from([3, 99, 12_345]));
}

#[test]
fn deletes_and_reinserts() {
    let base = gen::clustered(5000, 16, 30, 0.6, 7);
    let queries = gen::clustered(40, 16, 30, 0.6, 8);
    let mut index = build(&base, Metric::L2);
    for id in (0..5000u32).filter(|i| i % 10 < 3) {
        assert!(index.delete(id).expect("in range"));
    }
    assert_eq!(index.len(), 3500);
    let r = recall(&index, &base, &queries, 10, &HnswSearch::ef(64), None);
    assert!(r >= 0.9, "recall after deleting 30%: {r}");
    for q in queries.iter() {
        let hits = index.search(q, &SearchParams::top(10)).expect("ok");
        assert!(hits.iter().all(|h| h.id % 10 >= 3), "a deleted id came back");
    }
    // Re-insert a deleted id with a new vector: it comes back at rank 1 for that vector.
    let fresh = vec![50.0f32; 16];
    index.reinsert(20, &fresh).expect("ok");
    assert_eq!(index.search(&fresh, &SearchParams::top(1)).expect("ok")[0].id, 20);
    assert_eq!(index.len(), 3501);
    assert!(index.delete(5000).is_err());
    // Delete all but k: exactly those k come back.
    let mut small = build(&gen::gaussian(300, 8, 9), Metric::Cosine);
    for id in 5..300 {
        small.delete(id).expect("in range");
    }
    let hits = small.search(&[1.0; 8], &SearchParams::top(10)).expect("ok");
    assert_eq!(hits.iter().map(|h| h.id).collect::<HashSet<_>>(), (0..5).collect());
}

#[test]
fn appending_links_new_vectors() {
    let base = gen::clustered(2000, 16, 20, 0.6, 10);
    let mut index = build(&base, Metric::L2);
    let more = gen::clustered(500, 16, 20, 0.6, 11);
    assert_eq!(index.add(&more).expect("ok"), 2000);
    for (i, v) in more.iter().enumerate().step_by(50) {
        let top = index.search(v, &SearchParams::top(1)).expect("ok");
        assert_eq!(top[0].id, 2000 + i as u32);
    }
}

#[test]
fn passes_deletes_persistence_and_real_data_suites() {
    let b = |m: &Matrix, metric: Metric| build(m, metric);
    conformance::deletes(&b, 0.9);
    let dir = temp("conformance");
    std::fs::create_dir_all(&dir).expect("dir");
    conformance::persistence(&b, &|i: &HnswIndex, p| i.save(p), &HnswIndex::open, &dir);
    conformance::real_data_recall(&|m, metric| Box::new(build(m, metric)) as Box<dyn VectorIndex>, 0.95);
}

fn temp(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("quarry-hnsw-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir.join(name)
}

#[test]
fn save_open_round_trip_serves_from_a_mapping() {
    for storage in [crate::flat::Storage::F32, crate::flat::Storage::F16] {
        let base = gen::clustered(3000, 24, 30, 0.6, 12);
        let queries = gen::clustered(20, 24, 30, 0.6, 13);
        let mut index =
            HnswIndex::build(&base, Metric::Cosine, HnswParams { storage, ..HnswParams::default() })
                .expect("valid");
        index.delete(7).expect("in range");
        let path = temp(&format!("round-trip-{storage:?}.qhnsw"));
        index.save(&path).expect("save");
        let opened = HnswIndex::open(&path).expect("open");
        assert!((opened.flat.raw_bytes().as_ptr() as usize).is_multiple_of(64));
        assert_eq!(
            (opened.len(), opened.dim(), opened.metric(), opened.params()),
            (2999, 24, Metric::Cosine, index.params())
        );
        for q in queries.iter() {
            let s = HnswSearch::ef(50);
            assert_eq!(
                opened.search_with(q, 10, &s, None).expect("ok"),
                index.search_with(q, 10, &s, None).expect("ok")
            );
        }
        HnswIndex::verify(&path).expect("intact");
        // The opened index can still change (copy-on-write; the file stays as saved).
        let mut opened = opened;
        opened.add(&gen::gaussian(10, 24, 14)).expect("append");
        assert_eq!(opened.len(), 3009);
        HnswIndex::verify(&path).expect("file untouched");
    }
}

#[test]
fn damaged_files_are_rejected_with_the_path_and_reason() {
    let index = build(&gen::gaussian(500, 8, 15), Metric::L2);
    let path = temp("damaged.qhnsw");
    index.save(&path).expect("save");
    let good = std::fs::read(&path).expect("read");
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("magic", [b"NOTQUARRY".as_slice(), &good[9..]].concat(), "magic"),
        (
            "header",
            {
                let mut b = good.clone();
                b[20] ^= 1;
                b
            },
            "header checksum",
        ),
        ("truncated", good[..good.len() - 100].to_vec(), "outside the file"),
        (
            "links",
            {
                let mut b = good.clone();
                let at = b.len() - 200;
                b[at] ^= 0xFF;
                b
            },
            "checksum mismatch",
        ),
        ("short", good[..100].to_vec(), "shorter"),
    ];
    for (name, bytes, want) in cases {
        let p = temp(&format!("damaged-{name}.qhnsw"));
        std::fs::write(&p, bytes).expect("write");
        let err = HnswIndex::open(&p).expect_err(name).to_string();
        assert!(err.contains(want) && err.contains(&p.display().to_string()), "{name}: {err}");
    }
    // A flipped vector byte passes the quick open but not `verify`.
    let mut b = good.clone();
    b[4096 + 13] ^= 0x40;
    let p = temp("damaged-vectors.qhnsw");
    std::fs::write(&p, b).expect("write");
    assert!(HnswIndex::open(&p).is_ok());
    assert!(HnswIndex::verify(&p).expect_err("vectors").to_string().contains("vectors"));
    assert!(HnswIndex::open(&temp("missing.qhnsw")).is_err());
}

// ---- Insertion order (Elliott & Clark, arXiv 2405.17813) and LID (Levina & Bickel 2004) ----

/// `n` points with i.i.d. standard normal coefficients in a random `k`-dimensional linear
/// subspace of R^`dim` (orthonormal basis by Gram–Schmidt): data whose intrinsic dimension is `k`.
fn subspace_points(n: usize, k: usize, dim: usize, seed: u64) -> Matrix {
    let raw = gen::gaussian(k, dim, seed);
    let mut basis: Vec<Vec<f64>> = Vec::with_capacity(k);
    for v in raw.iter() {
        let mut w: Vec<f64> = v.iter().map(|&x| x as f64).collect();
        for u in &basis {
            let p: f64 = w.iter().zip(u).map(|(a, b)| a * b).sum();
            w.iter_mut().zip(u).for_each(|(a, b)| *a -= p * b);
        }
        let norm = w.iter().map(|a| a * a).sum::<f64>().sqrt();
        basis.push(w.into_iter().map(|a| a / norm).collect());
    }
    let coef = gen::gaussian(n, k, seed ^ 0x5EED);
    let mut data = vec![0.0f32; n * dim];
    for (row, c) in data.chunks_exact_mut(dim).zip(coef.iter()) {
        for (u, &ci) in basis.iter().zip(c) {
            row.iter_mut().zip(u).for_each(|(x, b)| *x += ci * *b as f32);
        }
    }
    Matrix::new(data, dim).expect("shape")
}

/// Exact LID (`nb` neighbours) of every `step`-th row, by a brute-force scan.
fn exact_lids(m: &Matrix, nb: usize, step: usize, squared: bool) -> Vec<f64> {
    let exact = FlatIndex::build(m, Metric::L2, FlatParams::default()).expect("valid");
    (0..m.rows())
        .step_by(step)
        .map(|i| {
            let hits = exact.search(m.row(i), &SearchParams::top(nb + 1)).expect("ok");
            let d: Vec<f32> = hits
                .iter()
                .filter(|h| h.id != i as u32)
                .take(nb)
                .map(|h| if squared { -h.score } else { (-h.score).max(0.0).sqrt() })
                .collect();
            lid_mle(&d).expect("defined")
        })
        .collect()
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

#[test]
fn lid_mle_formula_zero_distances_and_undefined_cases() {
    // -m / Σ ln(r_i / r_max) with m = 2: 2 / ln 2.
    let two = lid_mle(&[1.0, 2.0]).expect("defined");
    assert!((two - 2.0 / 2f64.ln()).abs() < 1e-12, "{two}");
    // Order does not matter; zero and non-finite distances are skipped.
    assert_eq!(lid_mle(&[2.0, 0.0, 1.0, f32::NAN]), Some(two));
    assert_eq!(lid_mle(&[0.0, 0.0, 3.0]), None, "one positive distance");
    assert_eq!(lid_mle(&[]), None);
    assert_eq!(lid_mle(&[0.5, 0.5, 0.5]), None, "all distances equal");
    // Squared distances halve the estimate.
    let d = [0.3f32, 0.5, 0.55, 0.8, 0.9];
    let sq: Vec<f32> = d.iter().map(|x| x * x).collect();
    let (a, b) = (lid_mle(&d).expect("defined"), lid_mle(&sq).expect("defined"));
    assert!((b - a / 2.0).abs() < 1e-5 * a, "{a} {b}");
}

/// LID on data of known dimension: Gaussian data in a random k-dim subspace of R^128 has mean MLE
/// LID within ±20% of k (n = 20k, 50 neighbours; exact k-NN of every 40th point keeps it quick;
/// the estimate falls below k as k grows), invariant to scaling the data, and halved by squared
/// distances.
#[test]
fn lid_oracle_on_linear_subspaces() {
    for k in [2usize, 8, 16] {
        let m = subspace_points(20_000, k, 128, 100 + k as u64);
        let lids = exact_lids(&m, 50, 40, false);
        let est = mean(&lids);
        assert!((est - k as f64).abs() <= 0.2 * k as f64, "k = {k}: mean LID {est}");
        if k == 8 {
            let scaled = Matrix::new(m.as_slice().iter().map(|x| x * 1000.0).collect(), 128).expect("shape");
            let s = mean(&exact_lids(&scaled, 50, 40, false));
            assert!((s - est).abs() < 1e-3 * est, "scaling changed LID: {est} → {s}");
            let sq = mean(&exact_lids(&m, 50, 40, true));
            assert!((sq - est / 2.0).abs() < 1e-3 * est, "squared distances: {sq} vs {est} / 2");
        }
    }
}

/// The graph-based estimate (pilot HNSW, ef = 2k) of the corpus LID matches the exact one.
#[test]
fn corpus_lid_from_the_graph_matches_exact() {
    let m = subspace_points(5000, 8, 64, 7);
    let approx = corpus_lid(&m, Metric::L2, &HnswParams::default(), 20).expect("ok");
    assert_eq!(approx.len(), 5000);
    let exact = exact_lids(&m, 20, 10, false);
    let sampled: Vec<f64> = (0..5000).step_by(10).map(|i| approx[i]).collect();
    let close = sampled.iter().zip(&exact).filter(|(a, e)| (*a - *e).abs() <= 0.01 * *e).count();
    assert!(close as f64 >= 0.95 * exact.len() as f64, "{close} of {} estimates match", exact.len());
    assert!((mean(&sampled) - mean(&exact)).abs() < 0.02 * mean(&exact));
    // Inner product (Euclidean pilot) and cosine give estimates too; scaling changes nothing.
    for metric in [Metric::InnerProduct, Metric::Cosine] {
        let lids = corpus_lid(&m, metric, &HnswParams::default(), 20).expect("ok");
        assert!(lids.iter().all(|x| x.is_finite() && *x > 0.0), "{metric}");
    }
    assert!(corpus_lid(&m, Metric::L2, &HnswParams::default(), 1).is_err());
}

#[test]
fn permutations_follow_the_order() {
    let lid = [3.0, f64::NAN, 1.0, 2.0, 1.0];
    let p = |o: InsertionOrder| o.permutation(5, 9, Some(&lid)).expect("ok");
    assert_eq!(p(InsertionOrder::AsGiven), vec![0, 1, 2, 3, 4]);
    assert_eq!(p(InsertionOrder::LidAscending), vec![2, 4, 3, 0, 1]);
    assert_eq!(p(InsertionOrder::LidDescending), vec![0, 3, 2, 4, 1]);
    let r = InsertionOrder::Random.permutation(1000, 9, None).expect("ok");
    assert_eq!(r, InsertionOrder::Random.permutation(1000, 9, None).expect("ok"), "seeded");
    assert_ne!(r, InsertionOrder::Random.permutation(1000, 10, None).expect("ok"));
    assert_ne!(r, (0..1000).collect::<Vec<u32>>());
    let mut sorted = r.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..1000).collect::<Vec<u32>>());
    assert!(InsertionOrder::LidAscending.permutation(5, 0, None).is_err());
    assert!(InsertionOrder::LidDescending.permutation(4, 0, Some(&lid)).is_err());
    for o in InsertionOrder::ALL {
        assert_eq!(o.name().parse::<InsertionOrder>().expect("round trip"), o);
    }
    assert!("lid".parse::<InsertionOrder>().is_err());
    assert_eq!(HnswParams::default().insertion_order, InsertionOrder::AsGiven);
}

/// Every insertion order builds a valid graph whose ids are the row numbers, with good recall;
/// one thread gives a deterministic graph, and the order does change it.
#[test]
fn every_insertion_order_builds_a_valid_index() {
    let base = gen::clustered(3000, 16, 30, 0.5, 21);
    let queries = gen::clustered(50, 16, 30, 0.5, 22);
    let links = |index: &HnswIndex| -> Vec<Vec<u32>> {
        let mut buf = Vec::new();
        (0..3000u32)
            .map(|id| {
                index.graph.read(id, 0, &mut buf);
                buf.clone()
            })
            .collect()
    };
    let mut graphs = Vec::new();
    for order in InsertionOrder::ALL {
        let params = HnswParams { insertion_order: order, ..HnswParams::default() };
        let index = one_thread(|| HnswIndex::build(&base, Metric::L2, params)).expect("valid");
        assert_eq!(index.params().insertion_order, order);
        let g = &index.graph;
        let entry = index.entry().expect("non-empty");
        assert_eq!(entry.level, *g.levels.iter().max().expect("levels") as usize, "{order}");
        let mut buf = Vec::new();
        let mut indeg = vec![0usize; 3000];
        for id in 0..3000u32 {
            for l in 0..=g.levels[id as usize] as usize {
                g.read(id, l, &mut buf);
                assert!(buf.len() <= g.cap(l) && !buf.contains(&id), "{order}: node {id} level {l}");
                assert_eq!(buf.iter().collect::<HashSet<_>>().len(), buf.len(), "{order}: duplicate links");
                assert!(buf.iter().all(|&nb| g.levels[nb as usize] as usize >= l), "{order}");
                if l == 0 {
                    buf.iter().for_each(|&nb| indeg[nb as usize] += 1);
                }
            }
        }
        assert!((0..3000).all(|i| indeg[i] > 0 || i == entry.id as usize), "{order}: unreachable node");
        for i in (0..3000).step_by(97) {
            let top = index.search(base.row(i), &SearchParams::top(1)).expect("ok");
            assert_eq!(top[0].id, i as u32, "{order}: row {i} is not id {i}");
        }
        let r = recall(&index, &base, &queries, 10, &HnswSearch::ef(64), None);
        assert!(r >= 0.95, "{order}: recall@10 at ef 64 is {r}");
        let again = one_thread(|| HnswIndex::build(&base, Metric::L2, params)).expect("valid");
        assert_eq!(links(&index), links(&again), "{order}: one-thread build is not deterministic");
        graphs.push(links(&index));
    }
    assert_ne!(graphs[0], graphs[3], "lid_desc built the same graph as as_given");
    // Parallel builds in a LID order are valid too.
    let params = HnswParams { insertion_order: InsertionOrder::LidDescending, ..HnswParams::default() };
    let index = HnswIndex::build(&base, Metric::Cosine, params).expect("valid");
    let r = recall(&index, &base, &queries, 10, &HnswSearch::ef(64), None);
    assert!(r >= 0.95, "parallel lid_desc: recall@10 at ef 64 is {r}");
    // An explicit order must be a permutation of the rows.
    let p = HnswParams::default();
    assert!(HnswIndex::build_in_order(&base, Metric::L2, p, &[0, 1, 2]).is_err());
    let mut dup: Vec<u32> = (0..3000).collect();
    dup[5] = 4;
    assert!(HnswIndex::build_in_order(&base, Metric::L2, p, &dup).is_err());
    dup[5] = 3000;
    assert!(HnswIndex::build_in_order(&base, Metric::L2, p, &dup).is_err());
    let tiny = gen::gaussian(1, 4, 1);
    let one = HnswIndex::build(
        &tiny,
        Metric::L2,
        HnswParams { insertion_order: InsertionOrder::LidAscending, ..p },
    )
    .expect("one row");
    assert_eq!(one.search(tiny.row(0), &SearchParams::top(1)).expect("ok")[0].id, 0);
}

#[test]
fn walking_on_codes_keeps_exact_scores_and_the_exact_walks_recall() {
    let base = gen::clustered(6000, 48, 40, 0.6, 21);
    let queries = gen::clustered(60, 48, 40, 0.6, 22);
    for metric in [Metric::InnerProduct, Metric::Cosine, Metric::L2] {
        let mut index = build(&base, metric);
        assert!(index.walks_on_codes(), "{metric}: codes by default");
        let exact = FlatIndex::build(&base, metric, FlatParams::default()).expect("valid");
        // Every reported score is the exact scan's, bit for bit.
        for q in queries.iter().take(10) {
            let got = index.search_with(q, 10, &HnswSearch::ef(64), None).expect("ok");
            let pq = exact.prepare(q, || "q".into()).expect("ok");
            let want = exact.search_ids(pq.as_slice(), got.iter().map(|h| h.id), 10);
            let mut sorted = got.clone();
            sorted.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.id.cmp(&b.id)));
            assert_eq!(got, sorted, "{metric}: hits best first");
            for h in &got {
                let w = want.iter().find(|w| w.id == h.id).expect("same ids");
                assert_eq!(h.score.to_bits(), w.score.to_bits(), "{metric}: exact score of {}", h.id);
            }
        }
        let on_codes = recall(&index, &base, &queries, 10, &HnswSearch::ef(64), None);
        index.set_walk_codes(false).expect("ok");
        assert!(!index.walks_on_codes());
        let on_rows = recall(&index, &base, &queries, 10, &HnswSearch::ef(64), None);
        assert!(on_codes >= on_rows - 0.02, "{metric}: codes {on_codes} against rows {on_rows}");
        // Raw inner product on unnormalised clusters is the hard case for any graph walk.
        let floor = if metric == Metric::InnerProduct { 0.8 } else { 0.9 };
        assert!(on_codes >= floor, "{metric}: {on_codes}");
    }
}

#[test]
fn walk_codes_follow_appends_reinserts_and_reopening() {
    // Too small for codes: walks on the rows; appends past the threshold train them.
    let first = gen::clustered(super::WALK_CODES_MIN_ROWS - 6, 16, 8, 0.6, 23);
    let mut index = build(&first, Metric::L2);
    assert!(!index.walks_on_codes());
    let more = gen::clustered(3000, 16, 8, 0.6, 24);
    let at = index.add(&more).expect("ok");
    assert!(index.walks_on_codes());
    // Appends after training are encoded with the trained quantizer (no retraining below 2x).
    let last = gen::clustered(700, 16, 8, 0.6, 25);
    let at2 = index.add(&last).expect("ok");
    for (i, v) in more.iter().enumerate().step_by(97) {
        assert_eq!(index.search(v, &SearchParams::top(1)).expect("ok")[0].id, at + i as u32);
    }
    for (i, v) in last.iter().enumerate().step_by(31) {
        assert_eq!(index.search(v, &SearchParams::top(1)).expect("ok")[0].id, at2 + i as u32);
    }
    // A re-inserted row is found by its new vector (its code was re-encoded).
    let fresh: Vec<f32> = (0..16).map(|j| if j % 2 == 0 { 3.0 } else { -3.0 }).collect();
    index.reinsert(42, &fresh).expect("ok");
    assert_eq!(index.search(&fresh, &SearchParams::top(1)).expect("ok")[0].id, 42);
    // Reopening trains codes again (on all rows now): the same number of answers, codes kept.
    let path = temp("walk-codes");
    index.save(&path).expect("save");
    let reopened = HnswIndex::open(&path).expect("open");
    assert!(reopened.walks_on_codes());
    for q in more.iter().step_by(211) {
        let a = index.search_with(q, 10, &HnswSearch::ef(40), None).expect("ok");
        let b = reopened.search_with(q, 10, &HnswSearch::ef(40), None).expect("ok");
        assert_eq!(a.len(), b.len());
    }
    // The codes cost about one byte per dimension and row beside the rows and links.
    let n = index.len();
    let codes = index.memory_bytes() - index.flat.memory_bytes() - index.graph.memory_bytes();
    assert!(codes >= n * 16, "{codes} bytes of codes for {n} rows of 16 dimensions");
    // The classic walk: nothing trained at open.
    let rows_walk = HnswIndex::open_walking_rows(&path).expect("open");
    assert!(!rows_walk.walks_on_codes());
}
