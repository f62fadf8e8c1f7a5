//! Every family built from its spec string answers like the exact scan: specs round-trip through
//! `Display`, bad specs are refused with a message, folders open with rows mapped or on the heap
//! and agree, filters are honoured, and recall against the f64 oracle is high.

use super::*;
use crate::{FlatIndex, FlatParams};
use quarry_core::{IdFilter, Metric, VectorIndex};
use quarry_testkit::gen;

const SPECS: [&str; 12] = [
    "flat",
    "flat+sq8",
    "flat+sq4",
    "flat+pq",
    "flat+rabitq4",
    "hnsw",
    "hnsw+sq8",
    "hnsw+pq16",
    "hnsw+rabitq",
    "hnsw+rabitq4",
    "spann",
    "spann+rabitq4",
];

#[test]
fn specs_round_trip_and_bad_ones_are_named() {
    for s in SPECS.iter().chain(&["flat+pq16", "hnsw+pq8x4", "spann+sq8", "hnsw+pqx4", "hnsw+sq4"]) {
        let spec: IndexSpec = s.parse().expect(s);
        assert_eq!(spec.to_string(), *s, "canonical form");
        assert_eq!(spec.to_string().parse::<IndexSpec>().expect(s), spec);
    }
    assert_eq!(" HNSW+SQ8 ".parse::<IndexSpec>().expect("case").to_string(), "hnsw+sq8");
    assert_eq!("hnsw+rabitq1".parse::<IndexSpec>().expect("1 bit").to_string(), "hnsw+rabitq");
    for bad in ["ivf", "hnsw+", "hnsw+sq7", "hnsw+rabitq9", "flat+pq8x3", "", "hnsw+pqq"] {
        let e = bad.parse::<IndexSpec>().expect_err(bad).to_string();
        assert!(e.contains("index") || e.contains("codes"), "{bad}: {e}");
    }
}

fn recall(got: &[quarry_core::Hit], want: &[u32]) -> f64 {
    got.iter().filter(|h| want.contains(&h.id)).count() as f64 / want.len() as f64
}

#[test]
fn every_family_opens_on_heap_and_mapped_and_finds_the_neighbours() {
    let (n, dim, k) = (3_000, 32, 10);
    let base = gen::clustered(n, dim, 24, 0.3, 7);
    let queries = gen::clustered(20, dim, 24, 0.3, 8).into_vec();
    let root = quarry_testkit::tempdirs::fresh("quarry-ann-any", "families");
    for metric in [Metric::Cosine, Metric::L2] {
        let exact = FlatIndex::build(&base, metric, FlatParams::default()).expect("flat");
        for s in SPECS {
            let spec: IndexSpec = s.parse().expect(s);
            let dir = root.join(format!("{s}-{metric}"));
            build_into(&spec, &base, metric, &dir).expect(s);
            AnyIndex::verify(&spec, &dir).expect("verify");
            let disk = AnyIndex::open(&spec, &dir, Residency::Disk).expect("disk");
            let heap = AnyIndex::open(&spec, &dir, Residency::Memory).expect("heap");
            assert!(disk.rows().expect("rows").is_mapped() && !heap.rows().expect("rows").is_mapped(), "{s}");
            assert_eq!((disk.row_count(), disk.len(), disk.dim()), (n, n, dim), "{s}");
            assert_eq!(disk.vector(5), exact.vector(5), "{s}: rows read back");
            let mut total = 0.0;
            let effort = Effort { ef: 128, rerank: None, rescore: true };
            for q in queries.chunks(dim) {
                let want: Vec<u32> = exact
                    .search(q, &quarry_core::SearchParams::top(k))
                    .expect("exact")
                    .iter()
                    .map(|h| h.id)
                    .collect();
                let a = disk.search(q, k, &effort, None).expect("search");
                let b = heap.search(q, k, &effort, None).expect("search");
                assert_eq!(a, b, "{s}: mapped and heap rows answer alike");
                // Scores are exact whatever the walk read.
                let ids: Vec<u32> = a.iter().map(|h| h.id).collect();
                let scores = exact.score_ids(q, &ids).expect("scores");
                for (h, e) in a.iter().zip(scores) {
                    assert!((h.score - e).abs() <= 1e-5 * e.abs().max(1.0), "{s}: {} vs {e}", h.score);
                }
                total += recall(&a, &want);
                // A filter admitting every third id.
                let admit = IdFilter::from_ids((0..n as u32).filter(|i| i % 3 == 0));
                let f = disk.search(q, k, &effort, Some(&admit)).expect("filtered");
                assert_eq!(f.len(), k, "{s}");
                assert!(f.iter().all(|h| h.id % 3 == 0), "{s}: filter honoured");
            }
            let r = total / 20.0;
            let floor = if s.contains("pq") || s.ends_with("rabitq") { 0.8 } else { 0.9 };
            assert!(r >= floor, "{s} ({metric}): recall {r}");
            // Exact scores of given ids.
            let top = disk.search_ids(&queries[..dim], &[1, 2, 3, 4], 2).expect("ids");
            let q0 = exact.prepare(&queries[..dim], || "q".into()).expect("q");
            let want = exact.search_ids(q0.as_slice(), [1, 2, 3, 4].into_iter(), 2);
            assert_eq!(top, want, "{s}");
            assert!(disk.search_ids(&queries[..dim], &[n as u32], 1).is_err());
        }
    }
}

#[test]
fn a_folder_of_other_codes_is_refused() {
    let base = gen::clustered(500, 16, 4, 0.3, 1);
    let dir = quarry_testkit::tempdirs::fresh("quarry-ann-any", "mismatch");
    build_into(&"hnsw+sq8".parse().expect("spec"), &base, Metric::L2, &dir).expect("build");
    let e =
        AnyIndex::open(&"hnsw+rabitq".parse().expect("spec"), &dir, Residency::Disk).expect_err("mismatch");
    assert!(e.to_string().contains("codes"), "{e}");
    assert!(AnyIndex::open(&"flat".parse().expect("spec"), &dir, Residency::Disk).is_err());
}

#[test]
fn compressed_graphs_answer_from_the_codes_alone_when_asked() {
    let (n, dim, k) = (3_000, 32, 10);
    let base = gen::clustered(n, dim, 24, 0.3, 17);
    let queries = gen::clustered(20, dim, 24, 0.3, 18).into_vec();
    let root = quarry_testkit::tempdirs::fresh("quarry-ann-any", "estimates");
    for metric in [Metric::Cosine, Metric::L2] {
        let exact = FlatIndex::build(&base, metric, FlatParams::default()).expect("flat");
        for s in ["hnsw+sq8", "hnsw+rabitq4"] {
            let spec: IndexSpec = s.parse().expect(s);
            let dir = root.join(format!("{s}-{metric}"));
            build_into(&spec, &base, metric, &dir).expect(s);
            let idx = AnyIndex::open(&spec, &dir, Residency::Disk).expect("open");
            let fast = Effort { ef: 128, rerank: None, rescore: false };
            let (mut total, mut differs, mut worst) = (0.0, 0, 0.0f32);
            for q in queries.chunks(dim) {
                let want: Vec<u32> = exact
                    .search(q, &quarry_core::SearchParams::top(k))
                    .expect("exact")
                    .iter()
                    .map(|h| h.id)
                    .collect();
                let got = idx.search(q, k, &fast, None).expect("search");
                assert_eq!(got.len(), k, "{s}");
                assert!(got.windows(2).all(|w| w[0].score >= w[1].score), "{s}: best first");
                total += recall(&got, &want);
                // The scores are the codes' estimates: close to the exact ones, not equal.
                let ids: Vec<u32> = got.iter().map(|h| h.id).collect();
                let scores = exact.score_ids(q, &ids).expect("scores");
                for (h, e) in got.iter().zip(scores) {
                    let err = (h.score - e).abs() / e.abs().max(1.0);
                    worst = worst.max(err);
                    differs += usize::from(err > 1e-6);
                }
            }
            let r = total / 20.0;
            assert!(r >= if s.ends_with("sq8") { 0.9 } else { 0.7 }, "{s} ({metric}): recall {r}");
            assert!(differs > 0, "{s} ({metric}): every score exact, so rows were read");
            assert!(
                worst < if s.ends_with("sq8") { 0.05 } else { 0.3 },
                "{s} ({metric}): estimate error {worst}"
            );
        }
    }
}
