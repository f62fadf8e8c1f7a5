//! Unit tests of the vector and id file formats: round trips, malformed input, real shared data.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use half::f16;
use proptest::prelude::*;
use quarry_core::{Error, Matrix};

use super::npy::encode_header_for_tests as npy_header;
use super::*;

/// A fresh, empty directory under the system temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        static N: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "quarry-eval-io-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }
    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
    fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, bytes).expect("write test file");
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn p(name: &str) -> &Path {
    Path::new(name)
}

/// Asserts `err` is `Malformed` whose message contains every piece.
fn assert_malformed(err: Error, pieces: &[&str]) {
    let text = err.to_string();
    assert!(matches!(err, Error::Malformed { .. }), "not Malformed: {text}");
    for piece in pieces {
        assert!(text.contains(piece), "{text:?} lacks {piece:?}");
    }
}

fn texmex<B: AsRef<[u8]>>(records: &[(i32, B)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (d, body) in records {
        out.extend_from_slice(&d.to_le_bytes());
        out.extend_from_slice(body.as_ref());
    }
    out
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn sample() -> Matrix {
    Matrix::new(vec![1.0, -2.5, 3.25, f32::MIN_POSITIVE, 1e30, -0.0], 3).expect("matrix")
}

// ---------------------------------------------------------------- TEXMEX

#[test]
fn fvecs_round_trip() {
    let dir = TempDir::new();
    let path = dir.path("a.fvecs");
    let m = sample();
    write_fvecs(&path, &m).expect("write");
    assert_eq!(std::fs::metadata(&path).expect("meta").len(), 2 * (4 + 3 * 4));
    assert_eq!(read_fvecs(&path).expect("read"), m);
    assert_eq!(read_vectors(&path).expect("read_vectors"), m);
    assert_eq!(read_vectors_f16(&path).expect("f16"), None);
    // Only the final file remains: the temporary one was renamed.
    assert_eq!(std::fs::read_dir(&dir.0).expect("ls").count(), 1);
}

#[test]
fn fvecs_keeps_non_finite_values() {
    let bytes = texmex(&[(2, &f32_bytes(&[f32::NAN, f32::INFINITY]))]);
    let m = parse_fvecs(&bytes, p("x.fvecs")).expect("parse");
    assert!(m.row(0)[0].is_nan());
    assert_eq!(m.row(0)[1], f32::INFINITY);
}

#[test]
fn ivecs_round_trip_and_id_rows() {
    let dir = TempDir::new();
    let path = dir.path("gt.ivecs");
    let data = vec![0, 5, 7, 9, 1, -1];
    write_ivecs(&path, &data, 3).expect("write");
    assert_eq!(read_ivecs(&path).expect("read"), (data, 3));
    let ids = read_id_rows(&path).expect("id rows");
    assert_eq!(ids.rows(), 2);
    assert_eq!(ids.row(0), &[0, 5, 7]);
    assert_eq!(ids.row(1), &[9, 1, IdRows::NONE]);
    assert_eq!(ids.get(2), None);
    assert_eq!(ids.iter().count(), 2);
    assert!(write_ivecs(&path, &[1, 2, 3], 2).is_err());
    assert!(write_ivecs(&path, &[], 0).is_err());
}

#[test]
fn id_rows_reject_other_negative_ids() {
    let dir = TempDir::new();
    let path = dir.path("gt.ivecs");
    write_ivecs(&path, &[1, 2, 3, -7], 2).expect("write");
    let err = read_id_rows(&path).expect_err("-7");
    assert_malformed(err, &["gt.ivecs", "row 1 column 1", "-7"]);
}

#[test]
fn bvecs_parse_converts_bytes() {
    let bytes = texmex(&[(3, &[0, 128, 255]), (3, &[1, 2, 3])]);
    let m = parse_bvecs(&bytes, p("x.bvecs")).expect("parse");
    assert_eq!(m.as_slice(), &[0.0, 128.0, 255.0, 1.0, 2.0, 3.0]);
    assert_eq!(m.dim(), 3);
    let err = parse_bvecs(&bytes[..bytes.len() - 1], p("x.bvecs")).expect_err("truncated");
    assert_malformed(err, &["x.bvecs", "record 1 at byte 7", "truncated"]);
}

#[test]
fn truncated_fvecs_names_the_file_and_record() {
    let dir = TempDir::new();
    let mut bytes = texmex(&[(2, &f32_bytes(&[1.0, 2.0])); 3]);
    bytes.truncate(bytes.len() - 3);
    let path = dir.write("cut.fvecs", &bytes);
    let err = read_fvecs(&path).expect_err("truncated");
    assert_malformed(err, &["cut.fvecs", "record 2 at byte 24", "truncated", "not a multiple of 12"]);
    for short in [&b""[..], &[1, 0]] {
        assert_malformed(parse_fvecs(short, p("s.fvecs")).expect_err("short"), &["s.fvecs", "record 0"]);
    }
}

#[test]
fn inconsistent_dimension_names_the_record() {
    let body = f32_bytes(&[1.0, 2.0]);
    let bytes = texmex(&[(2, &body), (2, &body), (3, &body)]);
    let err = parse_fvecs(&bytes, p("d.fvecs")).expect_err("dim");
    assert_malformed(err, &["d.fvecs", "record 2 at byte 24", "dimension 3", "first record's 2"]);
    // Same size, different dimension field in a full record.
    let bytes = texmex(&[(2, &body), (5, &body), (2, &body)]);
    assert_malformed(parse_ivecs(&bytes, p("d.ivecs")).expect_err("dim"), &["record 1 at byte 12"]);
}

#[test]
fn non_positive_or_huge_dimension_rejected() {
    for d in [0, -1, i32::MIN] {
        let bytes = texmex(&[(d, &[0; 8])]);
        assert_malformed(parse_fvecs(&bytes, p("z.fvecs")).expect_err("d<=0"), &["record 0", "not positive"]);
    }
    // Declares a huge dimension: must not allocate, just report truncation.
    let bytes = texmex(&[(i32::MAX, &[0; 8])]);
    assert_malformed(parse_fvecs(&bytes, p("h.fvecs")).expect_err("huge"), &["truncated"]);
}

// ---------------------------------------------------------------- npy

fn npy(descr: &str, shape: &[usize], data: &[u8]) -> Vec<u8> {
    let mut out = npy_header(descr, shape);
    out.extend_from_slice(data);
    out
}

/// A hand-written v1 file with an arbitrary header dict (padding is not required by the reader).
fn npy_raw(dict: &str, data: &[u8]) -> Vec<u8> {
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out.extend_from_slice(data);
    out
}

#[test]
fn npy_f32_round_trip() {
    let dir = TempDir::new();
    let path = dir.path("m.npy");
    let m = sample();
    write_npy_f32(&path, &m).expect("write");
    let bytes = std::fs::read(&path).expect("read");
    assert_eq!(&bytes[..8], b"\x93NUMPY\x01\x00");
    let header = read_npy_header(&path).expect("header");
    assert_eq!(header.data_offset % 64, 0);
    assert_eq!((header.dtype, header.rows(), header.cols()), (NpyDtype::F32, 2, 3));
    assert_eq!(read_npy(&path).expect("npy").data, NpyData::F32(m.as_slice().to_vec()));
    assert_eq!(read_vectors(&path).expect("vectors"), m);
    assert_eq!(read_vectors_f16(&path).expect("f16"), None);
}

#[test]
fn npy_f16_round_trip_and_decoding() {
    let dir = TempDir::new();
    let path = dir.path("h.f16.npy");
    // 1.0, -2.0, 0.5, 65504 (max), smallest subnormal, +inf
    let bits = [0x3C00u16, 0xC000, 0x3800, 0x7BFF, 0x0001, 0x7C00];
    let values: Vec<f16> = bits.iter().map(|&b| f16::from_bits(b)).collect();
    write_npy_f16(&path, &values, 2).expect("write");
    let (raw, dim) = read_vectors_f16(&path).expect("read").expect("is f16");
    assert_eq!((raw.as_slice(), dim), (values.as_slice(), 2));
    let m = read_vectors(&path).expect("as f32");
    assert_eq!(m.rows(), 3);
    assert_eq!(&m.as_slice()[..4], &[1.0, -2.0, 0.5, 65504.0]);
    assert_eq!(m.as_slice()[4], 2f32.powi(-24));
    assert_eq!(m.as_slice()[5], f32::INFINITY);
    // Big-endian float16.
    let be: Vec<u8> = bits.iter().flat_map(|b| b.to_be_bytes()).collect();
    let a = parse_npy(&npy(">f2", &[6], &be), p("be.npy")).expect("be");
    assert_eq!(a.data, NpyData::F16(values));
    assert!(write_npy_f16(&path, &[f16::ONE; 3], 2).is_err());
}

#[test]
fn npy_i32_round_trip_and_id_rows() {
    let dir = TempDir::new();
    let path = dir.path("gt.i32.npy");
    let data = [3, 1, 4, 1, 5, -1];
    write_npy_i32(&path, &data, 3, 2).expect("write");
    let a = read_npy(&path).expect("read");
    assert_eq!((a.shape.as_slice(), a.data), (&[3usize, 2][..], NpyData::I32(data.to_vec())));
    let ids = read_id_rows(&path).expect("ids");
    assert_eq!((ids.rows(), ids.cols), (3, 2));
    assert_eq!(ids.row(2), &[5, IdRows::NONE]);
    assert!(write_npy_i32(&path, &data, 2, 2).is_err());
    // Float arrays hold no ids.
    write_npy_f32(&path, &sample()).expect("write");
    assert_malformed(read_id_rows(&path).expect_err("f32 ids"), &["float32"]);
}

#[test]
fn npy_other_dtypes_and_byte_orders() {
    let f8: Vec<u8> = [1.5f64, -2.0].iter().flat_map(|x| x.to_le_bytes()).collect();
    assert_eq!(parse_npy(&npy("<f8", &[1, 2], &f8), p("a")).expect("f8").data, NpyData::F64(vec![1.5, -2.0]));
    let f4be: Vec<u8> = [1.5f32, -2.0].iter().flat_map(|x| x.to_be_bytes()).collect();
    let a = parse_npy(&npy(">f4", &[2], &f4be), p("a")).expect(">f4");
    assert_eq!((a.rows(), a.cols(), a.data), (1, 2, NpyData::F32(vec![1.5, -2.0])));
    let i8le: Vec<u8> = [-3i64, 1 << 40].iter().flat_map(|x| x.to_le_bytes()).collect();
    assert_eq!(
        parse_npy(&npy("<i8", &[2], &i8le), p("a")).expect("i8").data,
        NpyData::I64(vec![-3, 1 << 40])
    );
    let u4: Vec<u8> = [7u32, u32::MAX].iter().flat_map(|x| x.to_le_bytes()).collect();
    assert_eq!(parse_npy(&npy("=u4", &[2], &u4), p("a")).expect("u4").data, NpyData::U32(vec![7, u32::MAX]));
    let i4be: Vec<u8> = [-5i32].iter().flat_map(|x| x.to_be_bytes()).collect();
    assert_eq!(parse_npy(&npy(">i4", &[1], &i4be), p("a")).expect(">i4").data, NpyData::I32(vec![-5]));
    assert_eq!(
        parse_npy(&npy("|u1", &[3], &[1, 2, 255]), p("a")).expect("u1").data,
        NpyData::U8(vec![1, 2, 255])
    );
    assert_eq!(parse_npy(&npy("|i1", &[2], &[0xFF, 3]), p("a")).expect("i1").data, NpyData::I8(vec![-1, 3]));
    // Python 2 longs, double quotes, no trailing comma, key order.
    let dict = "{\"shape\": (1L, 2L), \"fortran_order\": False, \"descr\": \"<f4\"}\n";
    let a = parse_npy(&npy_raw(dict, &f32_bytes(&[1.0, 2.0])), p("a")).expect("py2 header");
    assert_eq!(a.shape, vec![1, 2]);
    // Empty 2-D array is valid npy, but holds no vectors when it has no columns.
    assert_eq!(parse_npy(&npy("<f4", &[0, 4], &[]), p("a")).expect("empty").rows(), 0);
}

#[test]
fn npy_version_2_and_3_headers() {
    for version in [2u8, 3] {
        let dict = "{'descr': '<i4', 'fortran_order': False, 'shape': (2,), }   \n";
        let mut bytes = vec![0x93, b'N', b'U', b'M', b'P', b'Y', version, 0];
        bytes.extend_from_slice(&(dict.len() as u32).to_le_bytes());
        bytes.extend_from_slice(dict.as_bytes());
        bytes.extend_from_slice(&[1, 0, 0, 0, 2, 0, 0, 0]);
        let a = parse_npy(&bytes, p("v.npy")).expect("v2/v3");
        assert_eq!(a.data, NpyData::I32(vec![1, 2]));
        assert_eq!(parse_npy_header(&bytes, p("v.npy")).expect("header").version, (version, 0));
    }
}

#[test]
fn npy_fortran_order_rejected() {
    let dict = "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }";
    let err = parse_npy(&npy_raw(dict, &[0; 24]), p("f.npy")).expect_err("fortran");
    assert_malformed(err, &["f.npy", "header", "fortran_order", "ascontiguousarray"]);
    // A single row is the same layout in both orders.
    let dict = "{'descr': '<f4', 'fortran_order': True, 'shape': (1, 3), }";
    assert!(parse_npy(&npy_raw(dict, &[0; 12]), p("f.npy")).is_ok());
}

#[test]
fn npy_bad_headers_rejected() {
    let ok = "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }";
    let data = [0u8; 4];
    assert!(parse_npy(&npy_raw(ok, &data), p("ok.npy")).is_ok());
    let cases: &[(&str, &str)] = &[
        ("{'descr': '<f4', 'fortran_order': False}", "no 'shape'"),
        ("{'fortran_order': False, 'shape': (1,)}", "no 'descr'"),
        ("{'descr': '<f4', 'shape': (1,)}", "no 'fortran_order'"),
        ("{'descr': '<c8', 'fortran_order': False, 'shape': (1,)}", "unsupported dtype"),
        ("{'descr': '|f4', 'fortran_order': False, 'shape': (1,)}", "1-byte"),
        ("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,)}", "structured"),
        ("{'descr': '<f4', 'fortran_order': Maybe, 'shape': (1,)}", "True or False"),
        ("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1, 1)}", "3 dimensions"),
        ("{'descr': '<f4', 'fortran_order': False, 'shape': ()}", "0 dimensions"),
        ("{'descr': '<f4', 'fortran_order': False, 'shape': (-1,)}", "non-negative integer"),
        ("{'descr': '<f4', 'fortran_order': False, 'shape': (1,)", "expected ','"),
        ("{'descr': '<f4', 'fortran_order': False, 'shape': (1,)} x", "after the header dict"),
        ("{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (1,)}", "twice"),
        ("{'descr: '<f4', 'fortran_order': False, 'shape': (1,)}", "expected ':'"),
        ("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999999,)}", "too large"),
        ("{'descr': '<f8', 'fortran_order': False, 'shape': (4611686018427387904, 4)}", "overflows"),
        ("", "expected '{'"),
    ];
    for (dict, expected) in cases {
        let err = parse_npy(&npy_raw(dict, &data), p("bad.npy")).expect_err(dict);
        assert_malformed(err, &["bad.npy", expected]);
    }
    assert_malformed(parse_npy(b"\x93NUMPZ\x01\x00\x00\x00", p("m.npy")).expect_err("magic"), &["magic"]);
    assert_malformed(
        parse_npy(b"\x93NUMPY\x04\x00\x00\x00", p("m.npy")).expect_err("version"),
        &["version 4.0"],
    );
    assert_malformed(parse_npy(b"\x93NUMPY\x01", p("m.npy")).expect_err("short"), &["preamble"]);
    assert_malformed(
        parse_npy(b"\x93NUMPY\x01\x00\xFF\x00{", p("m.npy")).expect_err("len"),
        &["header declares 255"],
    );
}

#[test]
fn npy_data_length_checked() {
    let dir = TempDir::new();
    let full = npy("<f4", &[2, 2], &f32_bytes(&[1.0, 2.0, 3.0, 4.0]));
    let path = dir.write("t.npy", &full[..full.len() - 1]);
    assert_malformed(
        read_npy(&path).expect_err("truncated"),
        &["t.npy", "needs 16 bytes", "has 15", "truncated"],
    );
    let mut long = full.clone();
    long.push(0);
    assert_malformed(parse_npy(&long, p("l.npy")).expect_err("trailing"), &["trailing"]);
    // A header-only read of a file whose header length points past the end.
    let path = dir.write("h.npy", &full[..40]);
    assert_malformed(read_npy_header(&path).expect_err("cut header"), &["h.npy", "header declares"]);
}

// ---------------------------------------------------------------- JSONL

const JSONL: &str = concat!(
    "{\"id\": 1, \"vector\": [0.5, 1, -2e0], \"payload\": {\"tag\": \"a\"}}\n",
    "\n",
    "  \r\n",
    "{\"id\": \"doc-2\", \"vector\": [3, 4, 5], \"extra\": true}\r\n",
);

#[test]
fn jsonl_parses_ids_payloads_and_skips_blank_lines() {
    let recs = parse_jsonl(JSONL.as_bytes(), p("v.jsonl")).expect("parse");
    assert_eq!(recs.len(), 2);
    assert_eq!(recs[0].id, RecordId::U64(1));
    assert_eq!(recs[0].vector, vec![0.5, 1.0, -2.0]);
    assert_eq!(recs[0].payload, Some(serde_json::json!({"tag": "a"})));
    assert_eq!(
        (recs[1].id.clone(), recs[1].line, recs[1].payload.clone()),
        (RecordId::String("doc-2".into()), 4, None)
    );
    let m = records_to_matrix(&recs, p("v.jsonl")).expect("matrix");
    assert_eq!(m.as_slice(), &[0.5, 1.0, -2.0, 3.0, 4.0, 5.0]);
    let dir = TempDir::new();
    let path = dir.write("v.jsonl", JSONL.as_bytes());
    assert_eq!(read_vectors(&path).expect("read_vectors"), m);
}

#[test]
fn jsonl_errors_name_the_line() {
    let cases: &[(&str, &str)] = &[
        ("{\"id\": 1, \"vector\": [1]}\n\n{\"id\": 2, \"vector\": [1,}\n", "line 3, column"),
        ("{\"id\": -1, \"vector\": [1]}", "not a non-negative integer"),
        ("{\"id\": 1.5, \"vector\": [1]}", "not a non-negative integer"),
        ("{\"id\": [1], \"vector\": [1]}", "an array"),
        ("{\"vector\": [1]}", "missing \"id\""),
        ("{\"id\": 1}", "missing \"vector\""),
        ("{\"id\": 1, \"vector\": [1, null]}", "component 1 is null"),
        ("{\"id\": 1, \"vector\": \"1,2\"}", "must be an array"),
        ("[1, 2]", "expected a JSON object"),
        ("{\"id\": 1, \"vector\": [1]} trailing", "line 1"),
    ];
    for (text, expected) in cases {
        let err = parse_jsonl(text.as_bytes(), p("e.jsonl")).expect_err(text);
        assert_malformed(err, &["e.jsonl", "line", expected]);
    }
    let recs = parse_jsonl(b"{\"id\": 1, \"vector\": [1, 2]}\n\n{\"id\": 2, \"vector\": [1]}", p("e.jsonl"))
        .expect("parse");
    let err = records_to_matrix(&recs, p("e.jsonl")).expect_err("mismatch");
    assert_malformed(err, &["e.jsonl", "line 3", "1 components", "line 1"]);
    assert!(records_to_matrix(&[], p("e.jsonl")).is_err());
    let empty = parse_jsonl(b"{\"id\": 1, \"vector\": []}", p("e.jsonl")).expect("parse");
    assert_malformed(records_to_matrix(&empty, p("e.jsonl")).expect_err("dim 0"), &["empty"]);
}

// ---------------------------------------------------------------- dispatch

#[test]
fn unknown_extension_lists_supported_ones() {
    let err = read_vectors(p("vectors.csv")).expect_err("csv");
    let text = err.to_string();
    assert!(text.contains("vectors.csv") && text.contains(".fvecs") && text.contains(".npy"), "{text}");
    assert!(read_id_rows(p("gt.txt")).expect_err("txt").to_string().contains(".ivecs"));
    assert!(read_vectors(p("gt.ivecs")).expect_err("ivecs").to_string().contains("read_id_rows"));
    assert!(read_vectors_f16(p("x.parquet")).is_err());
    let missing = read_vectors(p("/nonexistent/quarry/x.fvecs")).expect_err("missing");
    assert!(matches!(missing, Error::Io { .. }), "{missing}");
}

// ---------------------------------------------------------------- BEIR

#[test]
fn beir_folder_loads_and_rejects_duplicates() {
    let dir = TempDir::new();
    std::fs::create_dir(dir.path("qrels")).expect("mkdir");
    dir.write(
        "corpus.jsonl",
        b"{\"_id\": \"d1\", \"title\": \"T\", \"text\": \"one\"}\n{\"_id\": 2, \"text\": \"two\", \"metadata\": {}}\n",
    );
    dir.write("queries.jsonl", b"{\"_id\": \"q1\", \"text\": \"what\"}\n");
    dir.write("qrels/test.tsv", b"query-id\tcorpus-id\tscore\nq1\td1\t1\n");
    let ds = read_beir(&dir.0, "test").expect("beir");
    assert_eq!(ds.corpus[1], BeirDoc { id: "2".into(), title: String::new(), text: "two".into() });
    assert_eq!(ds.queries, vec![BeirQuery { id: "q1".into(), text: "what".into() }]);
    assert_eq!(ds.qrels.rel("q1", "d1"), Some(1));
    let err = read_beir(&dir.0, "dev").expect_err("no split");
    assert!(err.to_string().contains("available splits: test"), "{err}");

    let dup = b"{\"_id\": \"a\", \"text\": \"x\"}\n{\"_id\": \"a\", \"text\": \"y\"}\n";
    assert_malformed(
        parse_beir_corpus(dup, p("c.jsonl")).expect_err("dup"),
        &["c.jsonl", "line 2", "duplicate"],
    );
    assert_malformed(
        parse_beir_queries(b"{\"_id\": \"a\"}", p("q.jsonl")).expect_err("no text"),
        &["line 1", "missing \"text\""],
    );
    assert_malformed(
        parse_beir_corpus(b"{\"_id\": \"a\", \"text\": 3}", p("c.jsonl")).expect_err("text type"),
        &["must be a string"],
    );
}

// ---------------------------------------------------------------- property tests

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Parsers never panic on corrupted valid files and on arbitrary bytes.
    #[test]
    fn parsers_never_panic(flips in proptest::collection::vec((0usize..200, any::<u8>()), 0..6),
                           cut in 0usize..200, junk in proptest::collection::vec(any::<u8>(), 0..64)) {
        let mut inputs = vec![
            npy("<f4", &[2, 3], &f32_bytes(&[1.0; 6])),
            npy("<f2", &[3], &[0; 6]),
            texmex(&[(3, &f32_bytes(&[1.0; 3])); 2]),
            junk,
        ];
        for bytes in &mut inputs {
            for &(at, v) in &flips {
                if let Some(b) = bytes.get_mut(at) { *b ^= v; }
            }
            bytes.truncate(cut.max(bytes.len() / 2));
        }
        for bytes in &inputs {
            let _ = parse_npy(bytes, p("f.npy"));
            let _ = parse_fvecs(bytes, p("f.fvecs"));
            let _ = parse_ivecs(bytes, p("f.ivecs"));
            let _ = parse_bvecs(bytes, p("f.bvecs"));
            let _ = parse_jsonl(bytes, p("f.jsonl"));
        }
    }

    /// fvecs and npy writers round-trip any matrix exactly (bit for bit).
    #[test]
    fn writers_round_trip(dim in 1usize..6, rows in 0usize..5, seed in any::<u32>()) {
        let data: Vec<f32> = (0..dim * rows).map(|i| f32::from_bits(seed.wrapping_mul(2_654_435_761).wrapping_add(i as u32 * 40_503) & 0x7F7F_FFFF)).collect();
        let m = Matrix::new(data, dim).expect("matrix");
        let dir = TempDir::new();
        write_fvecs(&dir.path("a.fvecs"), &m).expect("fvecs");
        write_npy_f32(&dir.path("a.npy"), &m).expect("npy");
        let npy = read_npy(&dir.path("a.npy")).expect("read npy");
        prop_assert_eq!(npy.data, NpyData::F32(m.as_slice().to_vec()));
        if rows > 0 {
            prop_assert_eq!(read_fvecs(&dir.path("a.fvecs")).expect("read fvecs"), m);
        }
    }
}

// ---------------------------------------------------------------- real shared data

use quarry_testkit::shared_data::require as shared_data;

#[test]
fn real_wndict_files() {
    let Some(dir) = shared_data("wndict-384") else { return };
    let base = dir.join("base.f16.npy");
    let header = read_npy_header(&base).expect("header");
    assert_eq!((header.dtype, header.shape.as_slice()), (NpyDtype::F16, &[108_000usize, 384][..]));
    let (raw, dim) = read_vectors_f16(&base).expect("read").expect("f16");
    assert_eq!((raw.len(), dim), (108_000 * 384, 384));
    // Rows are L2-normalised before rounding to f16.
    let norm: f32 = raw[..384].iter().map(|x| f32::from(*x).powi(2)).sum();
    assert!((norm - 1.0).abs() < 1e-2, "norm² {norm}");

    let ivecs = read_id_rows(&dir.join("groundtruth.ivecs")).expect("ivecs");
    let npy = read_id_rows(&dir.join("groundtruth.i32.npy")).expect("npy");
    assert_eq!((ivecs.rows(), ivecs.cols), (2000, 100));
    assert_eq!(ivecs, npy);
    assert!(ivecs.data.iter().all(|&id| id < 108_000));
}

#[test]
fn real_scifact_beir() {
    let Some(dir) = shared_data("scifact") else { return };
    let ds = read_beir(&dir, "test").expect("scifact");
    assert_eq!(ds.corpus.len(), 5183);
    assert_eq!(ds.queries.len(), 1109);
    assert_eq!(ds.qrels.len(), 300);
    assert_eq!(ds.qrels.num_judgements(), 339);
    assert!(ds.corpus.iter().all(|d| !d.id.is_empty() && !d.text.is_empty()));
    let emb = read_vectors(&dir.join("corpus_embeddings.npy")).expect("embeddings");
    assert_eq!((emb.rows(), emb.dim()), (5183, 384));
}
