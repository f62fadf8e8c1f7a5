//! Flat index tests: the shared conformance suite, exact agreement with an f64 oracle, storage
//! variants, thread-count independence and input validation.

use super::*;
use half::f16;
use proptest::prelude::*;
use quarry_core::{Matrix, Metric, SearchParams, VectorIndex};
use quarry_testkit::{conformance, gen, oracle};

fn build(m: &Matrix, metric: Metric) -> Box<dyn VectorIndex> {
    Box::new(FlatIndex::build(m, metric, FlatParams::default()).expect("valid data"))
}

fn build_f16(m: &Matrix, metric: Metric) -> Box<dyn VectorIndex> {
    Box::new(FlatIndex::build(m, metric, FlatParams { storage: Storage::F16 }).expect("valid data"))
}

#[test]
fn passes_conformance_suite_f32() {
    conformance::run_all(&build, 1.0);
}

#[test]
fn passes_conformance_suite_f16() {
    // f16 rounding may swap near-ties against the f64 oracle on the f32 data.
    conformance::run_all(&build_f16, 0.97);
}

#[test]
fn f16_input_is_stored_losslessly() {
    let m = gen::gaussian(300, 24, 5);
    let halves: Vec<f16> = m.as_slice().iter().map(|&x| f16::from_f32(x)).collect();
    let widened = Matrix::new(halves.iter().map(|h| h.to_f32()).collect(), 24).expect("shape");
    let a = FlatIndex::build_f16(&halves, 24, Metric::InnerProduct, FlatParams { storage: Storage::F16 })
        .expect("valid");
    let b = FlatIndex::build(&widened, Metric::InnerProduct, FlatParams::default()).expect("valid");
    assert_eq!(a.vector(7), b.vector(7));
    let q = gen::gaussian(10, 24, 6);
    for qi in q.iter() {
        let ha = a.search(qi, &SearchParams::top(10)).expect("ok");
        let hb = b.search(qi, &SearchParams::top(10)).expect("ok");
        assert_eq!(ha.iter().map(|h| h.id).collect::<Vec<_>>(), hb.iter().map(|h| h.id).collect::<Vec<_>>());
    }
    assert!(a.memory_bytes() * 2 <= b.memory_bytes() + 64);
}

#[test]
fn result_is_independent_of_thread_count_and_batching() {
    // Many duplicates create ties; every path must break them by ascending id.
    let base = gen::with_duplicates(&gen::gaussian(20_000, 16, 1), 3);
    let queries = gen::gaussian(40, 16, 2);
    let index = FlatIndex::build(&base, Metric::L2, FlatParams::default()).expect("valid");
    let p = SearchParams::top(25);
    let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().expect("pool");
    let two = rayon::ThreadPoolBuilder::new().num_threads(2).build().expect("pool");
    let seq: Vec<_> = one.install(|| queries.iter().map(|q| index.search(q, &p).expect("ok")).collect());
    let par: Vec<_> = two.install(|| queries.iter().map(|q| index.search(q, &p).expect("ok")).collect());
    let batch = two.install(|| index.search_batch(&queries, &p).expect("ok"));
    assert_eq!(seq, par);
    assert_eq!(seq, batch);
}

#[test]
fn scores_follow_the_metric_convention() {
    let base = Matrix::from_rows(&[vec![3.0, 4.0], vec![1.0, 0.0]]).expect("shape");
    let q = [1.0f32, 0.0];
    let ip = FlatIndex::build(&base, Metric::InnerProduct, FlatParams::default()).expect("valid");
    let hits = ip.search(&q, &SearchParams::top(2)).expect("ok");
    assert_eq!((hits[0].id, hits[0].score), (0, 3.0));
    let cos = FlatIndex::build(&base, Metric::Cosine, FlatParams::default()).expect("valid");
    let hits = cos.search(&q, &SearchParams::top(2)).expect("ok");
    assert_eq!((hits[0].id, hits[0].score), (1, 1.0));
    assert!((hits[1].score - 0.6).abs() < 1e-6);
    let l2 = FlatIndex::build(&base, Metric::L2, FlatParams::default()).expect("valid");
    let hits = l2.search(&q, &SearchParams::top(2)).expect("ok");
    assert_eq!((hits[0].id, hits[0].score), (1, 0.0));
    assert_eq!(hits[1].score, -20.0);
}

#[test]
fn bad_input_is_rejected_and_leaves_index_unchanged() {
    let mut index =
        FlatIndex::build(&gen::gaussian(10, 4, 1), Metric::Cosine, FlatParams::default()).expect("ok");
    let bad = Matrix::from_rows(&[vec![1.0, 2.0, 3.0, 4.0], vec![0.0; 4]]).expect("shape");
    let err = index.add(&bad).expect_err("zero vector under cosine");
    assert!(err.to_string().contains("vector 11"), "{err}");
    assert_eq!(index.len(), 10);
    let nan = Matrix::from_rows(&[vec![1.0, f32::NAN, 3.0, 4.0]]).expect("shape");
    assert!(index.add(&nan).expect_err("nan").to_string().contains("non-finite"));
    assert!(index.add(&gen::gaussian(2, 5, 1)).is_err());
    assert!(index.search(&[0.0; 4], &SearchParams::top(3)).is_err());
    assert!(FlatIndex::new(0, Metric::L2, FlatParams::default()).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]
    /// Exhaustive settings: the flat index equals the f64 brute-force oracle (tie-robust).
    #[test]
    fn equals_f64_oracle(n in 1usize..400, dim in 1usize..40, k in 1usize..30, seed in any::<u64>(),
                         metric in prop::sample::select(vec![Metric::InnerProduct, Metric::Cosine, Metric::L2])) {
        let base = gen::gaussian(n, dim, seed);
        let queries = gen::gaussian(5, dim, seed ^ 1);
        let index = FlatIndex::build(&base, metric, FlatParams::default()).expect("valid");
        for q in queries.iter() {
            let got = index.search(q, &SearchParams::top(k)).expect("ok");
            let want = oracle::exact_top_k(&base, q, metric, k);
            prop_assert_eq!(got.len(), want.len());
            prop_assert!(oracle::tie_robust_recall(&base, q, metric, &got, &want, 1e-4) >= 1.0 - 1e-9);
        }
    }
}

#[test]
fn score_ids_reproduces_scan_scores_bit_for_bit() {
    let base = gen::gaussian(2000, 33, 9);
    for storage in [Storage::F32, Storage::F16] {
        for metric in [Metric::InnerProduct, Metric::Cosine, Metric::L2] {
            let index = FlatIndex::build(&base, metric, FlatParams { storage }).expect("valid");
            let q = gen::gaussian(1, 33, 10);
            let hits = index.search(q.row(0), &SearchParams::top(20)).expect("ok");
            let ids: Vec<u32> = hits.iter().map(|h| h.id).collect();
            let scores = index.score_ids(q.row(0), &ids).expect("ok");
            assert_eq!(scores, hits.iter().map(|h| h.score).collect::<Vec<_>>(), "{metric} {storage:?}");
            assert!(index.score_ids(q.row(0), &[2000]).is_err());
        }
    }
}

#[test]
fn overflowing_scores_rank_last_instead_of_vanishing() {
    let base = Matrix::from_rows(&[vec![1e20, 1e20], vec![0.0, 1.0]]).expect("shape");
    let index = FlatIndex::build(&base, Metric::InnerProduct, FlatParams::default()).expect("valid");
    let hits = index.search(&[1e20, -1e20], &SearchParams::top(2)).expect("ok");
    assert_eq!(hits.len(), 2);
    assert_eq!(hits[0].id, 1);
}

#[test]
fn cosine_normalises_huge_and_tiny_vectors() {
    let base = Matrix::from_rows(&[vec![3e30, 4e30], vec![3e-30, -4e-30]]).expect("shape");
    let index = FlatIndex::build(&base, Metric::Cosine, FlatParams::default()).expect("no overflow");
    let v = index.vector(0).expect("stored");
    assert!((v[0] - 0.6).abs() < 1e-6 && (v[1] - 0.8).abs() < 1e-6);
    let hits = index.search(&[6e-35, 8e-35], &SearchParams::top(2)).expect("tiny query is not zero");
    assert_eq!((hits[0].id, hits[1].id), (0, 1));
    assert!((hits[0].score - 1.0).abs() < 1e-6);
}

fn build_flat(m: &Matrix, metric: Metric) -> FlatIndex {
    FlatIndex::build(m, metric, FlatParams::default()).expect("valid data")
}

#[test]
fn passes_deletes_persistence_and_real_data_suites() {
    conformance::deletes(&build_flat, 1.0);
    let dir = std::env::temp_dir().join(format!("quarry-flat-conformance-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    conformance::persistence(&build_flat, &|i: &FlatIndex, p| i.save(p), &FlatIndex::open, &dir);
    conformance::real_data_recall(&build, 1.0);
}

#[test]
fn batches_by_blocked_products_answer_exactly_like_one_query_at_a_time() {
    for (n, dim, nq, k) in
        [(2_500usize, 50usize, 40usize, 10usize), (1_100, 7, 17, 5), (300, 384, 20, 50), (30, 16, 16, 100)]
    {
        let base = quarry_testkit::gen::clustered(n, dim, 12, 0.3, n as u64);
        let queries = quarry_testkit::gen::clustered(nq, dim, 12, 0.3, 99);
        for metric in [Metric::Cosine, Metric::InnerProduct] {
            let idx = FlatIndex::build(&base, metric, FlatParams::default()).expect("build");
            let params = SearchParams::top(k);
            let batch = idx.search_batch(&queries, &params).expect("batch");
            assert_eq!(batch.len(), nq);
            for (i, q) in queries.iter().enumerate() {
                let one = idx.search(q, &params).expect("one");
                assert_eq!(batch[i], one, "n {n} dim {dim} {metric:?} query {i}: ids and scores bit for bit");
            }
        }
    }
}
