//! Tests of RaBitQ (Gao & Long, SIGMOD 2024) and extended RaBitQ (Gao et al., SIGMOD 2025):
//! rotation orthogonality, `<o_bar,o>` statistics, unbiasedness, bound coverage, the bit-plane
//! formula, optimality of the critical-value sweep, error per bit, SIMD = scalar, layouts,
//! real-data recall and serialisation.

use super::ext::{best_magnitudes, round_at, sweep_range};
use super::kernels::{scalar, CodeKernels};
use super::layout::{pack, packed_len, unpack, Factors, FACTOR_BYTES};
use super::*;
use crate::{encode_all, Estimator, Quantizer};
use quarry_testkit::gen;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

fn exact_key(metric: Metric, q: &[f32], x: &[f32]) -> f64 {
    match metric {
        Metric::L2 => q.iter().zip(x).map(|(&a, &b)| (a as f64 - b as f64).powi(2)).sum(),
        _ => -q.iter().zip(x).map(|(&a, &b)| a as f64 * b as f64).sum::<f64>(),
    }
}

fn dot64(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(&x, &y)| x as f64 * y as f64).sum()
}

fn train(data: &Matrix, metric: Metric, bits: u8, seed: u64) -> RaBitQuantizer {
    RaBitQuantizer::train(data, metric, bits, seed).expect("valid training arguments")
}

/// The key computed in f64 from the definitions, for a given `<y, q'>`.
fn key_from_ip(quant: &RaBitQuantizer, q: &[f32], f: &Factors, ip_y: f64) -> f64 {
    let c = quant.centroid();
    match quant.metric() {
        Metric::L2 => {
            let qc: f64 = q.iter().zip(c).map(|(&a, &b)| (a as f64 - b as f64).powi(2)).sum();
            f.add as f64 + qc - 2.0 * f.rescale as f64 * ip_y
        }
        _ => -(f.add as f64 + dot64(c, q) + f.rescale as f64 * ip_y),
    }
}

/// `y = x_u + c_B` of a code, in f64.
fn grid_vector(quant: &RaBitQuantizer, code: &[u8]) -> Vec<f64> {
    let mut values = vec![0u8; quant.padded_dim()];
    unpack(quant.bits(), &code[FACTOR_BYTES..], &mut values);
    let offset = -(((1u32 << quant.bits()) - 1) as f64) / 2.0;
    values.iter().map(|&v| v as f64 + offset).collect()
}

fn with_kernels(quant: &RaBitQuantizer, k: CodeKernels) -> RaBitQuantizer {
    let mut q = quant.clone();
    q.kernels = Box::leak(Box::new(k));
    q
}

#[test]
fn rotation_is_orthogonal_and_invertible() {
    for (d, seed) in [(64, 1u64), (128, 2), (192, 3), (384, 4)] {
        let r = Rotation::new(d, seed).expect("valid dimension");
        // Row i = P^T e_i; P^T is orthogonal iff these rows are orthonormal.
        let rows: Vec<Vec<f32>> = (0..d)
            .map(|i| {
                let mut e = vec![0.0f32; d];
                e[i] = 1.0;
                r.rotate(&mut e);
                e
            })
            .collect();
        let mut worst = 0.0f64;
        for i in 0..d {
            for j in 0..d {
                let expect = if i == j { 1.0 } else { 0.0 };
                worst = worst.max((dot64(&rows[i], &rows[j]) - expect).abs());
            }
        }
        assert!(worst < 1e-5, "D={d}: R^T R differs from I by {worst}");
        // It mixes: no basis vector stays concentrated on few coordinates.
        let peak = rows.iter().flatten().fold(0.0f32, |m, &x| m.max(x.abs()));
        assert!(peak < 0.5, "D={d}: a rotated basis vector keeps a coordinate of {peak}");

        let mut rng = SmallRng::seed_from_u64(seed);
        for _ in 0..10 {
            let x: Vec<f32> = (0..d).map(|_| rng.random::<f32>() - 0.5).collect();
            let y: Vec<f32> = (0..d).map(|_| rng.random::<f32>() - 0.5).collect();
            let mut rx = x.clone();
            r.rotate(&mut rx);
            let (nx, nrx) = (dot64(&x, &x).sqrt(), dot64(&rx, &rx).sqrt());
            assert!((nx - nrx).abs() <= 1e-5 * nx, "D={d}: norm {nx} became {nrx}");
            // unrotate is the transpose: <P^T x, y> = <x, P y>.
            let mut py = y.clone();
            r.unrotate(&mut py);
            assert!((dot64(&rx, &y) - dot64(&x, &py)).abs() < 1e-5 * nx * dot64(&y, &y).sqrt());
            let mut back = rx.clone();
            r.unrotate(&mut back);
            let diff = x.iter().zip(&back).fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
            assert!(diff < 1e-5, "D={d}: unrotate(rotate(x)) off by {diff}");
        }
        let copy = Rotation::from_bytes(&r.to_bytes()).expect("round trip");
        assert_eq!(copy, r);
        assert_ne!(Rotation::new(d, seed + 100).expect("valid"), r, "the seed must matter");
    }
    for bad in [0, 63, 100] {
        assert!(Rotation::new(bad, 0).is_err(), "dimension {bad} must be rejected");
    }
}

#[test]
fn one_bit_obar_o_matches_theory_at_d1024() {
    let data = gen::gaussian(1000, 1024, 5);
    let quant = train(&data, Metric::L2, 1, 9);
    let d = quant.padded_dim() as f64;
    let mut sum = 0.0;
    for x in data.iter() {
        let e = quant.encode_parts(x);
        assert!(e.obar_o > 0.0 && e.obar_o <= 1.0, "<o_bar,o> = {}", e.obar_o);
        // Plain RaBitQ in closed form: sign bits, <o_bar,o> = Σ|o'_i|/√D, rescale = |r|/<y,o'>.
        let closed = e.rotated.iter().map(|&v| v.abs() as f64).sum::<f64>() / d.sqrt();
        assert!((e.obar_o - closed).abs() < 1e-5, "{} vs closed form {closed}", e.obar_o);
        for (&v, &o) in e.values.iter().zip(&e.rotated) {
            assert_eq!(v, u8::from(o > 0.0));
        }
        let y_dot_o = 0.5 * closed * d.sqrt();
        assert!(
            (e.factors.rescale as f64 - e.factors.norm as f64 / y_dot_o).abs()
                < 1e-4 * e.factors.rescale as f64
        );
        sum += e.obar_o;
    }
    let mean = sum / data.rows() as f64;
    println!("mean <o_bar,o> at D=1024: {mean:.4}");
    assert!((mean - 0.798).abs() < 0.01, "mean <o_bar,o> = {mean}");
}

#[test]
fn estimates_are_unbiased_over_rotations() {
    let data = gen::gaussian(64, 100, 7);
    for bits in [1u8, 4] {
        for metric in [Metric::L2, Metric::InnerProduct] {
            let pairs = [(0usize, 10usize), (1, 11), (2, 12)];
            let mut errors = vec![Vec::new(); pairs.len()];
            for seed in 0..200u64 {
                let quant = train(&data, metric, bits, seed);
                let mut code = vec![0u8; quant.code_len()];
                for (p, &(o, q)) in pairs.iter().enumerate() {
                    quant.encode(data.row(o), &mut code);
                    let est = quant.estimator(data.row(q)).key(&code) as f64;
                    errors[p].push(est - exact_key(metric, data.row(q), data.row(o)));
                }
            }
            for (p, e) in errors.iter().enumerate() {
                let n = e.len() as f64;
                let mean = e.iter().sum::<f64>() / n;
                let var = e.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
                let se = (var / n).sqrt();
                assert!(
                    mean.abs() <= 3.0 * se,
                    "bits {bits} {metric} pair {p}: mean error {mean:.4} exceeds 3 SE ({se:.4})"
                );
            }
        }
    }
}

/// Bound violations of `quant` with `eps0`: the fractions of (o, q) pairs whose exact key lies
/// outside `[lower, 2·est − lower]` (two-sided) and below `lower` (the pruning failure).
fn violation_rates(
    quant: &RaBitQuantizer,
    eps0: f32,
    codes: &[u8],
    queries: &Matrix,
    exact: &[Vec<f64>],
) -> (f64, f64) {
    let mut quant = quant.clone();
    quant.set_eps0(eps0).expect("valid eps0");
    let (mut outside, mut below, mut pairs) = (0usize, 0usize, 0usize);
    for (qi, q) in queries.iter().enumerate() {
        let est = quant.estimator(q);
        for (i, code) in codes.chunks_exact(quant.code_len()).enumerate() {
            let (k, lower) = est.key_and_bound(code);
            let (k, lower, x) = (k as f64, lower as f64, exact[qi][i]);
            assert!(lower <= k, "the lower bound exceeds the estimate");
            let tol = 1e-5 * (x.abs() + 1.0);
            below += usize::from(x < lower - tol);
            outside += usize::from(x < lower - tol || x > 2.0 * k - lower + tol);
            pairs += 1;
        }
    }
    (outside as f64 / pairs as f64, below as f64 / pairs as f64)
}

fn exact_keys(metric: Metric, base: &Matrix, queries: &Matrix) -> Vec<Vec<f64>> {
    queries.iter().map(|q| base.iter().map(|x| exact_key(metric, q, x)).collect()).collect()
}

/// Two-sided tail `P(|Z| > z)` of a standard normal (Abramowitz–Stegun 7.1.26 erfc, error < 1e-6).
fn normal_two_sided_tail(z: f64) -> f64 {
    let x = z / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * x);
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736 + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    poly * (-x * x).exp()
}

/// The estimator's error is close to normal with standard deviation `bound(eps0 = 1)` (times
/// `sqrt(1 − <o,q>²)`), so with the reference `eps0 = 1.9` about `P(|Z| > 1.9) ≈ 5.7%` of pairs
/// fall outside the two-sided bound and half of those below the lower bound, far more than 0.1%.
/// This checks the rates against that prediction, and that a wider `eps0 = 4` (normal tail 6e-5)
/// gives < 0.1%.
#[test]
fn error_bound_coverage_on_synthetic_data() {
    let base = gen::gaussian(2000, 200, 11);
    let queries = gen::gaussian(50, 200, 12);
    let predicted = normal_two_sided_tail(REFERENCE_EPS0 as f64);
    for metric in [Metric::L2, Metric::InnerProduct] {
        let exact = exact_keys(metric, &base, &queries);
        for bits in [1u8, 4] {
            let quant = train(&base, metric, bits, 5);
            let codes = encode_all(&quant, &base);
            let (outside, below) = violation_rates(&quant, REFERENCE_EPS0, &codes, &queries, &exact);
            let (wide, _) = violation_rates(&quant, 4.0, &codes, &queries, &exact);
            let (engine, engine_below) = violation_rates(&quant, DEFAULT_EPS0, &codes, &queries, &exact);
            assert!(engine <= 0.01, "synthetic bits {bits}: {engine} outside the default eps0 bound");
            println!(
                "synthetic {metric} bits {bits}: default eps0 {DEFAULT_EPS0}: {:.3}% outside, {:.3}% below the lower bound",
                100.0 * engine,
                100.0 * engine_below
            );
            println!(
                "synthetic {metric} bits {bits}: eps0 1.9: {:.3}% outside the bound, {:.3}% below the lower bound \
                 (normal prediction {:.3}% / {:.3}%); eps0 4: {:.4}% outside",
                100.0 * outside,
                100.0 * below,
                100.0 * predicted,
                50.0 * predicted,
                100.0 * wide
            );
            assert!(
                outside > 0.5 * predicted && outside < 1.5 * predicted,
                "{metric} bits {bits}: {outside} outside the eps0 = 1.9 bound, normal theory says {predicted}"
            );
            assert!(below < 0.75 * predicted, "{metric} bits {bits}: {below} below the lower bound");
            assert!(wide < 0.001, "{metric} bits {bits}: {wide} outside the eps0 = 4 bound");
        }
    }
}

#[test]
fn bit_plane_formula_equals_float_computation() {
    for (dim, seed) in [(64usize, 1u64), (384, 2), (1000, 3)] {
        let data = gen::gaussian(20, dim, seed);
        let base = train(&data, Metric::L2, 1, seed);
        let d = base.padded_dim();
        let words = d / 64;
        for k in CodeKernels::supported() {
            let quant = with_kernels(&base, k);
            let est = quant.estimator(data.row(0));
            let (planes, delta, low) = est.one_bit_parts().expect("1-bit estimator");
            let qbar = est.quantized_query().expect("1-bit estimator");
            let qu: Vec<u32> = (0..d)
                .map(|i| (0..4).map(|j| (((planes[j * words + i / 64] >> (i % 64)) & 1) as u32) << j).sum())
                .collect();
            let sum_qu: u32 = qu.iter().sum();
            let mut code = vec![0u8; quant.code_len()];
            for x in data.iter().skip(1) {
                quant.encode(x, &mut code);
                let packed = &code[FACTOR_BYTES..];
                let mut xb = vec![0u8; d];
                unpack(1, packed, &mut xb);
                let (ip, count) = (k.planes)(packed, planes);
                let naive: u32 = xb.iter().zip(&qu).map(|(&b, &q)| b as u32 * q).sum();
                assert_eq!(ip, naive, "{:?}: <xb, qu>", k.level);
                assert_eq!(count, xb.iter().map(|&b| b as u32).sum::<u32>());
                // <x_bar, q_bar> from the bit planes of the 4-bit query (Gao & Long, SIGMOD 2024)
                // vs in floats.
                let sd = (d as f64).sqrt();
                let (dl, vl) = (delta as f64, low as f64);
                let formula = 2.0 * dl / sd * ip as f64 + 2.0 * vl / sd * count as f64
                    - dl / sd * sum_qu as f64
                    - sd * vl;
                let float: f64 =
                    xb.iter().zip(&qbar).map(|(&b, &q)| (2.0 * b as f64 - 1.0) / sd * q as f64).sum();
                assert!((formula - float).abs() < 1e-5 * (1.0 + float.abs()), "{formula} vs {float}");
                // And the estimator's key is the key of <y, q_bar> with y = xb − 1/2.
                let ip_y = float * sd / 2.0;
                let expect = key_from_ip(&quant, data.row(0), &Factors::read(&code), ip_y);
                let got = est.key(&code) as f64;
                assert!((got - expect).abs() < 1e-4 * (1.0 + expect.abs()), "key {got} vs {expect}");
            }
        }
    }
}

#[test]
fn sweep_beats_every_rounding_on_a_fine_grid() {
    let mut rng = SmallRng::seed_from_u64(3);
    for d in 2..=16usize {
        for ex in 1..=4u32 {
            for _ in 0..10 {
                let a: Vec<f32> = (0..d).map(|_| (rng.random::<f32>() - 0.5).abs() + 1e-3).collect();
                let a_norm = dot64(&a, &a).sqrt();
                let m = best_magnitudes(&a, ex);
                assert!(m.u.iter().all(|&u| u < 1 << ex));
                let direct: f64 = m.u.iter().zip(&a).map(|(&u, &x)| (u as f64 + 0.5) * x as f64).sum();
                assert!((direct - m.dot).abs() < 1e-9);
                let best = m.cosine(a_norm);
                let (t0, t1) = sweep_range(&a, ex).expect("positive magnitudes");
                for s in 0..=2000 {
                    let t = t0 + (t1 - t0) * s as f64 / 2000.0;
                    let u = round_at(&a, ex, t);
                    let num: f64 = u.iter().zip(&a).map(|(&u, &x)| (u as f64 + 0.5) * x as f64).sum();
                    let sq: f64 = u.iter().map(|&u| (u as f64 + 0.5).powi(2)).sum();
                    let cos = num / (sq.sqrt() * a_norm);
                    assert!(cos <= best + 1e-12, "D={d} ex={ex} t={t}: {cos} beats the sweep's {best}");
                }
            }
        }
    }
}

#[test]
fn error_halves_per_extra_bit() {
    let base = gen::gaussian(300, 256, 21);
    let queries = gen::gaussian(20, 256, 22);
    let exact = exact_keys(Metric::L2, &base, &queries);
    let mut rms = Vec::new();
    for bits in [1u8, 2, 3, 4, 6, 8] {
        let quant = train(&base, Metric::L2, bits, 8);
        let codes = encode_all(&quant, &base);
        let mut sq = 0.0;
        for (qi, q) in queries.iter().enumerate() {
            let est = quant.estimator(q);
            for (i, code) in codes.chunks_exact(quant.code_len()).enumerate() {
                sq += (est.key(code) as f64 - exact[qi][i]).powi(2);
            }
        }
        rms.push((bits, (sq / (base.rows() * queries.rows()) as f64).sqrt()));
    }
    println!("RMS key error by bits: {rms:?}");
    for w in rms.windows(2) {
        let ((b0, e0), (b1, e1)) = (w[0], w[1]);
        println!("bits {b0} -> {b1}: error ratio {:.2}", e0 / e1);
        assert!(e1 < e0, "error did not fall from {b0} to {b1} bits");
        if b1 <= 4 {
            assert!(e0 / e1 >= 1.5, "bits {b0} -> {b1}: ratio {:.2} < 1.5", e0 / e1);
        }
    }
}

#[test]
fn kernel_paths_agree_with_float_definitions() {
    let data = gen::gaussian(30, 150, 31);
    for bits in 1..=8u8 {
        for metric in [Metric::L2, Metric::InnerProduct] {
            let quant = train(&data, metric, bits, 77);
            let q = data.row(0);
            let est = quant.estimator(q);
            let rotated = est.rotated();
            let mut code = vec![0u8; quant.code_len()];
            for x in data.iter().skip(1) {
                quant.encode(x, &mut code);
                let f = Factors::read(&code);
                let y = grid_vector(&quant, &code);
                // The float-query key from <y, q'> computed in f64.
                let float_key =
                    key_from_ip(&quant, q, &f, y.iter().zip(rotated).map(|(&a, &b)| a * b as f64).sum());
                let got = est.key(&code) as f64;
                if bits == 1 {
                    // Popcount path on the 4-bit query: differs only by the query rounding,
                    // |<y, q' − q_bar>| <= Σ|q'_i − q_bar_i| / 2.
                    let qbar = est.quantized_query().expect("1-bit estimator");
                    let rounding: f64 = rotated.iter().zip(&qbar).map(|(&a, &b)| (a - b).abs() as f64).sum();
                    let slack =
                        (if metric == Metric::L2 { 2.0 } else { 1.0 }) * f.rescale as f64 * rounding / 2.0;
                    assert!((got - float_key).abs() <= slack + 1e-3, "{got} vs {float_key} (slack {slack})");
                    // The bit-stream kernel on the same code with q_bar reproduces the popcounts.
                    let (planes, delta, low) = est.one_bit_parts().expect("1-bit estimator");
                    let (ip, count) = scalar::bitplanes(&code[FACTOR_BYTES..], planes);
                    let stream = scalar::dot_bits(&code[FACTOR_BYTES..], &qbar) as f64;
                    let ints = delta as f64 * ip as f64 + low as f64 * count as f64;
                    assert!((stream - ints).abs() < 1e-4 * (1.0 + ints.abs()), "{stream} vs {ints}");
                } else {
                    assert!(
                        (got - float_key).abs() < 1e-4 * (1.0 + float_key.abs()),
                        "bits {bits} {metric}: key {got} vs float {float_key}"
                    );
                }
            }
        }
    }
}

#[test]
fn simd_kernels_equal_scalar() {
    let mut rng = SmallRng::seed_from_u64(41);
    let kernels = CodeKernels::supported();
    println!("code kernel levels here: {:?}", kernels.iter().map(|k| k.level).collect::<Vec<_>>());
    for d in [64usize, 128, 384, 1024] {
        let q: Vec<f32> = (0..d).map(|_| rng.random::<f32>() * 2.0 - 1.0).collect();
        for bits in 1..=8u8 {
            let values: Vec<u8> = (0..d).map(|_| rng.random_range(0..1u32 << bits) as u8).collect();
            let mut packed = vec![0u8; packed_len(d, bits)];
            pack(bits, &values, &mut packed);
            let naive: f64 = values.iter().zip(&q).map(|(&v, &x)| v as f64 * x as f64).sum();
            let scale: f64 = values.iter().zip(&q).map(|(&v, &x)| (v as f64 * x as f64).abs()).sum();
            for k in &kernels {
                let got = (k.dot_for(bits))(&packed, &q) as f64;
                assert!(
                    (got - naive).abs() <= 1e-5 * scale + 1e-6,
                    "{:?} bits {bits} D={d}: {got} vs {naive}",
                    k.level
                );
            }
        }
    }
    for words in [1usize, 2, 6, 7, 8, 9, 16, 17] {
        for _ in 0..5 {
            let code: Vec<u8> = (0..8 * words).map(|_| rng.random()).collect();
            let planes: Vec<u64> = (0..4 * words).map(|_| rng.random()).collect();
            let reference = scalar::bitplanes(&code, &planes);
            for k in &kernels {
                assert_eq!((k.planes)(&code, &planes), reference, "{:?}, {words} words", k.level);
            }
        }
    }
}

#[test]
fn packed_layouts_round_trip_and_match_the_spec() {
    let mut rng = SmallRng::seed_from_u64(51);
    for bits in 1..=8u8 {
        for d in [64usize, 192, 384] {
            let values: Vec<u8> = (0..d).map(|_| rng.random_range(0..1u32 << bits) as u8).collect();
            let mut packed = vec![0u8; packed_len(d, bits)];
            pack(bits, &values, &mut packed);
            let mut back = vec![0u8; d];
            unpack(bits, &packed, &mut back);
            assert_eq!(back, values, "bits {bits} D={d}");
        }
    }
    // Spot checks of the documented positions, one value set at a time.
    let position = |bits: u8, i: usize, value: u8| {
        let mut values = vec![0u8; 128];
        values[i] = value;
        let mut packed = vec![0u8; packed_len(128, bits)];
        pack(bits, &values, &mut packed);
        let byte = packed.iter().position(|&b| b != 0).expect("one bit set");
        assert_eq!(packed[byte].count_ones(), 1);
        (byte, packed[byte].trailing_zeros())
    };
    assert_eq!(position(8, 37, 1), (37, 0));
    assert_eq!(position(4, 5, 1), (5, 0));
    assert_eq!(position(4, 16 + 5, 1), (5, 4));
    assert_eq!(position(4, 32 + 16 + 5, 1), (16 + 5, 4));
    assert_eq!(position(2, 3 * 16 + 7, 1), (7, 6));
    assert_eq!(position(2, 64 + 16 + 2, 1), (16 + 2, 2));
    assert_eq!(position(1, 70, 1), (8, 6));
    // Split layouts: parts of 2+1, 4+1, 4+2, 4+2+1 bits, each over all 128 values.
    assert_eq!(position(3, 5, 1), (5, 0));
    assert_eq!(position(3, 70, 4), (32 + 8, 6));
    assert_eq!(position(5, 70, 16), (64 + 8, 6));
    assert_eq!(position(6, 64 + 16 + 2, 16), (64 + 18, 2));
    assert_eq!(position(7, 5, 64), (64 + 32, 5));
    assert_eq!(position(7, 33, 32), (64 + 1, 5)); // slot 2 of byte 1, upper bit of the pair
}

#[test]
fn real_data_bounds_and_recall() {
    let Some(dir) = quarry_testkit::shared_data::require("wndict-384") else { return };
    let base = quarry_testkit::shared_data::load_npy_rows(&dir.join("base.f16.npy"), 10_000);
    let queries = quarry_testkit::shared_data::load_npy_rows(&dir.join("query.f16.npy"), 100);
    let dot = quarry_linalg::Kernels::get().dot;
    let exact: Vec<Vec<f64>> =
        queries.iter().map(|q| base.iter().map(|x| -(dot(q, x) as f64)).collect()).collect();
    let top10 = |keys: &[f64]| {
        let mut ids: Vec<usize> = (0..keys.len()).collect();
        ids.sort_by(|&a, &b| keys[a].total_cmp(&keys[b]).then(a.cmp(&b)));
        ids.truncate(10);
        ids
    };
    let truth: Vec<Vec<usize>> = exact.iter().map(|k| top10(k)).collect();
    let mut recalls = Vec::new();
    for bits in [1u8, 2, 4, 8] {
        let start = std::time::Instant::now();
        let quant = train(&base, Metric::InnerProduct, bits, 42);
        let codes = encode_all(&quant, &base);
        let encode_time = start.elapsed();
        let mut hits = 0usize;
        let mut keys = vec![0.0f32; base.rows()];
        for (qi, q) in queries.iter().enumerate() {
            quant.estimator(q).keys(&codes, quant.code_len(), &mut keys);
            let keys: Vec<f64> = keys.iter().map(|&k| k as f64).collect();
            hits += top10(&keys).iter().filter(|i| truth[qi].contains(i)).count();
        }
        let recall = hits as f64 / (10 * queries.rows()) as f64;
        let rate = if bits == 1 || bits == 4 {
            let (outside, below) = violation_rates(&quant, REFERENCE_EPS0, &codes, &queries, &exact);
            let (wide, _) = violation_rates(&quant, 4.0, &codes, &queries, &exact);
            let (engine, engine_below) = violation_rates(&quant, DEFAULT_EPS0, &codes, &queries, &exact);
            // The rule: Quarry's bound holds for at least 99% of pairs on real data.
            assert!(engine <= 0.01, "wndict bits {bits}: {engine} outside the default eps0 bound");
            println!(
                "wndict bits {bits}: default eps0 {DEFAULT_EPS0}: {:.3}% outside, {:.3}% below the lower bound",
                100.0 * engine,
                100.0 * engine_below
            );
            assert!(outside < 0.1, "wndict bits {bits}: {outside} outside the eps0 = 1.9 bound");
            assert!(wide <= 0.01, "wndict bits {bits}: {wide} outside the eps0 = 4 bound");
            format!(
                "eps0 1.9: {:.3}% outside / {:.3}% below the lower bound; eps0 4: {:.4}% outside",
                100.0 * outside,
                100.0 * below,
                100.0 * wide
            )
        } else {
            String::new()
        };
        println!("wndict-384 10k: bits {bits}: recall@10 {recall:.3}, train+encode {encode_time:.2?} {rate}");
        recalls.push(recall);
    }
    assert!(recalls[2] >= 0.85, "bits 4 recall@10 {} < 0.85", recalls[2]);
    for w in recalls.windows(2) {
        assert!(w[1] >= w[0] - 0.01, "recall fell with more bits: {recalls:?}");
    }
}

#[test]
fn decode_approximates_and_improves_with_bits() {
    let data = gen::gaussian(50, 100, 61);
    let mut previous = f64::INFINITY;
    for bits in [1u8, 2, 4, 8] {
        let quant = train(&data, Metric::L2, bits, 3);
        let mut code = vec![0u8; quant.code_len()];
        let mut out = vec![0.0f32; 100];
        let mut rel = 0.0;
        for x in data.iter() {
            quant.encode(x, &mut code);
            quant.decode(&code, &mut out);
            let r: Vec<f32> = x.iter().zip(quant.centroid()).map(|(a, b)| a - b).collect();
            let err = x.iter().zip(&out).map(|(&a, &b)| (a as f64 - b as f64).powi(2)).sum::<f64>().sqrt();
            rel += err / dot64(&r, &r).sqrt();
        }
        rel /= data.rows() as f64;
        println!("decode relative error at {bits} bits: {rel:.4}");
        assert!(rel < previous, "decode error did not fall at {bits} bits");
        previous = rel;
    }
    assert!(previous < 0.05, "8-bit decode relative error {previous}");
}

#[test]
fn centroid_is_exact_and_cosine_matches_inner_product() {
    let mut data = gen::gaussian(40, 70, 71);
    for row in data.as_mut_slice().chunks_exact_mut(70) {
        let n = dot64(row, row).sqrt() as f32;
        row.iter_mut().for_each(|x| *x /= n);
    }
    for bits in [1u8, 5] {
        let ip = train(&data, Metric::InnerProduct, bits, 4);
        let cos = train(&data, Metric::Cosine, bits, 4);
        let codes_ip = encode_all(&ip, &data);
        assert_eq!(codes_ip, encode_all(&cos, &data));
        let (e_ip, e_cos) = (ip.estimator(data.row(3)), cos.estimator(data.row(3)));
        for code in codes_ip.chunks_exact(ip.code_len()) {
            assert_eq!(e_ip.key_and_bound(code), e_cos.key_and_bound(code));
        }
        // A vector equal to the centroid has a zero residual: its key is exact.
        for metric in [Metric::L2, Metric::InnerProduct] {
            let quant = train(&data, metric, bits, 4);
            let c = quant.centroid().to_vec();
            let mut code = vec![0u8; quant.code_len()];
            quant.encode(&c, &mut code);
            let (k, lower) = quant.estimator(data.row(5)).key_and_bound(&code);
            let x = exact_key(metric, data.row(5), &c);
            assert!((k as f64 - x).abs() < 1e-5 && k == lower, "{metric}: {k} vs {x}");
        }
    }
}

#[test]
fn training_rejects_bad_arguments() {
    let data = gen::gaussian(10, 8, 1);
    for bits in [0u8, 9, 255] {
        assert!(RaBitQuantizer::train(&data, Metric::L2, bits, 0).is_err(), "bits {bits}");
    }
    let empty = Matrix::new(Vec::new(), 8).expect("empty matrix");
    assert!(RaBitQuantizer::train(&empty, Metric::L2, 1, 0).is_err());
    let mut nan = data.clone();
    nan.as_mut_slice()[13] = f32::NAN;
    let err = RaBitQuantizer::train(&nan, Metric::L2, 1, 0).expect_err("NaN");
    assert!(err.to_string().contains("training vector 1"), "{err}");
    let mut quant = train(&data, Metric::L2, 2, 0);
    assert_eq!(quant.eps0(), DEFAULT_EPS0);
    assert!(quant.set_eps0(-1.0).is_err() && quant.set_eps0(f32::NAN).is_err());
    quant.set_eps0(3.0).expect("valid eps0");
    assert_eq!(quant.eps0(), 3.0);
    assert_eq!((quant.dim(), quant.padded_dim(), quant.code_len()), (8, 64, FACTOR_BYTES + 16));
}

#[test]
fn serialization_round_trips_and_rejects_garbage() {
    let data = gen::gaussian(40, 100, 81);
    for bits in [1u8, 3, 4] {
        let mut quant = train(&data, Metric::L2, bits, 17);
        quant.set_eps0(2.5).expect("valid eps0");
        let bytes = quant.to_bytes();
        let copy = RaBitQuantizer::from_bytes(&bytes).expect("round trip");
        assert_eq!(copy.to_bytes(), bytes);
        assert_eq!((copy.bits(), copy.eps0(), copy.seed(), copy.metric()), (bits, 2.5, 17, Metric::L2));
        let codes = encode_all(&quant, &data);
        assert_eq!(encode_all(&copy, &data), codes);
        let (a, b) = (quant.estimator(data.row(1)), copy.estimator(data.row(1)));
        for code in codes.chunks_exact(quant.code_len()) {
            assert_eq!(a.key_and_bound(code), b.key_and_bound(code));
        }
    }
    let bytes = train(&data, Metric::InnerProduct, 2, 5).to_bytes();
    for n in 0..bytes.len() {
        assert!(RaBitQuantizer::from_bytes(&bytes[..n]).is_err(), "truncated to {n} bytes");
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(RaBitQuantizer::from_bytes(&longer).is_err());
    let corrupt = |offset: usize, value: &[u8]| {
        let mut b = bytes.clone();
        b[offset..offset + value.len()].copy_from_slice(value);
        RaBitQuantizer::from_bytes(&b)
    };
    assert!(corrupt(0, b"RX").is_err(), "tag");
    assert!(corrupt(2, &[2]).is_err(), "version");
    assert!(corrupt(3, &[0]).is_err() && corrupt(3, &[9]).is_err(), "bits");
    assert!(corrupt(4, &[3]).is_err(), "metric");
    assert!(corrupt(5, &[1]).is_err(), "reserved");
    assert!(corrupt(8, &0u32.to_le_bytes()).is_err(), "dim 0");
    assert!(corrupt(8, &u32::MAX.to_le_bytes()).is_err(), "huge dim");
    assert!(corrupt(12, &64u32.to_le_bytes()).is_err(), "padded mismatch");
    assert!(corrupt(24, &f32::NAN.to_le_bytes()).is_err(), "eps0 NaN");
    assert!(corrupt(24, &(-1.0f32).to_le_bytes()).is_err(), "eps0 negative");
    assert!(corrupt(28, &u32::MAX.to_le_bytes()).is_err(), "rotation length");
    assert!(corrupt(32 + 8, &f32::INFINITY.to_le_bytes()).is_err(), "centroid");
    assert!(corrupt(32 + 400, &64u32.to_le_bytes()).is_err(), "rotation dimension");
    assert!(corrupt(32 + 404, &5u32.to_le_bytes()).is_err(), "rotation rounds");
    let mut rng = SmallRng::seed_from_u64(82);
    for _ in 0..2000 {
        let n = rng.random_range(0..600);
        let mut b: Vec<u8> = (0..n).map(|_| rng.random()).collect();
        if rng.random::<bool>() && n >= 32 {
            b[..32].copy_from_slice(&bytes[..32]);
        }
        let _ = RaBitQuantizer::from_bytes(&b);
        let _ = Rotation::from_bytes(&b);
    }
}

/// Timing of the estimators (run with `--release -- --ignored rabitq::tests::timing`): the
/// minimum over repeated passes, so that other load on the machine does not count.
#[test]
#[ignore]
fn timing() {
    let base = gen::gaussian(2000, 384, 91);
    let q = gen::gaussian(1, 384, 92);
    let min_time = |reps: usize, f: &mut dyn FnMut()| {
        (0..reps)
            .map(|_| {
                let start = std::time::Instant::now();
                f();
                start.elapsed().as_secs_f64()
            })
            .fold(f64::INFINITY, f64::min)
    };
    for bits in 1..=8u8 {
        let trained = train(&base, Metric::L2, bits, 1);
        let start = std::time::Instant::now();
        let codes = encode_all(&trained, &base);
        let encode = start.elapsed().as_secs_f64() / base.rows() as f64;
        let mut line =
            format!("D=384 bits {bits}: encode {:.1} us/vector (2 threads, loaded machine);", encode * 1e6);
        for k in CodeKernels::supported() {
            let quant = with_kernels(&trained, k);
            let prep = min_time(200, &mut || {
                std::hint::black_box(quant.estimator(q.row(0)));
            });
            let est = quant.estimator(q.row(0));
            let mut out = vec![0.0f32; base.rows()];
            let scan = min_time(50, &mut || {
                est.keys(&codes, quant.code_len(), &mut out);
                std::hint::black_box(&out);
            }) / base.rows() as f64;
            line += &format!(" {:?}: key {:.1} ns, prep {:.2} us;", k.level, scan * 1e9, prep * 1e6);
        }
        println!("{line}");
    }
}
