//! Payload indexes: for each declared payload key, the slots holding each value (integers,
//! strings, booleans; array elements each count), with integers also ordered for ranges. A filter
//! whose `must` clause has a `match` or integer `range` condition on an indexed key is answered
//! from the index first ([`PayloadIndex::candidates`]); the candidates are then checked against
//! the whole filter, so an index can only make a query faster, never change its answer.

use crate::filter::Filter;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap};

/// An indexed scalar value.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Key {
    Int(i64),
    Str(String),
    Bool(bool),
}

impl Key {
    /// The key of a JSON scalar (integers, including floats with an integral value; strings;
    /// booleans), or `None`.
    pub(crate) fn of(v: &Value) -> Option<Key> {
        match v {
            Value::Bool(b) => Some(Key::Bool(*b)),
            Value::String(s) => Some(Key::Str(s.clone())),
            Value::Number(n) => n
                .as_i64()
                // Integral floats in i64's range (-2^63 ≤ f < 2^63) are that integer.
                .or_else(|| {
                    n.as_f64()
                        .filter(|f| f.fract() == 0.0 && (-(2f64.powi(63))..2f64.powi(63)).contains(f))
                        .map(|f| f as i64)
                })
                .map(Key::Int),
            _ => None,
        }
    }
}

/// The slots of each value of one key: integers in `ints` (ordered, for ranges), other values
/// in `values` (each slot list is kept once).
#[derive(Debug, Default)]
struct FieldIndex {
    values: HashMap<Key, Vec<u32>>,
    ints: BTreeMap<i64, Vec<u32>>,
    /// A number without an integral value was seen: ranges on this key are not answered here.
    fractional: bool,
    /// The type of the first non-null value seen (`bool`, `integer`, `float`, `keyword`).
    kind: Option<&'static str>,
    /// Ascending slots holding at least one non-null value.
    slots: Vec<u32>,
}

impl FieldIndex {
    /// The ascending slots holding value `k`.
    fn slots_of(&self, k: &Key) -> Option<&Vec<u32>> {
        match k {
            Key::Int(i) => self.ints.get(i),
            k => self.values.get(k),
        }
    }

    /// Releases the spare capacity of every list (after a bulk load).
    fn shrink_to_fit(&mut self) {
        self.values.values_mut().for_each(Vec::shrink_to_fit);
        self.values.shrink_to_fit();
        self.ints.values_mut().for_each(Vec::shrink_to_fit);
        self.slots.shrink_to_fit();
    }

    /// Adds slot `slot`'s values of `key` (slots are added in increasing order).
    fn add(&mut self, key: &str, slot: u32, payload: &Map<String, Value>) {
        for v in scalars(payload, key) {
            if v.is_null() {
                continue;
            }
            push_once(&mut self.slots, slot);
            if self.kind.is_none() {
                self.kind = match v {
                    Value::Bool(_) => Some("bool"),
                    Value::Number(x) if x.is_i64() || x.is_u64() => Some("integer"),
                    Value::Number(_) => Some("float"),
                    Value::String(_) => Some("keyword"),
                    _ => None,
                };
            }
            if v.is_number() && Key::of(v).is_none() {
                self.fractional = true;
            }
            match Key::of(v) {
                Some(Key::Int(i)) => push_once(self.ints.entry(i).or_default(), slot),
                Some(k) => push_once(self.values.entry(k).or_default(), slot),
                None => {}
            }
        }
    }
}

/// Indexes of the declared payload keys.
#[derive(Debug, Default)]
pub(crate) struct PayloadIndex {
    fields: HashMap<String, FieldIndex>,
}

/// Values at a dotted key, arrays flattened.
fn scalars<'a>(payload: &'a Map<String, Value>, key: &str) -> Vec<&'a Value> {
    let mut cur: Vec<&Value> = Vec::new();
    let mut parts = key.split('.');
    if let Some(v) = parts.next().and_then(|first| payload.get(first)) {
        cur.push(v);
    }
    for part in parts {
        cur = cur
            .into_iter()
            .flat_map(|v| match v {
                Value::Object(o) => o.get(part).into_iter().collect::<Vec<_>>(),
                Value::Array(a) => a.iter().filter_map(|x| x.get(part)).collect(),
                _ => Vec::new(),
            })
            .collect();
    }
    cur.into_iter()
        .flat_map(|v| match v {
            Value::Array(a) => a.iter().collect::<Vec<_>>(),
            other => vec![other],
        })
        .collect()
}

impl PayloadIndex {
    /// Indexes for `keys`.
    pub(crate) fn new(keys: &[String]) -> PayloadIndex {
        PayloadIndex { fields: keys.iter().map(|k| (k.clone(), FieldIndex::default())).collect() }
    }

    /// Adds slot `slot` with `payload` (slots are added in increasing order).
    pub(crate) fn add(&mut self, slot: u32, payload: &Map<String, Value>) {
        for (key, f) in &mut self.fields {
            f.add(key, slot, payload);
        }
    }

    /// Whether any key is indexed (else [`PayloadIndex::add`] need not be given payloads).
    pub(crate) fn has_keys(&self) -> bool {
        !self.fields.is_empty()
    }

    /// The indexed keys, sorted.
    pub(crate) fn keys(&self) -> Vec<String> {
        let mut k: Vec<String> = self.fields.keys().cloned().collect();
        k.sort();
        k
    }

    /// Releases spare capacity (after opening: lists grown by doubling hold up to twice their
    /// size).
    pub(crate) fn shrink_to_fit(&mut self) {
        self.fields.values_mut().for_each(FieldIndex::shrink_to_fit);
    }

    /// Starts indexing `key` over `payloads` (by slot); `false` if it is already indexed.
    pub(crate) fn add_key(&mut self, key: &str, payloads: &crate::payloads::Payloads) -> bool {
        if self.fields.contains_key(key) {
            return false;
        }
        let mut f = FieldIndex::default();
        for slot in 0..payloads.len() {
            f.add(key, slot as u32, &payloads.get(slot as u32));
        }
        self.fields.insert(key.to_string(), f);
        true
    }

    /// Stops indexing `key`; `false` if it was not indexed.
    pub(crate) fn remove_key(&mut self, key: &str) -> bool {
        self.fields.remove(key).is_some()
    }

    /// For indexed `key`: the type of the first non-null value seen (`bool`, `integer`, `float`
    /// or `keyword`; `None` before any) and how many live slots hold a non-null value.
    pub(crate) fn info(&self, key: &str, live: &[bool]) -> Option<(Option<&'static str>, usize)> {
        let f = self.fields.get(key)?;
        let points = f.slots.iter().filter(|&&s| live.get(s as usize).copied().unwrap_or(false)).count();
        Some((f.kind, points))
    }

    /// Every indexed value of `key` with its ascending slots.
    pub(crate) fn value_groups(&self, key: &str) -> Vec<(Key, Vec<u32>)> {
        self.fields.get(key).map_or_else(Vec::new, |f| {
            let ints = f.ints.iter().map(|(&i, s)| (Key::Int(i), s.clone()));
            f.values.iter().map(|(k, s)| (k.clone(), s.clone())).chain(ints).collect()
        })
    }

    /// Ascending candidate slots at or above `from` for `filter` from the indexed `must`
    /// conditions (intersected), and whether they are the exact answer (every condition answered
    /// by the index; no need to check the payloads); `None` when no condition is indexed (scan
    /// everything from `from`).
    pub(crate) fn candidates(&self, filter: &Filter, from: u32) -> Option<(Vec<u32>, bool)> {
        // Slots of one value are ascending: skip those below `from` by binary search.
        let tail = |s: &'_ [u32]| -> std::ops::Range<usize> { s.partition_point(|&x| x < from)..s.len() };
        let mut out: Option<Vec<u32>> = None;
        let mut exact = filter.only_indexable_must();
        for (key, cond) in filter.must_conditions() {
            let Some(f) = self.fields.get(key) else {
                exact = false;
                continue;
            };
            let answerable = match &cond {
                crate::filter::IndexableCond::Values(values) => values.iter().all(|v| Key::of(v).is_some()),
                crate::filter::IndexableCond::Range { .. } => !f.fractional,
            };
            if matches!(cond, crate::filter::IndexableCond::Range { strict: true, .. }) {
                // The bounds were widened to inclusive ones: re-check the candidates.
                exact = false;
            }
            if !answerable {
                exact = false;
                continue;
            }
            let single = matches!(&cond, crate::filter::IndexableCond::Values(v) if v.len() == 1);
            let mut slots: Vec<u32> = match cond {
                crate::filter::IndexableCond::Values(values) => values
                    .iter()
                    .filter_map(Key::of)
                    .flat_map(|k| f.slots_of(&k).into_iter().flat_map(|s| s[tail(s)].iter().copied()))
                    .collect(),
                crate::filter::IndexableCond::Range { lo, hi, .. } => {
                    // The filter compares an integer k as the f64 `k as f64`, which rounds (by less
                    // than 1,024 in i64's range) but monotonically: scan the integers within 1,024 of
                    // the bounds and keep those whose f64 value lies inside, the filter's answer.
                    let a = (lo.ceil() as i64).saturating_sub(1024);
                    let b = (hi.floor() as i64).saturating_add(1024);
                    if lo > hi || a > b {
                        Vec::new()
                    } else {
                        f.ints
                            .range(a..=b)
                            .filter(|(k, _)| (lo..=hi).contains(&(**k as f64)))
                            .flat_map(|(_, s)| s[tail(s)].iter().copied())
                            .collect()
                    }
                }
            };
            if !single {
                // One value's list is already ascending and unique (slots are added in order).
                slots.sort_unstable();
                slots.dedup();
            }
            out = Some(match out {
                None => slots,
                Some(prev) => intersect(&prev, &slots),
            });
        }
        out.map(|o| (o, exact))
    }
}

fn push_once(list: &mut Vec<u32>, slot: u32) {
    if list.last() != Some(&slot) {
        list.push(slot);
    }
}

fn intersect(a: &[u32], b: &[u32]) -> Vec<u32> {
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out
}
