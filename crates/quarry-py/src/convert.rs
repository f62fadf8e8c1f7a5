//! JSON values (payloads, filters, ids) between Python objects and `serde_json`, and engine errors
//! as Python exceptions: bad input and conflicts (a collection that exists, a folder another
//! process holds) `ValueError`, a missing collection `KeyError`, I/O, damaged files and a refusing
//! log `OSError`, a timeout `TimeoutError`.

use pyo3::exceptions::{PyKeyError, PyOSError, PyTimeoutError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use quarry_engine::PointId;
use serde_json::{Map, Number, Value};

/// An engine error as a Python exception carrying the engine's message.
pub fn err(e: quarry_core::Error) -> PyErr {
    use quarry_core::Error as E;
    match e {
        E::NotFound(m) => PyKeyError::new_err(m),
        e @ (E::Io { .. } | E::Corrupt { .. } | E::Poisoned(_)) => PyOSError::new_err(e.to_string()),
        e @ E::Timeout { .. } => PyTimeoutError::new_err(e.to_string()),
        e @ (E::DimensionMismatch { .. }
        | E::Conflict(_)
        | E::NonFinite { .. }
        | E::ZeroVector { .. }
        | E::InvalidArgument(_)
        | E::Malformed { .. }) => PyValueError::new_err(e.to_string()),
    }
}

/// A Python object (None, bool, int, float, str, list, tuple, dict with str keys) as JSON.
pub fn to_json(o: &Bound<'_, PyAny>, depth: usize) -> PyResult<Value> {
    if depth > 64 {
        return Err(PyValueError::new_err("value nested deeper than 64 levels"));
    }
    if o.is_none() {
        Ok(Value::Null)
    } else if o.is_instance_of::<PyBool>() {
        Ok(Value::Bool(o.extract::<bool>()?))
    } else if o.is_instance_of::<PyInt>() {
        if let Ok(i) = o.extract::<i64>() {
            Ok(Value::from(i))
        } else {
            Ok(Value::from(
                o.extract::<u64>().map_err(|_| PyValueError::new_err("integer out of 64-bit range"))?,
            ))
        }
    } else if o.is_instance_of::<PyFloat>() {
        let f = o.extract::<f64>()?;
        Number::from_f64(f)
            .map(Value::Number)
            .ok_or_else(|| PyValueError::new_err(format!("{f} is not a finite number")))
    } else if let Ok(s) = o.cast::<PyString>() {
        Ok(Value::String(s.to_cow()?.into_owned()))
    } else if let Ok(d) = o.cast::<PyDict>() {
        let mut m = Map::new();
        for (k, v) in d.iter() {
            let k = k.cast::<PyString>().map_err(|_| PyTypeError::new_err("dict keys must be strings"))?;
            m.insert(k.to_cow()?.into_owned(), to_json(&v, depth + 1)?);
        }
        Ok(Value::Object(m))
    } else if let Ok(l) = o.cast::<PyList>() {
        l.iter().map(|v| to_json(&v, depth + 1)).collect::<PyResult<Vec<_>>>().map(Value::Array)
    } else if let Ok(t) = o.cast::<PyTuple>() {
        t.iter().map(|v| to_json(&v, depth + 1)).collect::<PyResult<Vec<_>>>().map(Value::Array)
    } else if let Ok(f) = o.extract::<f64>() {
        // numpy scalars and other number-likes.
        if o.extract::<i64>().is_ok() && f.fract() == 0.0 {
            return Ok(Value::from(o.extract::<i64>()?));
        }
        Number::from_f64(f)
            .map(Value::Number)
            .ok_or_else(|| PyValueError::new_err(format!("{f} is not a finite number")))
    } else {
        Err(PyTypeError::new_err(format!("cannot store a {} as JSON", o.get_type().name()?)))
    }
}

/// JSON as a Python object.
pub fn to_py<'py>(py: Python<'py>, v: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match v {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => i.into_pyobject(py)?.into_any(),
            (None, Some(u)) => u.into_pyobject(py)?.into_any(),
            _ => n.as_f64().unwrap_or(f64::NAN).into_pyobject(py)?.into_any(),
        },
        Value::String(s) => PyString::new(py, s).into_any(),
        Value::Array(a) => {
            let l = PyList::empty(py);
            for x in a {
                l.append(to_py(py, x)?)?;
            }
            l.into_any()
        }
        Value::Object(m) => map_to_py(py, m)?.into_any(),
    })
}

/// A JSON object as a dict.
pub fn map_to_py<'py>(py: Python<'py>, m: &Map<String, Value>) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    for (k, v) in m {
        d.set_item(k, to_py(py, v)?)?;
    }
    Ok(d)
}

/// A point id from Python: a non-negative int or a UUID string.
pub fn id_of(o: &Bound<'_, PyAny>) -> PyResult<PointId> {
    if o.is_instance_of::<PyBool>() {
        return Err(PyTypeError::new_err("an id is an unsigned integer or a UUID string, not a bool"));
    }
    if let Ok(s) = o.cast::<PyString>() {
        return PointId::parse(&s.to_cow()?).map_err(err);
    }
    match o.extract::<u64>() {
        Ok(n) => Ok(PointId::Num(n)),
        Err(_) => Err(PyValueError::new_err(format!(
            "id {} is not an unsigned 64-bit integer or a UUID string",
            o.repr()?
        ))),
    }
}

/// A point id as Python: an int or a UUID string.
pub fn id_to_py<'py>(py: Python<'py>, id: PointId) -> PyResult<Bound<'py, PyAny>> {
    Ok(match id {
        PointId::Num(n) => n.into_pyobject(py)?.into_any(),
        PointId::Uuid(_) => PyString::new(py, &id.to_string()).into_any(),
    })
}
