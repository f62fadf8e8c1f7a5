//! Payload filters in Qdrant's JSON dialect (the one syntax of the CLI, server and Python):
//! `{"must": [...], "should": [...], "must_not": [...]}` whose conditions are field conditions
//! `{"key": "a.b", "match": {"value": v} | {"any": [..]} | {"except": [..]}}`,
//! `{"key": k, "range": {"gt"|"gte"|"lt"|"lte": x}}`, `{"is_empty": {"key": k}}`,
//! `{"is_null": {"key": k}}`, `{"exists": {"key": k}}` (the key has a non-null value: Qdrant
//! writes this as `must_not` + `is_empty`), `{"has_id": [ids]}`, or a nested filter. Keys are dotted paths; a
//! condition on an array value holds if it holds for any element (Qdrant's rule). Parsing checks
//! the whole filter first, so a bad filter is an error naming the problem, never a silent miss.

use crate::id::PointId;
use quarry_core::{Error, Result};
use serde_json::{Map, Value};

/// A parsed filter.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Filter {
    must: Vec<Cond>,
    should: Vec<Cond>,
    must_not: Vec<Cond>,
}

#[derive(Debug, Clone, PartialEq)]
enum Cond {
    Match { key: String, values: Vec<Value>, negate: bool },
    Range { key: String, gt: Option<f64>, gte: Option<f64>, lt: Option<f64>, lte: Option<f64> },
    IsEmpty(String),
    IsNull(String),
    Exists(String),
    HasId(Vec<PointId>),
    Nested(Filter),
}

fn bad(msg: impl Into<String>) -> Error {
    Error::InvalidArgument(format!("bad filter: {}", msg.into()))
}

impl Filter {
    /// Parses a filter from JSON text.
    pub fn parse(text: &str) -> Result<Filter> {
        let v: Value = serde_json::from_str(text).map_err(|e| bad(format!("not JSON ({e})")))?;
        Filter::from_json(&v)
    }

    /// Parses a filter object.
    pub fn from_json(v: &Value) -> Result<Filter> {
        let obj =
            v.as_object().ok_or_else(|| bad("a filter is a JSON object with must / should / must_not"))?;
        let mut f = Filter::default();
        for (k, conds) in obj {
            let list = match conds {
                Value::Array(a) => a.iter().map(Cond::from_json).collect::<Result<Vec<_>>>()?,
                Value::Object(_) => vec![Cond::from_json(conds)?],
                _ => return Err(bad(format!("\"{k}\" must be a condition or a list of conditions"))),
            };
            match k.as_str() {
                "must" => f.must = list,
                "should" => f.should = list,
                "must_not" => f.must_not = list,
                other => return Err(bad(format!("unknown clause \"{other}\" (use must, should, must_not)"))),
            }
        }
        Ok(f)
    }

    /// Whether a point with `id` and `payload` passes.
    pub fn matches(&self, id: PointId, payload: &Map<String, Value>) -> bool {
        self.must.iter().all(|c| c.holds(id, payload))
            && (self.should.is_empty() || self.should.iter().any(|c| c.holds(id, payload)))
            && !self.must_not.iter().any(|c| c.holds(id, payload))
    }
}

/// A `must` condition a payload index can answer.
#[derive(Debug)]
pub(crate) enum IndexableCond<'a> {
    /// Any of these values.
    Values(&'a [Value]),
    /// A numeric range (inclusive bounds; open ends infinite); `strict` when the filter's bounds
    /// were strict (`gt`/`lt`), widened here: the candidates must then be re-checked.
    Range { lo: f64, hi: f64, strict: bool },
}

impl Filter {
    /// The key and value when the filter is exactly one `must` match of one value.
    pub(crate) fn single_match(&self) -> Option<(&str, &Value)> {
        match (self.must.as_slice(), self.should.is_empty() && self.must_not.is_empty()) {
            ([Cond::Match { key, values, negate: false }], true) if values.len() == 1 => {
                Some((key.as_str(), &values[0]))
            }
            _ => None,
        }
    }

    /// Whether the filter is only `must` conditions of the kinds [`Filter::must_conditions`]
    /// lists (so an index that answers each of them answers the whole filter).
    pub(crate) fn only_indexable_must(&self) -> bool {
        self.should.is_empty()
            && self.must_not.is_empty()
            && self.must.iter().all(|c| matches!(c, Cond::Match { negate: false, .. } | Cond::Range { .. }))
    }

    /// The `must` conditions on a key that an index can answer: non-negated matches and ranges
    /// (strict bounds are widened to inclusive ones: candidates are re-checked anyway).
    pub(crate) fn must_conditions(&self) -> Vec<(&str, IndexableCond<'_>)> {
        self.must
            .iter()
            .filter_map(|c| match c {
                Cond::Match { key, values, negate: false } => {
                    Some((key.as_str(), IndexableCond::Values(values)))
                }
                Cond::Range { key, gt, gte, lt, lte } => {
                    let lo = (*gt).into_iter().chain(*gte).fold(f64::NEG_INFINITY, f64::max);
                    let hi = (*lt).into_iter().chain(*lte).fold(f64::INFINITY, f64::min);
                    let strict = gt.is_some() || lt.is_some();
                    Some((key.as_str(), IndexableCond::Range { lo, hi, strict }))
                }
                _ => None,
            })
            .collect()
    }
}

impl Cond {
    fn from_json(v: &Value) -> Result<Cond> {
        let obj = v.as_object().ok_or_else(|| bad(format!("condition {v} is not an object")))?;
        // `{}` is an empty nested filter (it holds for every point), as in Qdrant: the server
        // combines filters as `{"must": [a, b]}`, and either may be `{}`.
        if obj.is_empty()
            || obj.contains_key("must")
            || obj.contains_key("should")
            || obj.contains_key("must_not")
        {
            return Filter::from_json(v).map(Cond::Nested);
        }
        if let Some(ids) = obj.get("has_id") {
            let ids = ids.as_array().ok_or_else(|| bad("has_id takes a list of ids"))?;
            return ids.iter().map(PointId::from_json).collect::<Result<_>>().map(Cond::HasId);
        }
        for name in ["is_empty", "is_null", "exists"] {
            if let Some(inner) = obj.get(name) {
                let key = inner
                    .get("key")
                    .and_then(Value::as_str)
                    .ok_or_else(|| bad(format!("{name} needs {{\"key\": …}}")))?;
                return Ok(match name {
                    "is_empty" => Cond::IsEmpty(key.into()),
                    "is_null" => Cond::IsNull(key.into()),
                    _ => Cond::Exists(key.into()),
                });
            }
        }
        let key = obj
            .get("key")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                bad(format!(
                    "condition {v} has no \"key\" (or has_id / is_empty / is_null / a nested filter)"
                ))
            })?
            .to_string();
        if let Some(m) = obj.get("match") {
            let m = m.as_object().ok_or_else(|| bad("match takes an object"))?;
            let scalar = |x: &Value| matches!(x, Value::String(_) | Value::Number(_) | Value::Bool(_));
            if let Some(x) = m.get("value") {
                if !scalar(x) {
                    return Err(bad(format!("match value {x} must be a string, number or bool")));
                }
                return Ok(Cond::Match { key, values: vec![x.clone()], negate: false });
            }
            for (name, negate) in [("any", false), ("except", true)] {
                if let Some(list) = m.get(name) {
                    let list = list.as_array().ok_or_else(|| bad(format!("match {name} takes a list")))?;
                    if let Some(x) = list.iter().find(|x| !scalar(x)) {
                        return Err(bad(format!("match {name}: {x} must be a string, number or bool")));
                    }
                    return Ok(Cond::Match { key, values: list.clone(), negate });
                }
            }
            return Err(bad("match needs value, any or except"));
        }
        if let Some(r) = obj.get("range") {
            let r = r.as_object().ok_or_else(|| bad("range takes an object"))?;
            let get = |n: &str| -> Result<Option<f64>> {
                match r.get(n) {
                    None | Some(Value::Null) => Ok(None),
                    Some(x) => {
                        x.as_f64().map(Some).ok_or_else(|| bad(format!("range {n}: {x} is not a number")))
                    }
                }
            };
            if let Some(k) = r.keys().find(|k| !["gt", "gte", "lt", "lte"].contains(&k.as_str())) {
                return Err(bad(format!("range: unknown bound \"{k}\"")));
            }
            return Ok(Cond::Range {
                key,
                gt: get("gt")?,
                gte: get("gte")?,
                lt: get("lt")?,
                lte: get("lte")?,
            });
        }
        Err(bad(format!("condition on \"{key}\" needs match or range")))
    }

    fn holds(&self, id: PointId, payload: &Map<String, Value>) -> bool {
        match self {
            Cond::Nested(f) => f.matches(id, payload),
            Cond::HasId(ids) => ids.contains(&id),
            Cond::IsEmpty(key) => {
                values_at(payload, key).iter().all(|v| v.is_null() || v.as_array().is_some_and(Vec::is_empty))
            }
            Cond::IsNull(key) => values_at(payload, key).iter().any(|v| v.is_null()),
            Cond::Exists(key) => values_at(payload, key)
                .iter()
                .any(|v| !v.is_null() && v.as_array().is_none_or(|a| !a.is_empty())),
            Cond::Match { key, values, negate } => {
                let found = scalars_at(payload, key);
                if *negate {
                    // Qdrant: except holds when the key has a value none of whose elements is listed.
                    !found.is_empty() && found.iter().all(|x| !values.iter().any(|v| same(v, x)))
                } else {
                    found.iter().any(|x| values.iter().any(|v| same(v, x)))
                }
            }
            Cond::Range { key, gt, gte, lt, lte } => {
                scalars_at(payload, key).iter().filter_map(|x| x.as_f64()).any(|x| {
                    gt.is_none_or(|b| x > b)
                        && gte.is_none_or(|b| x >= b)
                        && lt.is_none_or(|b| x < b)
                        && lte.is_none_or(|b| x <= b)
                })
            }
        }
    }
}

/// Numbers compare by value (1 == 1.0), exactly: an integer equals an integer or an integral
/// float of the same value (as the payload index keys them, and as Qdrant matches integers; no
/// rounding through f64 beyond 2^53), two floats as f64; the rest by equality.
fn same(a: &Value, b: &Value) -> bool {
    let int = |v: &Value| v.as_i64().map(i128::from).or_else(|| v.as_u64().map(i128::from));
    // (`as i128` saturates, far beyond every integer JSON gives here.)
    let int_eq = |i: i128, f: f64| f.fract() == 0.0 && f as i128 == i;
    match (int(a), int(b), a.as_f64(), b.as_f64()) {
        (Some(x), Some(y), _, _) => x == y,
        (Some(i), None, _, Some(f)) | (None, Some(i), Some(f), _) => int_eq(i, f),
        (None, None, Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

/// The values at dotted path `key` (arrays on the way are flattened).
fn values_at<'a>(payload: &'a Map<String, Value>, key: &str) -> Vec<&'a Value> {
    let mut cur: Vec<&Value> = Vec::new();
    let mut parts = key.split('.');
    let Some(first) = parts.next() else { return cur };
    if let Some(v) = payload.get(first) {
        cur.push(v);
    }
    for part in parts {
        let mut next = Vec::new();
        for v in cur {
            match v {
                Value::Object(o) => next.extend(o.get(part)),
                Value::Array(a) => next.extend(a.iter().filter_map(|x| x.get(part))),
                _ => {}
            }
        }
        cur = next;
    }
    cur
}

/// The scalar values at `key`, array elements included.
fn scalars_at<'a>(payload: &'a Map<String, Value>, key: &str) -> Vec<&'a Value> {
    let mut out = Vec::new();
    for v in values_at(payload, key) {
        match v {
            Value::Array(a) => out.extend(a.iter()),
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Found by the `filter_json` fuzz target: `{}` is a valid filter, but as a condition (how the
    /// server combines an outer and a prefetch filter, `{"must": [a, b]}`) it was refused.
    #[test]
    fn an_empty_filter_is_also_an_empty_condition() {
        let p = |v: Value| v.as_object().cloned().unwrap_or_default();
        let all = Filter::parse("{}").expect("empty filter");
        let both = Filter::from_json(&json!({"must": [{}, {}]})).expect("two empty filters combine");
        let one =
            Filter::from_json(&json!({"must": [{}, {"key": "a", "match": {"value": 1}}]})).expect("combine");
        for (id, payload) in [(1, json!({"a": 1})), (2, json!({"a": 2})), (3, json!({}))] {
            let (id, payload) = (PointId::Num(id), p(payload));
            assert!(all.matches(id, &payload) && both.matches(id, &payload));
            assert_eq!(one.matches(id, &payload), id == PointId::Num(1));
        }
        // Under must_not an empty filter holds, so nothing passes.
        let none = Filter::from_json(&json!({"must_not": [{}]})).expect("valid");
        assert!(!none.matches(PointId::Num(1), &p(json!({"a": 1}))));
        assert!(
            Filter::from_json(&json!({"must": [{"unknown": 1}]})).is_err(),
            "other objects still need a key"
        );
    }

    /// Found by the `filter_json` fuzz target: integers beyond 2^53 compared through f64, so
    /// `match 9007199254740992` held for a payload of 9007199254740993 without a payload index
    /// and not with one (the index compares integers exactly, as Qdrant does).
    #[test]
    fn integers_match_exactly_beyond_f64_precision() {
        let f =
            Filter::parse(r#"{"must": [{"key": "n", "match": {"value": 9007199254740992}}]}"#).expect("ok");
        let p = |v: Value| json!({ "n": v }).as_object().cloned().unwrap_or_default();
        assert!(f.matches(PointId::Num(1), &p(json!(9_007_199_254_740_992_i64))));
        assert!(!f.matches(PointId::Num(1), &p(json!(9_007_199_254_740_993_i64))));
        assert!(f.matches(PointId::Num(1), &p(json!(9_007_199_254_740_992.0))), "an integral float");
        let g =
            Filter::parse(r#"{"must": [{"key": "n", "match": {"value": 16000000000000001}}]}"#).expect("ok");
        assert!(!g.matches(PointId::Num(1), &p(json!(1.6e16))), "1.6e16 is 16000000000000000 exactly");
        assert!(g.matches(PointId::Num(1), &p(json!(16_000_000_000_000_001_i64))));
        let max =
            Filter::parse(&format!(r#"{{"must": [{{"key": "n", "match": {{"any": [{}]}}}}]}}"#, u64::MAX))
                .expect("ok");
        assert!(max.matches(PointId::Num(1), &p(json!(u64::MAX))));
        assert!(!max.matches(PointId::Num(1), &p(json!(u64::MAX - 1))));
        let one = Filter::parse(r#"{"must": [{"key": "n", "match": {"value": 1}}]}"#).expect("ok");
        assert!(
            one.matches(PointId::Num(1), &p(json!(1.0))) && !one.matches(PointId::Num(1), &p(json!(1.5)))
        );
    }
}
