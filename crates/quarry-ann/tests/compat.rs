//! Golden files of each released on-disk format version (tests/compat/ at the repository root):
//! today's code must open them and answer exactly as when they were written.
//!
//! To regenerate after an intentional format change (with a new version number!):
//! `QUARRY_WRITE_GOLDEN=1 cargo test -p quarry-ann --test compat`.

use quarry_ann::{
    FlatParams, HnswIndex, HnswParams, HnswSearch, QuantFlatIndex, QuantHnswIndex, QuantParams,
};
use quarry_core::{Matrix, Metric, SearchParams, VectorIndex};
use std::path::PathBuf;

/// One query's hits as a golden-file line: `id score id score …`.
fn answer_line(hits: &[quarry_core::Hit]) -> String {
    let line: Vec<String> = hits.iter().map(|h| format!("{} {}", h.id, h.score)).collect();
    line.join(" ") + "\n"
}

fn golden(name: &str) -> PathBuf {
    PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into()))
        .join("../../tests/compat")
        .join(name)
}

/// 200 deterministic 8-d vectors.
fn data() -> Matrix {
    data_rows(200)
}

/// `n` deterministic 8-d vectors (xorshift; the first rows of every `n` agree).
fn data_rows(n: usize) -> Matrix {
    let mut x = 0x2545F4914F6CDD1Du64;
    let values = (0..n * 8)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ((x >> 40) as f32 / (1u64 << 24) as f32 - 0.5).mul_add(4.0, 0.0)
        })
        .collect();
    Matrix::new(values, 8).expect("shape")
}

#[test]
fn hnsw_v1_golden_file_opens_and_answers_as_written() {
    let path = golden("hnsw-v1.qhnsw");
    let expected_path = golden("hnsw-v1.expected.txt");
    if std::env::var_os("QUARRY_WRITE_GOLDEN").is_some() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().expect("pool");
        let mut index = pool
            .install(|| {
                HnswIndex::build(
                    &data(),
                    Metric::L2,
                    HnswParams { m: 4, ef_construction: 32, ..HnswParams::default() },
                )
            })
            .expect("build");
        index.delete(3).expect("delete");
        index.save(&path).expect("save");
        let hits = index.search_with(data().row(0), 5, &HnswSearch::ef(16), None).expect("search");
        let text: Vec<String> = hits.iter().map(|h| format!("{} {}", h.id, h.score)).collect();
        std::fs::write(&expected_path, text.join("\n") + "\n").expect("write expected");
    }
    let index = HnswIndex::open(&path).expect("golden file opens");
    HnswIndex::verify(&path).expect("golden file checksums");
    assert_eq!((index.len(), index.dim(), index.metric(), index.deleted_count()), (199, 8, Metric::L2, 1));
    let hits = index.search_with(data().row(0), 5, &HnswSearch::ef(16), None).expect("search");
    let got: Vec<String> = hits.iter().map(|h| format!("{} {}", h.id, h.score)).collect();
    let want = std::fs::read_to_string(&expected_path).expect("expected answers");
    assert_eq!(got.join("\n") + "\n", want);
}

/// One quantized golden folder: `quant-<name>-v1/` and `quant-<name>-v1.expected.txt`, searched
/// with re-scoring depth 1 so that the answers depend on the codes, not only on the f32 rows.
fn quant_golden(name: &str, hnsw: bool, params: QuantParams) {
    let dir = golden(&format!("quant-{name}-v1"));
    let expected_path = golden(&format!("quant-{name}-v1.expected.txt"));
    let answer = |index: &dyn VectorIndex| -> String {
        let mut text = String::new();
        for q in [0usize, 7, 150] {
            let hits = index.search(data().row(q), &SearchParams::top(5)).expect("search");
            text += &answer_line(&hits);
        }
        text
    };
    if std::env::var_os("QUARRY_WRITE_GOLDEN").is_some() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().expect("pool");
        let _ = std::fs::remove_dir_all(&dir);
        let text = if hnsw {
            let graph = HnswParams { m: 4, ef_construction: 32, ..HnswParams::default() };
            let mut index =
                pool.install(|| QuantHnswIndex::build(&data(), Metric::L2, graph, params)).expect("build");
            index.delete(3).expect("delete");
            index.save(&dir).expect("save");
            answer(&index.searcher(HnswSearch::ef(16), 1))
        } else {
            let mut index =
                QuantFlatIndex::build(&data(), Metric::L2, FlatParams::default(), params).expect("build");
            index.delete(3).expect("delete");
            index.save(&dir).expect("save");
            answer(&index.searcher(1))
        };
        std::fs::write(&expected_path, text).expect("write expected");
    }
    let got = if hnsw {
        QuantHnswIndex::verify(&dir).expect("golden folder checksums");
        let index = QuantHnswIndex::open(&dir).expect("golden folder opens");
        assert_eq!((index.len(), index.params()), (199, params));
        answer(&index.searcher(HnswSearch::ef(16), 1))
    } else {
        QuantFlatIndex::verify(&dir).expect("golden folder checksums");
        let index = QuantFlatIndex::open(&dir).expect("golden folder opens");
        assert_eq!((index.len(), index.params()), (199, params));
        answer(&index.searcher(1))
    };
    let want = std::fs::read_to_string(&expected_path).expect("expected answers");
    assert_eq!(got, want, "{name}: answers differ from when the golden folder was written");
}

fn spec(family: &str, opts: &[(&'static str, &'static str)]) -> QuantParams {
    let mut p = QuantParams::parse(family, opts, 8).expect("valid").0;
    p.train_size = QuantParams::new(p.spec).train_size;
    p
}

#[test]
fn quant_v1_golden_folders_open_and_answer_as_written() {
    quant_golden("flat-sq8", false, spec("sq8", &[]));
    quant_golden("flat-sq4", false, spec("sq4", &[]));
    quant_golden("flat-pq", false, spec("pq", &[("m", "4"), ("nbits", "4")]));
    quant_golden("flat-rabitq1", false, spec("rabitq", &[("bits", "1")]));
    quant_golden("hnsw-rabitq4", true, spec("rabitq", &[("bits", "4")]));
    quant_golden("hnsw-sq8", true, spec("sq8", &[]));
}

/// A SPANN golden folder `spann-<name>-v1/`: built on the first 360 of `data_rows(400)`, then (with
/// `updates`) the last 40 inserted (lists split), two ids deleted through the update log; without,
/// one id deleted and saved in the meta file. Answers at 8 probes go to `.expected.txt`.
fn spann_golden(name: &str, codes: Option<quarry_ann::QuantSpec>, updates: bool) {
    use quarry_ann::spann::{SpannIndex, SpannParams, SpannSearch};
    let dir = golden(&format!("spann-{name}-v1"));
    let expected_path = golden(&format!("spann-{name}-v1.expected.txt"));
    let all = data_rows(400);
    let s = SpannSearch { max_postings: 8, rerank: 2, ..SpannSearch::default() };
    let answer = |index: &SpannIndex| -> String {
        let mut text = String::new();
        for q in [0usize, 7, 150, 390] {
            let hits = index.search_with(all.row(q), 5, &s, None).expect("search");
            text += &answer_line(&hits);
        }
        text
    };
    if std::env::var_os("QUARRY_WRITE_GOLDEN").is_some() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().expect("pool");
        let _ = std::fs::remove_dir_all(&dir);
        let base = Matrix::new(all.as_slice()[..360 * 8].to_vec(), 8).expect("rows");
        let params = SpannParams {
            head_ratio: 0.1,
            posting_cap: 6,
            codes,
            graph: HnswParams { m: 4, ef_construction: 32, ..HnswParams::default() },
            ..SpannParams::default()
        };
        let mut index =
            pool.install(|| SpannIndex::build(&base, Metric::L2, params, &dir, 0)).expect("build").0;
        if updates {
            let rest = Matrix::new(all.as_slice()[360 * 8..].to_vec(), 8).expect("rows");
            pool.install(|| index.insert_batch(&rest)).expect("insert");
            index.delete_batch(&[3, 365]).expect("delete");
        } else {
            index.delete(3).expect("delete");
            index.save(&dir).expect("save");
        }
        std::fs::write(&expected_path, answer(&index)).expect("write expected");
    }
    SpannIndex::verify(&dir).expect("golden folder checksums");
    let index = SpannIndex::open(&dir, 0).expect("golden folder opens");
    let n = if updates { 398 } else { 359 };
    assert_eq!((index.len(), index.dim(), index.metric()), (n, 8, Metric::L2), "{name}");
    let want = std::fs::read_to_string(&expected_path).expect("expected answers");
    assert_eq!(answer(&index), want, "{name}: answers differ from when the golden folder was written");
}

#[test]
fn spann_v1_golden_folders_open_and_answer_as_written() {
    spann_golden("f32", None, false);
    spann_golden("sq8-updated", Some(quarry_ann::QuantSpec::Sq { bits: 8 }), true);
}
