//! The cross-encoder re-ranker (ms-marco-MiniLM-L-12-v2 from `scripts/fetch_extra_models.sh`;
//! skips without it, fails under QUARRY_REQUIRE_DATA=1): relevant passages get high logits,
//! unrelated ones low, in input order, independent of batching.

use quarry_text::CrossEncoder;

fn model() -> Option<std::path::PathBuf> {
    match quarry_text::locate::model_dir("ms-marco-MiniLM-L-12-v2-int8") {
        Ok(d) => Some(d),
        Err(e) => {
            quarry_testkit::skip::missing(
                "the cross-encoder ms-marco-MiniLM-L-12-v2-int8",
                &format!("{e}; run scripts/fetch_extra_models.sh"),
            );
            None
        }
    }
}

#[test]
fn relevant_passages_score_above_unrelated_ones() {
    let Some(dir) = model() else { return };
    let ce = CrossEncoder::load(&dir).expect("load");
    let passages = [
        "Bananas are a good source of potassium and fibre.",
        "The speed of light in vacuum is exactly 299,792,458 metres per second.",
        "Stock markets fell sharply on Monday as investors sold technology shares.",
        "Light travels at about 300,000 kilometres per second in a vacuum.",
    ];
    let s = ce.score("how fast does light travel", &passages, 4).expect("score");
    assert_eq!(s.len(), 4);
    assert!(s[1] > 3.0 && s[3] > 3.0, "relevant: {s:?}");
    assert!(s[0] < -5.0 && s[2] < -5.0, "unrelated: {s:?}");
    let one_by_one: Vec<f32> =
        passages.iter().map(|p| ce.score("how fast does light travel", &[p], 1).expect("score")[0]).collect();
    for (a, b) in s.iter().zip(&one_by_one) {
        assert!((a - b).abs() < 1e-3, "batching changes nothing: {s:?} vs {one_by_one:?}");
    }
    // A passage far longer than the window is truncated, not refused.
    let long = "light ".repeat(2000);
    assert!(ce.score("light", &[long.as_str()], 1).expect("long")[0].is_finite());
}
