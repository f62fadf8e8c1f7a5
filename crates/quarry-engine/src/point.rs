//! Points (id, named vectors, JSON payload), their validation against a schema, and the binary
//! encoding of write operations in the write-ahead log (spec: docs/FORMAT.md, "Collection WAL
//! operations"). Decoding never panics: a record that does not parse is an error naming the field.

use crate::id::PointId;
use crate::schema::CollectionSchema;
use quarry_core::{Error, Result};
use serde_json::{Map, Value};

/// One point: an id, one vector per field of the schema (by field index), a payload object.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// External id.
    pub id: PointId,
    /// Vectors in schema field order.
    pub vectors: Vec<Vec<f32>>,
    /// Payload (a JSON object; empty if none).
    pub payload: Map<String, Value>,
}

/// Checks that `v` has `dim` components, all finite; errors name `what` (a point's field, a query).
pub(crate) fn check_vector(v: &[f32], dim: usize, what: &str) -> Result<()> {
    if v.len() != dim {
        return Err(Error::DimensionMismatch { expected: dim, got: v.len(), context: what.to_string() });
    }
    if let Some((i, x)) = v.iter().enumerate().find(|(_, x)| !x.is_finite()) {
        return Err(Error::NonFinite { what: what.to_string(), component: i, value: *x });
    }
    Ok(())
}

/// Checks that `payload` (of point `id`) serialises to at most `limit` bytes of JSON.
pub(crate) fn check_payload_size(id: PointId, payload: &Map<String, Value>, limit: usize) -> Result<()> {
    let size = serde_json::to_vec(payload).map_or(usize::MAX, |b| b.len());
    if size > limit {
        return Err(Error::InvalidArgument(format!(
            "point {id}: payload of {size} bytes is over the collection's limit of {limit} bytes"
        )));
    }
    Ok(())
}

/// The payload a set-payload operation leaves: `set`'s keys merged into `old`, or `set` alone
/// with `overwrite`.
pub(crate) fn updated_payload(
    old: &Map<String, Value>,
    set: &Map<String, Value>,
    overwrite: bool,
) -> Map<String, Value> {
    let mut p = if overwrite { Map::new() } else { old.clone() };
    p.extend(set.iter().map(|(k, v)| (k.clone(), v.clone())));
    p
}

/// A write operation, as logged.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// Insert or replace these points.
    Upsert(Vec<Point>),
    /// Delete these ids (absent ones are ignored).
    Delete(Vec<PointId>),
    /// Set payload keys of these ids (absent ones are ignored): merged into each payload, or
    /// replacing it whole when `overwrite`.
    SetPayload {
        /// Points to change.
        ids: Vec<PointId>,
        /// Keys and values to set.
        payload: Map<String, Value>,
        /// Replace the whole payload instead of merging keys.
        overwrite: bool,
    },
    /// Remove these payload keys from these ids (absent ids and keys are ignored).
    DeletePayloadKeys {
        /// Points to change.
        ids: Vec<PointId>,
        /// Keys to remove.
        keys: Vec<String>,
    },
}

impl Point {
    /// Parses one point from JSON: `{"id": …, "vector": […] | {"name": […], …}, "payload": {…}}`
    /// (`vectors` is accepted for `vector`), checked against `schema`.
    pub fn from_json(v: &Value, schema: &CollectionSchema) -> Result<Point> {
        let obj =
            v.as_object().ok_or_else(|| Error::InvalidArgument("a point must be a JSON object".into()))?;
        let id = PointId::from_json(
            obj.get("id").ok_or_else(|| Error::InvalidArgument("a point needs an \"id\"".into()))?,
        )?;
        let vec_value = obj
            .get("vector")
            .or_else(|| obj.get("vectors"))
            .ok_or_else(|| Error::InvalidArgument(format!("point {id}: no \"vector\"")))?;
        let mut vectors = vec![Vec::new(); schema.vectors.len()];
        let value_of = |f: usize, v: &Value, name: &str| match &schema.vectors[f].multivector {
            None => floats(v, id, name),
            Some(_) => {
                vector_set(v, schema.vectors[f].dim, &format!("point {id}, {}", schema.vectors[f].label()))
            }
        };
        match vec_value {
            Value::Array(_) => {
                let f = schema.field(None)?;
                vectors[f] = value_of(f, vec_value, "")?;
            }
            Value::Object(named) => {
                for (name, v) in named {
                    let f = schema.field(Some(name))?;
                    vectors[f] = value_of(f, v, name)?;
                }
            }
            _ => {
                return Err(Error::InvalidArgument(format!(
                    "point {id}: \"vector\" must be an array or an object"
                )))
            }
        }
        let payload = match obj.get("payload") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(m)) => m.clone(),
            Some(_) => {
                return Err(Error::InvalidArgument(format!("point {id}: \"payload\" must be a JSON object")))
            }
        };
        let p = Point { id, vectors, payload };
        p.check(schema)?;
        Ok(p)
    }

    /// Checks dimensions, finiteness, non-empty vectors and the payload size.
    pub fn check(&self, schema: &CollectionSchema) -> Result<()> {
        self.check_vectors(schema)?;
        check_payload_size(self.id, &self.payload, schema.max_payload_bytes)
    }

    /// Checks the vectors only: one per schema field, of its dimension, finite, and not zero
    /// under cosine. What every point read back from disk must pass before it is applied.
    pub fn check_vectors(&self, schema: &CollectionSchema) -> Result<()> {
        let id = self.id;
        if self.vectors.len() != schema.vectors.len() {
            return Err(Error::InvalidArgument(format!(
                "point {id}: {} vector fields, expected {}",
                self.vectors.len(),
                schema.vectors.len()
            )));
        }
        for (f, v) in schema.vectors.iter().zip(&self.vectors) {
            if v.is_empty() {
                return Err(Error::InvalidArgument(format!("point {id}: {} is missing or empty", f.label())));
            }
            if let Some(mv) = &f.multivector {
                check_vector_set(
                    v,
                    f.dim,
                    mv.max_vectors,
                    f.metric()?,
                    &format!("point {id}, {}", f.label()),
                )?;
                continue;
            }
            check_vector(v, f.dim, &format!("point {id}, {}", f.label()))?;
            if f.metric()? == quarry_core::Metric::Cosine && v.iter().all(|&x| x == 0.0) {
                return Err(Error::ZeroVector { what: format!("point {id}, {}", f.label()) });
            }
        }
        Ok(())
    }

    /// The point as JSON: `{"id", "vector" (an array for a single unnamed field, else an object),
    /// "payload"}`.
    pub fn to_json(&self, schema: &CollectionSchema) -> Value {
        let vector = if schema.vectors.len() == 1 && schema.vectors[0].name.is_empty() {
            schema.vectors[0].value_json(&self.vectors[0])
        } else {
            Value::Object(
                schema
                    .vectors
                    .iter()
                    .zip(&self.vectors)
                    .map(|(f, v)| (f.name.clone(), f.value_json(v)))
                    .collect(),
            )
        };
        serde_json::json!({"id": self.id.to_json(), "vector": vector, "payload": Value::Object(self.payload.clone())})
    }
}

/// Checks a multi-vector value: `v` holds 1 to `max` vectors of `dim` values (concatenated), all
/// finite, none zero under cosine; errors name `what` and the vector.
pub(crate) fn check_vector_set(
    v: &[f32],
    dim: usize,
    max: usize,
    metric: quarry_core::Metric,
    what: &str,
) -> Result<()> {
    if v.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "{what}: a multi-vector value needs at least one vector"
        )));
    }
    if dim == 0 || !v.len().is_multiple_of(dim) {
        return Err(Error::InvalidArgument(format!(
            "{what}: {} values do not split into vectors of dimension {dim}",
            v.len()
        )));
    }
    let n = v.len() / dim;
    if n > max {
        return Err(Error::InvalidArgument(format!(
            "{what}: {n} vectors, more than the field's maximum of {max}"
        )));
    }
    for (i, row) in v.chunks_exact(dim).enumerate() {
        check_vector(row, dim, &format!("{what}, vector {i}"))?;
        if metric == quarry_core::Metric::Cosine && row.iter().all(|&x| x == 0.0) {
            return Err(Error::ZeroVector { what: format!("{what}, vector {i}") });
        }
    }
    Ok(())
}

/// Parses a multi-vector value, an array of arrays of `dim` numbers, into concatenated rows;
/// errors name `what`.
pub fn vector_set(v: &Value, dim: usize, what: &str) -> Result<Vec<f32>> {
    let rows = v.as_array().ok_or_else(|| {
        Error::InvalidArgument(format!("{what}: a multi-vector value must be an array of vectors"))
    })?;
    if rows.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "{what}: a multi-vector value needs at least one vector"
        )));
    }
    let mut out = Vec::with_capacity(rows.len() * dim);
    for (i, r) in rows.iter().enumerate() {
        let r = r.as_array().ok_or_else(|| {
            Error::InvalidArgument(format!("{what}: vector {i} must be an array of numbers (a multi-vector value is an array of vectors)"))
        })?;
        if r.len() != dim {
            return Err(Error::DimensionMismatch {
                expected: dim,
                got: r.len(),
                context: format!("{what}, vector {i}"),
            });
        }
        for (j, x) in r.iter().enumerate() {
            out.push(x.as_f64().map(|f| f as f32).ok_or_else(|| {
                Error::InvalidArgument(format!("{what}, vector {i}: component {j} is not a number ({x})"))
            })?);
        }
    }
    Ok(out)
}

fn floats(v: &Value, id: PointId, field: &str) -> Result<Vec<f32>> {
    let arr = v.as_array().ok_or_else(|| {
        Error::InvalidArgument(format!("point {id}: vector {field:?} must be an array of numbers"))
    })?;
    arr.iter()
        .enumerate()
        .map(|(i, x)| {
            x.as_f64().map(|f| f as f32).ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "point {id}: vector {field:?} component {i} is not a number ({x})"
                ))
            })
        })
        .collect()
}

impl Op {
    /// Checks an operation read back from disk against `schema` before it is applied: every
    /// upserted point must pass [`Point::check_vectors`] (a log or snapshot with valid checksums
    /// can still hold points of another schema).
    pub fn check_stored(&self, schema: &CollectionSchema) -> Result<()> {
        match self {
            Op::Upsert(points) => points.iter().try_for_each(|p| p.check_vectors(schema)),
            Op::SetPayload { .. } | Op::DeletePayloadKeys { .. } | Op::Delete(_) => Ok(()),
        }
    }

    /// Binary encoding for the WAL.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            Op::Upsert(points) => {
                out.push(1);
                out.extend_from_slice(&(points.len() as u32).to_le_bytes());
                for p in points {
                    let vectors: Vec<&[f32]> = p.vectors.iter().map(Vec::as_slice).collect();
                    put_point(&mut out, p.id, &vectors, &p.payload);
                }
            }
            Op::Delete(ids) => {
                out.push(2);
                out.extend_from_slice(&(ids.len() as u32).to_le_bytes());
                ids.iter().for_each(|&id| put_id(&mut out, id));
            }
            Op::SetPayload { ids, payload, overwrite } => {
                out.push(3);
                out.push(u8::from(*overwrite));
                out.extend_from_slice(&(ids.len() as u32).to_le_bytes());
                ids.iter().for_each(|&id| put_id(&mut out, id));
                let p = serde_json::to_vec(payload).unwrap_or_default();
                out.extend_from_slice(&(p.len() as u32).to_le_bytes());
                out.extend_from_slice(&p);
            }
            Op::DeletePayloadKeys { ids, keys } => {
                out.push(4);
                out.extend_from_slice(&(ids.len() as u32).to_le_bytes());
                ids.iter().for_each(|&id| put_id(&mut out, id));
                out.extend_from_slice(&(keys.len() as u32).to_le_bytes());
                for k in keys {
                    out.extend_from_slice(&(k.len() as u32).to_le_bytes());
                    out.extend_from_slice(k.as_bytes());
                }
            }
        }
        out
    }

    /// Decodes [`Op::encode`]'s bytes.
    pub fn decode(b: &[u8]) -> Result<Op> {
        let mut c = Cursor { b, at: 0 };
        match c.u8()? {
            1 => {
                let n = c.u32()? as usize;
                let mut points = Vec::with_capacity(n.min(1 << 16));
                for _ in 0..n {
                    let id = c.id()?;
                    let fields = c.u32()? as usize;
                    let mut vectors = Vec::with_capacity(fields.min(64));
                    for _ in 0..fields {
                        let dim = c.u32()? as usize;
                        let bytes = c.take(dim.checked_mul(4).ok_or_else(|| c.bad("dimension"))?)?;
                        vectors.push(
                            bytes
                                .chunks_exact(4)
                                .map(|x| f32::from_le_bytes([x[0], x[1], x[2], x[3]]))
                                .collect(),
                        );
                    }
                    let len = c.u32()? as usize;
                    let payload: Map<String, Value> = serde_json::from_slice(c.take(len)?)
                        .map_err(|e| Error::InvalidArgument(format!("WAL payload: {e}")))?;
                    points.push(Point { id, vectors, payload });
                }
                Ok(Op::Upsert(points))
            }
            2 => {
                let n = c.u32()? as usize;
                (0..n).map(|_| c.id()).collect::<Result<_>>().map(Op::Delete)
            }
            3 => {
                let overwrite = match c.u8()? {
                    0 => false,
                    1 => true,
                    _ => return Err(c.bad("overwrite flag")),
                };
                let n = c.u32()? as usize;
                let ids = (0..n).map(|_| c.id()).collect::<Result<Vec<_>>>()?;
                let len = c.u32()? as usize;
                let payload: Map<String, Value> = serde_json::from_slice(c.take(len)?)
                    .map_err(|e| Error::InvalidArgument(format!("WAL payload: {e}")))?;
                Ok(Op::SetPayload { ids, payload, overwrite })
            }
            4 => {
                let n = c.u32()? as usize;
                let ids = (0..n).map(|_| c.id()).collect::<Result<Vec<_>>>()?;
                let n = c.u32()? as usize;
                let keys = (0..n)
                    .map(|_| {
                        let len = c.u32()? as usize;
                        String::from_utf8(c.take(len)?.to_vec()).map_err(|_| c.bad("payload key"))
                    })
                    .collect::<Result<Vec<_>>>()?;
                Ok(Op::DeletePayloadKeys { ids, keys })
            }
            k => Err(Error::InvalidArgument(format!("WAL operation kind {k} is unknown"))),
        }
    }
}

/// The points of an upsert record written without vectors (a segment's `points.qseg`): each
/// point's id and where its payload's JSON is in `b` (offset, length; checked to be a JSON
/// object), decoded one at a time so no parsed payload outlives its check.
pub(crate) fn decode_stored_points(b: &[u8]) -> Result<Vec<(PointId, u64, u32)>> {
    let mut c = Cursor { b, at: 0 };
    if c.u8()? != 1 {
        return Err(c.bad("record kind (an upsert)"));
    }
    let n = c.u32()? as usize;
    let mut out = Vec::with_capacity(n.min(1 << 24));
    for _ in 0..n {
        let id = c.id()?;
        if c.u32()? != 0 {
            return Err(c.bad("vector count (none are stored here)"));
        }
        let len = c.u32()?;
        let at = c.at as u64;
        let bytes = c.take(len as usize)?;
        serde_json::from_slice::<Map<String, Value>>(bytes)
            .map_err(|e| Error::InvalidArgument(format!("payload of point {id}: {e}")))?;
        out.push((id, at, len));
    }
    if c.at != b.len() {
        return Err(c.bad("end of record"));
    }
    Ok(out)
}

/// Appends one point in the upsert encoding (after the kind byte and count of [`Op::encode`]);
/// returns the length of the payload's JSON, the last bytes appended.
pub(crate) fn put_point(
    out: &mut Vec<u8>,
    id: PointId,
    vectors: &[&[f32]],
    payload: &Map<String, Value>,
) -> usize {
    put_id(out, id);
    out.extend_from_slice(&(vectors.len() as u32).to_le_bytes());
    for v in vectors {
        out.extend_from_slice(&(v.len() as u32).to_le_bytes());
        v.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes()));
    }
    let payload = serde_json::to_vec(payload).unwrap_or_default();
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&payload);
    payload.len()
}

fn put_id(out: &mut Vec<u8>, id: PointId) {
    match id {
        PointId::Num(n) => {
            out.push(0);
            out.extend_from_slice(&n.to_le_bytes());
        }
        PointId::Uuid(u) => {
            out.push(1);
            out.extend_from_slice(&u.to_le_bytes());
        }
    }
}

struct Cursor<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn bad(&self, what: &str) -> Error {
        Error::InvalidArgument(format!("WAL operation: {what} at byte {} is cut short or invalid", self.at))
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let s = self
            .b
            .get(self.at..self.at.checked_add(n).ok_or_else(|| self.bad("length"))?)
            .ok_or_else(|| self.bad("field"))?;
        self.at += n;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32> {
        let s = self.take(4)?;
        Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    }
    fn id(&mut self) -> Result<PointId> {
        match self.u8()? {
            0 => {
                let s = self.take(8)?;
                Ok(PointId::Num(u64::from_le_bytes(s.try_into().map_err(|_| self.bad("id"))?)))
            }
            1 => {
                let s = self.take(16)?;
                Ok(PointId::Uuid(u128::from_le_bytes(s.try_into().map_err(|_| self.bad("id"))?)))
            }
            _ => Err(self.bad("id tag")),
        }
    }
}
