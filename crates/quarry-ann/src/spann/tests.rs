//! SPANN tests: the conformance suite (oracle recall, filters, deletes, persistence, real data),
//! exactness when every list is probed without pruning, unique results, more probes never
//! lowering recall, build statistics (no orphans, the cap), damaged folders refused.

use super::*;
use quarry_core::{Matrix, Metric, SearchParams, VectorIndex};
use quarry_testkit::{conformance, gen, oracle};
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

static NEXT: AtomicUsize = AtomicUsize::new(0);

fn temp_dir() -> PathBuf {
    quarry_testkit::tempdirs::fresh("quarry-spann", &NEXT.fetch_add(1, Ordering::Relaxed).to_string())
}

fn build(m: &Matrix, metric: Metric) -> SpannIndex {
    let params = SpannParams { head_ratio: 0.1, ..SpannParams::default() };
    SpannIndex::build(m, metric, params, &temp_dir(), 1 << 20).expect("valid").0
}

/// An index that owns its search parameters (for builders that return `Box<dyn VectorIndex>`).
pub(crate) struct Owned(pub(crate) SpannIndex, pub(crate) SpannSearch);

impl VectorIndex for Owned {
    fn dim(&self) -> usize {
        self.0.dim()
    }
    fn len(&self) -> usize {
        self.0.len()
    }
    fn metric(&self) -> Metric {
        self.0.metric()
    }
    fn memory_bytes(&self) -> usize {
        self.0.memory_bytes()
    }
    fn search(&self, q: &[f32], p: &SearchParams) -> quarry_core::Result<Vec<quarry_core::Hit>> {
        self.0.searcher(self.1).search(q, p)
    }
    fn search_batch(&self, q: &Matrix, p: &SearchParams) -> quarry_core::Result<Vec<Vec<quarry_core::Hit>>> {
        self.0.searcher(self.1).search_batch(q, p)
    }
}

#[test]
fn passes_conformance_suite() {
    // 0.9: raw inner product on unnormalised clustered data is routed by L2 distance to the heads
    // (a distance ratio needs a non-negative distance), the hard case, as for HNSW.
    conformance::run_all(&|m, metric| Box::new(build(m, metric)) as Box<dyn VectorIndex>, 0.9);
    conformance::deletes(&build, 0.95);
    let dir = temp_dir();
    std::fs::create_dir_all(&dir).expect("dir");
    conformance::persistence(&build, &|i: &SpannIndex, p| i.save(p), &|p| SpannIndex::open(p, 1 << 20), &dir);
    conformance::real_data_recall(
        &|m, metric| {
            let p = SpannParams { head_ratio: 0.05, ..SpannParams::default() };
            let index = SpannIndex::build(m, metric, p, &temp_dir(), 4 << 20).expect("valid").0;
            Box::new(Owned(index, SpannSearch { max_postings: 32, ..SpannSearch::default() }))
                as Box<dyn VectorIndex>
        },
        0.95,
    );
}

#[test]
fn probing_every_list_without_pruning_is_exact() {
    let base = gen::clustered(3000, 24, 30, 0.6, 7);
    let queries = gen::clustered(30, 24, 30, 0.6, 8);
    for metric in [Metric::L2, Metric::Cosine, Metric::InnerProduct] {
        let index = build(&base, metric);
        let all = SpannSearch {
            max_postings: usize::MAX,
            max_dist_ratio: f32::INFINITY,
            head_ef: 1000,
            rerank: 4,
            head_search: HeadSearch::Graph,
            ..SpannSearch::default()
        };
        for q in queries.iter() {
            let got = index.search_with(q, 10, &all, None).expect("ok");
            let want = oracle::exact_top_k(&base, q, metric, 10);
            let recall = oracle::tie_robust_recall(&base, q, metric, &got, &want, 1e-5);
            assert!(recall >= 0.999, "{metric}: every list probed gives recall {recall}");
            let ids: HashSet<u32> = got.iter().map(|h| h.id).collect();
            assert_eq!(ids.len(), got.len(), "replicas are de-duplicated");
        }
    }
}

#[test]
fn more_probes_never_lower_recall_and_build_stats_hold() {
    let base = gen::clustered(6000, 32, 40, 0.6, 9);
    let queries = gen::clustered(40, 32, 40, 0.6, 10);
    let p = SpannParams { head_ratio: 0.05, posting_cap: 200, ..SpannParams::default() };
    let (index, stats) = SpannIndex::build(&base, Metric::L2, p, &temp_dir(), 1 << 20).expect("valid");
    assert_eq!(stats.orphans, 0, "every vector is a head or in a posting");
    assert!(stats.replication >= 1.0 && stats.replication <= 8.0, "{stats:?}");
    assert!(stats.heads >= 250 && stats.heads <= 350, "about 5% heads: {stats:?}");
    let mut last = 0.0;
    for probes in [1, 2, 4, 8, 16, 64] {
        let s = SpannSearch {
            max_postings: probes,
            max_dist_ratio: f32::INFINITY,
            head_ef: 64,
            rerank: 4,
            ..SpannSearch::default()
        };
        let mut total = 0.0;
        for q in queries.iter() {
            let got = index.search_with(q, 10, &s, None).expect("ok");
            let want = oracle::exact_top_k(&base, q, Metric::L2, 10);
            total += oracle::tie_robust_recall(&base, q, Metric::L2, &got, &want, 1e-6);
        }
        let recall = total / queries.rows() as f64;
        eprintln!("probes {probes}: recall@10 {recall:.4}");
        assert!(recall + 1e-9 >= last, "recall fell from {last} to {recall} at {probes} probes");
        last = recall;
    }
    assert!(last >= 0.99, "64 probes: recall {last}");
    // The posting cap holds, except where it would remove a vector's last posting.
    for r in 0..index.head_count() {
        assert!(index.postings.count(r) <= 200 + 50, "list {r}: {} entries", index.postings.count(r));
    }
    let _ = SearchParams::top(1);
}

#[test]
fn damaged_or_mixed_folders_are_refused() {
    let base = gen::gaussian(800, 16, 3);
    let dir = temp_dir();
    let p = SpannParams::default();
    let (index, _) = SpannIndex::build(&base, Metric::L2, p, &dir, 1 << 20).expect("valid");
    SpannIndex::verify(&dir).expect("intact");
    drop(index);
    // Another build's head graph in this folder.
    let other = temp_dir();
    SpannIndex::build(&gen::gaussian(800, 16, 4), Metric::L2, p, &other, 1 << 20).expect("valid");
    std::fs::copy(other.join(format::HEADS_FILE), dir.join(format::HEADS_FILE)).expect("copy");
    let err = SpannIndex::open(&dir, 1 << 20).expect_err("mixed").to_string();
    assert!(err.contains("another build"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&other);
}

#[test]
fn coded_entries_rescore_to_exact_results() {
    let base = gen::clustered(4000, 32, 30, 0.6, 11);
    let queries = gen::clustered(30, 32, 30, 0.6, 12);
    use crate::quant::QuantSpec;
    for (metric, spec, rerank, in_ram) in [
        (Metric::L2, QuantSpec::Sq { bits: 8 }, 4, false),
        (Metric::Cosine, QuantSpec::Sq { bits: 8 }, 4, true),
        (Metric::L2, QuantSpec::RaBitQ { bits: 1 }, 0, true),
        (Metric::InnerProduct, QuantSpec::RaBitQ { bits: 4 }, 0, false),
    ] {
        let p = SpannParams {
            head_ratio: 0.1,
            codes: Some(spec),
            codes_in_ram: in_ram,
            ..SpannParams::default()
        };
        let dir = temp_dir();
        let (index, _) = SpannIndex::build(&base, metric, p, &dir, 0).expect("valid");
        assert!(dir.join(format::VECTORS_FILE).exists(), "exact rows kept for re-scoring");
        let exact =
            crate::flat::FlatIndex::build(&base, metric, crate::flat::FlatParams::default()).expect("ok");
        let all = SpannSearch {
            max_postings: usize::MAX,
            max_dist_ratio: f32::INFINITY,
            head_ef: 1000,
            rerank,
            head_search: HeadSearch::Graph,
            ..SpannSearch::default()
        };
        let mut total = 0.0;
        for q in queries.iter() {
            let got = index.search_with(q, 10, &all, None).expect("ok");
            let ids: Vec<u32> = got.iter().map(|h| h.id).collect();
            let scores = exact.score_ids(q, &ids).expect("ok");
            for (h, s) in got.iter().zip(&scores) {
                assert!((h.score - s).abs() <= 1e-5 * s.abs().max(1.0), "{metric}: hits carry exact scores");
            }
            let want = oracle::exact_top_k(&base, q, metric, 10);
            total += oracle::tie_robust_recall(&base, q, metric, &got, &want, 1e-5);
        }
        let recall = total / queries.rows() as f64;
        assert!(recall >= 0.99, "{metric} {spec:?}: coded entries, every list, recall {recall}");
        // Persistence keeps the codes and the row file.
        let copy = temp_dir();
        index.save(&copy).expect("save");
        SpannIndex::verify(&copy).expect("intact");
        let reopened = SpannIndex::open(&copy, 0).expect("open");
        let q = queries.row(0);
        assert_eq!(
            reopened.search_with(q, 10, &all, None).expect("ok"),
            index.search_with(q, 10, &all, None).expect("ok")
        );
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::remove_dir_all(&copy);
    }
}

#[test]
fn memory_budget_bounds_resident_bytes_and_sizes_the_cache() {
    let base = gen::clustered(4000, 32, 30, 0.6, 31);
    let dir = temp_dir();
    let p = SpannParams { head_ratio: 0.05, ..SpannParams::default() };
    let (built, _) = SpannIndex::build(&base, Metric::L2, p, &dir, 0).expect("build");
    let fixed = built.resident_bytes();
    drop(built);
    let err = SpannIndex::open_with_budget(&dir, fixed / 2).expect_err("budget below the resident part");
    assert!(err.to_string().contains("memory budget"), "{err}");
    let budget = fixed + (256 << 10);
    let index = SpannIndex::open_with_budget(&dir, budget).expect("fits");
    assert_eq!(index.cache.budget(), budget - fixed);
    let s = SpannSearch { max_postings: 64, ..SpannSearch::default() };
    for q in gen::clustered(200, 32, 30, 0.6, 32).iter() {
        index.search_with(q, 10, &s, None).expect("search");
        assert!(index.resident_bytes() <= budget, "{} > {budget}", index.resident_bytes());
    }
    assert!(index.cache.resident_bytes() > 0, "hot lists are cached");
}
