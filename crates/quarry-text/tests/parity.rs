//! Embedding parity with sentence-transformers: 200 texts of mixed length (up to 634 tokens, so
//! truncation at 256 is exercised) encoded by all-MiniLM-L6-v2 here and by sentence-transformers
//! (PyTorch) when the fixture was made (`scripts/make_embedding_fixture.py`); every text's
//! cosine must be ≥ 0.9999. The model comes from `scripts/fetch_model.sh` (run by
//! `scripts/test.sh`); without it the test says so and skips.

use quarry_text::{locate, SentenceEncoder};

#[test]
fn minilm_matches_sentence_transformers_on_200_mixed_texts() {
    let dir = match locate::model_dir("all-MiniLM-L6-v2") {
        Ok(dir) => dir,
        Err(e) => {
            quarry_testkit::skip::missing(
                "the model all-MiniLM-L6-v2",
                &format!("{e}; run scripts/fetch_model.sh"),
            );
            return;
        }
    };
    let data = format!(
        "{}/tests/data",
        std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_string())
    );
    let texts: Vec<String> = std::fs::read_to_string(format!("{data}/parity_texts.jsonl"))
        .expect("fixture texts")
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).expect("json")["text"]
                .as_str()
                .expect("text")
                .to_string()
        })
        .collect();
    let raw = std::fs::read(format!("{data}/parity_minilm.f32")).expect("fixture vectors");
    let want: Vec<f32> = raw.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    let enc = SentenceEncoder::load(&dir).expect("load model");
    assert_eq!(enc.dim(), 384);
    assert_eq!(enc.config().max_seq_length, 256);
    assert!(enc.config().normalize);
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let got = enc.encode(&refs, 32).expect("encode");
    assert_eq!(got.rows(), texts.len());
    let mut worst = (1.0f64, 0usize);
    for (i, row) in got.iter().enumerate() {
        let w = &want[i * 384..(i + 1) * 384];
        let dot: f64 = row.iter().zip(w).map(|(a, b)| *a as f64 * *b as f64).sum();
        let na: f64 = row.iter().map(|a| (*a as f64).powi(2)).sum::<f64>().sqrt();
        let nb: f64 = w.iter().map(|a| (*a as f64).powi(2)).sum::<f64>().sqrt();
        let cos = dot / (na * nb);
        if cos < worst.0 {
            worst = (cos, i);
        }
    }
    eprintln!("parity: 200 texts, worst cosine {:.7} (text {})", worst.0, worst.1);
    assert!(worst.0 >= 0.9999, "text {}: cosine {} < 0.9999", worst.1, worst.0);
    // The candle reference path (padded batches) agrees too.
    let reference = enc.encode_reference(&refs, 32).expect("reference");
    for (i, (a, b)) in got.iter().zip(reference.iter()).enumerate() {
        let cos: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
        assert!(cos >= 0.9999, "text {i}: fast vs reference cosine {cos}");
    }
    // Batch composition does not change a text's vector (padding is masked out).
    let one = enc.encode(&refs[5..6], 1).expect("encode one");
    let cos: f32 = one.row(0).iter().zip(got.row(5)).map(|(a, b)| a * b).sum();
    assert!(cos > 0.99999, "batched vs alone: {cos}");
    // Short texts alone take the small-batch path (dot products instead of a GEMM): still at
    // parity with sentence-transformers.
    let mut short = 0;
    for (i, t) in refs.iter().enumerate().take(80) {
        if enc.token_ids(t).expect("tokens").len() > 32 {
            continue;
        }
        short += 1;
        let alone = enc.encode(&refs[i..=i], 1).expect("encode alone");
        let w = &want[i * 384..(i + 1) * 384];
        let cos: f32 = alone.row(0).iter().zip(w).map(|(a, b)| a * b).sum();
        assert!(cos >= 0.9999, "text {i} alone: cosine {cos}");
    }
    assert!(short >= 5, "only {short} short texts checked");
}

#[test]
fn missing_model_folders_are_clear_errors() {
    let err = locate::model_dir("/nonexistent/model-folder-xyz").expect_err("missing");
    assert!(err.to_string().contains("not found"), "{err}");
    let dir = std::env::temp_dir();
    let err = locate::model_dir(dir.to_str().expect("utf-8")).expect_err("not a model");
    assert!(err.to_string().contains("not a model folder"), "{err}");
}
