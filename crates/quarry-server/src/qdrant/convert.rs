//! Conversions between Qdrant's JSON and the engine: ids, filters, payload and vector selectors,
//! distance names, and scores (the engine ranks L2 by minus the squared distance; Qdrant's
//! `Euclid` answers the distance itself, smallest first).

use crate::error::{ApiError, ApiResult};
use quarry_core::Metric;
use quarry_engine::{CollectionSchema, Filter, Point, PointId};
use serde_json::{json, Map, Value};

/// Parses ids, at most `max` of them.
pub fn ids(values: &[Value], max: usize) -> ApiResult<Vec<PointId>> {
    if values.len() > max {
        return Err(ApiError::bad(format!("{} ids in one request: at most {max}", values.len())));
    }
    values.iter().map(|v| PointId::from_json(v).map_err(ApiError::from)).collect()
}

/// Parses an optional filter (`null`: none).
pub fn filter(v: Option<&Value>) -> ApiResult<Option<Filter>> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(v) => Ok(Some(Filter::from_json(v)?)),
    }
}

/// Both filters (either may be absent) as one.
pub fn both(a: Option<&Value>, b: Option<&Value>) -> ApiResult<Option<Filter>> {
    let a = a.filter(|v| !v.is_null());
    let b = b.filter(|v| !v.is_null());
    match (a, b) {
        (Some(a), Some(b)) => filter(Some(&json!({"must": [a, b]}))),
        (a, b) => filter(a.or(b)),
    }
}

/// Qdrant's distance name of a metric.
pub fn distance_name(m: &str) -> &'static str {
    match m {
        "ip" => "Dot",
        "l2" => "Euclid",
        _ => "Cosine",
    }
}

/// The engine metric of a Qdrant distance name (`Cosine`, `Dot`, `Euclid`) or of the CLI's
/// spelling (`cosine`, `ip`, `l2`): one parser, `Metric::from_str`, for both.
pub fn metric_of(distance: &str) -> ApiResult<Metric> {
    if distance.eq_ignore_ascii_case("manhattan") {
        return Err(ApiError::bad("distance Manhattan is not supported: use Cosine, Dot or Euclid"));
    }
    distance.parse::<Metric>().map_err(|_| {
        ApiError::bad(format!("unknown distance {distance:?}: use Cosine, Dot or Euclid (or cosine, ip, l2)"))
    })
}

/// Converts between engine scores and Qdrant's for one field's metric.
#[derive(Debug, Clone, Copy)]
pub struct Scores {
    euclid: bool,
}

impl Scores {
    /// For field `f` of `schema`.
    pub fn of(schema: &CollectionSchema, f: usize) -> Scores {
        Scores { euclid: schema.vectors.get(f).is_some_and(|v| v.metric == "l2") }
    }

    /// Qdrant's score for an engine score.
    pub fn out(self, s: f32) -> f64 {
        if self.euclid {
            f64::from(-s).max(0.0).sqrt()
        } else {
            f64::from(s)
        }
    }

    /// Qdrant score `s` oriented so that higher is better (distances negated).
    pub fn higher_better(self, s: f64) -> f64 {
        if self.euclid {
            -s
        } else {
            s
        }
    }

    /// Whether Qdrant score `s` passes `threshold`.
    pub fn passes(self, s: f64, threshold: Option<f64>) -> bool {
        match threshold {
            None => true,
            Some(t) if self.euclid => s <= t,
            Some(t) => s >= t,
        }
    }
}

/// Which payload keys an answer carries.
#[derive(Debug, Clone)]
pub enum PayloadSel {
    /// None.
    Off,
    /// All.
    All,
    /// Only these.
    Include(Vec<String>),
    /// All but these.
    Exclude(Vec<String>),
}

fn strings(v: &Value, what: &str) -> ApiResult<Vec<String>> {
    v.as_array()
        .and_then(|a| a.iter().map(|x| x.as_str().map(str::to_string)).collect::<Option<Vec<_>>>())
        .ok_or_else(|| ApiError::bad(format!("{what} must be a list of strings")))
}

impl PayloadSel {
    /// Parses `with_payload` (absent: `default`).
    pub fn parse(v: Option<&Value>, default: bool) -> ApiResult<PayloadSel> {
        Ok(match v {
            None | Some(Value::Null) => {
                if default {
                    PayloadSel::All
                } else {
                    PayloadSel::Off
                }
            }
            Some(Value::Bool(true)) => PayloadSel::All,
            Some(Value::Bool(false)) => PayloadSel::Off,
            Some(a @ Value::Array(_)) => PayloadSel::Include(strings(a, "with_payload")?),
            Some(Value::Object(o)) => match (o.get("include"), o.get("exclude")) {
                (Some(i), None) => PayloadSel::Include(strings(i, "with_payload.include")?),
                (None, Some(e)) => PayloadSel::Exclude(strings(e, "with_payload.exclude")?),
                _ => {
                    return Err(ApiError::bad("with_payload object: give either \"include\" or \"exclude\""))
                }
            },
            Some(other) => {
                return Err(ApiError::bad(format!(
                    "with_payload {other}: use a bool, a list of keys, or include/exclude"
                )))
            }
        })
    }

    /// Whether payloads are needed at all.
    pub fn wanted(&self) -> bool {
        !matches!(self, PayloadSel::Off)
    }

    /// The selected part of `p` (`None` when off).
    pub fn apply(&self, p: Map<String, Value>) -> Option<Value> {
        match self {
            PayloadSel::Off => None,
            PayloadSel::All => Some(Value::Object(p)),
            PayloadSel::Include(keys) => {
                Some(Value::Object(p.into_iter().filter(|(k, _)| keys.iter().any(|x| x == k)).collect()))
            }
            PayloadSel::Exclude(keys) => {
                Some(Value::Object(p.into_iter().filter(|(k, _)| !keys.iter().any(|x| x == k)).collect()))
            }
        }
    }
}

/// Which vector fields an answer carries.
#[derive(Debug, Clone)]
pub enum VectorSel {
    /// None.
    Off,
    /// All.
    All,
    /// Only these fields.
    Some(Vec<String>),
}

impl VectorSel {
    /// Parses `with_vector` (absent: off).
    pub fn parse(v: Option<&Value>) -> ApiResult<VectorSel> {
        Ok(match v {
            None | Some(Value::Null) | Some(Value::Bool(false)) => VectorSel::Off,
            Some(Value::Bool(true)) => VectorSel::All,
            Some(a @ Value::Array(_)) => VectorSel::Some(strings(a, "with_vector")?),
            Some(other) => {
                return Err(ApiError::bad(format!(
                    "with_vector {other}: use a bool or a list of field names"
                )))
            }
        })
    }

    /// Whether vectors are needed.
    pub fn wanted(&self) -> bool {
        !matches!(self, VectorSel::Off)
    }

    /// The selected vectors of `p` as Qdrant prints them: an array for the one unnamed field,
    /// else an object by field name.
    pub fn apply(&self, schema: &CollectionSchema, p: &Point) -> Option<Value> {
        if !self.wanted() || p.vectors.len() != schema.vectors.len() {
            return None;
        }
        if schema.vectors.len() == 1 && schema.vectors[0].name.is_empty() {
            return Some(schema.vectors[0].value_json(&p.vectors[0]));
        }
        Some(Value::Object(
            schema
                .vectors
                .iter()
                .zip(&p.vectors)
                .filter(|(f, _)| match self {
                    VectorSel::Some(names) => names.contains(&f.name),
                    _ => true,
                })
                .map(|(f, v)| (f.name.clone(), f.value_json(v)))
                .collect(),
        ))
    }
}

/// A record (`retrieve`, `scroll`) as Qdrant prints it.
pub fn record(schema: &CollectionSchema, p: Point, ps: &PayloadSel, vs: &VectorSel) -> Value {
    let vector = vs.apply(schema, &p);
    let mut o = Map::new();
    o.insert("id".into(), p.id.to_json());
    if let Some(pl) = ps.apply(p.payload) {
        o.insert("payload".into(), pl);
    }
    if let Some(v) = vector {
        o.insert("vector".into(), v);
    }
    Value::Object(o)
}

/// A scored point as Qdrant prints it.
pub fn scored(id: PointId, score: f64, payload: Option<Value>, vector: Option<Value>) -> Value {
    let mut o = Map::new();
    o.insert("id".into(), id.to_json());
    o.insert("version".into(), json!(0));
    o.insert("score".into(), json!(score));
    if let Some(p) = payload {
        o.insert("payload".into(), p);
    }
    if let Some(v) = vector {
        o.insert("vector".into(), v);
    }
    Value::Object(o)
}

/// Parses a vector (array of numbers) named `what`.
pub fn floats(v: &Value, what: &str) -> ApiResult<Vec<f32>> {
    let a = v.as_array().ok_or_else(|| ApiError::bad(format!("{what} must be an array of numbers")))?;
    a.iter()
        .enumerate()
        .map(|(i, x)| {
            let f = x
                .as_f64()
                .ok_or_else(|| ApiError::bad(format!("{what}: component {i} is not a number ({x})")))?;
            let g = f as f32;
            if !g.is_finite() {
                return Err(ApiError::bad(format!(
                    "{what}: component {i} ({f}) is not a finite 32-bit float"
                )));
            }
            Ok(g)
        })
        .collect()
}
