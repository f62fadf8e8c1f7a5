//! JSONL vectors: one object per line, `{"id": <u64 or string>, "vector": [numbers], "payload": {...}}`.
//!
//! `payload` is optional and may be any JSON value; other keys are ignored. Blank lines are skipped, a
//! UTF-8 byte-order mark on the first line and `\r\n` line ends are accepted. Errors name the line
//! (1-based). Numbers are converted to the nearest f32 (so values beyond the f32 range become
//! infinities, which the index rejects).

use std::path::Path;

use quarry_core::{Error, Matrix, Result};
use serde_json::Value;

use super::read_file;

/// The external id of a JSONL record.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RecordId {
    /// A non-negative integer id.
    U64(u64),
    /// A string id.
    String(String),
}

impl std::fmt::Display for RecordId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RecordId::U64(n) => write!(f, "{n}"),
            RecordId::String(s) => write!(f, "{s:?}"),
        }
    }
}

/// One line of a JSONL vector file.
#[derive(Debug, Clone, PartialEq)]
pub struct VectorRecord {
    /// The record's id.
    pub id: RecordId,
    /// The vector components.
    pub vector: Vec<f32>,
    /// The optional payload, as given.
    pub payload: Option<Value>,
    /// The 1-based line it came from (for error messages).
    pub line: usize,
}

/// Splits `bytes` into `(1-based line number, line)` pairs, skipping blank lines and removing a
/// trailing `\r` and a leading UTF-8 byte-order mark.
pub(crate) fn lines(bytes: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    bytes
        .split(|&b| b == b'\n')
        .enumerate()
        .map(|(i, l)| (i + 1, l.strip_suffix(b"\r").unwrap_or(l)))
        .filter(|(_, l)| !l.iter().all(u8::is_ascii_whitespace))
}

/// Parses one line as a JSON object; errors name the line and column.
pub(crate) fn parse_object(line: &[u8], n: usize, path: &Path) -> Result<serde_json::Map<String, Value>> {
    match serde_json::from_slice::<Value>(line) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(Error::malformed(
            path,
            format!("line {n}"),
            format!("expected a JSON object, found {}", kind(&other)),
        )),
        Err(e) => {
            let text = e.to_string();
            let message = text.rsplit_once(" at line ").map_or(text.as_str(), |(m, _)| m);
            let message = match quarry_core::non_finite_hint(line, 1, e.column(), message) {
                Some(h) => format!("{message} ({h})"),
                None => message.to_string(),
            };
            Err(Error::malformed(path, format!("line {n}, column {}", e.column()), message))
        }
    }
}

/// A short name for the kind of a JSON value.
pub(crate) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn record(line: &[u8], n: usize, path: &Path) -> Result<VectorRecord> {
    let mut map = parse_object(line, n, path)?;
    let bad = |message: String| Error::malformed(path, format!("line {n}"), message);
    let id = match map.get("id") {
        Some(Value::Number(num)) => match num.as_u64() {
            Some(id) => RecordId::U64(id),
            None => return Err(bad(format!("\"id\" {num} is not a non-negative integer"))),
        },
        Some(Value::String(s)) => RecordId::String(s.clone()),
        Some(other) => {
            return Err(bad(format!("\"id\" must be an integer or a string, found {}", kind(other))))
        }
        None => return Err(bad("missing \"id\"".into())),
    };
    let vector = match map.get("vector") {
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, v)| {
                v.as_f64()
                    .map(|x| x as f32)
                    .ok_or_else(|| bad(format!("\"vector\" component {i} is {}, not a number", kind(v))))
            })
            .collect::<Result<Vec<f32>>>()?,
        Some(other) => return Err(bad(format!("\"vector\" must be an array, found {}", kind(other)))),
        None => return Err(bad("missing \"vector\"".into())),
    };
    let payload = map.remove("payload");
    Ok(VectorRecord { id, vector, payload, line: n })
}

/// Parses JSONL vector records from `bytes` (`path` only names the file in errors).
pub fn parse_jsonl(bytes: &[u8], path: &Path) -> Result<Vec<VectorRecord>> {
    lines(bytes).map(|(n, line)| record(line, n, path)).collect()
}

/// Reads a JSONL vector file.
pub fn read_jsonl(path: &Path) -> Result<Vec<VectorRecord>> {
    parse_jsonl(&read_file(path)?, path)
}

/// Stacks the records' vectors into a [`Matrix`]. All must have the first record's (non-zero)
/// dimension; an error names the file and the line of the first mismatch. Errors if there are none.
pub fn records_to_matrix(records: &[VectorRecord], path: &Path) -> Result<Matrix> {
    let Some(first) = records.first() else {
        return Err(Error::malformed(path, "line 1", "no records, so the dimension is unknown"));
    };
    let dim = first.vector.len();
    if dim == 0 {
        return Err(Error::malformed(path, format!("line {}", first.line), "\"vector\" is empty"));
    }
    // Check every dimension before allocating, so one long first vector cannot inflate the allocation.
    if let Some(r) = records.iter().find(|r| r.vector.len() != dim) {
        return Err(Error::malformed(
            path,
            format!("line {}", r.line),
            format!("vector has {} components but the first (line {}) has {dim}", r.vector.len(), first.line),
        ));
    }
    let mut data = Vec::with_capacity(dim * records.len());
    for r in records {
        data.extend_from_slice(&r.vector);
    }
    Matrix::new(data, dim).map_err(|e| Error::malformed(path, "data", e.to_string()))
}
