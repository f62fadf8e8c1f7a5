//! Golden files of each released on-disk format version (tests/compat/ at the repository root):
//! today's code must open them and answer exactly as when they were written.
//!
//! To regenerate after an intentional format change (with a new version number!):
//! `QUARRY_WRITE_GOLDEN=1 cargo test -p quarry-ann --test compat`.

use quarry_ann::{HnswIndex, HnswParams, HnswSearch};
use quarry_core::{Matrix, Metric, VectorIndex};
use std::path::PathBuf;

fn golden(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/compat").join(name)
}

/// 200 deterministic 8-d vectors.
fn data() -> Matrix {
    let mut x = 0x2545F4914F6CDD1Du64;
    let values = (0..200 * 8)
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
