//! Every SIMD kernel against the scalar reference (proptest), and the reference against f64.

use super::*;
use proptest::prelude::*;

fn simd_levels() -> Vec<Kernels> {
    Isa::ALL.into_iter().filter(|&i| i != Isa::Scalar).filter_map(Kernels::for_isa).collect()
}

/// Tolerance for two f32 summations in different orders: relative to the sum of |terms|.
fn close(x: f32, y: f32, abs_terms: f64) -> bool {
    ((x as f64) - (y as f64)).abs() <= 2e-5 * abs_terms + 1e-6
}

fn vecs(max_len: usize) -> impl Strategy<Value = (Vec<f32>, Vec<f32>)> {
    (0..max_len).prop_flat_map(|n| {
        (prop::collection::vec(-10.0f32..10.0, n), prop::collection::vec(-10.0f32..10.0, n))
    })
}

fn abs_dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (*x as f64 * *y as f64).abs()).sum()
}

fn abs_l2(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (*x as f64 - *y as f64).powi(2)).sum()
}

fn to_f16(v: &[f32]) -> Vec<f16> {
    v.iter().map(|&x| f16::from_f32(x)).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn simd_pair_kernels_match_scalar((a, b) in vecs(300)) {
        let bh = to_f16(&b);
        let s = scalar::KERNELS;
        for k in simd_levels() {
            prop_assert!(close((k.dot)(&a, &b), (s.dot)(&a, &b), abs_dot(&a, &b)), "{:?} dot", k.isa);
            prop_assert!(close((k.l2_sq)(&a, &b), (s.l2_sq)(&a, &b), abs_l2(&a, &b)), "{:?} l2", k.isa);
            prop_assert!(close((k.dot_f16)(&a, &bh), (s.dot_f16)(&a, &bh), abs_dot(&a, &b)), "{:?} dot_f16", k.isa);
            prop_assert!(close((k.l2_sq_f16)(&a, &bh), (s.l2_sq_f16)(&a, &bh), abs_l2(&a, &b) + 1.0), "{:?} l2_f16", k.isa);
        }
    }

    #[test]
    fn simd_scan_kernels_match_scalar(dim in 1usize..100, rows in 0usize..20, seed in any::<u64>()) {
        let mut x = seed | 1;
        let mut rnd = || { x ^= x << 13; x ^= x >> 7; x ^= x << 17; ((x >> 40) as f32 / (1u64 << 24) as f32) * 4.0 - 2.0 };
        let q: Vec<f32> = (0..dim).map(|_| rnd()).collect();
        let base: Vec<f32> = (0..dim * rows).map(|_| rnd()).collect();
        let base_h = to_f16(&base);
        let s = scalar::KERNELS;
        let mut want = vec![0.0; rows];
        let mut got = vec![0.0; rows];
        for k in simd_levels() {
            for (kf, sf, bound) in [(k.dot_many, s.dot_many, 1.0), (k.l2_many, s.l2_many, 16.0)] {
                sf(&q, &base, &mut want);
                kf(&q, &base, &mut got);
                for (w, g) in want.iter().zip(&got) {
                    prop_assert!(close(*w, *g, bound * dim as f64 * 4.0), "{:?}: {w} vs {g}", k.isa);
                }
            }
            for (kf, sf, bound) in [(k.dot_many_f16, s.dot_many_f16, 1.0), (k.l2_many_f16, s.l2_many_f16, 16.0)] {
                sf(&q, &base_h, &mut want);
                kf(&q, &base_h, &mut got);
                for (w, g) in want.iter().zip(&got) {
                    prop_assert!(close(*w, *g, bound * dim as f64 * 4.0), "{:?}: {w} vs {g}", k.isa);
                }
            }
        }
    }

    #[test]
    fn scalar_reference_matches_f64((a, b) in vecs(600)) {
        let exact: f64 = a.iter().zip(&b).map(|(x, y)| *x as f64 * *y as f64).sum();
        prop_assert!(close(scalar::dot(&a, &b), exact as f32, abs_dot(&a, &b)));
        let exact_l2: f64 = a.iter().zip(&b).map(|(x, y)| (*x as f64 - *y as f64).powi(2)).sum();
        prop_assert!(close(scalar::l2_sq(&a, &b), exact_l2 as f32, abs_l2(&a, &b)));
    }
}

#[test]
fn dispatch_picks_a_supported_level_and_lane_edges_work() {
    assert!(detected_isa().is_supported());
    // Lengths around every lane width and step (8, 16, 32, 64) including 0 and 384.
    for n in [0usize, 1, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 383, 384, 385] {
        let a: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..n).map(|i| (i as f32 * 0.11).cos()).collect();
        let want = scalar::dot(&a, &b);
        for k in Isa::ALL.into_iter().filter_map(Kernels::for_isa) {
            assert!(close((k.dot)(&a, &b), want, abs_dot(&a, &b)), "{:?} n={n}", k.isa);
        }
    }
}

#[test]
fn metric_identities_on_unit_vectors() {
    let mut q: Vec<f32> = (0..384).map(|i| (i as f32).sin()).collect();
    let mut x: Vec<f32> = (0..384).map(|i| (i as f32 * 0.5).cos()).collect();
    normalize(&mut q).expect("nonzero");
    normalize(&mut x).expect("nonzero");
    assert!((l2_sq(&q, &x) - (2.0 - 2.0 * dot(&q, &x))).abs() < 1e-5);
    assert!((cosine(&q, &x) - dot(&q, &x)).abs() < 1e-5);
    assert!(l2_sq(&q, &q).abs() < 1e-6);
    assert_eq!(dot(&q, &x), dot(&x, &q));
    let mut zero = vec![0.0f32; 8];
    assert_eq!(normalize(&mut zero), None);
    assert_eq!(cosine(&zero, &zero), 0.0);
}

#[test]
fn wide_pairs_take_avx512_one_row_kernels_and_keep_avx2_scans() {
    // `Kernels::get` keeps one level (pair and scan kernels agree bit for bit); `walk` mixes.
    assert_eq!(
        Kernels::get().dot as usize,
        Kernels::for_isa(Kernels::get().isa).expect("level").dot as usize
    );
    let (Some(avx2), Some(avx512)) = (Kernels::for_isa(Isa::Avx2), Kernels::for_isa(Isa::Avx512)) else {
        return; // not an AVX-512 machine: nothing to mix
    };
    let k = avx2.with_wide_pairs();
    assert_eq!(k.isa, Isa::Avx2);
    assert!(k.dot as usize == avx512.dot as usize && k.l2_sq as usize == avx512.l2_sq as usize);
    assert!(k.dot_many as usize == avx2.dot_many as usize && k.l2_many as usize == avx2.l2_many as usize);
    // Other tables are left alone.
    let s = Kernels::for_isa(Isa::Scalar).expect("scalar");
    assert_eq!(s.with_wide_pairs().dot as usize, s.dot as usize);
    let a: Vec<f32> = (0..77).map(|i| (i as f32 * 0.37).sin()).collect();
    let b: Vec<f32> = (0..77).map(|i| (i as f32 * 0.11).cos()).collect();
    assert!(((k.dot)(&a, &b) - (s.dot)(&a, &b)).abs() < 1e-4);
    assert!(((k.l2_sq)(&a, &b) - (s.l2_sq)(&a, &b)).abs() < 1e-3);
}
