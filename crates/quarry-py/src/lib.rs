//! The `quarry` Python package's native module (`quarry._quarry`): the embedded engine with numpy
//! in and out. Vectors are read straight from float32 C-ordered arrays (other real dtypes, lists
//! and strided arrays are converted by numpy first); the GIL is released while the engine searches,
//! writes or builds; errors carry the engine's message (`ValueError` bad input, `KeyError` missing
//! collection, `OSError` I/O).

mod convert;

use convert::{err, id_of, id_to_py, map_to_py, to_json};
use numpy::{
    PyArray1, PyArray2, PyArrayDescrMethods, PyArrayDyn, PyArrayMethods, PyUntypedArray,
    PyUntypedArrayMethods,
};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString};
use quarry_engine::{CollectionSchema, Filter, Point, PointId, SearchOptions, TextDoc, TextMode, TextQuery};
use serde_json::{Map, Value};
use std::sync::Arc;

/// A float32 C-contiguous view of `obj` (converted by numpy when it is not one already).
fn f32_array<'py>(py: Python<'py>, obj: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
    if let Ok(a) = obj.cast::<PyArrayDyn<f32>>() {
        if a.is_c_contiguous() {
            return Ok(a.clone());
        }
    }
    if let Ok(u) = obj.cast::<PyUntypedArray>() {
        let kind = u.dtype().kind();
        if !matches!(kind, b'f' | b'i' | b'u') {
            return Err(PyTypeError::new_err(format!(
                "vectors must be real numbers (float32 preferred), not dtype {}",
                u.dtype().str()?
            )));
        }
    }
    let np = py.import("numpy")?;
    let a = np.call_method1("ascontiguousarray", (obj, "float32"))?;
    a.cast_into::<PyArrayDyn<f32>>()
        .map_err(|_| PyTypeError::new_err("vectors must be a numpy array or a list of numbers"))
}

/// One multi-vector value: a 2-D array `(vectors, dim)` (or a list of lists), concatenated.
fn vector_set<'py>(py: Python<'py>, obj: &Bound<'py, PyAny>, dim: usize, what: &str) -> PyResult<Vec<f32>> {
    let arr = f32_array(py, obj)?;
    let ro = arr.readonly();
    match ro.shape() {
        [_, d] if *d == dim => Ok(ro.as_slice().map_err(|e| PyValueError::new_err(e.to_string()))?.to_vec()),
        s => Err(PyValueError::new_err(format!(
            "{what}: a multi-vector value is a 2-D array (vectors, {dim}), got shape {s:?}"
        ))),
    }
}

/// The multi-vector values of `n` points: a 3-D array `(n, vectors, dim)` or a sequence of
/// `n` 2-D arrays (sets may differ in size).
fn vector_sets<'py>(
    py: Python<'py>,
    obj: &Bound<'py, PyAny>,
    n: usize,
    dim: usize,
) -> PyResult<Vec<Vec<f32>>> {
    if let Ok(a) = obj.cast::<PyUntypedArray>() {
        if a.ndim() == 3 {
            let arr = f32_array(py, obj)?;
            let ro = arr.readonly();
            let sh = ro.shape().to_vec();
            if sh[0] != n || sh[2] != dim {
                return Err(PyValueError::new_err(format!(
                    "multi-vector values of shape {sh:?} for {n} ids: expected ({n}, vectors, {dim})"
                )));
            }
            let flat = ro.as_slice().map_err(|e| PyValueError::new_err(e.to_string()))?;
            let per = sh[1] * dim;
            return Ok((0..n).map(|i| flat[i * per..(i + 1) * per].to_vec()).collect());
        }
    }
    let sets: Vec<Vec<f32>> = obj
        .try_iter()
        .map_err(|_| PyTypeError::new_err("multi-vector values must be a list of 2-D arrays, one per point"))?
        .enumerate()
        .map(|(i, o)| vector_set(py, &o?, dim, &format!("point {i}")))
        .collect::<PyResult<_>>()?;
    if sets.len() != n {
        return Err(PyValueError::new_err(format!("{} multi-vector values for {n} ids", sets.len())));
    }
    Ok(sets)
}

/// The query of a search in `col`'s only field: a 1-D vector, or for a multi-vector field a
/// 2-D array of vectors (concatenated).
fn query_of<'py>(
    py: Python<'py>,
    col: &quarry_engine::Collection,
    query: &Bound<'py, PyAny>,
) -> PyResult<Vec<f32>> {
    if let Some(f) = col.schema().vectors.first().filter(|f| f.multivector.is_some()) {
        return vector_set(py, query, f.dim, "query");
    }
    let arr = f32_array(py, query)?;
    let ro = arr.readonly();
    if ro.ndim() != 1 {
        return Err(PyValueError::new_err(format!(
            "query must be one vector (1-D), got shape {:?}",
            ro.shape()
        )));
    }
    Ok(ro.as_slice().map_err(|e| PyValueError::new_err(e.to_string()))?.to_vec())
}

/// Parses an optional filter dict (Qdrant's JSON syntax).
fn filter_of(f: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Filter>> {
    match f {
        None => Ok(None),
        Some(f) if f.is_none() => Ok(None),
        Some(f) => Filter::from_json(&to_json(f, 0)?).map(Some).map_err(err),
    }
}

/// Search options from a `params` dict (`ef` / `hnsw_ef`, `rescore`) for a search of `k`.
fn opts_of(params: Option<&Bound<'_, PyDict>>, k: usize, with_payload: bool) -> PyResult<SearchOptions> {
    let mut opts = SearchOptions { with_payload, ..SearchOptions::default() };
    if let Some(p) = params {
        for (key, v) in p.iter() {
            let key: String = key.extract()?;
            match key.as_str() {
                "ef" | "hnsw_ef" => {
                    opts.ef = v
                        .extract::<usize>()
                        .map_err(|_| PyValueError::new_err("params[\"ef\"] must be a positive integer"))?
                }
                "rescore" => {
                    opts.rescore = v
                        .extract::<bool>()
                        .map_err(|_| PyValueError::new_err("params[\"rescore\"] must be True or False"))?
                }
                "candidates" => {
                    opts.candidates = Some(v.extract::<usize>().ok().filter(|&c| c > 0).ok_or_else(|| {
                        PyValueError::new_err("params[\"candidates\"] must be a positive integer")
                    })?)
                }
                other => {
                    return Err(PyValueError::new_err(format!(
                        "unknown search parameter {other:?} (use \"ef\", \"rescore\" or \"candidates\")"
                    )))
                }
            }
        }
    }
    if opts.ef == 0 {
        return Err(PyValueError::new_err("ef must be at least 1"));
    }
    opts.ef = opts.ef.max(k);
    Ok(opts)
}

/// One search hit: `.id` (int or UUID str), `.score` (higher is better), `.payload` (dict).
#[pyclass(frozen, module = "quarry")]
pub struct Hit {
    id: PointId,
    #[pyo3(get)]
    score: f64,
    payload: Map<String, Value>,
    explain: Option<Value>,
    /// Calibrated probability of relevance (text searches with `min_relevance`).
    #[pyo3(get)]
    relevance: Option<f64>,
    /// The member collection it came from (group searches).
    #[pyo3(get)]
    collection: Option<String>,
}

#[pymethods]
impl Hit {
    /// The point's id.
    #[getter]
    fn id<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        id_to_py(py, self.id)
    }

    /// The point's payload (a new dict on each access).
    #[getter]
    fn payload<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        map_to_py(py, &self.payload)
    }

    /// Per ranked list, the hit's rank and score (text searches with `explain=True`).
    #[getter]
    fn explain<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        match &self.explain {
            Some(v) => convert::to_py(py, v),
            None => Ok(py.None().into_bound(py)),
        }
    }

    fn __repr__(&self) -> String {
        format!("Hit(id={}, score={:.6})", self.id, self.score)
    }
}

/// A stored point: `.id`, `.vector` (float32 array, or a dict of them for named fields; None if
/// not requested), `.payload` (dict).
#[pyclass(frozen, module = "quarry")]
pub struct Record {
    id: PointId,
    vector: Option<Py<PyAny>>,
    payload: Map<String, Value>,
}

#[pymethods]
impl Record {
    /// The point's id.
    #[getter]
    fn id<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        id_to_py(py, self.id)
    }

    /// The point's vector(s).
    #[getter]
    fn vector<'py>(&self, py: Python<'py>) -> Bound<'py, PyAny> {
        match &self.vector {
            Some(v) => v.bind(py).clone(),
            None => py.None().into_bound(py),
        }
    }

    /// The point's payload.
    #[getter]
    fn payload<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        map_to_py(py, &self.payload)
    }

    fn __repr__(&self) -> String {
        format!("Record(id={})", self.id)
    }
}

fn record(py: Python<'_>, schema: &CollectionSchema, p: Point, with_vectors: bool) -> PyResult<Record> {
    let vector = if with_vectors && p.vectors.len() == schema.vectors.len() && !p.vectors.is_empty() {
        // A multi-vector field's value is a 2-D array (vectors, dim).
        let array = |f: &quarry_engine::VectorField, v: &Vec<f32>| -> PyResult<Bound<'_, PyAny>> {
            let a = PyArray1::from_vec(py, v.clone());
            Ok(match f.multivector {
                Some(_) => a.reshape([v.len() / f.dim.max(1), f.dim])?.into_any(),
                None => a.into_any(),
            })
        };
        if schema.vectors.len() == 1 && schema.vectors[0].name.is_empty() {
            Some(array(&schema.vectors[0], &p.vectors[0])?.unbind())
        } else {
            let d = PyDict::new(py);
            for (f, v) in schema.vectors.iter().zip(&p.vectors) {
                d.set_item(&f.name, array(f, v)?)?;
            }
            Some(d.into_any().unbind())
        }
    } else {
        None
    };
    Ok(Record { id: p.id, vector, payload: p.payload })
}

/// A collection of an open database.
#[pyclass(frozen, module = "quarry")]
pub struct Collection {
    db: Arc<quarry_engine::Database>,
    col: Arc<quarry_engine::Collection>,
    text: Option<Arc<quarry_engine::TextCollection>>,
}

impl Collection {
    /// Runs a text search as `search_text` describes it: the query as run and its hits.
    #[allow(clippy::too_many_arguments)] // Python keyword arguments
    fn run_text_search(
        &self,
        py: Python<'_>,
        query: &Bound<'_, PyAny>,
        k: usize,
        mode: Option<&str>,
        filter: Option<&Bound<'_, PyAny>>,
        explain: bool,
        fusion: Option<&str>,
        min_relevance: Option<&Bound<'_, PyAny>>,
        hubness: bool,
        query_model: Option<String>,
        rerank: Option<String>,
        rerank_depth: usize,
        rerank_blend: f64,
    ) -> PyResult<(TextQuery, Vec<quarry_engine::TextHit>)> {
        let text = self.text.clone().ok_or_else(|| {
            PyValueError::new_err(format!("collection {:?} is not a text collection", self.col.name()))
        })?;
        let texts: Vec<String> = match query.extract::<String>() {
            Ok(s) => vec![s],
            Err(_) => query
                .extract::<Vec<String>>()
                .map_err(|_| PyTypeError::new_err("query must be a string or a list of strings"))?,
        };
        if texts.is_empty() {
            return Err(PyValueError::new_err("give at least one query text"));
        }
        let mode: TextMode = match mode {
            Some(m) => m.parse().map_err(err)?,
            None if text.spec().model.is_some() => TextMode::Hybrid,
            None => TextMode::Bm25,
        };
        let mut q = TextQuery::new(&texts[0], mode, k);
        q.texts = texts;
        q.depth = q.depth.max(k);
        q.explain = explain;
        q.fusion = match fusion {
            None => None,
            Some("weighted") => Some(quarry_engine::text::default_hybrid_fusion()),
            Some("rrf") => Some(quarry_rank::fusion::Fusion::Rrf { k: 60.0 }),
            Some(other) => {
                return Err(PyValueError::new_err(format!("fusion {other:?}: use weighted or rrf")))
            }
        };
        q.hubness = hubness;
        let auto = match min_relevance {
            None => false,
            Some(v) if v.extract::<String>().is_ok_and(|s| s == "auto") => true,
            Some(v) => {
                q.min_relevance =
                    Some(v.extract::<f64>().map_err(|_| {
                        PyTypeError::new_err("min_relevance must be a probability or \"auto\"")
                    })?);
                false
            }
        };
        let f = filter_of(filter)?;
        let db = self.db.clone();
        let q2 = q.clone();
        let hits = py
            .detach(move || {
                if auto {
                    q.min_relevance = Some(text.calibrated_threshold(q.mode)?);
                }
                if let Some(model) = &query_model {
                    if text.alignment_prefix(model).is_none() {
                        return Err(quarry_core::Error::InvalidArgument(format!(
                            "no map for queries of model {model:?}: fit one with align()"
                        )));
                    }
                    let encoder = db.model(model)?;
                    q.vectors = Some(text.embed_aligned(model, &encoder, &q.texts)?);
                }
                let hits = text.search(&q, f.as_ref())?;
                match &rerank {
                    Some(model) => {
                        text.rerank(&q.texts[0], hits, &*db.reranker(model)?, rerank_depth, rerank_blend)
                    }
                    None => Ok(hits),
                }
            })
            .map_err(err)?;
        Ok((q2, hits))
    }

    /// The text view, or a ValueError for a vector collection.
    fn text_or_err(&self) -> PyResult<Arc<quarry_engine::TextCollection>> {
        self.text.clone().ok_or_else(|| {
            PyValueError::new_err(format!("collection {:?} is not a text collection", self.col.name()))
        })
    }
}

fn ids_of(ids: &Bound<'_, PyAny>) -> PyResult<Vec<PointId>> {
    if ids.is_instance_of::<PyString>() {
        return Err(PyTypeError::new_err("ids must be a sequence of ids, not one string"));
    }
    if let Ok(a) = ids.cast::<PyUntypedArray>() {
        if matches!(a.dtype().kind(), b'i' | b'u') {
            let v: Vec<i64> = ids.call_method1("astype", ("int64",))?.call_method0("tolist")?.extract()?;
            return v
                .into_iter()
                .map(|x| {
                    u64::try_from(x)
                        .map(PointId::Num)
                        .map_err(|_| PyValueError::new_err(format!("id {x} is negative")))
                })
                .collect();
        }
    }
    ids.try_iter()?.map(|o| id_of(&o?)).collect()
}

#[pymethods]
impl Collection {
    /// The collection's name.
    #[getter]
    fn name(&self) -> String {
        self.col.name().to_string()
    }

    /// Dimension of the (first) vector field; None for a BM25-only text collection.
    #[getter]
    fn dim(&self) -> Option<usize> {
        self.col.schema().vectors.first().map(|f| f.dim)
    }

    /// The schema as a dict.
    #[getter]
    fn schema<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let v = serde_json::to_value(self.col.current_schema())
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        convert::to_py(py, &v)
    }

    /// Inserts or replaces points: `ids` (ints or UUID strings), `vectors` (an (n, dim) array or
    /// a list of lists; None for a text collection, whose model embeds `texts`), `payloads` (dicts
    /// or None), `texts` (strings: a text collection's documents; elsewhere stored under the
    /// payload key "text"). Durable when it returns; one bad point rejects the whole batch.
    #[pyo3(signature = (ids, vectors=None, payloads=None, texts=None))]
    fn upsert(
        &self,
        py: Python<'_>,
        ids: &Bound<'_, PyAny>,
        vectors: Option<&Bound<'_, PyAny>>,
        payloads: Option<&Bound<'_, PyAny>>,
        texts: Option<Vec<String>>,
    ) -> PyResult<usize> {
        let ids = ids_of(ids)?;
        let n = ids.len();
        let mut pls: Vec<Map<String, Value>> = match payloads {
            None => vec![Map::new(); n],
            Some(p) if p.is_none() => vec![Map::new(); n],
            Some(p) => p
                .try_iter()?
                .map(|o| match to_json(&o?, 0)? {
                    Value::Object(m) => Ok(m),
                    Value::Null => Ok(Map::new()),
                    _ => Err(PyTypeError::new_err("each payload must be a dict or None")),
                })
                .collect::<PyResult<_>>()?,
        };
        if pls.len() != n {
            return Err(PyValueError::new_err(format!("{} payloads for {n} ids", pls.len())));
        }
        if let Some(t) = &texts {
            if t.len() != n {
                return Err(PyValueError::new_err(format!("{} texts for {n} ids", t.len())));
            }
        }
        if let Some(text) = &self.text {
            if vectors.is_some_and(|v| !v.is_none()) {
                return Err(PyValueError::new_err(
                    "a text collection embeds its texts itself: give texts, not vectors",
                ));
            }
            let texts = texts.ok_or_else(|| PyValueError::new_err("a text collection needs texts"))?;
            let docs: Vec<TextDoc> = ids
                .into_iter()
                .zip(texts)
                .zip(pls)
                .map(|((id, text), payload)| TextDoc { id, text, payload })
                .collect();
            let text = text.clone();
            return py.detach(move || text.upsert(docs)).map_err(err);
        }
        let vectors =
            vectors.filter(|v| !v.is_none()).ok_or_else(|| PyValueError::new_err("vectors are required"))?;
        if let Some(f) = self.col.schema().vectors.first().filter(|f| f.multivector.is_some()) {
            let sets = vector_sets(py, vectors, n, f.dim)?;
            if let Some(t) = texts {
                for (p, t) in pls.iter_mut().zip(t) {
                    p.insert("text".into(), Value::String(t));
                }
            }
            let points: Vec<Point> = ids
                .into_iter()
                .zip(pls)
                .zip(sets)
                .map(|((id, payload), v)| Point { id, vectors: vec![v], payload })
                .collect();
            let col = self.col.clone();
            return py.detach(move || col.upsert(points)).map_err(err);
        }
        let arr = f32_array(py, vectors)?;
        let ro = arr.readonly();
        let shape = ro.shape().to_vec();
        let dim = match shape.as_slice() {
            [rows, d] if *rows == n => *d,
            [d] if n == 1 => *d,
            other => {
                return Err(PyValueError::new_err(format!(
                    "vectors of shape {other:?} for {n} ids: expected ({n}, dim)"
                )));
            }
        };
        let flat = ro.as_slice().map_err(|e| PyValueError::new_err(e.to_string()))?;
        if let Some(t) = texts {
            for (p, t) in pls.iter_mut().zip(t) {
                p.insert("text".into(), Value::String(t));
            }
        }
        let fields = self.col.schema().vectors.len();
        if fields != 1 {
            return Err(PyValueError::new_err(format!(
                "the collection has {fields} vector fields; this call fills one"
            )));
        }
        let points: Vec<Point> = ids
            .into_iter()
            .zip(pls)
            .enumerate()
            .map(|(i, (id, payload))| Point {
                id,
                vectors: vec![flat[i * dim..(i + 1) * dim].to_vec()],
                payload,
            })
            .collect();
        drop(ro);
        let col = self.col.clone();
        py.detach(move || col.upsert(points)).map_err(err)
    }

    /// The `k` nearest points to `query` (a 1-D array or list), best first, among those passing
    /// `filter` (a dict in Qdrant's syntax, e.g. `{"must": [{"key": "tag", "match": {"value":
    /// 1}}]}`). `params`: `{"ef": beam width, "rescore": bool}` (`rescore` False: compressed
    /// graphs rank by their codes and return estimated scores, reading no row).
    #[pyo3(signature = (query, k=10, filter=None, params=None, with_payload=true))]
    fn search(
        &self,
        py: Python<'_>,
        query: &Bound<'_, PyAny>,
        k: usize,
        filter: Option<&Bound<'_, PyAny>>,
        params: Option<&Bound<'_, PyDict>>,
        with_payload: bool,
    ) -> PyResult<Vec<Hit>> {
        let f = filter_of(filter)?;
        let opts = opts_of(params, k, with_payload)?;
        let q = query_of(py, &self.col, query)?;
        let col = &self.col;
        let hits = py.detach(|| col.search_with(&q, None, k, f.as_ref(), &opts)).map_err(err)?;
        Ok(hits
            .into_iter()
            .map(|h| Hit {
                id: h.id,
                score: f64::from(h.score),
                payload: h.payload,
                explain: None,
                relevance: None,
                collection: None,
            })
            .collect())
    }

    /// Searches every row of `queries` (an (n, dim) array) in parallel: `(ids, scores)`, two
    /// (n, k) arrays (int64 ids, -1 and -inf where fewer than k points match; ids are an object
    /// array of strings when the collection has UUID ids).
    #[pyo3(signature = (queries, k=10, filter=None, params=None))]
    fn search_batch<'py>(
        &self,
        py: Python<'py>,
        queries: &Bound<'py, PyAny>,
        k: usize,
        filter: Option<&Bound<'py, PyAny>>,
        params: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyArray2<f32>>)> {
        let f = filter_of(filter)?;
        let opts = opts_of(params, k, false)?;
        // Multi-vector queries: a list of 2-D arrays (or one 3-D array).
        let multi = match self.col.schema().vectors.first().filter(|f| f.multivector.is_some()) {
            Some(f) => {
                let n = queries.len()?;
                Some(vector_sets(py, queries, n, f.dim)?)
            }
            None => None,
        };
        let (n, d, flat) = match &multi {
            Some(sets) => (sets.len(), 0, Vec::new()),
            None => {
                let arr = f32_array(py, queries)?;
                let ro = arr.readonly();
                let (n, d) = match ro.shape() {
                    [n, d] => (*n, *d),
                    s => {
                        return Err(PyValueError::new_err(format!(
                            "queries must be a 2-D array (n, dim), got shape {s:?}"
                        )))
                    }
                };
                (n, d, ro.as_slice().map_err(|e| PyValueError::new_err(e.to_string()))?.to_vec())
            }
        };
        let col = &self.col;
        let lists = py
            .detach(|| {
                use quarry_engine::ScoredPoint;
                let qs: Vec<&[f32]> = match &multi {
                    Some(sets) => sets.iter().map(Vec::as_slice).collect(),
                    None => (0..n).map(|i| &flat[i * d..(i + 1) * d]).collect(),
                };
                let run = |q: &&[f32]| col.search_with(q, None, k, f.as_ref(), &opts);
                let out: quarry_core::Result<Vec<Vec<ScoredPoint>>> =
                    if n >= 8 { rayon_map(&qs, run) } else { qs.iter().map(run).collect() };
                out
            })
            .map_err(err)?;
        let mut scores = vec![f32::NEG_INFINITY; n * k];
        let numeric = lists.iter().flatten().all(|h| matches!(h.id, PointId::Num(_)));
        for (i, l) in lists.iter().enumerate() {
            for (j, h) in l.iter().enumerate() {
                scores[i * k + j] = h.score;
            }
        }
        let scores = PyArray1::from_vec(py, scores).reshape([n, k])?;
        let ids: Bound<'py, PyAny> = if numeric {
            let mut ids = vec![-1i64; n * k];
            for (i, l) in lists.iter().enumerate() {
                for (j, h) in l.iter().enumerate() {
                    if let PointId::Num(x) = h.id {
                        ids[i * k + j] = i64::try_from(x).unwrap_or(-1);
                    }
                }
            }
            PyArray1::from_vec(py, ids).reshape([n, k])?.into_any()
        } else {
            let rows = PyList::empty(py);
            for l in &lists {
                let row = PyList::empty(py);
                for j in 0..k {
                    match l.get(j) {
                        Some(h) => row.append(PyString::new(py, &h.id.to_string()))?,
                        None => row.append(py.None())?,
                    }
                }
                rows.append(row)?;
            }
            py.import("numpy")?.call_method1("array", (rows, "object"))?
        };
        Ok((ids, scores))
    }

    /// Text search in a text collection: `mode` "bm25", "dense" or "hybrid" (default: hybrid with
    /// a model, else bm25); `query` one string or a list (several phrasings fused); `explain`
    /// fills each hit's `.explain`; `min_relevance` (a probability, or "auto" for the fitted
    /// threshold) keeps only hits the calibration rates at least that (`.relevance`); `hubness`
    /// applies the fitted hubness correction; `query_model` embeds the query with that (newer)
    /// model and maps it into the collection's space (see `align`); `rerank` names a
    /// cross-encoder that re-orders the first `rerank_depth` hits (`rerank_blend`: its weight
    /// against the first stage's score, default an equal mix; 1: its logit alone).
    #[pyo3(signature = (query, k=10, mode=None, filter=None, explain=false, fusion=None, min_relevance=None, hubness=false, query_model=None, rerank=None, rerank_depth=20, rerank_blend=0.5))]
    #[allow(clippy::too_many_arguments)] // Python keyword arguments
    fn search_text(
        &self,
        py: Python<'_>,
        query: &Bound<'_, PyAny>,
        k: usize,
        mode: Option<&str>,
        filter: Option<&Bound<'_, PyAny>>,
        explain: bool,
        fusion: Option<&str>,
        min_relevance: Option<&Bound<'_, PyAny>>,
        hubness: bool,
        query_model: Option<String>,
        rerank: Option<String>,
        rerank_depth: usize,
        rerank_blend: f64,
    ) -> PyResult<Vec<Hit>> {
        let (_, hits) = self.run_text_search(
            py,
            query,
            k,
            mode,
            filter,
            explain,
            fusion,
            min_relevance,
            hubness,
            query_model,
            rerank,
            rerank_depth,
            rerank_blend,
        )?;
        hits.into_iter()
            .map(|h| {
                let explain = match h.explain {
                    Some(e) => {
                        Some(serde_json::to_value(e).map_err(|e| PyValueError::new_err(e.to_string()))?)
                    }
                    None => None,
                };
                Ok(Hit {
                    id: h.id,
                    score: h.score,
                    payload: h.payload,
                    explain,
                    relevance: h.relevance,
                    collection: None,
                })
            })
            .collect()
    }

    /// Context for an LLM: the best hits of a text search (the options of `search_text`; `k`
    /// hits considered) de-duplicated and packed into `budget_tokens` tokens of the model. Returns
    /// the TREC RAG (Ragnarök) request as a dict — `{"query": {"text", "qid"}, "candidates":
    /// [{"docid", "score", "doc": {"segment", "title", …}}]}` plus `tokens`, `duplicates`,
    /// `over_budget` — or, with `as_text=True`, the numbered-citation text.
    #[pyo3(signature = (query, budget_tokens=1500, k=20, mode=None, filter=None, qid=None, near_distance=3, min_relevance=None, hubness=false, rerank=None, rerank_depth=20, rerank_blend=0.5, as_text=false))]
    #[allow(clippy::too_many_arguments)] // Python keyword arguments
    fn context<'py>(
        &self,
        py: Python<'py>,
        query: &Bound<'_, PyAny>,
        budget_tokens: usize,
        k: usize,
        mode: Option<&str>,
        filter: Option<&Bound<'_, PyAny>>,
        qid: Option<String>,
        near_distance: u32,
        min_relevance: Option<&Bound<'_, PyAny>>,
        hubness: bool,
        rerank: Option<String>,
        rerank_depth: usize,
        rerank_blend: f64,
        as_text: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        if budget_tokens == 0 {
            return Err(PyValueError::new_err("budget_tokens must be at least 1"));
        }
        let text = self.text_or_err()?;
        let (q, hits) = self.run_text_search(
            py,
            query,
            k,
            mode,
            filter,
            false,
            None,
            min_relevance,
            hubness,
            None,
            rerank,
            rerank_depth,
            rerank_blend,
        )?;
        let req = quarry_engine::ContextRequest {
            qid,
            near_distance: near_distance.min(16),
            ..quarry_engine::ContextRequest::new(q, budget_tokens)
        };
        let ctx = py.detach(move || text.context_of_hits(&req, hits));
        if as_text {
            return Ok(pyo3::types::PyString::new(py, &ctx.to_text()).into_any());
        }
        convert::to_py(py, &ctx.to_json())
    }

    /// Reads, chunks and indexes documents into a text collection: `paths` are files, folders
    /// (recursively) and glob patterns of plain text, Markdown, HTML and PDF. Unchanged files are
    /// skipped, changed ones replaced; `prune` deletes the chunks of files that no longer exist;
    /// `drop_duplicates` leaves out chunks duplicating (within `near_distance` bits of SimHash)
    /// a chunk of another file. Returns the report as a dict (`files` with each outcome and
    /// reason, `chunks_written`, `chunks_removed`, `duplicates`, `pruned`).
    #[pyo3(signature = (paths, prune=false, drop_duplicates=false, near_distance=3))]
    fn ingest_files<'py>(
        &self,
        py: Python<'py>,
        paths: &Bound<'_, PyAny>,
        prune: bool,
        drop_duplicates: bool,
        near_distance: u32,
    ) -> PyResult<Bound<'py, PyAny>> {
        let text = self.text_or_err()?;
        let paths: Vec<std::path::PathBuf> = match paths.extract::<std::path::PathBuf>() {
            Ok(p) => vec![p],
            Err(_) => paths
                .extract::<Vec<std::path::PathBuf>>()
                .map_err(|_| PyTypeError::new_err("paths must be a path or a list of paths"))?,
        };
        let opts = quarry_engine::IngestOptions { prune, drop_duplicates, near_distance, batch: 128 };
        let report = py
            .detach(move || {
                let files = quarry_engine::quarry_docs::files::expand(&paths)?;
                text.ingest_files(&files, &opts, &mut |_| {})
            })
            .map_err(err)?;
        let v = report.to_json();
        convert::to_py(py, &v)
    }

    /// Fits the relevance calibration of a text collection's `mode` from judged queries:
    /// `queries` (texts) and, per query, the ids of its relevant documents; the threshold keeps
    /// `keep` of the relevant hits in each query's top `depth`. Without `queries`
    /// (`training_free=True`) stores the training-free rule (keep z ≥ `z` over a null sample).
    /// Returns the calibration as a dict.
    #[pyo3(signature = (queries=None, relevant=None, mode="dense", depth=100, keep=0.99, training_free=false, z=3.0))]
    #[allow(clippy::too_many_arguments)] // Python keyword arguments
    fn calibrate<'py>(
        &self,
        py: Python<'py>,
        queries: Option<Vec<String>>,
        relevant: Option<Vec<Bound<'py, PyAny>>>,
        mode: &str,
        depth: usize,
        keep: f64,
        training_free: bool,
        z: f64,
    ) -> PyResult<Bound<'py, PyAny>> {
        let text = self.text_or_err()?;
        let mode: TextMode = mode.parse().map_err(err)?;
        let cal = if training_free {
            py.detach(move || text.fit_training_free(z)).map_err(err)?
        } else {
            let (Some(queries), Some(relevant)) = (queries, relevant) else {
                return Err(PyValueError::new_err("give queries and relevant (or training_free=True)"));
            };
            if queries.len() != relevant.len() {
                return Err(PyValueError::new_err("one list of relevant ids per query"));
            }
            let sets: Vec<std::collections::HashSet<PointId>> = relevant
                .iter()
                .map(|r| ids_of(r).map(|v| v.into_iter().collect()))
                .collect::<PyResult<_>>()?;
            let judge = move |i: usize, id: PointId| sets.get(i).is_some_and(|s| s.contains(&id));
            py.detach(move || text.fit_calibration(&queries, &judge, mode, depth, keep)).map_err(err)?.0
        };
        convert::to_py(py, &serde_json::to_value(&cal).map_err(|e| PyValueError::new_err(e.to_string()))?)
    }

    /// Fits the hubness correction of a text collection from a bank of query texts: `method`
    /// "qb" (QB-Norm) or "db" (DBNorm), `strength` in (0, 1]. Returns the fit's report.
    #[pyo3(signature = (bank, method="qb", strength=0.2, beta=None, dynamic=false))]
    fn fit_hubness<'py>(
        &self,
        py: Python<'py>,
        bank: Vec<String>,
        method: &str,
        strength: f64,
        beta: Option<f64>,
        dynamic: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let text = self.text_or_err()?;
        let m = match method {
            "qb" => quarry_rank::hubness::HubnessMethod::QbNorm { beta: beta.unwrap_or(20.0), dynamic },
            "db" => quarry_rank::hubness::HubnessMethod::DbNorm {
                beta_query: beta.unwrap_or(1.0 / 1.99),
                beta_gallery: 3.0,
                dynamic,
            },
            other => return Err(PyValueError::new_err(format!("method {other:?}: use qb or db"))),
        };
        let report = py
            .detach(move || text.fit_hubness(&bank, m, strength, quarry_engine::text::GALLERY_BANK))
            .map_err(err)?;
        convert::to_py(py, &report)
    }

    /// k-occurrence skewness of the dense top `k` of `queries` (with the fitted hubness
    /// correction when `corrected`).
    #[pyo3(signature = (queries, k=10, corrected=false))]
    fn hubness(&self, py: Python<'_>, queries: Vec<String>, k: usize, corrected: bool) -> PyResult<f64> {
        let text = self.text_or_err()?;
        py.detach(move || text.skewness(&queries, k, corrected)).map_err(err)
    }

    /// Lets queries of a newer `model` (folder or name) search this text collection: fits an
    /// orthogonal map from `pairs` documents embedded by both models (centred unless `plain`).
    /// Returns the fit's report.
    #[pyo3(signature = (model, pairs=1000, plain=false, query_prefix=""))]
    fn align<'py>(
        &self,
        py: Python<'py>,
        model: String,
        pairs: usize,
        plain: bool,
        query_prefix: &str,
    ) -> PyResult<Bound<'py, PyAny>> {
        let text = self.text_or_err()?;
        let db = self.db.clone();
        let prefix = query_prefix.to_string();
        let r = py
            .detach(move || {
                let encoder = db.model(&model)?;
                text.fit_alignment(&model, &encoder, pairs, !plain, &prefix)
            })
            .map_err(err)?;
        let v = serde_json::json!({"pairs": r.pairs, "mean_cosine": r.mean_cosine, "residual": r.residual});
        convert::to_py(py, &v)
    }

    /// Deletes points (documents with their passages in a text collection); returns how many
    /// existed.
    fn delete(&self, py: Python<'_>, ids: &Bound<'_, PyAny>) -> PyResult<usize> {
        let ids = ids_of(ids)?;
        match &self.text {
            Some(t) => {
                let t = t.clone();
                py.detach(move || t.delete(&ids)).map_err(err)
            }
            None => {
                let col = self.col.clone();
                py.detach(move || col.delete(&ids)).map_err(err)
            }
        }
    }

    /// The point with `id` (vector and payload), or None.
    #[pyo3(signature = (id, with_vector=true))]
    fn get(&self, py: Python<'_>, id: &Bound<'_, PyAny>, with_vector: bool) -> PyResult<Option<Record>> {
        let id = id_of(id)?;
        match self.col.get(id) {
            Some(p) => Ok(Some(record(py, self.col.schema(), p, with_vector)?)),
            None => Ok(None),
        }
    }

    /// Number of points (passing `filter`).
    #[pyo3(signature = (filter=None))]
    fn count(&self, py: Python<'_>, filter: Option<&Bound<'_, PyAny>>) -> PyResult<usize> {
        let f = filter_of(filter)?;
        let col = &self.col;
        Ok(py.detach(|| col.count(f.as_ref())))
    }

    /// A page of points in id order from `offset` (inclusive): `(records, next_offset)`;
    /// `next_offset` is None after the last page.
    #[pyo3(signature = (limit=100, offset=None, filter=None, with_vectors=false))]
    fn scroll<'py>(
        &self,
        py: Python<'py>,
        limit: usize,
        offset: Option<&Bound<'py, PyAny>>,
        filter: Option<&Bound<'py, PyAny>>,
        with_vectors: bool,
    ) -> PyResult<(Vec<Record>, Bound<'py, PyAny>)> {
        if limit == 0 {
            return Err(PyValueError::new_err("limit must be at least 1"));
        }
        let start = match offset {
            Some(o) if !o.is_none() => Some(id_of(o)?),
            _ => None,
        };
        let f = filter_of(filter)?;
        let col = &self.col;
        let (page, next) = py.detach(|| col.scroll_from(start, limit, f.as_ref(), with_vectors));
        let recs = page
            .into_iter()
            .map(|p| record(py, self.col.schema(), p, with_vectors))
            .collect::<PyResult<_>>()?;
        let next = match next {
            Some(n) => id_to_py(py, n)?,
            None => py.None().into_bound(py),
        };
        Ok((recs, next))
    }

    /// Writes a consistent snapshot of the collection to the file `path` (crash-safely, while
    /// writes go on); returns the bytes of its log. `Database.restore_snapshot` reads it back.
    fn snapshot(&self, py: Python<'_>, path: std::path::PathBuf) -> PyResult<u64> {
        let col = self.col.clone();
        py.detach(move || col.snapshot(&path)).map_err(err)
    }

    /// Builds index segments over every unsealed point now (else done in the background past the
    /// seal threshold).
    fn optimize(&self, py: Python<'_>) -> PyResult<()> {
        match &self.text {
            Some(t) => {
                let t = t.clone();
                py.detach(move || t.optimize()).map_err(err)
            }
            None => {
                let col = self.col.clone();
                py.detach(move || col.optimize()).map_err(err)
            }
        }
    }

    /// Starts indexing payload key `key` (filters on it are answered from the index).
    fn create_payload_index(&self, key: &str) -> PyResult<bool> {
        self.col.create_payload_index(key).map_err(err)
    }

    /// Runs the engine search for every row of `queries` (an (n, dim) array), `repeats` times, in
    /// a Rust loop (no Python in it), and returns the mean nanoseconds per search: the baseline of
    /// the Python overhead benchmark (the same call `search` makes, payloads included).
    #[pyo3(signature = (queries, k=10, repeats=1, params=None))]
    fn _rust_search_ns(
        &self,
        py: Python<'_>,
        queries: &Bound<'_, PyAny>,
        k: usize,
        repeats: usize,
        params: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<f64> {
        let opts = opts_of(params, k, true)?;
        let arr = f32_array(py, queries)?;
        let ro = arr.readonly();
        let (n, d) = match ro.shape() {
            [n, d] => (*n, *d),
            s => return Err(PyValueError::new_err(format!("queries must be 2-D, got shape {s:?}"))),
        };
        let flat = ro.as_slice().map_err(|e| PyValueError::new_err(e.to_string()))?;
        let col = &self.col;
        let _ = &self.db;
        py.detach(|| {
            let t = std::time::Instant::now();
            for _ in 0..repeats.max(1) {
                for i in 0..n {
                    std::hint::black_box(col.search_with(&flat[i * d..(i + 1) * d], None, k, None, &opts))
                        .map_err(err)?;
                }
            }
            Ok(t.elapsed().as_nanos() as f64 / (repeats.max(1) * n.max(1)) as f64)
        })
    }

    fn __len__(&self) -> usize {
        self.col.count(None)
    }

    fn __repr__(&self) -> String {
        format!("Collection({:?}, points={})", self.col.name(), self.col.count(None))
    }
}

fn rayon_map<T: Sync, R: Send>(
    items: &[T],
    f: impl Fn(&T) -> quarry_core::Result<R> + Sync + Send,
) -> quarry_core::Result<Vec<R>> {
    use rayon::prelude::*;
    items.par_iter().map(f).collect()
}

/// An open database folder.
#[pyclass(frozen, module = "quarry")]
pub struct Database {
    db: Arc<quarry_engine::Database>,
}

impl Database {
    fn wrap(&self, py: Python<'_>, col: Arc<quarry_engine::Collection>) -> PyResult<Collection> {
        let text = if col.schema().text.is_some() {
            let (db, name) = (self.db.clone(), col.name().to_string());
            Some(py.detach(move || db.text_collection(&name)).map_err(err)?)
        } else {
            None
        };
        Ok(Collection { db: self.db.clone(), col, text })
    }
}

#[pymethods]
impl Database {
    /// Creates a vector collection: `dim`, `metric` ("cosine", "ip", "l2"), `index` (an index
    /// spec: "flat", "hnsw" or "spann", optionally with codes searched first and re-scored
    /// exactly: "+sq8", "+sq4", "+pq", "+rabitq", "+rabitq4", ...; e.g. "hnsw+rabitq4"),
    /// `on_disk` (sealed segments keep the f32 rows memory-mapped, resident only where read;
    /// codes and links stay in memory), `fsync` (every write durable when it returns),
    /// `payload_indexes` (payload keys to index), `multivector` (True or a dict of settings:
    /// each point holds a set of vectors of `dim`, scored by MaxSim; `{"candidates": "muvera" |
    /// "tokens", "rerank": 200, "per_token": 10, "max_vectors": 1024, "fde": {...}}`). Points are
    /// indexed in segments once 50,000 are unsealed, or by `optimize()`.
    #[pyo3(signature = (name, dim, metric="cosine", index="hnsw", fsync=true, payload_indexes=None, on_disk=false, multivector=None))]
    #[allow(clippy::too_many_arguments)] // Python keyword arguments
    fn create_collection(
        &self,
        py: Python<'_>,
        name: &str,
        dim: usize,
        metric: &str,
        index: &str,
        fsync: bool,
        payload_indexes: Option<Vec<String>>,
        on_disk: bool,
        multivector: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Collection> {
        let metric: quarry_core::Metric = metric.parse().map_err(err)?;
        let mut schema = CollectionSchema::single(dim, metric, index);
        schema.vectors.iter_mut().for_each(|f| f.on_disk = on_disk);
        match multivector.filter(|m| !m.is_none()) {
            None => {}
            Some(m) if m.extract::<bool>().is_ok() => {
                let on: bool = m.extract()?;
                schema.vectors[0].multivector = on.then(quarry_engine::MultiVectorConfig::default);
            }
            Some(m) => {
                let cfg: quarry_engine::MultiVectorConfig = serde_json::from_value(to_json(m, 0)?)
                    .map_err(|e| PyValueError::new_err(format!("multivector: {e}")))?;
                schema.vectors[0].multivector = Some(cfg);
            }
        }
        schema.fsync = fsync;
        schema.payload_indexes = payload_indexes.unwrap_or_default();
        let db = self.db.clone();
        let name = name.to_string();
        let col = py.detach(move || db.create_collection(&name, schema)).map_err(err)?;
        self.wrap(py, col)
    }

    /// The collection `name`, created as `create_collection` would (with `dim` and the other
    /// settings) if there is none. An existing collection is returned as it is; a `dim` that
    /// differs from its dimension is a ValueError.
    #[pyo3(signature = (name, dim=None, metric="cosine", index="hnsw", fsync=true, payload_indexes=None, on_disk=false, multivector=None))]
    #[allow(clippy::too_many_arguments)] // Python keyword arguments
    fn get_or_create_collection(
        &self,
        py: Python<'_>,
        name: &str,
        dim: Option<usize>,
        metric: &str,
        index: &str,
        fsync: bool,
        payload_indexes: Option<Vec<String>>,
        on_disk: bool,
        multivector: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Collection> {
        if let Ok(col) = self.db.collection(name) {
            let have = col.schema().vectors.first().map(|f| f.dim);
            if let (Some(want), Some(have)) = (dim, have) {
                if want != have && col.schema().text.is_none() {
                    return Err(PyValueError::new_err(format!(
                        "collection {name:?} exists with dimension {have}, not {want}"
                    )));
                }
            }
            return self.wrap(py, col);
        }
        let dim = dim.ok_or_else(|| {
            PyValueError::new_err(format!("collection {name:?} does not exist: give dim to create it"))
        })?;
        self.create_collection(py, name, dim, metric, index, fsync, payload_indexes, on_disk, multivector)
    }

    /// The text collection `name`, created as `create_text_collection` would if there is none
    /// (an existing one is returned as it is; a vector collection of that name is a ValueError).
    #[pyo3(signature = (name, model=None, index="hnsw", k1=1.2, b=0.75))]
    fn get_or_create_text_collection(
        &self,
        py: Python<'_>,
        name: &str,
        model: Option<String>,
        index: &str,
        k1: f32,
        b: f32,
    ) -> PyResult<Collection> {
        if let Ok(col) = self.db.collection(name) {
            if col.schema().text.is_none() {
                return Err(PyValueError::new_err(format!(
                    "collection {name:?} exists and is not a text collection"
                )));
            }
            return self.wrap(py, col);
        }
        self.create_text_collection(py, name, model, index, k1, b)
    }

    /// Creates a text collection: documents' texts indexed for BM25 (`k1`, `b`) and, with a
    /// `model` (a sentence-transformers folder or name), embedded for dense and hybrid search.
    #[pyo3(signature = (name, model=None, index="hnsw", k1=1.2, b=0.75))]
    fn create_text_collection(
        &self,
        py: Python<'_>,
        name: &str,
        model: Option<String>,
        index: &str,
        k1: f32,
        b: f32,
    ) -> PyResult<Collection> {
        let mut spec = quarry_engine::TextSpec::new(model);
        spec.bm25.k1 = k1;
        spec.bm25.b = b;
        let (db, n, idx) = (self.db.clone(), name.to_string(), index.to_string());
        py.detach(move || db.create_text_collection(&n, spec, &idx)).map_err(err)?;
        self.collection(py, name)
    }

    /// Restores the snapshot file `path` (written by `Collection.snapshot` or the server) as the
    /// new collection `name` (ValueError if it exists: nothing is replaced).
    fn restore_snapshot(&self, py: Python<'_>, path: std::path::PathBuf, name: &str) -> PyResult<Collection> {
        let (db, name) = (self.db.clone(), name.to_string());
        let col = py.detach(move || db.restore_snapshot(&path, &name)).map_err(err)?;
        self.wrap(py, col)
    }

    /// The existing collection `name` (KeyError if there is none).
    fn collection(&self, py: Python<'_>, name: &str) -> PyResult<Collection> {
        let col = self.db.collection(name).map_err(err)?;
        self.wrap(py, col)
    }

    /// Names of the collections.
    fn collections(&self) -> Vec<String> {
        self.db.collection_names()
    }

    /// Deletes collection `name` and its files; False if there was none.
    fn delete_collection(&self, py: Python<'_>, name: &str) -> PyResult<bool> {
        let (db, n) = (self.db.clone(), name.to_string());
        py.detach(move || db.delete_collection(&n)).map_err(err)
    }

    /// Creates (or replaces) an expert group: `members` are text collections, the general one
    /// first, each "collection" or "collection:mode" (mode dense, bm25 or hybrid; default
    /// dense); queries are routed by `router_model`'s embedding to the expert with the nearest
    /// pilots (`rule` "mean" or "max"), and the best `fuse_top` experts are searched and fused.
    /// `same_documents`: the members hold the same documents under the same ids.
    #[pyo3(signature = (name, members, router_model="all-MiniLM-L6-v2", rule="mean", fuse_top=1, same_documents=false))]
    #[allow(clippy::too_many_arguments)] // Python keyword arguments
    fn create_group(
        &self,
        py: Python<'_>,
        name: &str,
        members: Vec<String>,
        router_model: &str,
        rule: &str,
        fuse_top: usize,
        same_documents: bool,
    ) -> PyResult<()> {
        let members = members
            .iter()
            .map(|m| m.parse::<quarry_engine::group::GroupMember>().map_err(err))
            .collect::<PyResult<Vec<_>>>()?;
        let mut spec = quarry_engine::group::GroupSpec::new(members, router_model);
        spec.rule = rule.parse().map_err(err)?;
        spec.fuse_top = fuse_top;
        spec.same_documents = same_documents;
        let (db, n) = (self.db.clone(), name.to_string());
        py.detach(move || db.create_group(&n, spec)).map_err(err)
    }

    /// Fits group `name`'s pilots: `queries` (texts), `relevant` (per query, a list of relevant
    /// point ids, or of (collection, id) pairs), `labels` (per query, its domain; default one
    /// domain), `k` pilots per domain and expert. Returns the fit's report.
    #[pyo3(signature = (name, queries, relevant, labels=None, k=1))]
    fn fit_group<'py>(
        &self,
        py: Python<'py>,
        name: &str,
        queries: Vec<String>,
        relevant: Vec<Bound<'py, PyAny>>,
        labels: Option<Vec<String>>,
        k: usize,
    ) -> PyResult<Bound<'py, PyAny>> {
        if queries.len() != relevant.len() || labels.as_ref().is_some_and(|l| l.len() != queries.len()) {
            return Err(PyValueError::new_err("one list of relevant ids (and one label) per query"));
        }
        let mut judged: Vec<Vec<(Option<String>, PointId)>> = Vec::with_capacity(relevant.len());
        for r in &relevant {
            let mut one = Vec::new();
            for item in r.try_iter()? {
                let item = item?;
                match item.extract::<(String, Bound<'py, PyAny>)>() {
                    Ok((c, id)) => one.push((Some(c), id_of(&id)?)),
                    Err(_) => one.push((None, id_of(&item)?)),
                }
            }
            judged.push(one);
        }
        let fit: Vec<quarry_engine::group::GroupFitQuery> = queries
            .iter()
            .enumerate()
            .map(|(i, t)| quarry_engine::group::GroupFitQuery {
                text: t.clone(),
                label: labels.as_ref().map_or(String::new(), |l| l[i].clone()),
            })
            .collect();
        let (db, n) = (self.db.clone(), name.to_string());
        let report = py
            .detach(move || {
                let gain = |i: usize, collection: &str, h: &quarry_engine::TextHit| -> f64 {
                    let hit = judged[i]
                        .iter()
                        .any(|(c, id)| *id == h.id && c.as_deref().is_none_or(|c| c == collection));
                    if hit {
                        1.0
                    } else {
                        0.0
                    }
                };
                db.fit_group(&n, &fit, &gain, k)
            })
            .map_err(err)?;
        convert::to_py(py, &serde_json::to_value(&report).map_err(|e| PyValueError::new_err(e.to_string()))?)
    }

    /// Searches group `name`: routes `query`, searches the chosen experts (`fuse_top`, default
    /// the group's) and fuses them. Returns `(hits, routing)`: hits carry `.collection`;
    /// routing lists every expert best first as dicts (collection, mode, score, searched).
    #[pyo3(signature = (name, query, k=10, fuse_top=None, rule=None))]
    fn search_group<'py>(
        &self,
        py: Python<'py>,
        name: &str,
        query: &str,
        k: usize,
        fuse_top: Option<usize>,
        rule: Option<&str>,
    ) -> PyResult<(Vec<Hit>, Bound<'py, PyAny>)> {
        let mut q = quarry_engine::group::GroupQuery::new(query, k);
        q.fuse_top = fuse_top;
        q.rule = rule.map(str::parse).transpose().map_err(err)?;
        let (db, n) = (self.db.clone(), name.to_string());
        let r = py.detach(move || db.search_group(&n, &q)).map_err(err)?;
        let routing = convert::to_py(
            py,
            &serde_json::to_value(&r.routing).map_err(|e| PyValueError::new_err(e.to_string()))?,
        )?;
        let hits = r
            .hits
            .into_iter()
            .map(|h| Hit {
                id: h.hit.id,
                score: h.hit.score,
                payload: h.hit.payload,
                explain: None,
                relevance: None,
                collection: Some(h.collection),
            })
            .collect();
        Ok((hits, routing))
    }

    /// Names of the expert groups.
    fn groups(&self) -> Vec<String> {
        self.db.group_names()
    }

    /// Deletes group `name` (its collections stay); False if there was none.
    fn delete_group(&self, name: &str) -> PyResult<bool> {
        self.db.delete_group(name).map_err(err)
    }

    /// The database folder.
    #[getter]
    fn path(&self) -> String {
        self.db.dir().display().to_string()
    }

    fn __repr__(&self) -> String {
        format!("Database({:?})", self.db.dir().display().to_string())
    }
}

/// Databases this process has open, by canonical folder: a second `open` of the same folder
/// shares the first one (the engine lets one open database hold a folder; another process
/// is refused with the holder's PID).
static OPEN: std::sync::Mutex<Vec<(std::path::PathBuf, std::sync::Weak<quarry_engine::Database>)>> =
    std::sync::Mutex::new(Vec::new());

/// Opens (creating if needed) the database in folder `path`; opening a folder this process
/// already has open returns the same database.
#[pyfunction]
fn open(py: Python<'_>, path: std::path::PathBuf) -> PyResult<Database> {
    py.detach(move || {
        let mut open = OPEN.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        open.retain(|(_, w)| w.strong_count() > 0);
        if let Ok(canon) = path.canonicalize() {
            if let Some(db) = open.iter().find(|(p, _)| *p == canon).and_then(|(_, w)| w.upgrade()) {
                return Ok(Database { db });
            }
        }
        let db = Arc::new(quarry_engine::Database::open(&path).map_err(err)?);
        if let Ok(canon) = path.canonicalize() {
            open.push((canon, Arc::downgrade(&db)));
        }
        Ok(Database { db })
    })
}

/// The native module.
#[pymodule]
fn _quarry(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(open, m)?)?;
    m.add_class::<Database>()?;
    m.add_class::<Collection>()?;
    m.add_class::<Hit>()?;
    m.add_class::<Record>()?;
    Ok(())
}
