//! ANNCUR against its oracles: exact recovery of an exactly low-rank score matrix, anchors
//! reproduced exactly with full column rank, error not growing with more anchors, the search's
//! call budget, and bad input.

use super::*;
use quarry_testkit::gen::TestRng;

/// Queries × items scores `P Qᵀ` of rank `r`, plus `noise`.
fn low_rank(rng: &mut TestRng, queries: usize, items: usize, r: usize, noise: f64) -> Vec<f32> {
    let p: Vec<f64> = (0..queries * r).map(|_| rng.gauss()).collect();
    let q: Vec<f64> = (0..items * r).map(|_| rng.gauss()).collect();
    (0..queries)
        .flat_map(|i| (0..items).map(move |j| (i, j)))
        .map(|(i, j)| ((0..r).map(|k| p[i * r + k] * q[j * r + k]).sum::<f64>() + noise * rng.gauss()) as f32)
        .collect()
}

fn anchors(rng: &mut TestRng, n: usize, k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..n).collect();
    for i in 0..k {
        let j = i + (rng.uniform() * (n - i) as f64) as usize % (n - i);
        idx.swap(i, j);
    }
    idx.truncate(k);
    idx
}

#[test]
fn an_exactly_low_rank_matrix_is_recovered() {
    let mut rng = TestRng::new(1);
    let (k_q, n, r) = (12, 200, 5);
    // One extra row: the test query, not an anchor query.
    let all = low_rank(&mut rng, k_q + 1, n, r, 0.0);
    let (train, test) = all.split_at(k_q * n);
    for k_i in [5, 8, 12, 20] {
        let idx = CurIndex::fit(train, k_q, n, anchors(&mut rng, n, k_i)).expect("fit");
        let c: Vec<f32> = idx.anchors().iter().map(|&j| test[j]).collect();
        let approx = idx.approximate(&c).expect("approx");
        for (a, t) in approx.iter().zip(test) {
            assert!((a - t).abs() < 1e-3 * (1.0 + t.abs()), "k_i {k_i}: {a} vs {t}");
        }
    }
}

#[test]
fn anchors_are_reproduced_with_full_column_rank() {
    let mut rng = TestRng::new(2);
    let (k_q, n) = (16, 60);
    let r = low_rank(&mut rng, k_q, n, 16, 0.3);
    let idx = CurIndex::fit(&r, k_q, n, anchors(&mut rng, n, 10)).expect("fit");
    let c: Vec<f32> = (0..10).map(|_| rng.gauss() as f32).collect();
    let approx = idx.approximate(&c).expect("approx");
    for (i, &j) in idx.anchors().iter().enumerate() {
        assert!((approx[j] - c[i]).abs() < 1e-4, "anchor {j}: {} vs {}", approx[j], c[i]);
    }
}

#[test]
fn more_anchor_items_do_not_raise_the_mean_error() {
    // Low rank plus noise, averaged over seeds: k_i = 20 is no worse than k_i = 5 (statistical).
    let (k_q, n) = (40, 300);
    let mut err = [0.0f64; 2];
    for seed in 0..8 {
        let mut rng = TestRng::new(100 + seed);
        let all = low_rank(&mut rng, k_q + 1, n, 6, 0.05);
        let (train, test) = all.split_at(k_q * n);
        for (e, k_i) in err.iter_mut().zip([5usize, 20]) {
            let idx = CurIndex::fit(train, k_q, n, anchors(&mut rng, n, k_i)).expect("fit");
            let c: Vec<f32> = idx.anchors().iter().map(|&j| test[j]).collect();
            let approx = idx.approximate(&c).expect("approx");
            *e += approx.iter().zip(test).map(|(a, t)| f64::from((a - t).abs())).sum::<f64>() / n as f64;
        }
    }
    assert!(err[1] <= err[0], "mean error with 20 anchors {} > with 5 {}", err[1], err[0]);
}

#[test]
fn search_spends_k_i_plus_k_r_calls_and_finds_the_exact_top_k() {
    let mut rng = TestRng::new(3);
    let (k_q, n, r) = (10, 500, 4);
    let all = low_rank(&mut rng, k_q + 1, n, r, 0.0);
    let (train, test) = all.split_at(k_q * n);
    let idx = CurIndex::fit(train, k_q, n, anchors(&mut rng, n, 8)).expect("fit");
    let mut calls = 0usize;
    let mut score = |items: &[usize]| -> Result<Vec<f32>> {
        calls += items.len();
        Ok(items.iter().map(|&j| test[j]).collect())
    };
    let top = idx.search(&mut score, 30, 10).expect("search");
    assert_eq!(calls, 8 + 30);
    let mut exact: Vec<(usize, f32)> = test.iter().copied().enumerate().collect();
    exact.sort_by(|a, b| b.1.total_cmp(&a.1));
    assert_eq!(
        top.iter().map(|t| t.0).collect::<Vec<_>>(),
        exact[..10].iter().map(|t| t.0).collect::<Vec<_>>()
    );
}

#[test]
fn pinv_satisfies_the_penrose_identity_and_bad_input_is_an_error() {
    let mut rng = TestRng::new(4);
    for (m, n) in [(6, 4), (4, 6), (5, 5)] {
        let a: Vec<f64> = (0..m * n).map(|_| rng.gauss()).collect();
        let p = pinv(&a, m, n).expect("pinv");
        // A · pinv(A) · A = A.
        let ap: Vec<f64> = (0..m)
            .flat_map(|i| (0..m).map(move |j| (i, j)))
            .map(|(i, j)| (0..n).map(|k| a[i * n + k] * p[k * m + j]).sum())
            .collect();
        for i in 0..m {
            for j in 0..n {
                let v: f64 = (0..m).map(|k| ap[i * m + k] * a[k * n + j]).sum();
                assert!((v - a[i * n + j]).abs() < 1e-9, "{m}×{n}");
            }
        }
    }
    assert!(CurIndex::fit(&[1.0; 6], 2, 3, vec![0, 0]).is_err());
    assert!(CurIndex::fit(&[1.0; 6], 2, 3, vec![3]).is_err());
    assert!(CurIndex::fit(&[1.0; 5], 2, 3, vec![0]).is_err());
    assert!(CurIndex::fit(&[f32::NAN; 6], 2, 3, vec![0]).is_err());
    let idx = CurIndex::fit(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 2, 3, vec![0, 1]).expect("fit");
    assert!(idx.approximate(&[1.0]).is_err());
}
