//! Unit tests of the measures: a worked example computed by hand from trec_eval 9.0.8's
//! definitions (usnistgov/trec_eval `m_P.c`, `m_recall.c`, `m_map.c`, `m_recip_rank.c`,
//! `m_ndcg_cut.c`), query-set rules and properties.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;

fn qrels(entries: &[(&str, &str, i32)]) -> Qrels {
    let mut q = Qrels::new();
    for &(qid, doc, rel) in entries {
        q.insert(qid, doc, rel);
    }
    q
}

fn run(queries: &[(&str, &[(&str, f64)])]) -> Run {
    let mut r = Run::new();
    for (qid, hits) in queries {
        r.insert_query(qid, hits).expect("valid run");
    }
    r
}

fn measures(names: &str) -> Vec<Measure> {
    Measure::parse_list(names).expect("valid measure names")
}

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol
}

/// Qrels {A:2, B:0, C:1, D:2}; run by score [B, A, X, C], X unjudged. Expected values by hand:
/// P@3 = recall@3 = 1/3 (R = 3), recip_rank = 1/2, AP = (1/2 + 2/4)/3, nDCG@3 = (2/log2 3) /
/// (2 + 2/log2 3 + 1/2) with raw grades as gains.
#[test]
fn worked_example() {
    let q = qrels(&[("q", "A", 2), ("q", "B", 0), ("q", "C", 1), ("q", "D", 2)]);
    let r = run(&[("q", &[("C", 1.0), ("X", 2.0), ("A", 3.0), ("B", 4.0)])]);
    let ms =
        measures("P_3 recall_3 recip_rank map ndcg_cut_3 map_cut_3 ndcg Rprec num_ret num_rel num_rel_ret");
    let e = evaluate(&q, &r, &ms, &EvalOptions::default());
    let expect = [
        ("P_3", 1.0 / 3.0),
        ("recall_3", 1.0 / 3.0),
        ("recip_rank", 0.5),
        ("map", (0.5 + 0.5) / 3.0),
        ("ndcg_cut_3", 0.335435),
        ("map_cut_3", 0.5 / 3.0),
        ("ndcg", 0.4499200626718163), // pytrec_eval 0.5.11
        ("Rprec", 1.0 / 3.0),
        ("num_ret", 4.0),
        ("num_rel", 3.0),
        ("num_rel_ret", 2.0),
    ];
    for (name, want) in expect {
        let got = e.query_value("q", name).expect("measure present");
        assert!(close(got, want, 1e-6), "{name}: got {got}, want {want}");
        assert_eq!(e.mean_value(name), Some(got), "{name}: one query, mean = value");
    }
    let idcg3 = 2.0 + 2.0 / 3f64.log2() + 0.5;
    assert!(close(idcg3, 3.761860, 1e-6));
    assert_eq!(e.num_q, 1);
}

/// Equal scores, "d1" relevant, "d2" not: trec_eval ranks d2 first (ties by docno, descending).
#[test]
fn ties_break_by_docno_descending() {
    let q = qrels(&[("q", "d1", 1), ("q", "d2", 0)]);
    for hits in [[("d1", 0.7), ("d2", 0.7)], [("d2", 0.7), ("d1", 0.7)]] {
        let e = evaluate(&q, &run(&[("q", &hits)]), &measures("recip_rank"), &EvalOptions::default());
        assert_eq!(e.mean_value("recip_rank"), Some(0.5));
    }
    // Byte order, not numeric: "d9" > "d10", so d9 ranks first.
    let q = qrels(&[("q", "d10", 1)]);
    let e = evaluate(
        &q,
        &run(&[("q", &[("d10", 1.0), ("d9", 1.0)])]),
        &measures("recip_rank"),
        &Default::default(),
    );
    assert_eq!(e.mean_value("recip_rank"), Some(0.5));
    // -0.0 == 0.0 in C, so the docno decides.
    let q = qrels(&[("q", "a", 1)]);
    let e = evaluate(
        &q,
        &run(&[("q", &[("a", 0.0), ("b", -0.0)])]),
        &measures("recip_rank"),
        &Default::default(),
    );
    assert_eq!(e.mean_value("recip_rank"), Some(0.5));
}

#[test]
fn perfect_run_scores_one() {
    let q = qrels(&[("q", "a", 3), ("q", "b", 2), ("q", "c", 1), ("q", "z", 0)]);
    let r = run(&[("q", &[("a", 3.0), ("b", 2.0), ("c", 1.0), ("z", 0.0)])]);
    let e = evaluate(
        &q,
        &r,
        &measures("P_3 recall_3 map recip_rank ndcg ndcg_cut_3 ndcg_cut_10 Rprec"),
        &Default::default(),
    );
    for (name, v) in &e.mean {
        assert!(close(*v, 1.0, 1e-12), "{name} = {v}");
    }
}

#[test]
fn precision_divides_by_k_and_recall_is_zero_without_relevant() {
    let q = qrels(&[("q", "a", 1), ("n", "x", 0)]);
    let r = run(&[("q", &[("a", 1.0)]), ("n", &[("x", 1.0)])]);
    let e = evaluate(
        &q,
        &r,
        &measures("P_10 recall_10 map ndcg ndcg_cut_10 Rprec recip_rank"),
        &Default::default(),
    );
    assert_eq!(e.query_value("q", "P_10"), Some(0.1));
    for name in ["P_10", "recall_10", "map", "ndcg", "ndcg_cut_10", "Rprec", "recip_rank"] {
        assert_eq!(e.query_value("n", name), Some(0.0), "{name}");
    }
    assert_eq!(e.num_q, 2, "a query with no relevant documents still counts");
    assert_eq!(e.mean_value("recall_10"), Some(0.5));
}

#[test]
fn query_sets_default_and_complete() {
    let q = qrels(&[("q1", "a", 1), ("q2", "b", 1), ("q3", "c", 1), ("q4", "d", 1)]);
    // q1 and q2 perfect, q3 and q4 missing from the run, q9 has no judgements.
    let r = run(&[("q1", &[("a", 1.0)]), ("q2", &[("b", 1.0)]), ("q9", &[("z", 1.0)])]);
    let ms = measures("map num_rel num_ret");
    let e = evaluate(&q, &r, &ms, &EvalOptions::default());
    assert_eq!((e.num_q, e.per_query.len()), (2, 2));
    assert_eq!(e.mean_value("map"), Some(1.0));
    let c = evaluate(&q, &r, &ms, &EvalOptions { complete: true, ..Default::default() });
    assert_eq!((c.num_q, c.per_query.len()), (4, 2));
    assert_eq!(c.mean_value("map"), Some(0.5));
    // Counts are summed over the evaluated queries (trec_eval's summary for num_*).
    assert_eq!(c.mean_value("num_rel"), Some(2.0));
    assert_eq!(c.mean_value("num_ret"), Some(2.0));
    let none = evaluate(&q, &Run::new(), &ms, &EvalOptions::default());
    assert_eq!(none.num_q, 0);
    assert_eq!(none.mean_value("map"), Some(0.0));
}

#[test]
fn max_results_relevance_level_and_negative_grades() {
    let q = qrels(&[("q", "a", 1), ("q", "b", 2), ("q", "c", -1)]);
    let r = run(&[("q", &[("c", 3.0), ("a", 2.0), ("b", 1.0)])]);
    let ms = measures("recip_rank num_ret num_rel num_rel_ret ndcg");
    let e = evaluate(&q, &r, &ms, &EvalOptions::default());
    assert_eq!(e.query_value("q", "recip_rank"), Some(0.5), "negative grade is not relevant");
    assert_eq!(e.query_value("q", "num_rel"), Some(2.0));
    let m = evaluate(&q, &r, &ms, &EvalOptions { max_results: Some(2), ..Default::default() });
    assert_eq!(m.query_value("q", "num_ret"), Some(2.0));
    assert_eq!(m.query_value("q", "num_rel_ret"), Some(1.0));
    let l2 = evaluate(&q, &r, &ms, &EvalOptions { relevance_level: 2, ..Default::default() });
    assert_eq!(l2.query_value("q", "recip_rank"), Some(1.0 / 3.0));
    assert_eq!(l2.query_value("q", "num_rel"), Some(1.0));
    assert_eq!(l2.query_value("q", "ndcg"), e.query_value("q", "ndcg"), "nDCG ignores the level");
}

#[test]
fn measure_names_round_trip() {
    for name in [
        "P_5",
        "P_10",
        "recall_100",
        "map",
        "recip_rank",
        "ndcg_cut_10",
        "map_cut_1000",
        "ndcg",
        "Rprec",
        "num_ret",
        "num_rel",
        "num_rel_ret",
    ] {
        assert_eq!(Measure::parse(name).expect("known").name(), name);
    }
    assert_eq!(Measure::parse("P.10").expect("dotted"), Measure::P(10));
    assert_eq!(measures("P.5,10 ndcg_cut.10"), [Measure::P(5), Measure::P(10), Measure::NdcgCut(10)]);
    for bad in ["P_0", "P_", "P_x", "P_+5", "ndcg_10", "MAP", "", "recall"] {
        assert!(Measure::parse(bad).is_err(), "{bad:?} should not parse");
    }
    assert!(Measure::parse_list("10").is_err());
    assert_eq!(
        default_measures().iter().map(Measure::name).collect::<Vec<_>>().join(","),
        "ndcg_cut_10,recall_100,map,recip_rank,P_10"
    );
}

#[test]
fn trec_eval_text_and_json() {
    let q = qrels(&[("q", "a", 1), ("q", "b", 1)]);
    let r = run(&[("q", &[("a", 1.0), ("x", 0.5)])]);
    let e = evaluate(&q, &r, &measures("map P_2 num_ret"), &Default::default());
    let text = e.to_trec_eval_text(true);
    let want = "map                   \tq\t0.5000\nP_2                   \tq\t0.5000\nnum_ret               \tq\t2\n\
                num_q                 \tall\t1\nmap                   \tall\t0.5000\nP_2                   \tall\t0.5000\n\
                num_ret               \tall\t2\n";
    assert_eq!(text, want);
    assert!(e.to_trec_eval_text(false).starts_with("num_q                 \tall\t1\n"));
    let json = e.to_json(false);
    assert_eq!(json["map"], 0.5);
    assert_eq!(json["num_q"], 1);
    assert_eq!(json["num_ret"], 2);
    assert!(json.get("per_query").is_none());
    assert_eq!(e.to_json(true)["per_query"]["q"]["P_2"], 0.5);
}

fn all_measures() -> Vec<Measure> {
    measures("P_1 P_5 P_10 recall_5 recall_100 map map_cut_5 recip_rank ndcg ndcg_cut_1 ndcg_cut_5 Rprec")
}

/// (judgements docno -> grade, hits (docno, score)) over a small docno space so ties and
/// overlaps are common.
fn query_strategy() -> impl Strategy<Value = (BTreeMap<String, i32>, Vec<(String, f64)>)> {
    let judged = prop::collection::btree_map((0u8..30).prop_map(|d| format!("d{d}")), -2i32..4, 1..15);
    let hits = prop::collection::btree_map(
        (0u8..40).prop_map(|d| format!("d{d}")),
        (-3i32..6).prop_map(f64::from),
        0..25,
    )
    .prop_map(|m| m.into_iter().collect::<Vec<_>>());
    (judged, hits)
}

proptest! {
    #[test]
    fn measures_lie_in_unit_interval((judged, hits) in query_strategy(), level in 0i32..3, max in 1usize..30) {
        for opts in [EvalOptions { relevance_level: level, ..Default::default() },
                     EvalOptions { relevance_level: level, max_results: Some(max), ..Default::default() }] {
            let ms = all_measures();
            for (m, v) in ms.iter().zip(evaluate_query(&judged, &hits, &ms, &opts)) {
                prop_assert!((0.0..=1.0 + 1e-12).contains(&v), "{} = {}", m, v);
            }
        }
    }

    #[test]
    fn perfect_ranking_scores_one((judged, _) in query_strategy()) {
        // Rank every judged document by grade: the ideal ranking.
        let hits: Vec<(String, f64)> = judged.iter().map(|(d, &g)| (d.clone(), f64::from(g))).collect();
        let has_rel = judged.values().any(|&g| g >= 1);
        let ms = measures("map recip_rank ndcg ndcg_cut_3 Rprec");
        let vals = evaluate_query(&judged, &hits, &ms, &EvalOptions::default());
        for (m, v) in ms.iter().zip(vals) {
            let want = if has_rel { 1.0 } else { 0.0 };
            prop_assert!((v - want).abs() < 1e-12, "{} = {}", m, v);
        }
    }

    #[test]
    fn input_order_does_not_matter((judged, hits) in query_strategy(), seed in any::<u64>()) {
        let mut shuffled = hits.clone();
        let n = shuffled.len();
        if n > 1 {
            shuffled.rotate_left((seed as usize) % n);
            shuffled.reverse();
        }
        let ms = all_measures();
        prop_assert_eq!(evaluate_query(&judged, &hits, &ms, &Default::default()),
                        evaluate_query(&judged, &shuffled, &ms, &Default::default()));
    }
}
