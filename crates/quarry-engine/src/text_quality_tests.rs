//! Tests of the quality steps of text collections (with the test model): a calibrated cut-off
//! is a prefix of the uncut ranking with non-increasing relevance, hubness re-scoring re-orders
//! the same candidates, the settings survive reopening, and missing settings or bad values are
//! clear errors.

use crate::quality::{HubnessSpec, Quality};
use crate::text::{PassageMode, TextDoc, TextMode, TextQuery, TextSpec};
use crate::{Database, PointId};
use quarry_rank::calibrate::Calibration;
use quarry_rank::hubness::HubnessMethod;
use serde_json::Map;

const TOPICS: [&str; 6] =
    ["foxes and dogs", "stock markets", "bread baking", "bird migration", "ocean tides", "chess openings"];

fn corpus() -> Vec<TextDoc> {
    let mut docs = Vec::new();
    for (t, topic) in TOPICS.iter().enumerate() {
        for i in 0..12 {
            let text =
                format!("Note {i} about {topic}: observations number {} on {topic} in detail", i * 7 + t);
            docs.push(TextDoc { id: PointId::Num((t * 100 + i) as u64), text, payload: Map::new() });
        }
    }
    docs
}

#[test]
fn calibrated_cuts_and_hubness_rescoring() {
    let Ok(model) = quarry_text::locate::model_dir("all-MiniLM-L6-v2") else {
        quarry_testkit::skip::missing("the model all-MiniLM-L6-v2", "run scripts/fetch_model.sh");
        return;
    };
    let dir = std::env::temp_dir().join(format!("quarry-text-quality-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let db = Database::open(&dir).expect("open");
    let mut spec = TextSpec::new(Some(model.display().to_string()));
    spec.passages.mode = PassageMode::Truncate;
    let col = db.create_text_collection("q", spec, "flat").expect("create");
    col.upsert(corpus()).expect("upsert");
    let query = "how do birds migrate";
    // Missing settings are clear errors.
    let mut cut = TextQuery::new(query, TextMode::Dense, 30);
    cut.min_relevance = Some(0.5);
    let err = col.search(&cut, None).expect_err("no calibration");
    assert!(err.to_string().contains("quarry calibrate"), "{err}");
    let mut hub = TextQuery::new(query, TextMode::Dense, 30);
    hub.hubness = true;
    assert!(col.search(&hub, None).expect_err("no hubness").to_string().contains("quarry hubness"));
    // The training-free rule over a null sample.
    let mut q =
        Quality { null_sample: Some(col.sample_documents(50, 1).expect("sample")), ..Quality::default() };
    assert_eq!(q.null_sample.as_ref().map(|m| m.rows), Some(50));
    q.spec.calibration.insert("dense".into(), Calibration::training_free(2.0));
    col.set_quality(Some(q.clone())).expect("set");
    let all = col.search(&TextQuery::new(query, TextMode::Dense, 30), None).expect("uncut");
    let hits = col.search(&cut, None).expect("cut");
    assert!(!hits.is_empty() && hits.len() < all.len(), "{} of {}", hits.len(), all.len());
    for (h, a) in hits.iter().zip(&all) {
        assert_eq!(h.id, a.id, "the cut is a prefix");
    }
    let p: Vec<f64> = hits.iter().map(|h| h.relevance.expect("relevance")).collect();
    assert!(p.windows(2).all(|w| w[0] >= w[1]) && p.iter().all(|x| *x >= 0.5));
    assert!(
        hits.iter().all(|h| matches!(h.id, PointId::Num(n) if (300..400).contains(&n))),
        "migration notes only"
    );
    cut.min_relevance = Some(1.5);
    assert!(col.search(&cut, None).is_err());
    // Hubness: the bank is queries about one topic; its documents are penalised.
    let bank: Vec<String> = (0..20).map(|i| format!("question {i} about stock markets")).collect();
    q.query_bank =
        Some(crate::quality::Matrix::from_rows(&col.embed_queries(&bank).expect("embed")).expect("m"));
    q.spec.hubness =
        Some(HubnessSpec { method: HubnessMethod::qb_norm(), strength: 1.0, activation: vec![] });
    if let Some(HubnessSpec { method: HubnessMethod::QbNorm { dynamic, .. }, .. }) = q.spec.hubness.as_mut() {
        *dynamic = false;
    }
    col.set_quality(Some(q)).expect("set");
    let market = "finance and stock market notes";
    let raw = col.search(&TextQuery::new(market, TextMode::Dense, 72), None).expect("raw");
    let mut hq = TextQuery::new(market, TextMode::Dense, 72);
    hq.hubness = true;
    let fixed = col.search(&hq, None).expect("hubness");
    let mut a: Vec<PointId> = raw.iter().map(|h| h.id).collect();
    let mut b: Vec<PointId> = fixed.iter().map(|h| h.id).collect();
    assert_ne!(a, b, "re-scoring re-orders");
    a.sort();
    b.sort();
    assert_eq!(a, b, "over the same candidates");
    // Reopening keeps the settings.
    drop(col);
    drop(db);
    let db = Database::open(&dir).expect("reopen");
    let col = db.text_collection("q").expect("text");
    let back = col.quality().expect("settings");
    assert!(back.spec.hubness.is_some() && back.spec.calibration.contains_key("dense"));
    assert_eq!(
        col.search(&hq, None).expect("hubness").iter().map(|h| h.id).collect::<Vec<_>>(),
        fixed.iter().map(|h| h.id).collect::<Vec<_>>()
    );
    col.set_quality(None).expect("remove");
    assert!(col.quality().is_none() && !dir.join("q").join(crate::quality::QUALITY_FILE).exists());
    drop(col);
    drop(db);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_cross_encoder_reranks_the_head_of_the_list() {
    let (Ok(model), Ok(ce)) = (
        quarry_text::locate::model_dir("all-MiniLM-L6-v2"),
        quarry_text::locate::model_dir("ms-marco-MiniLM-L-12-v2-int8"),
    ) else {
        quarry_testkit::skip::missing(
            "the models all-MiniLM-L6-v2 and ms-marco-MiniLM-L-12-v2-int8",
            "run scripts/fetch_model.sh and scripts/fetch_extra_models.sh",
        );
        return;
    };
    let dir = std::env::temp_dir().join(format!("quarry-text-cascade-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let db = Database::open(&dir).expect("open");
    let mut spec = TextSpec::new(Some(model.display().to_string()));
    spec.passages.mode = PassageMode::Truncate;
    let col = db.create_text_collection("c", spec, "flat").expect("create");
    let texts = [
        "Light travels at about 300,000 kilometres per second in a vacuum.",
        "The speed of sound in air is about 343 metres per second.",
        "Light bulbs come in many shapes; LED lights last longest.",
        "Bananas are a good source of potassium.",
        "Travel light: pack only what you need for a weekend trip.",
    ];
    let docs: Vec<TextDoc> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| TextDoc { id: PointId::Num(i as u64), text: (*t).into(), payload: Map::new() })
        .collect();
    col.upsert(docs).expect("upsert");
    let mut q = TextQuery::new("how fast does light travel", TextMode::Bm25, 5);
    q.with_payload = false;
    let first = col.search(&q, None).expect("bm25");
    let reranker = db.reranker(&ce.display().to_string()).expect("reranker");
    let re = col.rerank("how fast does light travel", first.clone(), &reranker, 3, 1.0).expect("rerank");
    assert_eq!(re.len(), first.len());
    assert_eq!(re[0].id, PointId::Num(0), "the answer first: {re:?}");
    let mut head: Vec<PointId> = re[..3].iter().map(|h| h.id).collect();
    let mut was: Vec<PointId> = first[..3].iter().map(|h| h.id).collect();
    head.sort();
    was.sort();
    assert_eq!(head, was, "only the head is re-ordered");
    assert_eq!(
        re[3..].iter().map(|h| h.id).collect::<Vec<_>>(),
        first[3..].iter().map(|h| h.id).collect::<Vec<_>>()
    );
    assert!(re[..3].windows(2).all(|w| w[0].score >= w[1].score), "by logit");
    drop(col);
    drop(db);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn rm3_feedback_reaches_documents_without_the_query_terms() {
    let dir = std::env::temp_dir().join(format!("quarry-text-rm3-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let db = Database::open(&dir).expect("open");
    let col = db.create_text_collection("b", TextSpec::new(None), "flat").expect("create");
    let texts = [
        "arctic tern migration between the poles",
        "the tern colony on the arctic coast, migration season",
        "polar migration of seabirds across the arctic",
        "stock markets and interest rates",
    ];
    let docs: Vec<TextDoc> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| TextDoc { id: PointId::Num(i as u64), text: (*t).into(), payload: Map::new() })
        .collect();
    col.upsert(docs).expect("upsert");
    let plain = col.search(&TextQuery::new("tern", TextMode::Bm25, 10), None).expect("bm25");
    assert!(plain.iter().all(|h| h.id != PointId::Num(2)), "no query term: not found without feedback");
    let mut q = TextQuery::new("tern", TextMode::Bm25, 10);
    q.feedback = Some(crate::text::Feedback { docs: 2, ..Default::default() });
    let fb = col.search(&q, None).expect("feedback");
    let ids: Vec<PointId> = fb.iter().map(|h| h.id).collect();
    assert!(ids.contains(&PointId::Num(2)), "expansion terms (arctic, migration) find it: {ids:?}");
    assert!(!ids.contains(&PointId::Num(3)));
    assert!(
        ids[..2].contains(&PointId::Num(0)) && ids[..2].contains(&PointId::Num(1)),
        "the first pass stays on top"
    );
    drop(col);
    drop(db);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_fitted_fusion_becomes_the_collections_hybrid_default() {
    let Ok(model) = quarry_text::locate::model_dir("all-MiniLM-L6-v2") else {
        quarry_testkit::skip::missing("the model all-MiniLM-L6-v2", "run scripts/fetch_model.sh");
        return;
    };
    let dir = std::env::temp_dir().join(format!("quarry-text-fusion-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let db = Database::open(&dir).expect("open");
    let mut spec = TextSpec::new(Some(model.display().to_string()));
    spec.passages.mode = PassageMode::Truncate;
    let col = db.create_text_collection("f", spec, "flat").expect("create");
    col.upsert(corpus()).expect("upsert");
    let queries: Vec<String> = TOPICS.iter().map(|t| format!("what is known about {t}")).collect();
    let relevant: Vec<std::collections::HashSet<PointId>> =
        (0..TOPICS.len()).map(|t| (0..12).map(|i| PointId::Num((t * 100 + i) as u64)).collect()).collect();
    let (chosen, report) = col.fit_fusion(&queries, &relevant, 50).expect("fit");
    assert_eq!(report["ndcg_cut_10"].as_object().map(serde_json::Map::len), Some(12), "{report}");
    assert_eq!(col.quality().and_then(|q| q.spec.fusion), Some(chosen.clone()));
    // A hybrid query naming no fusion uses the fitted one: the same ranking as naming it.
    let mut implicit = TextQuery::new("bird migration", TextMode::Hybrid, 10);
    implicit.with_payload = false;
    let mut explicit = implicit.clone();
    explicit.fusion = Some(chosen);
    let a: Vec<PointId> = col.search(&implicit, None).expect("implicit").iter().map(|h| h.id).collect();
    let b: Vec<PointId> = col.search(&explicit, None).expect("explicit").iter().map(|h| h.id).collect();
    assert_eq!(a, b);
    assert!(col.fit_fusion(&queries, &relevant[..2], 50).is_err(), "one relevant set per query");
    drop(col);
    drop(db);
    let _ = std::fs::remove_dir_all(&dir);
}
