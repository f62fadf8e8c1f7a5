//! Tests of routing against the RouterRetriever oracles: singleton groups, pilot-less experts,
//! mean = max with one pilot each, determinism, and tie-breaking.

use super::*;
use quarry_testkit::gen::TestRng;

fn q(embedding: Vec<f32>, label: &str, quality: Vec<f64>) -> PilotQuery {
    PilotQuery { embedding, label: label.into(), quality }
}

fn random_unit(rng: &mut TestRng, dim: usize) -> Vec<f32> {
    let v: Vec<f32> = (0..dim).map(|_| rng.gauss() as f32).collect();
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter().map(|x| x / n).collect()
}

#[test]
fn a_singleton_groups_query_routes_to_its_expert() {
    let mut rng = TestRng::new(3);
    // Six singleton groups, two per expert: under max a training query is its own best pilot.
    let qs: Vec<PilotQuery> = (0..6)
        .map(|i| {
            let mut quality = vec![0.1; 3];
            quality[i % 3] = 0.9;
            q(random_unit(&mut rng, 16), &format!("d{i}"), quality)
        })
        .collect();
    let (pilots, report) = fit_pilots(&qs, 3, 1, 7).expect("ok");
    assert_eq!(report.credited, vec![2, 2, 2]);
    assert_eq!(pilots.counts(), vec![2, 2, 2]);
    for (i, query) in qs.iter().enumerate() {
        assert_eq!(pilots.rank(&query.embedding, RouteRule::Max).expect("ok")[0].0, i % 3, "query {i}");
    }
    // One singleton group per expert: both rules route each query to its own expert.
    let (pilots, _) = fit_pilots(&qs[..3], 3, 1, 7).expect("ok");
    for (i, query) in qs[..3].iter().enumerate() {
        for rule in [RouteRule::Mean, RouteRule::Max] {
            assert_eq!(pilots.rank(&query.embedding, rule).expect("ok")[0].0, i, "query {i} {rule}");
        }
    }
}

#[test]
fn mean_and_max_agree_with_one_pilot_per_expert() {
    let mut rng = TestRng::new(11);
    let pilots = Pilots { pilots: (0..4).map(|_| vec![random_unit(&mut rng, 8)]).collect() };
    for _ in 0..50 {
        let query = random_unit(&mut rng, 8);
        let a = pilots.rank(&query, RouteRule::Mean).expect("ok");
        let b = pilots.rank(&query, RouteRule::Max).expect("ok");
        assert_eq!(a, b);
    }
}

#[test]
fn an_expert_without_pilots_never_changes_routing() {
    let mut rng = TestRng::new(5);
    let base =
        Pilots { pilots: (0..3).map(|_| (0..2).map(|_| random_unit(&mut rng, 8)).collect()).collect() };
    let mut more = base.clone();
    more.pilots.insert(1, Vec::new());
    for _ in 0..50 {
        let query = random_unit(&mut rng, 8);
        for rule in [RouteRule::Mean, RouteRule::Max] {
            let before: Vec<usize> = base.rank(&query, rule).expect("ok").iter().map(|r| r.0).collect();
            let after: Vec<usize> = more
                .rank(&query, rule)
                .expect("ok")
                .iter()
                .filter(|r| r.0 != 1)
                .map(|r| if r.0 > 1 { r.0 - 1 } else { r.0 })
                .collect();
            assert_eq!(before, after);
            assert_eq!(more.rank(&query, rule).expect("ok").last().expect("ok"), &(1, None));
        }
    }
}

#[test]
fn fitting_is_deterministic_and_clusters_per_group() {
    let mut rng = TestRng::new(9);
    let qs: Vec<PilotQuery> = (0..60)
        .map(|i| q(random_unit(&mut rng, 12), if i % 2 == 0 { "a" } else { "b" }, vec![(i % 3) as f64, 1.0]))
        .collect();
    let (p1, r1) = fit_pilots(&qs, 2, 3, 42).expect("ok");
    let (p2, r2) = fit_pilots(&qs, 2, 3, 42).expect("ok");
    assert_eq!(p1, p2);
    assert_eq!(r1, r2);
    // quality (0,1): expert 1; (1,1): tied, left out; (2,1): expert 0.
    assert_eq!(r1.tied, 20);
    assert_eq!(r1.credited, vec![20, 20]);
    // Two labels per expert, three centroids each.
    assert_eq!(p1.counts(), vec![6, 6]);
    for ps in &p1.pilots {
        for p in ps {
            let n: f32 = p.iter().map(|x| x * x).sum::<f32>().sqrt();
            assert!((n - 1.0).abs() < 1e-5);
        }
    }
}

#[test]
fn ties_go_to_the_lower_index() {
    let p = Pilots { pilots: vec![vec![vec![1.0, 0.0]], vec![vec![1.0, 0.0]]] };
    assert_eq!(p.rank(&[2.0, 1.0], RouteRule::Mean).expect("ok")[0].0, 0);
    assert_eq!(best(&[0.5, 0.7, 0.7]), Some(1));
    assert_eq!(best(&[0.3, 0.3]), None);
}

#[test]
fn bad_input_is_an_error() {
    let good = q(vec![1.0, 0.0], "a", vec![1.0, 0.0]);
    assert!(fit_pilots(std::slice::from_ref(&good), 2, 0, 1).is_err());
    assert!(fit_pilots(&[q(vec![1.0, 0.0], "a", vec![1.0])], 2, 1, 1).is_err());
    assert!(fit_pilots(&[good.clone(), q(vec![1.0], "a", vec![1.0, 0.0])], 2, 1, 1).is_err());
    assert!(fit_pilots(&[q(vec![0.0, 0.0], "a", vec![1.0, 0.0])], 2, 1, 1).is_err());
    let p = Pilots { pilots: vec![vec![vec![1.0, 0.0, 0.0]]] };
    assert!(p.scores(&[1.0, 0.0], RouteRule::Mean).is_err());
    assert!(p.scores(&[0.0, 0.0, 0.0], RouteRule::Mean).is_err());
    assert!("median".parse::<RouteRule>().is_err());
    assert_eq!("max".parse::<RouteRule>().expect("ok").to_string(), "max");
}
