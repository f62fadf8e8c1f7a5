//! Parity of `quarry_eval::trec` with trec_eval (via pytrec_eval) on real and generated data.
//!
//! * `scifact_reference`: the shared SciFact runs against `reference_measures.json` (skipped with
//!   a message when the shared data directory is absent, as in a user's clone).
//! * `golden_fixtures`: 50 random cases in `tests/fixtures/trec/`, generated with pytrec_eval by
//!   `scripts/gen_trec_fixtures.py`; always runs.
//!
//! Every measure, every query and both means (trec_eval default and `-c`) are compared.

use std::collections::BTreeSet;
use std::path::Path;

use quarry_eval::trec::{evaluate, read_qrels, read_run, EvalOptions, Evaluation, Measure};
use serde_json::Value;

/// Worst absolute difference seen, with where it happened.
#[derive(Default)]
struct Diff {
    max: f64,
    at: String,
    compared: usize,
}

impl Diff {
    fn check(&mut self, got: Option<f64>, want: &Value, at: impl Fn() -> String) {
        let want = want.as_f64().unwrap_or_else(|| panic!("{}: expected value is not a number", at()));
        let got = got.unwrap_or_else(|| panic!("{}: measure missing from the evaluation", at()));
        let d = (got - want).abs();
        assert!(d <= 1e-9, "{}: got {got}, trec_eval {want} (diff {d:e})", at());
        self.compared += 1;
        if d > self.max || self.at.is_empty() {
            self.max = self.max.max(d);
            self.at = at();
        }
    }
}

fn load_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}

fn obj<'a>(v: &'a Value, key: &str) -> &'a serde_json::Map<String, Value> {
    v[key].as_object().unwrap_or_else(|| panic!("expected object at {key:?}"))
}

/// Compares one evaluation (per query + mean) against a reference `per_query` and mean map.
fn compare(label: &str, eval: &Evaluation, per_query: Option<&Value>, mean: &Value, diff: &mut Diff) {
    if let Some(per_query) = per_query {
        let want_q: BTreeSet<&String> = per_query.as_object().expect("per_query object").keys().collect();
        let got_q: BTreeSet<&String> = eval.per_query.keys().collect();
        assert_eq!(got_q, want_q, "{label}: evaluated query set differs");
        for (qid, values) in per_query.as_object().expect("per_query object") {
            for (name, want) in values.as_object().expect("measure map") {
                diff.check(eval.query_value(qid, name), want, || format!("{label} query {qid} {name}"));
            }
        }
    }
    for (name, want) in mean.as_object().expect("mean object") {
        diff.check(eval.mean_value(name), want, || format!("{label} mean {name}"));
    }
}

#[test]
fn scifact_reference() {
    let Some(scifact) = quarry_testkit::shared_data::require("scifact") else { return };
    let reference = load_json(&scifact.join("reference_measures.json"));
    let qrels = read_qrels(&scifact.join("qrels/test.tsv")).expect("read scifact qrels");
    assert_eq!((qrels.len(), qrels.num_judgements()), (300, 339));
    let mut diff = Diff::default();
    let runs = obj(&reference, "runs");
    assert_eq!(runs.len(), 4, "dense_minilm, bm25s, rrf60, tricky_ties");
    for (name, r) in runs {
        let run = read_run(&scifact.join(r["file"].as_str().expect("file"))).expect("read run");
        let names: Vec<&String> = obj(r, "mean").keys().collect();
        let measures: Vec<Measure> =
            names.iter().map(|n| Measure::parse(n).expect("known measure")).collect();
        let default = evaluate(&qrels, &run, &measures, &EvalOptions::default());
        compare(name, &default, Some(&r["per_query"]), &r["mean"], &mut diff);
        let complete =
            evaluate(&qrels, &run, &measures, &EvalOptions { complete: true, ..Default::default() });
        assert_eq!(complete.num_q, 300);
        compare(&format!("{name} -c"), &complete, None, &r["mean_all_judged"], &mut diff);
    }
    eprintln!("scifact: {} values compared, max |diff| = {:e} ({})", diff.compared, diff.max, diff.at);
}

#[test]
fn golden_fixtures() {
    // The run-time CARGO_MANIFEST_DIR (cargo sets it for tests) first: a test binary reused from
    // another checkout of the same sources would otherwise read that checkout's fixtures.
    let root = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into());
    let dir = Path::new(&root).join("tests/fixtures/trec");
    let expected = load_json(&dir.join("expected.json"));
    let names: Vec<&str> = expected["measures"]
        .as_array()
        .expect("measures")
        .iter()
        .map(|v| v.as_str().expect("name"))
        .collect();
    let measures: Vec<Measure> = names.iter().map(|n| Measure::parse(n).expect("known measure")).collect();
    let cases = expected["cases"].as_array().expect("cases");
    assert!(cases.len() >= 50, "expected ~50 cases, found {}", cases.len());
    let mut diff = Diff::default();
    for case in cases {
        let label = case["name"].as_str().expect("name");
        let qrels = read_qrels(&dir.join(case["qrels"].as_str().expect("qrels"))).expect("read qrels");
        let run = read_run(&dir.join(case["run"].as_str().expect("run"))).expect("read run");
        let opts = EvalOptions {
            relevance_level: case["relevance_level"]
                .as_i64()
                .and_then(|l| i32::try_from(l).ok())
                .expect("level"),
            complete: false,
            max_results: case["max_results"].as_u64().map(|m| usize::try_from(m).expect("fits")),
        };
        let default = evaluate(&qrels, &run, &measures, &opts);
        assert_eq!(Some(default.num_q as u64), case["num_q"].as_u64(), "{label}: num_q");
        compare(label, &default, Some(&case["per_query"]), &case["mean"], &mut diff);
        let complete = evaluate(&qrels, &run, &measures, &EvalOptions { complete: true, ..opts });
        assert_eq!(Some(complete.num_q as u64), case["num_q_complete"].as_u64(), "{label}: num_q -c");
        compare(&format!("{label} -c"), &complete, None, &case["mean_complete"], &mut diff);
    }
    eprintln!("fixtures: {} values compared, max |diff| = {:e} ({})", diff.compared, diff.max, diff.at);
}
