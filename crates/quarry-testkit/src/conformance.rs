//! The conformance suite every `VectorIndex` must pass (ARCHITECTURE.md, invariant 1):
//! recall against the f64 oracle for every metric, empty index, k > n, k = 0, duplicate vectors,
//! canonical result order, batch = single search, filters, clear errors for bad queries
//! ([`run_all`]); deletes ([`deletes`]); save/load round trips ([`persistence`]); and recall on
//! real embeddings from the shared data ([`real_data_recall`]).

use crate::{gen, oracle};
use quarry_core::{Hit, IdFilter, Matrix, Metric, SearchParams, VectorIndex, VectorIndexMut};
use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

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
    filters(build, min_recall);
    bad_queries_are_errors(build);
}

/// Filtered searches return only admitted ids, k of them whenever k pass, with good recall
/// against the exact answer among the admitted ids (filters passing 50% .. 0.1%).
pub fn filters(build: &Builder<'_>, min_recall: f64) {
    let base = gen::clustered(5000, 16, 40, 0.6, 21);
    let queries = gen::clustered(20, 16, 40, 0.6, 22);
    let index = build(&base, Metric::L2);
    for step in [2u32, 10, 100, 1000] {
        let allowed: Vec<u32> = (0..5000u32).filter(|i| (i * 7919) % step == 0).collect();
        let filter = Arc::new(IdFilter::from_ids(allowed.iter().copied()));
        let params = SearchParams::top(10).with_filter(filter.clone());
        let mut total = 0.0;
        for q in queries.iter() {
            let got = index.search(q, &params).expect("valid query");
            assert!(
                got.iter().all(|h| filter.contains(h.id)),
                "1/{step} filter: a filtered-out id came back"
            );
            assert_eq!(got.len(), 10.min(allowed.len()), "1/{step} filter: k results whenever k pass");
            assert_canonical(&got);
            let sub = Matrix::from_rows(
                &allowed.iter().map(|&i| base.row(i as usize).to_vec()).collect::<Vec<_>>(),
            )
            .expect("shape");
            let want: HashSet<u32> = oracle::exact_top_k(&sub, q, Metric::L2, 10)
                .iter()
                .map(|&(j, _)| allowed[j as usize])
                .collect();
            total += got.iter().filter(|h| want.contains(&h.id)).count() as f64 / want.len() as f64;
        }
        let recall = total / queries.rows() as f64;
        assert!(recall >= min_recall.min(0.95), "1/{step} filter: recall {recall:.4}");
    }
    let tiny = Arc::new(IdFilter::from_ids([3, 99, 4321]));
    let got = index.search(queries.row(0), &SearchParams::top(10).with_filter(tiny)).expect("valid");
    assert_eq!(got.iter().map(|h| h.id).collect::<HashSet<_>>(), HashSet::from([3, 99, 4321]));
}

/// Deleted ids never come back; recall stays high after deleting 30%; deleting all but k leaves
/// exactly those k.
pub fn deletes<I: VectorIndexMut>(build: &dyn Fn(&Matrix, Metric) -> I, min_recall: f64) {
    let base = gen::clustered(4000, 16, 30, 0.6, 23);
    let queries = gen::clustered(30, 16, 30, 0.6, 24);
    let mut index = build(&base, Metric::Cosine);
    for id in (0..4000u32).filter(|i| i % 10 < 3) {
        assert!(index.delete(id).expect("id in range"));
    }
    assert!(!index.delete(0).expect("id in range"), "deleting twice reports false");
    assert!(index.delete(4000).is_err(), "unknown id is an error");
    assert_eq!(index.len(), 2800);
    let live: Vec<u32> = (0..4000u32).filter(|i| i % 10 >= 3).collect();
    let sub = Matrix::from_rows(&live.iter().map(|&i| base.row(i as usize).to_vec()).collect::<Vec<_>>())
        .expect("shape");
    let mut total = 0.0;
    for q in queries.iter() {
        let got = index.search(q, &SearchParams::top(10)).expect("valid");
        assert!(got.iter().all(|h| h.id % 10 >= 3), "a deleted id came back");
        let want: HashSet<u32> =
            oracle::exact_top_k(&sub, q, Metric::Cosine, 10).iter().map(|&(j, _)| live[j as usize]).collect();
        total += got.iter().filter(|h| want.contains(&h.id)).count() as f64 / 10.0;
    }
    let recall = total / queries.rows() as f64;
    assert!(recall >= min_recall.min(0.9), "recall after deleting 30%: {recall:.4}");
    let mut small = build(&gen::gaussian(300, 8, 25), Metric::L2);
    for id in 5..300 {
        small.delete(id).expect("id in range");
    }
    let got = small.search(&[0.5; 8], &SearchParams::top(10)).expect("valid");
    assert_eq!(got.iter().map(|h| h.id).collect::<HashSet<_>>(), (0..5).collect());
}

/// Saving and opening gives an index that answers exactly as the original (deletes included).
pub fn persistence<I: VectorIndexMut>(
    build: &dyn Fn(&Matrix, Metric) -> I,
    save: &dyn Fn(&I, &Path) -> quarry_core::Result<()>,
    open: &dyn Fn(&Path) -> quarry_core::Result<I>,
    dir: &Path,
) {
    let base = gen::clustered(2000, 24, 20, 0.6, 26);
    let queries = gen::clustered(20, 24, 20, 0.6, 27);
    for metric in METRICS {
        let mut index = build(&base, metric);
        index.delete(17).expect("id in range");
        let path = dir.join(format!("conformance-{metric}.idx"));
        save(&index, &path).expect("save");
        let opened = open(&path).expect("open");
        assert_eq!((opened.len(), opened.dim(), opened.metric()), (index.len(), index.dim(), metric));
        let p = SearchParams::top(10);
        assert_eq!(
            opened.search_batch(&queries, &p).expect("ok"),
            index.search_batch(&queries, &p).expect("ok")
        );
        remove(&path);
    }
    let empty = build(&Matrix::new(Vec::new(), 8).expect("shape"), Metric::L2);
    let path = dir.join("conformance-empty.idx");
    save(&empty, &path).expect("save empty");
    assert!(open(&path).expect("open empty").is_empty());
    remove(&path);
    std::fs::write(&path, b"not an index").expect("write");
    assert!(open(&path).is_err(), "garbage is rejected");
    remove(&path);
}

/// Removes a saved index: a file, or a folder for indexes saved as several files.
fn remove(path: &Path) {
    if path.is_dir() {
        let _ = std::fs::remove_dir_all(path);
    } else {
        let _ = std::fs::remove_file(path);
    }
}

/// Mean recall@10 on 20,000 real 384-d sentence embeddings (shared wndict-384, inner product)
/// against the f64 oracle; skipped when the shared data is absent.
pub fn real_data_recall(build: &Builder<'_>, min_recall: f64) {
    let Some(dir) = crate::shared_data::require("wndict-384") else { return };
    let base = crate::shared_data::load_npy_rows(&dir.join("base.f16.npy"), 20_000);
    let queries = crate::shared_data::load_npy_rows(&dir.join("query.f16.npy"), 100);
    let index = build(&base, Metric::InnerProduct);
    let mut total = 0.0;
    for q in queries.iter() {
        let got = index.search(q, &SearchParams::top(10)).expect("valid");
        let want = oracle::exact_top_k(&base, q, Metric::InnerProduct, 10);
        total += oracle::tie_robust_recall(&base, q, Metric::InnerProduct, &got, &want, 1e-6);
    }
    let recall = total / queries.rows() as f64;
    assert!(recall >= min_recall, "wndict-384 (20k): recall@10 {recall:.4} < {min_recall}");
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
