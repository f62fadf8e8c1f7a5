//! SQ tests: half-step reconstruction, clamping, nibble order, estimator keys against f64 keys of
//! the decoded vector, the analytical dot-product bound, SIMD == scalar, serialisation round trips
//! and rejection, and recall on real embeddings.

use super::kernels::{scalar, SqKernels};
use super::*;
use crate::Estimator;
use proptest::prelude::*;
use quarry_testkit::{gen, oracle, shared_data};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

const METRICS: [Metric; 3] = [Metric::InnerProduct, Metric::Cosine, Metric::L2];
const DIMS: [usize; 5] = [1, 7, 16, 100, 384];

/// Every level this CPU runs (scalar included).
fn levels_here() -> Vec<Isa> {
    [Isa::Scalar, Isa::Avx2, Isa::Avx512].into_iter().filter(|&i| kernels::supported(i)).collect()
}

/// Sample data for a metric: unit rows under cosine, scaled Gaussian rows otherwise.
fn sample(n: usize, dim: usize, metric: Metric, seed: u64) -> Matrix {
    let mut m = gen::gaussian(n, dim, seed);
    for row in m.as_mut_slice().chunks_exact_mut(dim) {
        let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt();
        let scale = if metric == Metric::Cosine { 1.0 / norm } else { 0.5 };
        row.iter_mut().for_each(|x| *x *= scale);
    }
    m
}

fn encode(sq: &SqQuantizer, x: &[f32]) -> Vec<u8> {
    let mut code = vec![0u8; sq.code_len()];
    sq.encode(x, &mut code);
    code
}

fn decode(sq: &SqQuantizer, code: &[u8]) -> Vec<f32> {
    let mut out = vec![0.0; sq.dim()];
    sq.decode(code, &mut out);
    out
}

#[test]
fn in_range_error_is_at_most_half_a_step() {
    let mut rng = SmallRng::seed_from_u64(1);
    for bits in [8, 4] {
        for dim in DIMS {
            let train = sample(200, dim, Metric::L2, dim as u64);
            let sq = SqQuantizer::train(&train, Metric::L2, bits).expect("train");
            // The training rows (which include every range end) and uniform in-range values.
            let uniform: Vec<Vec<f32>> = (0..50)
                .map(|_| (0..dim).map(|j| rng.random_range(sq.vmin()[j]..=sq.vmax()[j])).collect())
                .collect();
            for x in train.iter().chain(uniform.iter().map(|v| v.as_slice())) {
                let y = decode(&sq, &encode(&sq, x));
                for j in 0..dim {
                    let err = (x[j] - y[j]).abs();
                    assert!(err <= sq.step()[j] / 2.0 + 1e-6, "bits {bits} dim {dim} j {j}: {err}");
                }
            }
        }
    }
}

#[test]
fn out_of_range_values_clamp_to_the_end_cells() {
    for bits in [8u8, 4] {
        let sq = SqQuantizer::from_ranges(Metric::L2, bits, vec![-1.0, 0.0], vec![1.0, 2.0]).expect("q");
        let levels = sq.levels() as f32;
        let y = decode(&sq, &encode(&sq, &[-50.0, 1e30]));
        assert_eq!(y[0], -1.0 + 0.5 * sq.step()[0], "below vmin -> cell 0");
        assert_eq!(y[1], 0.0 + (levels + 0.5) * sq.step()[1], "above vmax -> top cell");
        // Same cells as the range ends themselves.
        assert_eq!(encode(&sq, &[-50.0, 1e30]), encode(&sq, &[-1.0, 2.0]));
    }
}

#[test]
fn nibble_order_and_code_layout() {
    // Step 1 in every dimension: cell = floor(x) for x in [0, 15].
    let sq = SqQuantizer::from_ranges(Metric::L2, 4, vec![0.0; 3], vec![15.0; 3]).expect("q");
    assert_eq!((sq.packed_len(), sq.code_len()), (2, 6));
    let code = encode(&sq, &[1.2, 14.9, 7.5]);
    assert_eq!(&code[..2], &[0xE1, 0x07], "dim 2k in the low nibble, 2k+1 in the high, odd tail 0");
    assert_eq!(decode(&sq, &code), vec![1.5, 14.5, 7.5]);
    let norm = 1.5f32 * 1.5 + 14.5 * 14.5 + 7.5 * 7.5;
    assert_eq!(&code[2..], &norm.to_le_bytes(), "trailing |x̂|², little-endian");

    let sq8 = SqQuantizer::from_ranges(Metric::InnerProduct, 8, vec![0.0; 3], vec![255.0; 3]).expect("q");
    assert_eq!((sq8.packed_len(), sq8.code_len()), (3, 3));
    assert_eq!(encode(&sq8, &[3.7, 0.0, 255.0]), vec![3, 0, 255]);

    for (dim, bits, metric, len) in [
        (7, 4, Metric::Cosine, 4),
        (7, 8, Metric::InnerProduct, 7),
        (384, 4, Metric::L2, 196),
        (1, 8, Metric::L2, 5),
    ] {
        let sq = SqQuantizer::train(&sample(3, dim, metric, 5), metric, bits).expect("train");
        assert_eq!(sq.code_len(), len, "dim {dim} bits {bits} {metric}");
    }
}

/// The key of the reconstruction `y` in f64, and the magnitude its relative tolerance scales with.
fn decoded_key(metric: Metric, q: &[f32], y: &[f32]) -> (f64, f64) {
    let dot: f64 = q.iter().zip(y).map(|(a, b)| *a as f64 * *b as f64).sum();
    let mag: f64 = q.iter().zip(y).map(|(a, b)| (*a as f64 * *b as f64).abs()).sum();
    if metric == Metric::L2 {
        let (nq, ny): (f64, f64) =
            (q.iter().map(|a| (*a as f64).powi(2)).sum(), y.iter().map(|a| (*a as f64).powi(2)).sum());
        (nq - 2.0 * dot + ny, nq + 2.0 * mag + ny)
    } else {
        (-dot, mag)
    }
}

#[test]
fn estimator_keys_match_the_decoded_vector() {
    for metric in METRICS {
        for bits in [8, 4] {
            for dim in DIMS {
                let seed = dim as u64 * 10 + bits as u64;
                let sq = SqQuantizer::train(&sample(300, dim, metric, seed), metric, bits).expect("train");
                let data = sample(60, dim, metric, seed + 1);
                let queries = sample(5, dim, metric, seed + 2);
                let codes = crate::encode_all(&sq, &data);
                for q in queries.iter() {
                    for isa in levels_here() {
                        let est = sq.estimator_for_isa(q, isa).expect("supported");
                        let mut batch = vec![0.0; data.rows()];
                        est.keys(&codes, sq.code_len(), &mut batch);
                        // 8-bit keys sum integer weights round(w_j·S): each moves by at most
                        // code_j / (2S) (and L2 keys count the inner product twice).
                        let inv_scale = match bits {
                            8 => {
                                let wmax = q
                                    .iter()
                                    .zip(&sq.step)
                                    .fold(0.0f64, |m, (a, s)| m.max((a * s).abs() as f64));
                                wmax / super::kernels::i16_weight_bound(dim) as f64
                            }
                            _ => 0.0,
                        };
                        let factor = if metric == Metric::L2 { 2.0 } else { 1.0 };
                        for (i, code) in codes.chunks_exact(sq.code_len()).enumerate() {
                            let (want, mag) = decoded_key(metric, q, &decode(&sq, code));
                            let rounding = match bits {
                                8 => {
                                    factor * code[..dim].iter().map(|&c| c as f64).sum::<f64>() * inv_scale
                                        / 2.0
                                }
                                _ => 0.0,
                            };
                            let got = est.key(code);
                            assert!(
                                (got as f64 - want).abs() <= 1e-4 * mag + 1e-6 + rounding,
                                "{metric} bits {bits} dim {dim} {isa:?} row {i}: {got} vs {want}"
                            );
                            assert_eq!(batch[i], got, "keys() == key()");
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn inner_product_error_is_within_the_analytical_bound() {
    for bits in [8, 4] {
        for dim in [16, 100, 384] {
            let data = sample(500, dim, Metric::InnerProduct, 40 + dim as u64);
            let sq = SqQuantizer::train(&data, Metric::InnerProduct, bits).expect("train");
            let queries = sample(10, dim, Metric::InnerProduct, 41);
            let mut worst = 0.0f64;
            for q in queries.iter() {
                let est = sq.estimator(q);
                // Σ_j |q_j|·step_j/2 <= |q|_1·max_step/2.
                let bound: f64 = q.iter().zip(sq.step()).map(|(a, s)| (a.abs() * s) as f64 / 2.0).sum();
                for x in data.iter() {
                    let exact = quarry_linalg::kernels::dot(q, x) as f64;
                    let got = est.inner_product(&encode(&sq, x)) as f64;
                    let mag: f64 = q.iter().zip(x).map(|(a, b)| (a * b).abs() as f64).sum();
                    assert!((got - exact).abs() <= bound + 1e-5 * mag + 1e-6, "bits {bits} dim {dim}");
                    worst = worst.max((got - exact).abs() / bound);
                }
            }
            eprintln!("SQ{bits} dim {dim}: worst |error| / bound = {worst:.3}");
        }
    }
}

#[test]
fn constant_dimension_still_encodes() {
    let rows: Vec<Vec<f32>> = (0..10).map(|i| vec![0.25, i as f32, 0.0]).collect();
    let train = Matrix::from_rows(&rows).expect("rows");
    for bits in [8, 4] {
        let sq = SqQuantizer::train(&train, Metric::L2, bits).expect("train");
        assert!(sq.step()[0] > 0.0 && sq.step()[2] > 0.0);
        for x in train.iter() {
            let y = decode(&sq, &encode(&sq, x));
            for j in [0, 2] {
                assert!((x[j] - y[j]).abs() <= sq.step()[j] / 2.0 + 1e-6, "{} vs {}", x[j], y[j]);
            }
            // |x - x̂|² <= Σ (step_j/2)², all of it from the non-constant dimension here.
            let key = sq.estimator(x).key(&encode(&sq, x));
            let bound: f32 = sq.step().iter().map(|s| s * s / 4.0).sum();
            let slack = 4e-6 * (1.0 + x.iter().map(|v| v * v).sum::<f32>()); // f32 cancellation in |q|²-2<q,x̂>+|x̂|²
            assert!(key.is_finite() && key <= bound + slack, "self key {key} > {bound} + {slack}");
        }
    }
}

#[test]
fn bad_training_input_is_rejected() {
    let ok = gen::gaussian(10, 4, 3);
    for bits in [0, 1, 2, 7, 16] {
        let err = SqQuantizer::train(&ok, Metric::L2, bits).expect_err("bits");
        assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
    }
    let empty = Matrix::new(Vec::new(), 4).expect("shape");
    assert!(matches!(SqQuantizer::train(&empty, Metric::L2, 8), Err(Error::InvalidArgument(_))));
    let nan = Matrix::new(vec![0.0, 1.0, f32::NAN, 2.0], 2).expect("shape");
    assert!(matches!(SqQuantizer::train(&nan, Metric::L2, 8), Err(Error::NonFinite { .. })));
    let huge = Matrix::new(vec![-3e38, 3e38], 1).expect("shape");
    assert!(matches!(SqQuantizer::train(&huge, Metric::L2, 8), Err(Error::InvalidArgument(_))));
}

#[test]
fn parameters_round_trip_through_bytes() {
    for metric in METRICS {
        for bits in [8, 4] {
            let data = sample(100, 37, metric, 7);
            let sq = SqQuantizer::train(&data, metric, bits).expect("train");
            let bytes = sq.to_bytes();
            assert_eq!(bytes.len(), 10 + 8 * 37);
            let back = SqQuantizer::from_bytes(&bytes).expect("read back");
            assert_eq!(back, sq);
            let q = data.row(3);
            let code = encode(&sq, data.row(5));
            assert_eq!(encode(&back, data.row(5)), code);
            assert_eq!(back.estimator(q).key(&code), sq.estimator(q).key(&code));
        }
    }
}

#[test]
fn malformed_bytes_are_errors() {
    let sq = SqQuantizer::train(&sample(20, 5, Metric::L2, 9), Metric::L2, 4).expect("train");
    let good = sq.to_bytes();
    let is_invalid = |b: &[u8]| matches!(SqQuantizer::from_bytes(b), Err(Error::InvalidArgument(_)));
    for len in 0..good.len() {
        assert!(is_invalid(&good[..len]), "truncated to {len}");
    }
    let mut long = good.clone();
    long.push(0);
    assert!(is_invalid(&long), "trailing byte");
    let patch = |at: usize, v: &[u8]| {
        let mut b = good.clone();
        b[at..at + v.len()].copy_from_slice(v);
        b
    };
    assert!(is_invalid(&patch(0, b"PQ")), "tag");
    assert!(is_invalid(&patch(2, &2u16.to_le_bytes())), "version");
    assert!(is_invalid(&patch(4, &[5])), "bits");
    assert!(is_invalid(&patch(5, &[3])), "metric");
    assert!(is_invalid(&patch(6, &0u32.to_le_bytes())), "dim 0");
    assert!(is_invalid(&patch(6, &u32::MAX.to_le_bytes())), "dim too large for the buffer");
    assert!(is_invalid(&patch(10, &f32::NAN.to_le_bytes())), "NaN vmin");
    assert!(is_invalid(&patch(10 + 20, &f32::INFINITY.to_le_bytes())), "inf vmax");
    assert!(is_invalid(&patch(10 + 20, &(-1e9f32).to_le_bytes())), "vmax < vmin");
    let wide = [patch(10, &(-3e38f32).to_le_bytes()), patch(10 + 20, &3e38f32.to_le_bytes())];
    let mut b = wide[0].clone();
    b[30..34].copy_from_slice(&wide[1][30..34]);
    assert!(is_invalid(&b), "width overflows f32");
    // Random garbage never panics.
    let mut rng = SmallRng::seed_from_u64(11);
    for _ in 0..2000 {
        let len = rng.random_range(0..80);
        let mut b: Vec<u8> = (0..len).map(|_| rng.random()).collect();
        if len >= 2 && rng.random_bool(0.5) {
            b[..2].copy_from_slice(b"SQ");
        }
        let _ = SqQuantizer::from_bytes(&b);
    }
}

fn abs_terms_u8(w: &[f32], c: &[u8]) -> f64 {
    w.iter().zip(c).map(|(x, &c)| (x * c as f32).abs() as f64).sum()
}

fn abs_terms_u4(w: &[f32], c: &[u8]) -> f64 {
    let nibbles = c.iter().flat_map(|&b| [b & 0x0F, b >> 4]);
    w.iter().zip(nibbles).map(|(x, c)| (x * c as f32).abs() as f64).sum()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn simd_kernels_match_scalar(
        (w, c) in (0usize..300).prop_flat_map(|n| (
            prop::collection::vec(-10.0f32..10.0, 2 * n),
            prop::collection::vec(any::<u8>(), n),
        ))
    ) {
        let n = c.len();
        let (want8, want4) = (scalar::dot_u8(&w[..n], &c), scalar::dot_u4(&w, &c));
        let (tol8, tol4) = (1e-5 * abs_terms_u8(&w, &c) + 1e-6, 1e-5 * abs_terms_u4(&w, &c) + 1e-6);
        for k in levels_here().into_iter().filter_map(SqKernels::for_isa) {
            let got8 = (k.dot_u8)(&w[..n], &c);
            let got4 = (k.dot_u4)(&w, &c);
            prop_assert!((got8 as f64 - want8 as f64).abs() <= tol8, "{:?} u8 n {}: {} vs {}", k.isa, n, got8, want8);
            prop_assert!((got4 as f64 - want4 as f64).abs() <= tol4, "{:?} u4 n {}: {} vs {}", k.isa, n, got4, want4);
            // The many-code kernels give each code exactly the one-code result.
            let stride = n + 3;
            let codes: Vec<u8> = (0..4).flat_map(|r| c.iter().map(move |&b| b.wrapping_add(r)).chain([r; 3])).collect();
            let (mut out8, mut out4) = ([0.0f32; 4], [0.0f32; 4]);
            (k.many_u8)(&w, &codes, n, stride, &mut out8);
            (k.many_u4)(&w, &codes, n, stride, &mut out4);
            for (r, code) in codes.chunks_exact(stride).enumerate() {
                prop_assert_eq!(out8[r], (k.dot_u8)(&w, &code[..n]));
                prop_assert_eq!(out4[r], (k.dot_u4)(&w, &code[..n]));
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// The integer kernels are exact: every level returns the scalar sum, bit for bit, for any
    /// length (tails included) and any weights within the bound.
    #[test]
    fn integer_kernels_are_exact_on_every_level(
        (w, c) in (0usize..400).prop_flat_map(|n| (
            prop::collection::vec(-16_383i16..=16_383, n),
            prop::collection::vec(any::<u8>(), n),
        ))
    ) {
        let n = c.len();
        let want: i64 = w.iter().zip(&c).map(|(&x, &b)| x as i64 * b as i64).sum();
        prop_assert_eq!(scalar::dot_u8_i16(&w, &c) as i64, want);
        for k in levels_here().into_iter().flat_map(SqKernels::variants) {
            prop_assert_eq!((k.dot_u8_i16)(&w, &c) as i64, want, "{:?} n {}", k.isa, n);
            let stride = n + 5;
            let codes: Vec<u8> = (0..3).flat_map(|r| c.iter().map(move |&b| b.wrapping_add(r)).chain([r; 5])).collect();
            let mut out = [0i32; 3];
            (k.many_u8_i16)(&w, &codes, n, stride, &mut out);
            for (r, code) in codes.chunks_exact(stride).enumerate() {
                prop_assert_eq!(out[r], (k.dot_u8_i16)(&w, &code[..n]));
            }
        }
    }
}

#[test]
fn integer_weight_bound_keeps_sums_in_i32() {
    for dim in [1usize, 50, 384, 514, 515, 1536, 4096, 65_536] {
        let b = super::kernels::i16_weight_bound(dim) as i64;
        assert!((1..=16_383).contains(&b), "{dim}: {b}");
        assert!(dim as i64 * 255 * b <= i32::MAX as i64, "{dim}: {b}");
    }
}

/// 8-bit keys from the integer weights stay within the rounding bound of the f32-weight keys.
#[test]
fn integer_keys_track_float_keys() {
    let base = gen::clustered(500, 100, 8, 0.5, 31);
    let sq = SqQuantizer::train(&base, Metric::L2, 8).expect("train");
    let codes = crate::encode_all(&sq, &base);
    let len = sq.code_len();
    let q = gen::gaussian(1, 100, 32);
    let est = sq.estimator(q.row(0));
    let mut many = vec![0.0f32; base.rows()];
    est.keys(&codes, len, &mut many);
    for (i, code) in codes.chunks_exact(len).enumerate() {
        let exact_weights: f64 = {
            let mut x = vec![0.0f32; 100];
            sq.decode(code, &mut x);
            x.iter().zip(q.row(0)).map(|(&a, &b)| ((a - b) as f64).powi(2)).sum()
        };
        let key = est.key(code);
        assert_eq!(key, many[i], "one-code and many-code keys agree");
        assert!(
            (key as f64 - exact_weights).abs() <= 1e-3 * (1.0 + exact_weights),
            "{key} vs {exact_weights}"
        );
    }
}

#[test]
fn real_data_sq8_ranking_recall() {
    let Some(dir) = shared_data::require("wndict-384") else { return };
    let base = shared_data::load_npy_rows(&dir.join("base.f16.npy"), 20_000);
    let queries = shared_data::load_npy_rows(&dir.join("query.f16.npy"), 200);
    let metric = Metric::InnerProduct;
    let sq = SqQuantizer::train(&base, metric, 8).expect("train");
    let codes = crate::encode_all(&sq, &base);
    let mut keys = vec![0.0f32; base.rows()];
    let mut total = 0.0;
    let mut err_sum = 0.0f64;
    for q in queries.iter() {
        let est = sq.estimator(q);
        est.keys(&codes, sq.code_len(), &mut keys);
        let mut order: Vec<u32> = (0..base.rows() as u32).collect();
        order.sort_by(|&a, &b| keys[a as usize].total_cmp(&keys[b as usize]).then(a.cmp(&b)));
        let want = oracle::exact_top_k(&base, q, metric, 10);
        total += want.iter().filter(|(id, _)| order[..10].contains(id)).count() as f64 / 10.0;
        err_sum += want.iter().map(|&(id, s)| (-keys[id as usize] as f64 - s).abs()).sum::<f64>() / 10.0;
    }
    let recall = total / queries.rows() as f64;
    eprintln!(
        "wndict-384 20k, 200 queries: SQ8 estimate recall@10 = {recall:.4}, mean |IP error| on the true top-10 = {:.2e}",
        err_sum / queries.rows() as f64
    );
    assert!(recall >= 0.9, "SQ8 recall@10 {recall:.4} < 0.9");
}

/// Timing (run with `--ignored --nocapture`, optimised and without debug assertions, which add
/// checks to every SIMD load): the best of 15 trials, in ns per code, of `key` on 1,024 codes in
/// cache and of `keys` over the same codes and over a 100k-code scan, per kernel level and width.
#[test]
#[ignore]
fn timing() {
    use std::time::Instant;
    fn best(codes: usize, mut f: impl FnMut()) -> f64 {
        (0..15)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed().as_nanos() as f64 / codes as f64
            })
            .fold(f64::INFINITY, f64::min)
    }
    let dim = 384;
    let data = sample(100_000, dim, Metric::Cosine, 21);
    let q = sample(1, dim, Metric::Cosine, 22);
    for bits in [8u8, 4] {
        let sq = SqQuantizer::train(&data, Metric::Cosine, bits).expect("train");
        let codes = crate::encode_all(&sq, &data);
        let len = sq.code_len();
        let hot = &codes[..1024 * len];
        for isa in levels_here() {
            let est = sq.estimator_for_isa(q.row(0), isa).expect("supported");
            let mut sink = 0.0f32;
            let reps = 50;
            let key_ns = best(reps * 1024, || {
                for _ in 0..reps {
                    for c in hot.chunks_exact(len) {
                        sink += est.key(std::hint::black_box(c));
                    }
                }
            });
            let mut out = vec![0.0f32; 1024];
            let hot_ns = best(reps * 1024, || {
                for _ in 0..reps {
                    est.keys(std::hint::black_box(hot), len, &mut out);
                    sink += out[7];
                }
            });
            let mut all = vec![0.0f32; data.rows()];
            let scan_ns = best(data.rows(), || {
                est.keys(std::hint::black_box(&codes), len, &mut all);
                sink += all[9];
            });
            eprintln!(
                "SQ{bits} d={dim} {isa:?}: key {key_ns:.1} ns, keys in cache {hot_ns:.1} ns, \
                 keys over 100k {scan_ns:.1} ns per code  [{sink:.1}]"
            );
        }
    }
}
