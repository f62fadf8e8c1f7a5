//! Tests of k-means, PQ and fast-scan: the k-means objective never increases (Lloyd 1982), the
//! ADC key equals the exact key of the decoded vector (Jégou et al., TPAMI 2011, Sec. III-A), PQ
//! error falls as `m` grows, the fast-scan key stays within `m · step / 2` of the float ADC key
//! (see `fastscan/lut.rs`), SIMD == scalar, and serialisation.

use super::fastscan::{top_candidates_with, BLOCK};
use super::*;
use crate::{encode_all, Estimator, Quantizer};
use proptest::prelude::*;
use quarry_core::{Matrix, Metric};
use quarry_testkit::gen;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

const METRICS: [Metric; 3] = [Metric::L2, Metric::InnerProduct, Metric::Cosine];

fn unit_rows(m: &Matrix) -> Matrix {
    let mut out = m.clone();
    for r in out.as_mut_slice().chunks_exact_mut(m.dim()) {
        quarry_linalg::kernels::normalize(r);
    }
    out
}

/// Gaussian data mixed by a random matrix with decaying column scales: correlated components.
fn correlated(n: usize, dim: usize, seed: u64) -> Matrix {
    let z = gen::gaussian(n, dim, seed);
    let mut rng = SmallRng::seed_from_u64(seed ^ 0xA5A5);
    let a: Vec<f32> =
        (0..dim * dim).map(|i| (rng.random::<f32>() * 2.0 - 1.0) / (1.0 + (i % dim) as f32).sqrt()).collect();
    let mut data = Vec::with_capacity(n * dim);
    for x in z.iter() {
        for r in a.chunks_exact(dim) {
            data.push(r.iter().zip(x).map(|(p, q)| p * q).sum::<f32>());
        }
    }
    Matrix::new(data, dim).expect("shape")
}

/// The key computed in f64 from the decoded vector (the ADC oracle).
fn key_f64(metric: Metric, q: &[f32], x: &[f32]) -> (f64, f64) {
    match metric {
        Metric::L2 => {
            let k: f64 = q.iter().zip(x).map(|(a, b)| (*a as f64 - *b as f64).powi(2)).sum();
            (k, k)
        }
        _ => {
            let k: f64 = -q.iter().zip(x).map(|(a, b)| *a as f64 * *b as f64).sum::<f64>();
            let scale: f64 = q.iter().zip(x).map(|(a, b)| (*a as f64 * *b as f64).abs()).sum();
            (k, scale)
        }
    }
}

fn mse(pq: &PqQuantizer, data: &Matrix) -> f64 {
    let codes = encode_all(pq, data);
    let mut out = vec![0.0f32; data.dim()];
    let mut total = 0.0;
    for (x, c) in data.iter().zip(codes.chunks_exact(pq.code_len())) {
        pq.decode(c, &mut out);
        total += x.iter().zip(&out).map(|(a, b)| (*a as f64 - *b as f64).powi(2)).sum::<f64>();
    }
    total / data.rows() as f64
}

fn quick(niter: usize) -> PqTraining {
    PqTraining { niter, ..PqTraining::default() }
}

// ---------------------------------------------------------------- k-means

#[test]
fn kmeans_objective_is_non_increasing() {
    // Narrow (dimension-major kernel) and wide (pairwise kernel) paths, plain and spherical.
    for (n, dim, k, spherical) in [(3000, 8, 64, false), (1500, 48, 16, false), (1500, 48, 16, true)] {
        let mut data = gen::clustered(n, dim, 24, 0.5, 7);
        if spherical {
            data = unit_rows(&data);
        }
        let params = KMeansParams { niter: 30, spherical, ..KMeansParams::new(k) };
        let km = kmeans::kmeans(data.as_slice(), dim, &params).expect("kmeans");
        assert!(km.objective.len() >= 2, "{:?}", km.objective);
        for w in km.objective.windows(2) {
            assert!(w[1] <= w[0] * (1.0 + 1e-6), "objective rose: {:?}", km.objective);
        }
        let (first, last) = (km.objective[0], *km.objective.last().expect("non-empty"));
        assert!(last < 0.9 * first, "k-means did not improve: {first} -> {last}");
        if spherical {
            for c in km.centroids.chunks_exact(dim) {
                let norm: f32 = c.iter().map(|v| v * v).sum::<f32>().sqrt();
                assert!((norm - 1.0).abs() < 1e-5, "spherical centroid norm {norm}");
            }
        }
        // The recorded last objective is the assignment cost before the final update, which
        // can only improve it: the final model's cost is no larger.
        let final_cost: f64 =
            km.assign_all(data.as_slice()).expect("assign").iter().map(|&(_, d)| d as f64).sum();
        if !spherical {
            assert!(final_cost <= last * (1.0 + 1e-6), "{final_cost} > {last}");
        }
    }
}

#[test]
fn kmeans_is_deterministic_for_a_seed_and_any_thread_count() {
    let data = gen::clustered(4000, 12, 30, 0.3, 11);
    let params = KMeansParams { max_points_per_centroid: 100, ..KMeansParams::new(32) };
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("pool");
        pool.install(|| kmeans::kmeans(data.as_slice(), 12, &params).expect("kmeans"))
    };
    let a = run(1);
    let b = run(2);
    let c = run(3);
    assert_eq!(a, b);
    assert_eq!(a, c);
    let other = kmeans::kmeans(data.as_slice(), 12, &KMeansParams { seed: 99, ..params }).expect("kmeans");
    assert_ne!(a.centroids, other.centroids, "a different seed should give different centroids");
    // Wide path too.
    let wide = gen::gaussian(600, 40, 3);
    let p = KMeansParams::new(10);
    let x = kmeans::kmeans(wide.as_slice(), 40, &p).expect("kmeans");
    let y = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("pool")
        .install(|| kmeans::kmeans(wide.as_slice(), 40, &p).expect("kmeans"));
    assert_eq!(x, y);
}

#[test]
fn kmeans_reseeds_empty_clusters_by_splitting() {
    // 8 distinct points, each repeated 25 times: random initial rows are often duplicates, so
    // clusters start empty; splitting must end with every centroid on its own point.
    let mut rng = SmallRng::seed_from_u64(5);
    let distinct: Vec<Vec<f32>> =
        (0..8).map(|_| (0..6).map(|_| rng.random::<f32>() * 10.0).collect()).collect();
    let mut data = Vec::new();
    for r in 0..200 {
        data.extend_from_slice(&distinct[r % 8]);
    }
    let mut saw_split = false;
    for seed in 0..10 {
        let km = kmeans::kmeans(&data, 6, &KMeansParams { seed, niter: 50, ..KMeansParams::new(8) })
            .expect("kmeans");
        let labels = km.assign_all(&data).expect("assign");
        let mut used = [false; 8];
        labels.iter().for_each(|&(c, _)| used[c] = true);
        assert!(used.iter().all(|&u| u), "seed {seed}: a cluster stayed empty");
        assert!(*km.objective.last().expect("ran") < 1e-6, "seed {seed}: {:?}", km.objective);
        saw_split |= km.objective[0] > 0.0;
    }
    assert!(saw_split, "no seed produced a duplicate initialisation; the test proves nothing");
}

#[test]
fn kmeans_rejects_bad_input() {
    let data = gen::gaussian(10, 4, 1);
    let k = |k| KMeansParams::new(k);
    assert!(kmeans::kmeans(data.as_slice(), 4, &k(11)).is_err(), "k > n");
    assert!(kmeans::kmeans(data.as_slice(), 4, &k(0)).is_err(), "k = 0");
    assert!(kmeans::kmeans(data.as_slice(), 0, &k(2)).is_err(), "dim = 0");
    assert!(kmeans::kmeans(&data.as_slice()[..39], 4, &k(2)).is_err(), "ragged");
    let mut bad = data.as_slice().to_vec();
    bad[17] = f32::NAN;
    let err = kmeans::kmeans(&bad, 4, &k(2)).expect_err("NaN");
    assert!(err.to_string().contains("point 4"), "{err}");
    let ok = kmeans::kmeans(data.as_slice(), 4, &k(10)).expect("k = n is fine");
    assert!(ok.objective.iter().all(|&o| o.abs() < 1e-9), "k = n puts every point on a centroid");
}

// ---------------------------------------------------------------- PQ

#[test]
fn adc_key_equals_key_of_decoded_vector() {
    // d % m == 0 and != 0, odd m with 4-bit codes, all metrics and both code sizes.
    let cases = [(24, 6, 8u8), (30, 7, 8), (24, 6, 4), (30, 7, 4), (10, 10, 4), (5, 1, 8)];
    for (dim, m, nbits) in cases {
        let base = gen::clustered(1200, dim, 20, 0.4, dim as u64);
        let queries = gen::gaussian(12, dim, 77);
        for metric in METRICS {
            let (base, queries) = if metric == Metric::Cosine {
                (unit_rows(&base), unit_rows(&queries))
            } else {
                (base.clone(), queries.clone())
            };
            let pq = PqQuantizer::train_with(&base, metric, m, nbits, &quick(8)).expect("train");
            assert_eq!(pq.code_len(), if nbits == 8 { m } else { m.div_ceil(2) });
            let codes = encode_all(&pq, &base);
            let mut dec = vec![0.0f32; dim];
            for q in queries.iter() {
                let est = pq.estimator(q);
                let mut keys = vec![0.0f32; base.rows()];
                est.keys(&codes, pq.code_len(), &mut keys);
                for (i, c) in codes.chunks_exact(pq.code_len()).enumerate().step_by(7) {
                    pq.decode(c, &mut dec);
                    let (want, scale) = key_f64(metric, q, &dec);
                    let got = est.key(c) as f64;
                    assert!(
                        (got - want).abs() <= 1e-4 * scale.max(1e-3),
                        "{metric} d={dim} m={m} nbits={nbits} vector {i}: ADC {got} vs decoded {want}"
                    );
                    assert_eq!(keys[i], est.key(c));
                }
            }
        }
    }
}

#[test]
fn encode_picks_the_nearest_centroid_per_subspace() {
    let base = gen::gaussian(600, 13, 4);
    let pq = PqQuantizer::train_with(&base, Metric::L2, 4, 4, &quick(5)).expect("train");
    assert_eq!((0..4).map(|j| pq.subspace(j).len()).collect::<Vec<_>>(), [4, 3, 3, 3]);
    let mut code = vec![0u8; pq.code_len()];
    for x in base.iter().take(50) {
        pq.encode(x, &mut code);
        for j in 0..4 {
            let xs = &x[pq.subspace(j)];
            let w = xs.len();
            let d = |c: usize| -> f32 {
                xs.iter().zip(&pq.codebook(j)[c * w..]).map(|(a, b)| (a - b) * (a - b)).sum()
            };
            let chosen = pq.sub_code(&code, j);
            assert!((0..16).all(|c| d(chosen) <= d(c)), "subspace {j}");
        }
    }
}

#[test]
fn pq_mse_strictly_decreases_as_m_grows() {
    let train = correlated(2000, 64, 21);
    let test = correlated(500, 64, 22);
    for nbits in [4u8, 8] {
        let errs: Vec<f64> = [4, 8, 16]
            .iter()
            .map(|&m| {
                let pq = PqQuantizer::train_with(&train, Metric::L2, m, nbits, &quick(10)).expect("train");
                mse(&pq, &test)
            })
            .collect();
        assert!(errs[0] > errs[1] && errs[1] > errs[2], "nbits {nbits}: MSE by m = 4, 8, 16: {errs:?}");
        eprintln!("PQ MSE nbits={nbits} m=4,8,16: {errs:?}");
    }
    // And more bits per subspace are better at equal m.
    let m8 = |nbits| {
        mse(&PqQuantizer::train_with(&train, Metric::L2, 8, nbits, &quick(10)).expect("train"), &test)
    };
    assert!(m8(8) < m8(4));
}

#[test]
fn pq_rejects_bad_parameters() {
    let data = gen::gaussian(300, 16, 2);
    assert!(PqQuantizer::train(&data, Metric::L2, 4, 5).is_err(), "nbits 5");
    assert!(PqQuantizer::train(&data, Metric::L2, 0, 8).is_err(), "m 0");
    assert!(PqQuantizer::train(&data, Metric::L2, 17, 8).is_err(), "m > dim");
    let few = gen::gaussian(200, 16, 2);
    let err = PqQuantizer::train(&few, Metric::L2, 4, 8).expect_err("too few points");
    assert!(err.to_string().contains("256"), "{err}");
    let mut nan = data.clone();
    nan.as_mut_slice()[40] = f32::INFINITY;
    assert!(PqQuantizer::train(&nan, Metric::L2, 4, 4).is_err(), "non-finite");
}

#[test]
fn serialisation_round_trips_and_rejects_damage() {
    let data = gen::gaussian(400, 14, 8);
    for (m, nbits, metric) in [(5, 4u8, Metric::Cosine), (7, 8, Metric::InnerProduct), (14, 4, Metric::L2)] {
        let pq = PqQuantizer::train_with(&data, metric, m, nbits, &quick(4)).expect("train");
        let bytes = pq.to_bytes();
        assert_eq!(&bytes[..2], b"PQ");
        let back = PqQuantizer::from_bytes(&bytes).expect("round trip");
        assert_eq!(back, pq);
        assert_eq!(encode_all(&back, &data), encode_all(&pq, &data));
        for len in (0..bytes.len()).step_by(3).chain([bytes.len() - 1]) {
            assert!(PqQuantizer::from_bytes(&bytes[..len]).is_err(), "truncated to {len}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(PqQuantizer::from_bytes(&longer).is_err(), "trailing byte");
        for (at, value) in [(0, b'X'), (2, 9), (3, 7), (4, 6), (5, 1), (12, 0), (13, 1)] {
            let mut bad = bytes.clone();
            bad[at] = value;
            assert!(PqQuantizer::from_bytes(&bad).is_err(), "byte {at} = {value}");
        }
        let mut nan = bytes.clone();
        nan[16..20].copy_from_slice(&f32::NAN.to_le_bytes());
        assert!(PqQuantizer::from_bytes(&nan).is_err(), "NaN centroid");
    }
    // Garbage never panics.
    let mut rng = SmallRng::seed_from_u64(1);
    for len in 0..200 {
        let junk: Vec<u8> = (0..len).map(|_| rng.random()).collect();
        let _ = PqQuantizer::from_bytes(&junk);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn subspace_kernels_match_scalar_exactly(dim in 1usize..20, k in 1usize..70, seed in any::<u64>()) {
        let mut rng = SmallRng::seed_from_u64(seed);
        let x: Vec<f32> = (0..dim).map(|_| rng.random::<f32>() * 8.0 - 4.0).collect();
        let ct: Vec<f32> = (0..dim * k).map(|_| rng.random::<f32>() * 8.0 - 4.0).collect();
        let (mut a, mut b) = (vec![0.0f32; k], vec![0.0f32; k]);
        subspace::l2_to_all(&x, &ct, &mut a);
        subspace::l2_to_all_scalar(&x, &ct, &mut b);
        prop_assert_eq!(&a, &b);
        subspace::dot_to_all(&x, &ct, &mut a);
        subspace::dot_to_all_scalar(&x, &ct, &mut b);
        prop_assert_eq!(&a, &b);
        // Fused nearest-centroid search: same answer as a first-minimum scan of the distances,
        // including ties (small integer grids make many).
        let grid = |v: f32| (v * 0.5).round();
        let (xg, cg): (Vec<f32>, Vec<f32>) = (x.iter().map(|&v| grid(v)).collect(), ct.iter().map(|&v| grid(v)).collect());
        for (xs, cs) in [(&x, &ct), (&xg, &cg)] {
            subspace::l2_to_all_scalar(xs, cs, &mut b);
            let mut first = (0usize, f32::INFINITY);
            for (i, &d) in b.iter().enumerate() {
                if d < first.1 {
                    first = (i, d);
                }
            }
            prop_assert_eq!(subspace::l2_argmin(xs, cs, k), first);
            prop_assert_eq!(subspace::l2_argmin_scalar(xs, cs, k), first);
        }
    }
}

// ---------------------------------------------------------------- fast-scan

fn random_arena(rng: &mut SmallRng, n: usize, m: usize) -> Vec<u8> {
    let len = m.div_ceil(2);
    let mut codes: Vec<u8> = (0..n * len).map(|_| rng.random()).collect();
    if m % 2 == 1 {
        for c in codes.chunks_exact_mut(len) {
            c[len - 1] &= 0x0F;
        }
    }
    codes
}

/// Quantized sum of vector `v` straight from the arena (the layout-independent definition).
fn direct_sum(lut: &QuantizedLut, arena: &[u8], m: usize, v: usize) -> u32 {
    let code = &arena[v * m.div_ceil(2)..];
    (0..m).map(|j| lut.entry(j, ((code[j / 2] >> (4 * (j % 2))) & 0x0F) as usize) as u32).sum()
}

fn supported_kernels() -> Vec<ScanKernel> {
    ScanKernel::ALL.into_iter().filter(|k| k.is_supported()).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(120))]

    #[test]
    fn fastscan_kernels_match_scalar_exactly(n in 0usize..300, m in 1usize..41, seed in any::<u64>()) {
        let mut rng = SmallRng::seed_from_u64(seed);
        let arena = random_arena(&mut rng, n, m);
        // Wide-ranging float tables, some flat, so quantized entries cover 0..=255.
        let lut: Vec<f32> = (0..m * 16)
            .map(|i| if (i / 16) % 5 == 4 { 1.5 } else { rng.random::<f32>() * (1 + i % 7) as f32 - 2.0 })
            .collect();
        let qlut = QuantizedLut::new(&lut, m).expect("lut");
        let codes = FastScanCodes::new(&arena, m).expect("codes");
        prop_assert_eq!(codes.len(), n);
        let mut want = vec![0u16; n];
        codes.scan_with(ScanKernel::Scalar, &qlut, &mut want).expect("scalar");
        for (v, &w) in want.iter().enumerate() {
            prop_assert_eq!(w as u32, direct_sum(&qlut, &arena, m, v), "layout, vector {}", v);
        }
        for k in supported_kernels() {
            let mut got = vec![7u16; n];
            codes.scan_with(k, &qlut, &mut got).expect("supported");
            prop_assert_eq!(&got, &want, "{:?}", k);
        }
        let mut best = vec![0u16; n];
        codes.scan(&qlut, &mut best);
        prop_assert_eq!(&best, &want);
    }
}

#[test]
fn quantized_sums_never_wrap_for_large_m() {
    let mut rng = SmallRng::seed_from_u64(3);
    for m in [257usize, 300, 1000, 4001] {
        let lut: Vec<f32> = (0..m * 16).map(|_| rng.random::<f32>() * 100.0).collect();
        let qlut = QuantizedLut::new(&lut, m).expect("lut");
        let max_sum: u32 = (0..m).map(|j| (0..16).map(|i| qlut.entry(j, i) as u32).max().unwrap_or(0)).sum();
        assert!(max_sum <= 65_535, "m = {m}: the largest possible sum {max_sum} overflows u16");
        // Worst-case codes (the argmax of every table) scan to the exact sum.
        let worst: Vec<usize> =
            (0..m).map(|j| (0..16).max_by_key(|&i| qlut.entry(j, i)).unwrap_or(0)).collect();
        let mut arena = vec![0u8; 33 * m.div_ceil(2)];
        for (j, &c) in worst.iter().enumerate() {
            arena[j / 2] |= (c as u8) << (4 * (j % 2));
        }
        let codes = FastScanCodes::new(&arena, m).expect("codes");
        for k in supported_kernels() {
            let mut out = vec![0u16; 33];
            codes.scan_with(k, &qlut, &mut out).expect("kernel");
            assert_eq!(out[0] as u32, max_sum, "{k:?} m = {m}");
        }
    }
    assert!(QuantizedLut::new(&[0.0; 32], 3).is_err(), "wrong length");
    assert!(QuantizedLut::new(&[f32::NAN; 16], 1).is_err(), "NaN");
    let flat = QuantizedLut::new(&[2.5; 32], 2).expect("flat tables");
    assert_eq!(flat.key(0), 5.0);
}

#[test]
fn fastscan_estimate_is_within_half_a_step_per_subspace() {
    for metric in METRICS {
        let base = gen::clustered(3000, 48, 30, 0.5, 12);
        let queries = gen::gaussian(10, 48, 13);
        let (base, queries) =
            if metric == Metric::Cosine { (unit_rows(&base), unit_rows(&queries)) } else { (base, queries) };
        for m in [12, 13, 48] {
            let pq = PqQuantizer::train_with(&base, metric, m, 4, &quick(8)).expect("train");
            let arena = encode_all(&pq, &base);
            let codes = FastScanCodes::from_pq(&pq, &arena).expect("codes");
            let mut sums = vec![0u16; base.rows()];
            for q in queries.iter() {
                let est = pq.estimator(q);
                let qlut = QuantizedLut::from_estimator(&est).expect("lut");
                codes.scan(&qlut, &mut sums);
                let bound = m as f32 * qlut.step() / 2.0;
                for (i, c) in arena.chunks_exact(pq.code_len()).enumerate() {
                    let exact = est.key(c);
                    let approx = qlut.key(sums[i]);
                    let slack = 1e-5 * (exact.abs() + qlut.bias().abs() + 1.0);
                    assert!(
                        (approx - exact).abs() <= bound + slack,
                        "{metric} m={m} vector {i}: {approx} vs {exact}, bound {bound}"
                    );
                }
            }
        }
    }
}

#[test]
fn fastscan_top10_overlaps_float_adc_top10() {
    for metric in [Metric::L2, Metric::InnerProduct] {
        let base = gen::gaussian(8000, 64, 31);
        let queries = gen::gaussian(30, 64, 32);
        let pq = PqQuantizer::train_with(&base, metric, 32, 4, &quick(10)).expect("train");
        let arena = encode_all(&pq, &base);
        let codes = FastScanCodes::from_pq(&pq, &arena).expect("codes");
        let mut keys = vec![0.0f32; base.rows()];
        let mut overlap = 0usize;
        for q in queries.iter() {
            let est = pq.estimator(q);
            est.keys(&arena, pq.code_len(), &mut keys);
            let mut order: Vec<u32> = (0..base.rows() as u32).collect();
            order.sort_by(|&a, &b| keys[a as usize].total_cmp(&keys[b as usize]).then(a.cmp(&b)));
            let float_top: std::collections::HashSet<u32> = order[..10].iter().copied().collect();
            let qlut = QuantizedLut::from_estimator(&est).expect("lut");
            for k in supported_kernels() {
                let fast = top_candidates_with(&codes, &qlut, 10, k);
                assert_eq!(fast.len(), 10);
                assert!(fast.windows(2).all(|w| w[0].0 <= w[1].0), "sorted best first");
                if k == ScanKernel::Scalar {
                    overlap += fast.iter().filter(|(_, id)| float_top.contains(id)).count();
                } else {
                    assert_eq!(fast, top_candidates_with(&codes, &qlut, 10, ScanKernel::Scalar));
                }
            }
        }
        let frac = overlap as f64 / (10 * queries.rows()) as f64;
        eprintln!("{metric}: fast-scan top-10 overlap with float ADC top-10 = {frac:.3}");
        assert!(frac >= 0.9, "{metric}: overlap {frac}");
    }
}

#[test]
fn top_candidates_edge_cases() {
    let mut rng = SmallRng::seed_from_u64(9);
    let m = 6;
    let arena = random_arena(&mut rng, 45, m);
    let lut: Vec<f32> = (0..m * 16).map(|_| rng.random::<f32>()).collect();
    let qlut = QuantizedLut::new(&lut, m).expect("lut");
    let codes = FastScanCodes::new(&arena, m).expect("codes");
    assert!(top_candidates(&codes, &qlut, 0).is_empty());
    let all = top_candidates(&codes, &qlut, 1000);
    assert_eq!(all.len(), 45, "n larger than the set returns everything");
    let mut sums = vec![0u16; 45];
    codes.scan(&qlut, &mut sums);
    let mut want: Vec<(u16, u32)> = sums.iter().enumerate().map(|(i, &s)| (s, i as u32)).collect();
    want.sort();
    let got: Vec<u32> = all.iter().map(|&(_, id)| id).collect();
    assert_eq!(got, want.iter().map(|&(_, id)| id).collect::<Vec<_>>(), "order: sum, then id");
    assert!(all.iter().zip(&want).all(|(&(k, _), &(s, _))| k == qlut.key(s)));
    let empty = FastScanCodes::new(&[], m).expect("empty");
    assert!(top_candidates(&empty, &qlut, 5).is_empty());
    assert!(FastScanCodes::new(&arena[..7], m).is_err(), "ragged arena");
    let pq8 =
        PqQuantizer::train_with(&gen::gaussian(300, 12, 1), Metric::L2, 6, 8, &quick(2)).expect("train");
    assert!(FastScanCodes::from_pq(&pq8, &[0; 12]).is_err(), "8-bit codes");
    assert!(QuantizedLut::from_estimator(&pq8.estimator(&[0.0; 12])).is_err(), "8-bit table");
}

/// Recall of fast-scan + exact re-ranking on real embeddings (SciFact, 384-d, cosine).
#[test]
fn fastscan_rerank_recall_on_scifact() {
    let Some(dir) = quarry_testkit::shared_data::require("scifact") else { return };
    let base = quarry_testkit::shared_data::load_npy_rows(&dir.join("corpus_embeddings.npy"), 6000);
    let queries = quarry_testkit::shared_data::load_npy_rows(&dir.join("query_embeddings.npy"), 60);
    let pq = PqQuantizer::train_with(&base, Metric::Cosine, 96, 4, &quick(10)).expect("train");
    let arena = encode_all(&pq, &base);
    let codes = FastScanCodes::from_pq(&pq, &arena).expect("codes");
    let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
    let (mut hits_before, mut hits_after) = (0usize, 0usize);
    for q in queries.iter() {
        let mut exact: Vec<(f32, u32)> =
            base.iter().enumerate().map(|(i, x)| (-dot(q, x), i as u32)).collect();
        exact.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let truth: std::collections::HashSet<u32> = exact[..10].iter().map(|e| e.1).collect();
        let qlut = QuantizedLut::from_estimator(&pq.estimator(q)).expect("lut");
        let cand = top_candidates(&codes, &qlut, 100);
        hits_before += cand[..10].iter().filter(|(_, id)| truth.contains(id)).count();
        let mut rescored: Vec<(f32, u32)> =
            cand.iter().map(|&(_, id)| (-dot(q, base.row(id as usize)), id)).collect();
        rescored.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        hits_after += rescored[..10].iter().filter(|(_, id)| truth.contains(id)).count();
    }
    let total = (10 * queries.rows()) as f64;
    let (before, after) = (hits_before as f64 / total, hits_after as f64 / total);
    eprintln!(
        "scifact PQ4x96 fast-scan recall@10: {before:.3} before re-rank, {after:.3} after re-ranking 100"
    );
    assert!(after >= before, "re-ranking lowered recall");
    assert!(after >= 0.95, "recall@10 after re-ranking 100 candidates: {after}");
}

/// Speed of the fast-scan kernels on 100k vectors with m = 96 (384-d at 4 dims per subspace).
/// Printed, not asserted.
#[test]
fn fastscan_timing_100k_m96() {
    let m = 96;
    let mut rng = SmallRng::seed_from_u64(42);
    let lut: Vec<f32> = (0..m * 16).map(|_| rng.random::<f32>()).collect();
    let qlut = QuantizedLut::new(&lut, m).expect("lut");
    let time = |f: &mut dyn FnMut()| {
        (0..7)
            .map(|_| {
                let t = std::time::Instant::now();
                f();
                t.elapsed().as_secs_f64() * 1e3
            })
            .fold(f64::INFINITY, f64::min)
    };
    // 100k codes (4.8 MB, from L3) and 10k (480 KB, L2-resident).
    for n in [100_000, 10_000] {
        let arena = random_arena(&mut rng, n, m);
        let codes = FastScanCodes::new(&arena, m).expect("codes");
        assert_eq!(codes.as_bytes().len(), n.div_ceil(BLOCK) * BLOCK * m / 2);
        let mut out = vec![0u16; n];
        for k in supported_kernels() {
            if k == ScanKernel::Scalar {
                continue;
            }
            let ms = time(&mut || codes.scan_with(k, &qlut, &mut out).expect("kernel"));
            let top = time(&mut || {
                std::hint::black_box(top_candidates_with(&codes, &qlut, 100, k));
            });
            eprintln!(
                "fast-scan {:>6}: scan {n} x m={m} in {ms:.3} ms ({:.2} GB/s), top-100 in {top:.3} ms",
                k.name(),
                codes.as_bytes().len() as f64 / (ms * 1e6)
            );
        }
    }
    let n = 100_000;
    let est_time = {
        let base = gen::gaussian(2000, 384, 1);
        let pq = PqQuantizer::train_with(&base, Metric::L2, m, 4, &quick(3)).expect("train");
        let small = encode_all(&pq, &base);
        let est = pq.estimator(base.row(0));
        let mut keys = vec![0.0f32; 2000];
        time(&mut || {
            est.keys(&small, pq.code_len(), &mut keys);
            std::hint::black_box(&mut keys);
        }) * (n as f64 / 2000.0)
    };
    eprintln!(
        "float ADC (4-bit, m={m}) over {n} codes, extrapolated: {est_time:.3} ms; best kernel {:?}",
        ScanKernel::best()
    );
}
