//! Procrustes against its oracles: recovery of a known rotation or signed permutation,
//! orthogonality, optimality against the identity and random rotations, and cross-model
//! retrieval after alignment.

use super::*;
use crate::svd::svd;

use quarry_testkit::gen::TestRng as Rng;

fn random_orthogonal(d: usize, rng: &mut Rng) -> Vec<f64> {
    let g: Vec<f64> = (0..d * d).map(|_| rng.gauss()).collect();
    let s = svd(&g, d, d).expect("svd");
    mat_mul_t(&s.u, &s.v, d, d, d)
}

fn times(x: &[f32], r: &[f64], d: usize) -> Vec<f32> {
    x.chunks(d)
        .flat_map(|row| {
            (0..d).map(move |j| (0..d).map(|i| f64::from(row[i]) * r[i * d + j]).sum::<f64>() as f32)
        })
        .collect()
}

fn unit_gauss(n: usize, d: usize, rng: &mut Rng) -> Vec<f32> {
    let mut x: Vec<f32> = (0..n * d).map(|_| rng.gauss() as f32).collect();
    for row in x.chunks_mut(d) {
        let nrm = row.iter().map(|v| v * v).sum::<f32>().sqrt();
        row.iter_mut().for_each(|v| *v /= nrm);
    }
    x
}

#[test]
fn recovers_a_random_rotation_and_a_signed_permutation() {
    let (n, d) = (2000, 64);
    let mut rng = Rng::new(3);
    let x = unit_gauss(n, d, &mut rng);
    let r = random_orthogonal(d, &mut rng);
    let y = times(&x, &r, d);
    let (a, rep) = Alignment::fit(&x, d, &y, d, false).expect("fit");
    let err: f64 = a.w.iter().zip(&r).map(|(w, r)| (f64::from(*w) - r).powi(2)).sum::<f64>().sqrt();
    assert!(err < 1e-4, "‖W − R‖_F = {err}");
    assert!(rep.residual < 1e-6 && rep.identity_residual > 100.0, "{rep:?}");
    assert!(rep.mean_cosine > 0.999_99);
    // Signed permutation.
    let mut p = vec![0.0; d * d];
    for i in 0..d {
        let j = (i * 7 + 3) % d;
        p[i * d + j] = if i % 3 == 0 { -1.0 } else { 1.0 };
    }
    let yp = times(&x, &p, d);
    let (ap, _) = Alignment::fit(&x, d, &yp, d, false).expect("fit");
    assert!(
        ap.w.iter().zip(&p).all(|(w, p)| (f64::from(*w) - p).abs() < 1e-5),
        "W is the signed permutation"
    );
}

#[test]
fn is_orthogonal_optimal_and_matches_the_trace_formula() {
    let (n, d) = (300, 16);
    let mut rng = Rng::new(11);
    let x = unit_gauss(n, d, &mut rng);
    let y = unit_gauss(n, d, &mut rng); // unrelated: the fit is still the best rotation
    let (a, rep) = Alignment::fit(&x, d, &y, d, false).expect("fit");
    for p in 0..d {
        for q in 0..d {
            let dot: f64 = (0..d).map(|i| f64::from(a.w[i * d + p]) * f64::from(a.w[i * d + q])).sum();
            assert!((dot - f64::from(u8::from(p == q))).abs() < 1e-5, "WᵀW = I");
        }
    }
    let xd: Vec<f64> = x.iter().map(|v| f64::from(*v)).collect();
    let yd: Vec<f64> = y.iter().map(|v| f64::from(*v)).collect();
    // Trace formula: ‖X‖² + ‖Y‖² − 2 trace(S) with S the singular values of XᵀY.
    let mut m = vec![0.0; d * d];
    for r in 0..n {
        for i in 0..d {
            for j in 0..d {
                m[i * d + j] += xd[r * d + i] * yd[r * d + j];
            }
        }
    }
    let s = svd(&m, d, d).expect("svd");
    let formula = n as f64 + n as f64 - 2.0 * s.s.iter().sum::<f64>();
    assert!((rep.residual - formula).abs() < 1e-6 * formula.max(1.0), "{} vs {formula}", rep.residual);
    assert!(rep.residual <= rep.identity_residual);
    for _ in 0..100 {
        let r = random_orthogonal(d, &mut rng);
        assert!(rep.residual <= residual_of(&xd, &yd, &r, n, d, d) + 1e-9);
    }
    // Norm preservation of the plain map (no means): |x W| = |x| for a square orthogonal W.
    let v: Vec<f32> = x[..d].to_vec();
    let mapped: f64 = (0..d)
        .map(|j| (0..d).map(|i| f64::from(v[i]) * f64::from(a.w[i * d + j])).sum::<f64>().powi(2))
        .sum();
    assert!((mapped.sqrt() - 1.0).abs() < 1e-5);
}

#[test]
fn rectangular_maps_are_semi_orthogonal() {
    let mut rng = Rng::new(5);
    let (n, dn, dold) = (400, 24, 16);
    let x = unit_gauss(n, dn, &mut rng);
    let y = unit_gauss(n, dold, &mut rng);
    let (a, _) = Alignment::fit(&x, dn, &y, dold, true).expect("fit");
    for p in 0..dold {
        for q in 0..dold {
            let dot: f64 = (0..dn).map(|i| f64::from(a.w[i * dold + p]) * f64::from(a.w[i * dold + q])).sum();
            assert!((dot - f64::from(u8::from(p == q))).abs() < 1e-5, "WᵀW = I when d_new ≥ d_old");
        }
    }
    let (b, _) = Alignment::fit(&y, dold, &x, dn, true).expect("fit");
    for p in 0..dold {
        for q in 0..dold {
            let dot: f64 = (0..dn).map(|j| f64::from(b.w[p * dn + j]) * f64::from(b.w[q * dn + j])).sum();
            assert!((dot - f64::from(u8::from(p == q))).abs() < 1e-5, "W Wᵀ = I when d_new < d_old");
        }
    }
    assert_eq!(b.apply(&y[..dold]).expect("apply").len(), dn);
}

#[test]
fn aligned_cross_model_retrieval_matches_same_model_retrieval() {
    // Item i has a new-model vector x_i and an old-model one y_i = x_i R + noise (σ = 0.05). The
    // gallery is Y; the query for item i is found when item i is in the top 10. Same-model
    // queries are fresh old-model draws x_i R + noise.
    let (n, d, k) = (2000, 32, 10);
    let mut rng = Rng::new(19);
    let x = unit_gauss(n, d, &mut rng);
    let r = random_orthogonal(d, &mut rng);
    let clean = times(&x, &r, d);
    let noisy =
        |rng: &mut Rng| -> Vec<f32> { clean.iter().map(|v| v + (0.05 * rng.gauss()) as f32).collect() };
    let y = noisy(&mut rng);
    let y_queries = noisy(&mut rng);
    let (a, _) = Alignment::fit(&x[..1000 * d], d, &y[..1000 * d], d, false).expect("fit");
    let found = |q: &[f32], target: usize| -> bool {
        let st: f32 = y[target * d..(target + 1) * d].iter().zip(q).map(|(a, b)| a * b).sum();
        y.chunks(d).filter(|row| row.iter().zip(q).map(|(a, b)| a * b).sum::<f32>() > st).count() < k
    };
    let (mut same, mut cross, mut raw) = (0usize, 0usize, 0usize);
    for i in 1000..2000 {
        same += usize::from(found(&y_queries[i * d..(i + 1) * d], i));
        let qx = &x[i * d..(i + 1) * d];
        cross += usize::from(found(&a.apply(qx).expect("apply"), i));
        raw += usize::from(found(qx, i));
    }
    assert!(same > 900, "same-model recall@10 {same}/1000");
    assert!(cross as f64 >= 0.95 * same as f64, "aligned {cross} vs same-model {same}");
    assert!(raw < 50, "unaligned recall@10 {raw}/1000 should be near chance (10/2000)");
}

#[test]
fn too_few_pairs_and_bad_inputs_are_errors() {
    let mut rng = Rng::new(1);
    let x = unit_gauss(10, 16, &mut rng);
    assert!(Alignment::fit(&x, 16, &x, 16, false).is_err(), "n < d");
    assert!(Alignment::fit(&x, 16, &x[..16 * 9], 16, false).is_err(), "row counts differ");
    let x = unit_gauss(40, 16, &mut rng);
    let (a, _) = Alignment::fit(&x, 16, &x, 16, false).expect("fit");
    assert!(a.apply(&[0.0; 16]).is_err());
    assert!(a.apply(&[1.0; 15]).is_err());
}

#[test]
fn rank_deficient_spaces_still_give_an_orthogonal_optimal_map() {
    // Both models leave one direction unused (the last coordinate is always 0), as sentence
    // models do: XᵀY is rank-deficient, the map must still be orthogonal and fit.
    let (n, d) = (500, 12);
    let mut rng = Rng::new(23);
    let mut x = unit_gauss(n, d, &mut rng);
    x.chunks_mut(d).for_each(|r| r[d - 1] = 0.0);
    let r = random_orthogonal(d - 1, &mut rng);
    let y: Vec<f32> = x
        .chunks(d)
        .flat_map(|row| {
            let mut out: Vec<f32> = (0..d - 1)
                .map(|j| (0..d - 1).map(|i| f64::from(row[i]) * r[i * (d - 1) + j]).sum::<f64>() as f32)
                .collect();
            out.push(0.0);
            out
        })
        .collect();
    let (a, rep) = Alignment::fit(&x, d, &y, d, false).expect("a rank-deficient fit");
    for p in 0..d {
        for q in 0..d {
            let dot: f64 = (0..d).map(|i| f64::from(a.w[i * d + p]) * f64::from(a.w[i * d + q])).sum();
            assert!((dot - f64::from(u8::from(p == q))).abs() < 1e-5, "WᵀW = I");
        }
    }
    assert!(rep.residual < 1e-6 && rep.mean_cosine > 0.9999, "{rep:?}");
}
