//! Tests of the balanced k-means tree: partition, sizes, heads, balance against plain k-means,
//! determinism across thread counts, head counts and degenerate inputs.

use super::split::{balanced_kmeans, plain_counts, sample_positions, size_cv};
use super::*;
use quarry_core::Matrix;
use quarry_quant::pq::kmeans::{kmeans, KMeansParams};
use quarry_testkit::gen;
use std::time::Instant;

fn rows_of<'a>(m: &'a Matrix) -> impl Fn(u32) -> Cow<'a, [f32]> + Sync + 'a {
    move |i| Cow::Borrowed(m.row(i as usize))
}

fn all_ids(m: &Matrix) -> Vec<u32> {
    (0..m.rows() as u32).collect()
}

fn params(max_cluster: usize) -> ClusterParams {
    ClusterParams { max_cluster, seed: 7, ..ClusterParams::default() }
}

/// Every id exactly once, clusters non-empty and within `max`, members sorted, centroid = mean,
/// head = the member nearest the centroid (ties to the smaller id).
fn check(m: &Matrix, clusters: &[Cluster], ids: &[u32], max: usize) {
    let mut seen: Vec<u32> = clusters.iter().flat_map(|c| c.members.iter().copied()).collect();
    seen.sort_unstable();
    let mut want = ids.to_vec();
    want.sort_unstable();
    assert_eq!(seen, want, "not a partition of the ids");
    for c in clusters {
        assert!(!c.members.is_empty() && c.members.len() <= max, "size {} > {max}", c.members.len());
        assert!(c.members.windows(2).all(|w| w[0] < w[1]));
        for j in 0..m.dim() {
            let mean =
                c.members.iter().map(|&i| m.row(i as usize)[j] as f64).sum::<f64>() / c.members.len() as f64;
            assert!((c.centroid[j] as f64 - mean).abs() < 1e-4, "centroid is not the mean");
        }
        let d = |i: u32| quarry_linalg::kernels::scalar::l2_sq(m.row(i as usize), &c.centroid);
        let best = c.members.iter().copied().min_by(|&a, &b| d(a).total_cmp(&d(b)).then(a.cmp(&b)));
        assert!(c.members.contains(&c.head));
        assert!(d(c.head) <= d(best.unwrap_or(u32::MAX)) * (1.0 + 1e-5) + 1e-6, "head is not nearest");
    }
}

fn sizes(clusters: &[Cluster]) -> Vec<usize> {
    clusters.iter().map(|c| c.members.len()).collect()
}

/// Mean squared distance of points to their cluster's centroid.
fn mse(m: &Matrix, clusters: &[Cluster]) -> f64 {
    let total: f64 = clusters
        .iter()
        .flat_map(|c| {
            c.members.iter().map(|&i| quarry_linalg::kernels::l2_sq(m.row(i as usize), &c.centroid) as f64)
        })
        .sum();
    total / m.rows() as f64
}

/// Sizes and mean squared error of plain Lloyd k-means (all points, 25 iterations) with `k`.
fn plain_kmeans(m: &Matrix, k: usize) -> (Vec<usize>, f64) {
    let p = KMeansParams { max_points_per_centroid: 0, seed: 3, ..KMeansParams::new(k) };
    let model = kmeans(m.as_slice(), m.dim(), &p).expect("kmeans");
    let assigned = model.assign_all(m.as_slice()).expect("assign");
    let mut counts = vec![0usize; k];
    for &(c, _) in &assigned {
        counts[c] += 1;
    }
    (counts, assigned.iter().map(|&(_, d)| d as f64).sum::<f64>() / m.rows() as f64)
}

#[test]
fn partition_sizes_and_heads() {
    let m = gen::gaussian(3000, 16, 1);
    let ids = all_ids(&m);
    let c = balanced_clusters(&rows_of(&m), &ids, 16, Metric::L2, &params(20)).expect("clusters");
    check(&m, &c, &ids, 20);
    assert_eq!(c.len(), 150, "exactly ceil(n / max_cluster) clusters");

    // A shuffled subset of ids, a cluster limit that does not divide n, several tree levels.
    let ids: Vec<u32> = (0..3000u32).rev().filter(|i| i % 3 != 0).collect();
    let p = ClusterParams { k: 4, sample: 200, ..params(7) };
    let c = balanced_clusters(&rows_of(&m), &ids, 16, Metric::L2, &p).expect("clusters");
    check(&m, &c, &ids, 7);
    assert_eq!(c.len(), 2000usize.div_ceil(7));
}

#[test]
fn balanced_beats_plain_kmeans() {
    for (name, m) in
        [("gaussian", gen::gaussian(4000, 32, 2)), ("clustered", gen::clustered(4000, 32, 12, 0.4, 3))]
    {
        let ids = all_ids(&m);
        let c = balanced_clusters(&rows_of(&m), &ids, 32, Metric::L2, &params(40)).expect("clusters");
        check(&m, &c, &ids, 40);
        let (plain, plain_mse) = plain_kmeans(&m, c.len());
        let (cv, plain_cv) = (size_cv(&sizes(&c)), size_cv(&plain));
        let (err, plain_err) = (mse(&m, &c), plain_mse);
        println!(
            "{name}: {} clusters, cv {cv:.3} vs plain {plain_cv:.3}, mse {err:.3} vs plain {plain_err:.3}",
            c.len()
        );
        assert!(cv < 0.5 * plain_cv, "{name}: balanced cv {cv} not well below plain {plain_cv}");
        assert!(err < 1.3 * plain_err, "{name}: balanced clusters much looser: {err} vs {plain_err}");
    }
}

#[test]
fn balance_penalty_evens_out_kmeans() {
    // One node's k-means alone: the penalty lowers the spread of plain nearest-centroid sizes.
    let m = gen::clustered(1000, 24, 5, 0.3, 4);
    for seed in 0..3u64 {
        let run = |factor: f32| {
            let mut state = seed;
            let c = balanced_kmeans(m.as_slice(), 24, 16, 10, factor, &mut state);
            size_cv(&plain_counts(m.as_slice(), 24, &c, 16))
        };
        let (plain, balanced) = (run(0.0), run(0.25));
        println!("seed {seed}: size cv plain {plain:.3}, factor 0.25 {balanced:.3}");
        assert!(balanced < plain, "penalty did not even out sizes: {balanced} vs {plain}");
    }
}

#[test]
fn deterministic_for_a_seed_and_any_thread_count() {
    let m = gen::clustered(5000, 24, 8, 0.5, 5);
    let ids = all_ids(&m);
    let run = |threads: usize, seed: u64| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("pool");
        let p = ClusterParams { seed, ..params(30) };
        pool.install(|| balanced_clusters(&rows_of(&m), &ids, 24, Metric::L2, &p).expect("clusters"))
    };
    let a = run(1, 11);
    assert_eq!(a, run(4, 11));
    assert_eq!(a, run(2, 11));
    assert_ne!(a, run(2, 12), "the seed should matter");
}

#[test]
fn choose_heads_hits_the_head_count() {
    let m = gen::clustered(6000, 16, 20, 0.5, 6);
    for head_count in [1, 2, 31, 33, 500, 1000, 1999, 2500, 4001, 5999, 6000, 9000] {
        let c = choose_heads(&rows_of(&m), 6000, 16, Metric::L2, head_count, &params(0)).expect("heads");
        let want = head_count.min(6000);
        check(&m, &c, &all_ids(&m), 6000usize.div_ceil(want));
        assert_eq!(c.len(), want, "head_count {head_count}");
    }
}

#[test]
fn cosine_and_inner_product_cluster_like_l2() {
    let mut m = gen::clustered(2000, 16, 6, 0.3, 8);
    for r in m.as_mut_slice().chunks_exact_mut(16) {
        let _ = quarry_linalg::kernels::normalize(r);
    }
    let ids = all_ids(&m);
    let l2 = balanced_clusters(&rows_of(&m), &ids, 16, Metric::L2, &params(25)).expect("l2");
    for metric in [Metric::Cosine, Metric::InnerProduct] {
        let c = balanced_clusters(&rows_of(&m), &ids, 16, metric, &params(25)).expect("clusters");
        check(&m, &c, &ids, 25);
        assert_eq!(c, l2, "{metric:?} clusters by squared L2 as documented");
    }
}

#[test]
fn degenerate_inputs() {
    let m = gen::gaussian(10, 4, 9);
    let rows = rows_of(&m);
    let p = params(4);
    // No points, one point, fewer points than max_cluster.
    assert!(balanced_clusters(&rows, &[], 4, Metric::L2, &p).expect("empty").is_empty());
    assert!(choose_heads(&rows, 0, 4, Metric::L2, 5, &p).expect("empty").is_empty());
    let one = balanced_clusters(&rows, &[3], 4, Metric::L2, &p).expect("one");
    assert_eq!((one.len(), one[0].head, one[0].members.clone()), (1, 3, vec![3]));
    assert_eq!(one[0].centroid, m.row(3));
    let c = balanced_clusters(&rows, &[1, 2, 5], 4, Metric::L2, &p).expect("three");
    assert_eq!(c.len(), 1);
    // head_count >= n: singletons, each its own head.
    let c = choose_heads(&rows, 10, 4, Metric::L2, 50, &p).expect("singletons");
    check(&m, &c, &all_ids(&m), 1);
    assert!(c.iter().all(|c| c.members == [c.head]));
    // All-identical vectors: still a valid partition of the requested size.
    let same = Matrix::new([0.5f32, -1.0, 2.0].repeat(700), 3).expect("matrix");
    let ids = all_ids(&same);
    let c = balanced_clusters(&rows_of(&same), &ids, 3, Metric::L2, &params(16)).expect("identical");
    check(&same, &c, &ids, 16);
    assert_eq!(c.len(), 700usize.div_ceil(16));
    let c = choose_heads(&rows_of(&same), 700, 3, Metric::L2, 100, &params(0)).expect("identical heads");
    assert_eq!(c.len(), 100);
}

#[test]
fn bad_input_is_an_error() {
    let m = gen::gaussian(20, 4, 10);
    let rows = rows_of(&m);
    let ids = all_ids(&m);
    let err = |p: ClusterParams| balanced_clusters(&rows, &ids, 4, Metric::L2, &p).is_err();
    assert!(err(ClusterParams { k: 1, ..params(4) }));
    assert!(err(ClusterParams { k: 0, ..params(4) }));
    assert!(err(params(0)));
    assert!(err(ClusterParams { sample: 0, ..params(4) }));
    assert!(err(ClusterParams { lambda_factor: Some(-1.0), ..params(4) }));
    assert!(err(ClusterParams { lambda_factor: Some(f32::NAN), ..params(4) }));
    assert!(balanced_clusters(&rows, &ids, 0, Metric::L2, &params(4)).is_err());
    assert!(balanced_clusters(&rows, &ids, 5, Metric::L2, &params(4)).is_err(), "wrong dim");
    assert!(balanced_clusters(&rows, &[1, 2, 1], 4, Metric::L2, &params(4)).is_err(), "duplicate id");
    assert!(choose_heads(&rows, 20, 4, Metric::L2, 0, &params(4)).is_err());
    let mut bad = m.clone();
    bad.as_mut_slice()[13] = f32::NAN;
    assert!(balanced_clusters(&rows_of(&bad), &ids, 4, Metric::L2, &params(4)).is_err());
}

#[test]
fn sample_positions_are_distinct_and_sorted() {
    let mut state = 1;
    let s = sample_positions(&mut state, 100, 40);
    assert_eq!(s.len(), 40);
    assert!(s.windows(2).all(|w| w[0] < w[1]) && s[39] < 100);
    assert_eq!(sample_positions(&mut state, 5, 40), vec![0, 1, 2, 3, 4]);
}

#[test]
fn timing_20k_64d() {
    let m = gen::clustered(20_000, 64, 50, 0.5, 12);
    let t = Instant::now();
    let c = choose_heads(&rows_of(&m), 20_000, 64, Metric::L2, 2000, &params(0)).expect("heads");
    println!(
        "choose_heads 20k x 64-d -> {} heads in {:.2?} ({} threads)",
        c.len(),
        t.elapsed(),
        rayon::current_num_threads()
    );
    assert_eq!(c.len(), 2000);
}

/// The brief's scale: `cargo test --release -p quarry-ann --lib spann::cluster -- --ignored --nocapture`.
#[test]
#[ignore = "large: 108k x 384-d timing"]
fn timing_108k_384d() {
    let m = gen::clustered(108_000, 384, 200, 0.5, 13);
    for head_count in [5_000, 20_000] {
        let t = Instant::now();
        let c = choose_heads(&rows_of(&m), 108_000, 384, Metric::L2, head_count, &ClusterParams::default())
            .expect("heads");
        let s = sizes(&c);
        println!(
            "choose_heads 108k x 384-d -> {} heads in {:.2?}, sizes {}..{} cv {:.3}",
            c.len(),
            t.elapsed(),
            s.iter().min().unwrap_or(&0),
            s.iter().max().unwrap_or(&0),
            size_cv(&s)
        );
    }
}
