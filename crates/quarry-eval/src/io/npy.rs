//! NumPy `.npy` files: reading versions 1.0, 2.0 and 3.0, writing version 1.0 (2.0 for huge headers).
//!
//! Layout: the magic `\x93NUMPY`, a major and minor version byte, the header length (u16 LE in v1,
//! u32 LE in v2/v3), then a Python dict literal such as
//! `{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }` padded with spaces and a newline,
//! then the raw data. The dict is read by a small parser of that literal syntax (no evaluation).
//!
//! Supported: C order (Fortran order only when it is the same layout, i.e. at most one dimension
//! above 1), 1-D shapes (one row) and 2-D shapes, and the dtypes of [`NpyDtype`] in little-endian
//! (`<`), big-endian (`>`) or native (`=`, taken as little-endian) byte order. The data length must
//! equal `product(shape) * itemsize` exactly; sizes are overflow-checked before anything is allocated.

use std::io::{Read, Write};
use std::path::Path;

use quarry_core::{Error, Matrix, Result};

use super::{read_file, write_atomic};

const MAGIC: &[u8; 6] = b"\x93NUMPY";

/// An element type supported in `.npy` files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NpyDtype {
    /// IEEE half precision (`f2`).
    F16,
    /// IEEE single precision (`f4`).
    F32,
    /// IEEE double precision (`f8`).
    F64,
    /// Signed 8-bit (`i1`).
    I8,
    /// Signed 32-bit (`i4`).
    I32,
    /// Signed 64-bit (`i8`).
    I64,
    /// Unsigned 8-bit (`u1`).
    U8,
    /// Unsigned 32-bit (`u4`).
    U32,
}

impl NpyDtype {
    /// Supported type codes, for error messages.
    pub const SUPPORTED: &'static str = "f2, f4, f8, i1, i4, i8, u1, u4";

    fn from_code(code: &str) -> Option<Self> {
        Some(match code {
            "f2" => NpyDtype::F16,
            "f4" => NpyDtype::F32,
            "f8" => NpyDtype::F64,
            "i1" => NpyDtype::I8,
            "i4" => NpyDtype::I32,
            "i8" => NpyDtype::I64,
            "u1" => NpyDtype::U8,
            "u4" => NpyDtype::U32,
            _ => return None,
        })
    }

    /// The NumPy type code without byte order, e.g. `"f4"`.
    pub fn code(self) -> &'static str {
        match self {
            NpyDtype::F16 => "f2",
            NpyDtype::F32 => "f4",
            NpyDtype::F64 => "f8",
            NpyDtype::I8 => "i1",
            NpyDtype::I32 => "i4",
            NpyDtype::I64 => "i8",
            NpyDtype::U8 => "u1",
            NpyDtype::U32 => "u4",
        }
    }

    /// A readable name, e.g. `"float32"`.
    pub fn name(self) -> &'static str {
        match self {
            NpyDtype::F16 => "float16",
            NpyDtype::F32 => "float32",
            NpyDtype::F64 => "float64",
            NpyDtype::I8 => "int8",
            NpyDtype::I32 => "int32",
            NpyDtype::I64 => "int64",
            NpyDtype::U8 => "uint8",
            NpyDtype::U32 => "uint32",
        }
    }

    /// Bytes per element.
    pub fn itemsize(self) -> usize {
        match self {
            NpyDtype::I8 | NpyDtype::U8 => 1,
            NpyDtype::F16 => 2,
            NpyDtype::F32 | NpyDtype::I32 | NpyDtype::U32 => 4,
            NpyDtype::F64 | NpyDtype::I64 => 8,
        }
    }
}

/// A parsed `.npy` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NpyHeader {
    /// Format version `(major, minor)`.
    pub version: (u8, u8),
    /// Element type.
    pub dtype: NpyDtype,
    /// True when the data is big-endian (`>`).
    pub big_endian: bool,
    /// The `fortran_order` flag as stored (accepted only when it does not change the layout).
    pub fortran_order: bool,
    /// Array shape: one or two dimensions.
    pub shape: Vec<usize>,
    /// Byte offset of the data.
    pub data_offset: usize,
    /// Data length in bytes: `product(shape) * itemsize`.
    pub data_len: usize,
}

impl NpyHeader {
    /// Number of rows: 1 for a 1-D array.
    pub fn rows(&self) -> usize {
        shape_rows_cols(&self.shape).0
    }
    /// Number of columns: the length of a 1-D array.
    pub fn cols(&self) -> usize {
        shape_rows_cols(&self.shape).1
    }
}

fn shape_rows_cols(shape: &[usize]) -> (usize, usize) {
    match shape {
        [n] => (1, *n),
        [r, c] => (*r, *c),
        _ => (0, 0),
    }
}

/// The values of an `.npy` array, in their stored type (native byte order).
#[derive(Debug, Clone, PartialEq)]
pub enum NpyData {
    /// float16 values.
    F16(Vec<half::f16>),
    /// float32 values.
    F32(Vec<f32>),
    /// float64 values.
    F64(Vec<f64>),
    /// int8 values.
    I8(Vec<i8>),
    /// int32 values.
    I32(Vec<i32>),
    /// int64 values.
    I64(Vec<i64>),
    /// uint8 values.
    U8(Vec<u8>),
    /// uint32 values.
    U32(Vec<u32>),
}

impl NpyData {
    /// The element type.
    pub fn dtype(&self) -> NpyDtype {
        match self {
            NpyData::F16(_) => NpyDtype::F16,
            NpyData::F32(_) => NpyDtype::F32,
            NpyData::F64(_) => NpyDtype::F64,
            NpyData::I8(_) => NpyDtype::I8,
            NpyData::I32(_) => NpyDtype::I32,
            NpyData::I64(_) => NpyDtype::I64,
            NpyData::U8(_) => NpyDtype::U8,
            NpyData::U32(_) => NpyDtype::U32,
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            NpyData::F16(v) => v.len(),
            NpyData::F32(v) => v.len(),
            NpyData::F64(v) => v.len(),
            NpyData::I8(v) => v.len(),
            NpyData::I32(v) => v.len(),
            NpyData::I64(v) => v.len(),
            NpyData::U8(v) => v.len(),
            NpyData::U32(v) => v.len(),
        }
    }

    /// True when there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Converts every value to f32 (rounding float64 and large integers to the nearest f32).
    pub fn into_f32(self) -> Vec<f32> {
        match self {
            NpyData::F16(v) => v.into_iter().map(f32::from).collect(),
            NpyData::F32(v) => v,
            NpyData::F64(v) => v.into_iter().map(|x| x as f32).collect(),
            NpyData::I8(v) => v.into_iter().map(f32::from).collect(),
            NpyData::I32(v) => v.into_iter().map(|x| x as f32).collect(),
            NpyData::I64(v) => v.into_iter().map(|x| x as f32).collect(),
            NpyData::U8(v) => v.into_iter().map(f32::from).collect(),
            NpyData::U32(v) => v.into_iter().map(|x| x as f32).collect(),
        }
    }
}

/// A parsed `.npy` array: a 1-D or 2-D shape and its values in C order.
#[derive(Debug, Clone, PartialEq)]
pub struct NpyArray {
    /// One or two dimensions.
    pub shape: Vec<usize>,
    /// The values, row-major.
    pub data: NpyData,
}

impl NpyArray {
    /// Number of rows: 1 for a 1-D array.
    pub fn rows(&self) -> usize {
        shape_rows_cols(&self.shape).0
    }
    /// Number of columns: the length of a 1-D array.
    pub fn cols(&self) -> usize {
        shape_rows_cols(&self.shape).1
    }
}

/// Parses the preamble and header dict at the start of `bytes` (which may hold just the header).
/// `data_len` is computed from the shape but not checked against `bytes`.
pub fn parse_npy_header(bytes: &[u8], path: &Path) -> Result<NpyHeader> {
    let bad = |message: String| Error::malformed(path, "header", message);
    if bytes.len() < 10 {
        return Err(bad(format!("truncated: {} bytes, shorter than the 10-byte preamble", bytes.len())));
    }
    if !bytes.starts_with(MAGIC) {
        return Err(bad("missing the \\x93NUMPY magic: not an .npy file".into()));
    }
    let (major, minor) = (bytes[6], bytes[7]);
    let (header_len, start): (usize, usize) = match major {
        1 => (usize::from(u16::from_le_bytes([bytes[8], bytes[9]])), 10),
        2 | 3 => match bytes.get(8..12) {
            Some(&[a, b, c, d]) => (u32::from_le_bytes([a, b, c, d]) as usize, 12),
            _ => return Err(bad("truncated preamble".into())),
        },
        _ => {
            return Err(bad(format!("unsupported format version {major}.{minor} (supported: 1.0, 2.0, 3.0)")))
        }
    };
    let dict = start
        .checked_add(header_len)
        .and_then(|end| bytes.get(start..end))
        .ok_or_else(|| bad(format!("truncated: header declares {header_len} bytes, file has fewer")))?;
    let fields = parse_dict(dict)
        .map_err(|(at, msg)| Error::malformed(path, format!("header byte {}", start + at), msg))?;

    let descr = fields.descr.ok_or_else(|| bad("the header dict has no 'descr'".into()))?;
    let fortran_order =
        fields.fortran_order.ok_or_else(|| bad("the header dict has no 'fortran_order'".into()))?;
    let shape = fields.shape.ok_or_else(|| bad("the header dict has no 'shape'".into()))?;

    let (order, code) = match descr.as_bytes().first() {
        Some(b'<' | b'>' | b'=' | b'|') => descr.split_at(1),
        _ => ("=", descr.as_str()),
    };
    let dtype = NpyDtype::from_code(code).ok_or_else(|| {
        bad(format!(
            "unsupported dtype {descr:?}; supported: {} with byte order <, > or =",
            NpyDtype::SUPPORTED
        ))
    })?;
    if order == "|" && dtype.itemsize() > 1 {
        return Err(bad(format!("dtype {descr:?}: '|' (no byte order) is only valid for 1-byte types")));
    }
    let big_endian = order == ">" && dtype.itemsize() > 1;

    if shape.is_empty() || shape.len() > 2 {
        return Err(bad(format!(
            "shape {shape:?} has {} dimensions; only 1-D (one row) and 2-D arrays are supported",
            shape.len()
        )));
    }
    if fortran_order && shape.iter().filter(|&&n| n > 1).count() > 1 {
        return Err(bad(format!(
            "fortran_order is True for shape {shape:?}: column-major arrays are not supported \
             (save with np.ascontiguousarray first)"
        )));
    }
    let data_len = shape
        .iter()
        .try_fold(dtype.itemsize(), |acc, &n| acc.checked_mul(n))
        .ok_or_else(|| bad(format!("shape {shape:?} is too large: its byte size overflows")))?;
    let data_offset = start + header_len;
    Ok(NpyHeader { version: (major, minor), dtype, big_endian, fortran_order, shape, data_offset, data_len })
}

/// Parses a whole `.npy` file from `bytes` (`path` only names the file in errors).
pub fn parse_npy(bytes: &[u8], path: &Path) -> Result<NpyArray> {
    let header = parse_npy_header(bytes, path)?;
    let data = bytes.get(header.data_offset..).unwrap_or(&[]);
    if data.len() != header.data_len {
        return Err(Error::malformed(
            path,
            format!("data at byte {}", header.data_offset),
            format!(
                "shape {:?} of {} needs {} bytes of data, the file has {}{}",
                header.shape,
                header.dtype.name(),
                header.data_len,
                data.len(),
                if data.len() < header.data_len { " (truncated)" } else { " (trailing bytes)" }
            ),
        ));
    }
    Ok(NpyArray { shape: header.shape.clone(), data: decode(data, header.dtype, header.big_endian) })
}

fn decode(data: &[u8], dtype: NpyDtype, big_endian: bool) -> NpyData {
    macro_rules! words {
        ($ty:ty, $n:literal) => {
            data.chunks_exact($n)
                .map(|c| {
                    let mut b = [0u8; $n];
                    b.copy_from_slice(c);
                    if big_endian {
                        <$ty>::from_be_bytes(b)
                    } else {
                        <$ty>::from_le_bytes(b)
                    }
                })
                .collect::<Vec<$ty>>()
        };
    }
    match dtype {
        NpyDtype::F16 => NpyData::F16(words!(u16, 2).into_iter().map(half::f16::from_bits).collect()),
        NpyDtype::F32 => NpyData::F32(words!(f32, 4)),
        NpyDtype::F64 => NpyData::F64(words!(f64, 8)),
        NpyDtype::I8 => NpyData::I8(data.iter().map(|&b| b as i8).collect()),
        NpyDtype::I32 => NpyData::I32(words!(i32, 4)),
        NpyDtype::I64 => NpyData::I64(words!(i64, 8)),
        NpyDtype::U8 => NpyData::U8(data.to_vec()),
        NpyDtype::U32 => NpyData::U32(words!(u32, 4)),
    }
}

/// Reads a `.npy` file.
pub fn read_npy(path: &Path) -> Result<NpyArray> {
    parse_npy(&read_file(path)?, path)
}

/// Reads only the header of a `.npy` file (not its data).
pub fn read_npy_header(path: &Path) -> Result<NpyHeader> {
    let mut file = std::fs::File::open(path).map_err(|e| Error::io("opening", path, e))?;
    let size = file.metadata().map_err(|e| Error::io("reading", path, e))?.len();
    let mut bytes = Vec::with_capacity(12);
    (&mut file).take(12).read_to_end(&mut bytes).map_err(|e| Error::io("reading", path, e))?;
    let header_len = match (bytes.get(6), bytes.get(8..12)) {
        (Some(1), Some(&[a, b, ..])) => u64::from(u16::from_le_bytes([a, b])),
        (Some(2 | 3), Some(&[a, b, c, d])) => u64::from(u32::from_le_bytes([a, b, c, d])),
        _ => 0,
    };
    // Never read past the end of the file, whatever the header claims.
    let rest = header_len.min(size.saturating_sub(bytes.len() as u64));
    bytes.reserve(usize::try_from(rest).unwrap_or(0));
    file.take(rest).read_to_end(&mut bytes).map_err(|e| Error::io("reading", path, e))?;
    parse_npy_header(&bytes, path)
}

/// The fields of the header dict that matter; other keys are ignored.
#[derive(Default)]
struct Fields {
    descr: Option<String>,
    fortran_order: Option<bool>,
    shape: Option<Vec<usize>>,
}

/// A position in the header and what is wrong there.
type DictError = (usize, String);

/// Parses `{'key': value, ...}` followed by whitespace, where a value is a string literal, `True`,
/// `False` or a tuple of non-negative integers (Python 2's `3L` accepted).
fn parse_dict(s: &[u8]) -> std::result::Result<Fields, DictError> {
    let mut p = Cursor { s, i: 0 };
    let mut fields = Fields::default();
    p.skip_ws();
    p.expect(b'{')?;
    loop {
        p.skip_ws();
        if p.eat(b'}') {
            break;
        }
        let key_at = p.i;
        let key = p.string()?;
        p.skip_ws();
        p.expect(b':')?;
        p.skip_ws();
        let value_at = p.i;
        let duplicate = match key.as_str() {
            "descr" => fields.descr.replace(p.descr()?).is_some(),
            "fortran_order" => fields.fortran_order.replace(p.boolean()?).is_some(),
            "shape" => fields.shape.replace(p.tuple()?).is_some(),
            _ => {
                p.skip_value().map_err(|_| (value_at, format!("cannot read the value of key {key:?}")))?;
                false
            }
        };
        if duplicate {
            return Err((key_at, format!("key {key:?} appears twice")));
        }
        p.skip_ws();
        if p.eat(b'}') {
            break;
        }
        p.expect(b',')?;
    }
    p.skip_ws();
    if p.i < s.len() {
        return Err((p.i, "unexpected text after the header dict".into()));
    }
    Ok(fields)
}

struct Cursor<'a> {
    s: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r' | b'\0')) {
            self.i += 1;
        }
    }
    fn eat(&mut self, c: u8) -> bool {
        let hit = self.peek() == Some(c);
        if hit {
            self.i += 1;
        }
        hit
    }
    fn expect(&mut self, c: u8) -> std::result::Result<(), DictError> {
        if self.eat(c) {
            Ok(())
        } else {
            Err((self.i, format!("expected '{}', found {}", c as char, self.describe())))
        }
    }
    fn describe(&self) -> String {
        match self.peek() {
            None => "the end of the header".into(),
            Some(c) if c.is_ascii_graphic() => format!("'{}'", c as char),
            Some(c) => format!("byte 0x{c:02x}"),
        }
    }
    /// A `'...'` or `"..."` literal without escapes (none occur in keys or type codes).
    fn string(&mut self) -> std::result::Result<String, DictError> {
        let at = self.i;
        let quote = match self.peek() {
            Some(q @ (b'\'' | b'"')) => q,
            _ => return Err((at, format!("expected a quoted string, found {}", self.describe()))),
        };
        self.i += 1;
        let start = self.i;
        while let Some(c) = self.peek() {
            if c == quote {
                let text = String::from_utf8_lossy(&self.s[start..self.i]).into_owned();
                self.i += 1;
                return Ok(text);
            }
            if c == b'\\' {
                return Err((self.i, "escape sequences are not supported in header strings".into()));
            }
            self.i += 1;
        }
        Err((at, "unterminated string".into()))
    }
    fn descr(&mut self) -> std::result::Result<String, DictError> {
        match self.peek() {
            Some(b'[') => Err((self.i, "structured (record) dtypes are not supported".into())),
            _ => self.string(),
        }
    }
    fn word(&mut self) -> &[u8] {
        let start = self.i;
        while matches!(self.peek(), Some(c) if c.is_ascii_alphanumeric() || c == b'_') {
            self.i += 1;
        }
        &self.s[start..self.i]
    }
    fn boolean(&mut self) -> std::result::Result<bool, DictError> {
        let at = self.i;
        match self.word() {
            b"True" => Ok(true),
            b"False" => Ok(false),
            _ => Err((at, "expected True or False".into())),
        }
    }
    fn integer(&mut self) -> std::result::Result<usize, DictError> {
        let at = self.i;
        let mut n: usize = 0;
        let mut digits = 0;
        while let Some(c @ b'0'..=b'9') = self.peek() {
            n = n
                .checked_mul(10)
                .and_then(|n| n.checked_add(usize::from(c - b'0')))
                .ok_or_else(|| (at, "dimension too large".to_string()))?;
            digits += 1;
            self.i += 1;
        }
        if digits == 0 {
            return Err((at, format!("expected a non-negative integer, found {}", self.describe())));
        }
        self.eat(b'L');
        Ok(n)
    }
    /// `()`, `(n,)`, `(n, m)`, ... with an optional trailing comma.
    fn tuple(&mut self) -> std::result::Result<Vec<usize>, DictError> {
        let close = if self.eat(b'(') {
            b')'
        } else if self.eat(b'[') {
            b']'
        } else {
            return Err((self.i, format!("expected a shape tuple, found {}", self.describe())));
        };
        let mut dims = Vec::new();
        loop {
            self.skip_ws();
            if self.eat(close) {
                return Ok(dims);
            }
            if dims.len() >= 32 {
                return Err((self.i, "too many dimensions".into()));
            }
            dims.push(self.integer()?);
            self.skip_ws();
            if self.eat(close) {
                return Ok(dims);
            }
            self.expect(b',')?;
        }
    }
    /// Skips one value of an ignored key: a string, word, number or flat tuple/list.
    fn skip_value(&mut self) -> std::result::Result<(), DictError> {
        match self.peek() {
            Some(b'\'' | b'"') => self.string().map(drop),
            Some(b'(' | b'[') => self.tuple().map(drop),
            _ if !self.word().is_empty() => Ok(()),
            _ => Err((self.i, "unsupported value".into())),
        }
    }
}

/// Encodes a `.npy` file with a v1.0 header (v2.0 if the header would not fit), padded so the data
/// starts at a multiple of 64 bytes, as NumPy does.
fn encode_header(descr: &str, shape: &[usize]) -> Vec<u8> {
    let dims = match shape {
        [n] => format!("({n},)"),
        _ => format!("({})", shape.iter().map(usize::to_string).collect::<Vec<_>>().join(", ")),
    };
    let dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {dims}, }}");
    let mut out = Vec::with_capacity(dict.len() + 80);
    for (version, pre_len) in [(1u8, 10usize), (2, 12)] {
        let unpadded = pre_len + dict.len() + 1;
        let total = unpadded.div_ceil(64) * 64;
        let header_len = total - pre_len;
        if version == 1 && header_len > usize::from(u16::MAX) {
            continue;
        }
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&[version, 0]);
        if version == 1 {
            out.extend_from_slice(&(header_len as u16).to_le_bytes());
        } else {
            out.extend_from_slice(&(header_len as u32).to_le_bytes());
        }
        out.extend_from_slice(dict.as_bytes());
        out.resize(total - 1, b' ');
        out.push(b'\n');
        break;
    }
    out
}

fn write_npy<T>(
    path: &Path,
    descr: &str,
    shape: &[usize],
    data: &[T],
    put: impl Fn(&mut dyn Write, &T) -> std::io::Result<()>,
) -> Result<()> {
    let header = encode_header(descr, shape);
    write_atomic(path, |w: &mut dyn Write| {
        w.write_all(&header)?;
        for v in data {
            put(&mut *w, v)?;
        }
        Ok(())
    })
}

fn check_len(len: usize, rows: usize, cols: usize) -> Result<()> {
    if rows.checked_mul(cols) != Some(len) {
        return Err(Error::InvalidArgument(format!("{len} values do not form a {rows} x {cols} array")));
    }
    Ok(())
}

/// Writes `m` as a float32 `[rows, dim]` `.npy` file, crash-safely (see [`super::write_atomic`]).
pub fn write_npy_f32(path: &Path, m: &Matrix) -> Result<()> {
    write_npy(path, "<f4", &[m.rows(), m.dim()], m.as_slice(), |w, v| w.write_all(&v.to_le_bytes()))
}

/// Writes row-major float16 `data` as a `[len / dim, dim]` `.npy` file, crash-safely. Errors if `dim`
/// is 0 or does not divide `data.len()`.
pub fn write_npy_f16(path: &Path, data: &[half::f16], dim: usize) -> Result<()> {
    if dim == 0 || !data.len().is_multiple_of(dim) {
        return Err(Error::InvalidArgument(format!("{} values do not split into rows of {dim}", data.len())));
    }
    write_npy(path, "<f2", &[data.len() / dim, dim], data, |w, v| w.write_all(&v.to_bits().to_le_bytes()))
}

/// Writes row-major int32 `data` as a `[rows, cols]` `.npy` file, crash-safely. Errors unless
/// `data.len() == rows * cols`.
pub fn write_npy_i32(path: &Path, data: &[i32], rows: usize, cols: usize) -> Result<()> {
    check_len(data.len(), rows, cols)?;
    write_npy(path, "<i4", &[rows, cols], data, |w, v| w.write_all(&v.to_le_bytes()))
}

/// Writes row-major int64 `data` as a `[rows, cols]` `.npy` file, crash-safely. Errors unless
/// `data.len() == rows * cols`.
pub fn write_npy_i64(path: &Path, data: &[i64], rows: usize, cols: usize) -> Result<()> {
    check_len(data.len(), rows, cols)?;
    write_npy(path, "<i8", &[rows, cols], data, |w, v| w.write_all(&v.to_le_bytes()))
}

#[cfg(test)]
pub(super) fn encode_header_for_tests(descr: &str, shape: &[usize]) -> Vec<u8> {
    encode_header(descr, shape)
}
