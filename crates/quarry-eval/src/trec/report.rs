//! Printing an [`Evaluation`]: trec_eval's text layout and a JSON map.

use serde_json::{Map, Value};

use super::evaluate::Evaluation;
use super::measures::Measure;

impl Evaluation {
    /// trec_eval's relational layout: `measure<TAB>qid<TAB>value`, the measure name padded to 22
    /// characters, rates with 4 decimals and counts as integers.
    ///
    /// With `per_query`, each query's block comes first (like `trec_eval -q`); the summary block
    /// (`qid` = `all`) starts with `num_q`.
    pub fn to_trec_eval_text(&self, per_query: bool) -> String {
        let mut out = String::new();
        if per_query {
            for (qid, values) in &self.per_query {
                for (m, &v) in self.measures.iter().zip(values) {
                    push_line(&mut out, &m.name(), qid, format_value(*m, v));
                }
            }
        }
        push_line(&mut out, "num_q", "all", self.num_q.to_string());
        for (m, (name, v)) in self.measures.iter().zip(&self.mean) {
            push_line(&mut out, name, "all", format_value(*m, *v));
        }
        out
    }

    /// A JSON object of the summary values at full precision plus `num_q`, e.g.
    /// `{"ndcg_cut_10": 0.645…, …, "num_q": 300}`; with `per_query`, also
    /// `"per_query": {qid: {measure: value}}`.
    pub fn to_json(&self, per_query: bool) -> Value {
        let mut obj = Map::new();
        for (m, (name, v)) in self.measures.iter().zip(&self.mean) {
            obj.insert(name.clone(), json_value(*m, *v));
        }
        obj.insert("num_q".into(), Value::from(self.num_q));
        if per_query {
            let mut queries = Map::new();
            for (qid, values) in &self.per_query {
                let q: Map<String, Value> =
                    self.measures.iter().zip(values).map(|(m, &v)| (m.name(), json_value(*m, v))).collect();
                queries.insert(qid.clone(), Value::Object(q));
            }
            obj.insert("per_query".into(), Value::Object(queries));
        }
        Value::Object(obj)
    }
}

fn push_line(out: &mut String, name: &str, qid: &str, value: String) {
    out.push_str(&format!("{name:<22}\t{qid}\t{value}\n"));
}

fn format_value(m: Measure, v: f64) -> String {
    if m.is_count() {
        format!("{}", v.round() as i64)
    } else {
        format!("{v:.4}")
    }
}

fn json_value(m: Measure, v: f64) -> Value {
    if m.is_count() {
        Value::from(v.round() as i64)
    } else {
        // Measures are finite by construction; serde_json maps a non-finite value to null.
        Value::from(v)
    }
}
