//! The calibration against its oracles: prefix cuts, monotonicity on a grid, the linear map as a
//! global threshold, the training-free tail fraction on Gaussian scores, and higher precision on
//! a synthetic set whose relevant scores shift per query.

use super::*;

use quarry_testkit::gen::TestRng as Rng;

/// Queries whose scores have a per-query offset and scale; relevant hits sit 3σ above the
/// query's null mean.
fn synthetic(queries: usize, rng: &mut Rng) -> Vec<JudgedList> {
    (0..queries)
        .map(|_| {
            let (offset, scale) = (0.2 + 0.4 * rng.uniform(), 0.03 + 0.05 * rng.uniform());
            let mut hits: Vec<(f64, bool)> = (0..100)
                .map(|i| {
                    let rel = i < 2;
                    let z = if rel { 3.5 + rng.gauss() * 0.7 } else { 0.5 + rng.gauss().abs() * 0.8 };
                    (offset + scale * z, rel)
                })
                .collect();
            hits.sort_by(|a, b| b.0.total_cmp(&a.0));
            JudgedList {
                scores: hits.iter().map(|h| h.0).collect(),
                relevant: hits.iter().map(|h| h.1).collect(),
                null: Some(NullStats { mean: offset, sd: scale }),
            }
        })
        .collect()
}

#[test]
fn the_cut_is_a_prefix_and_the_map_is_monotone() {
    let mut rng = Rng::new(1);
    let lists = synthetic(200, &mut rng);
    let (cal, _) = fit(&lists, &[Feature::Score, Feature::NullZ, Feature::Gap], 0.97).expect("fit");
    cal.check().expect("valid");
    for l in &lists[..20] {
        let p = cal.probabilities(&l.scores, l.null).expect("p");
        assert!(p.windows(2).all(|w| w[0] >= w[1]), "non-increasing down the list");
        let n = cal.cut(&p, cal.threshold, 0);
        assert!(p[..n].iter().all(|x| *x >= cal.threshold) && p[n..].iter().all(|x| *x < cal.threshold));
    }
    // Monotone in s on a grid, for several queries' statistics.
    for null in [NullStats { mean: 0.1, sd: 0.02 }, NullStats { mean: 0.5, sd: 0.1 }] {
        let grid: Vec<f64> = (0..200).map(|i| -1.0 + i as f64 / 100.0).collect();
        for w in grid.windows(2) {
            let f = |s: f64| {
                let x = features_of(&cal.features, s, 1.0, Some(null)).expect("features");
                sigmoid(cal.bias + x.iter().zip(&cal.weights).map(|(a, b)| a * b).sum::<f64>())
            };
            assert!(f(w[1]) >= f(w[0]));
        }
    }
    assert_eq!(cal.cut(&[0.9, 0.2, 0.1], 0.95, 1), 1, "a minimum result count");
}

#[test]
fn the_linear_map_is_a_global_score_threshold() {
    let cal = Calibration { features: vec![Feature::Score], weights: vec![1.0], bias: 0.0, threshold: 0.5 };
    let scores = [0.9, 0.6, 0.31, 0.3, 0.1, -0.2];
    let p = cal.probabilities(&scores, None).expect("p");
    let t: f64 = 0.3;
    let n = cal.cut(&p, sigmoid(t), 0);
    assert_eq!(n, scores.iter().filter(|s| **s >= t).count());
    assert!(
        Calibration { weights: vec![-1.0], ..cal.clone() }.check().is_err(),
        "negative weights are refused"
    );
    assert!(cal.probabilities(&scores, None).is_ok());
    assert!(
        Calibration::training_free(3.0).probabilities(&scores, None).is_err(),
        "null_z needs null statistics"
    );
}

#[test]
fn the_training_free_rule_passes_the_gaussian_tail() {
    // Scores of a random query against random documents: Gaussian; z ≥ 3 keeps 0.135 %.
    let mut rng = Rng::new(7);
    let sample: Vec<f64> = (0..2000).map(|_| 0.1 + 0.05 * rng.gauss()).collect();
    let null = NullStats::from_scores(&sample).expect("stats");
    let cal = Calibration::training_free(3.0);
    let mut scores: Vec<f64> = (0..400_000).map(|_| 0.1 + 0.05 * rng.gauss()).collect();
    scores.sort_by(|a, b| b.total_cmp(a));
    let p = cal.probabilities(&scores, Some(null)).expect("p");
    let frac = cal.cut(&p, 0.5, 0) as f64 / scores.len() as f64;
    assert!((frac - 0.00135).abs() < 0.0004, "fraction passing z ≥ 3: {frac}");
    assert!(NullStats::from_scores(&[1.0, 1.0]).is_none() && NullStats::from_scores(&[1.0]).is_none());
}

#[test]
fn a_fitted_cut_raises_precision_on_held_out_queries() {
    let mut rng = Rng::new(3);
    let train = synthetic(150, &mut rng);
    let test = synthetic(150, &mut rng);
    let (cal, rep) = fit(&train, &[Feature::Score, Feature::NullZ, Feature::Gap], 0.97).expect("fit");
    assert!(rep.kept_relevant >= 0.97 - 1e-9 && rep.precision_at_threshold > rep.precision_raw);
    assert!(cal.features.contains(&Feature::NullZ), "per-query standardisation carries the signal: {cal:?}");
    let (mut kept, mut kept_rel, mut rel, mut total) = (0usize, 0usize, 0usize, 0usize);
    for l in &test {
        let p = cal.probabilities(&l.scores, l.null).expect("p");
        let n = cal.cut(&p, cal.threshold, 0);
        kept += n;
        kept_rel += l.relevant[..n].iter().filter(|r| **r).count();
        rel += l.relevant.iter().filter(|r| **r).count();
        total += l.scores.len();
    }
    let (p_cut, p_raw) = (kept_rel as f64 / kept as f64, rel as f64 / total as f64);
    assert!(p_cut >= 5.0 * p_raw, "precision {p_cut} after the cut vs {p_raw}");
    assert!(kept_rel as f64 >= 0.9 * rel as f64, "recall kept {kept_rel}/{rel}");
    // A raw-score-only fit is worse on these per-query-shifted scores.
    let (raw_cal, _) = fit(&train, &[Feature::Score], 0.97).expect("fit");
    let mut raw_kept = 0usize;
    for l in &test {
        let p = raw_cal.probabilities(&l.scores, None).expect("p");
        raw_kept += raw_cal.cut(&p, raw_cal.threshold, 0);
    }
    assert!(raw_kept > kept, "the null feature cuts more irrelevant hits: {raw_kept} vs {kept}");
}

#[test]
fn fitting_needs_both_classes_and_valid_inputs() {
    let l = JudgedList { scores: vec![0.5, 0.4], relevant: vec![true, true], null: None };
    assert!(fit(std::slice::from_ref(&l), &[Feature::Score], 0.9).is_err());
    let bad = JudgedList { scores: vec![0.5], relevant: vec![true, false], null: None };
    assert!(fit(&[bad], &[Feature::Score], 0.9).is_err());
    let l2 = JudgedList { scores: vec![0.5, 0.4], relevant: vec![true, false], null: None };
    assert!(
        fit(std::slice::from_ref(&l2), &[Feature::NullZ], 0.9).is_err(),
        "null_z without null statistics"
    );
    assert!(fit(&[l2], &[Feature::Score], 1.5).is_err());
}
