//! The conformance suite every `VectorIndex` must pass (ARCHITECTURE.md, invariant 1):
//! recall against the f64 oracle for every metric, empty index, k > n, k = 0, duplicate vectors,
//! canonical result order, batch = single search, and clear errors for bad queries.
//! Persistence, deletes and filters join the suite when indexes support them.

use crate::{gen, oracle};
use quarry_core::{Hit, Matrix, Metric, SearchParams, VectorIndex};

/// Builds an index of the given kind over `base` with `metric`.
pub type Builder<'a> = dyn Fn(&Matrix, Metric) -> Box<dyn VectorIndex> + 'a;

const METRICS: [Metric; 3] = [Metric::InnerProduct, Metric::Cosine, Metric::L2];

/// Runs every check; panics with a description on the first failure. `min_recall` is the mean
/// tie-robust recall@10 required on clustered data (1.0 for exact indexes).
pub fn run_all(build: &Builder<'_>, min_recall: f64) {
    recall_against_oracle(build, min_recall);
    empty_index(build);
    k_larger_than_n_and_zero(build);
    duplicates(build);
    order_and_batch_agree(build);
    bad_queries_are_errors(build);
}

fn assert_canonical(hits: &[Hit]) {
    for w in hits.windows(2) {
        assert!(
            w[0].score > w[1].score || (w[0].score == w[1].score && w[0].id < w[1].id),
            "hits not in canonical order (score desc, id asc): {w:?}"
        );
    }
}

/// Mean tie-robust recall@10 over 50 queries on clustered data, per metric.
pub fn recall_against_oracle(build: &Builder<'_>, min_recall: f64) {
    let base = gen::clustered(3000, 32, 40, 0.6, 11);
    let queries = gen::clustered(50, 32, 40, 0.6, 12);
    for metric in METRICS {
        let index = build(&base, metric);
        assert_eq!((index.len(), index.dim(), index.metric()), (3000, 32, metric));
        let mut total = 0.0;
        for q in queries.iter() {
            let got = index.search(q, &SearchParams::top(10)).expect("valid query");
            assert_eq!(got.len(), 10);
            assert_canonical(&got);
            let want = oracle::exact_top_k(&base, q, metric, 10);
            total += oracle::tie_robust_recall(&base, q, metric, &got, &want, 1e-5);
        }
        let recall = total / queries.rows() as f64;
        assert!(recall >= min_recall, "{metric}: recall@10 {recall:.4} < {min_recall}");
    }
}

/// An index with no vectors answers every query with no hits.
pub fn empty_index(build: &Builder<'_>) {
    let empty = Matrix::new(Vec::new(), 8).expect("shape");
    for metric in METRICS {
        let index = build(&empty, metric);
        assert!(index.is_empty());
        assert!(index.search(&[1.0; 8], &SearchParams::top(5)).expect("valid").is_empty());
    }
}

/// k above the size returns everything; k = 0 returns nothing.
pub fn k_larger_than_n_and_zero(build: &Builder<'_>) {
    let base = gen::gaussian(7, 5, 3);
    for metric in METRICS {
        let index = build(&base, metric);
        let all = index.search(base.row(0), &SearchParams::top(100)).expect("valid");
        assert_eq!(all.len(), 7, "{metric}: k > n");
        let mut ids: Vec<u32> = all.iter().map(|h| h.id).collect();
        ids.sort_unstable();
        assert_eq!(ids, (0..7).collect::<Vec<_>>());
        assert!(index.search(base.row(0), &SearchParams::top(0)).expect("valid").is_empty());
    }
}

/// Querying a duplicated vector returns its copies first (they tie; ids ascending).
pub fn duplicates(build: &Builder<'_>) {
    let base = gen::with_duplicates(&gen::gaussian(400, 16, 4), 3);
    for metric in [Metric::Cosine, Metric::L2] {
        let index = build(&base, metric);
        let hits = index.search(base.row(5), &SearchParams::top(4)).expect("valid");
        let mut ids: Vec<u32> = hits.iter().map(|h| h.id).collect();
        ids.sort_unstable();
        assert_eq!(ids, vec![5, 405, 505, 605], "{metric}: duplicates of row 5");
        assert_canonical(&hits);
    }
}

/// Batch search gives the same answers as one-at-a-time search.
pub fn order_and_batch_agree(build: &Builder<'_>) {
    let base = gen::gaussian(1500, 24, 5);
    let queries = gen::gaussian(20, 24, 6);
    for metric in METRICS {
        let index = build(&base, metric);
        let p = SearchParams::top(15);
        let batch = index.search_batch(&queries, &p).expect("valid");
        assert_eq!(batch.len(), queries.rows());
        for (q, b) in queries.iter().zip(&batch) {
            assert_eq!(&index.search(q, &p).expect("valid"), b);
        }
    }
}

/// Wrong dimension, NaN and infinity in a query are errors naming the problem.
pub fn bad_queries_are_errors(build: &Builder<'_>) {
    let index = build(&gen::gaussian(50, 6, 7), Metric::Cosine);
    let p = SearchParams::top(3);
    let e = index.search(&[1.0; 5], &p).expect_err("wrong dimension");
    assert!(e.to_string().contains("dimension"), "{e}");
    let e = index.search(&[1.0, f32::NAN, 0.0, 0.0, 0.0, 0.0], &p).expect_err("NaN");
    assert!(e.to_string().contains("non-finite"), "{e}");
    assert!(index.search(&[f32::INFINITY; 6], &p).is_err());
    assert!(index.search(&[0.0; 6], &p).is_err(), "zero query under cosine");
    let bad_batch = Matrix::from_rows(&[vec![1.0; 6], vec![f32::NAN; 6]]).expect("shape");
    let e = index.search_batch(&bad_batch, &p).expect_err("NaN in batch");
    assert!(e.to_string().contains("query 1"), "{e}");
}
