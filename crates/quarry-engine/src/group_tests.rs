//! Tests of expert groups (with the test model): fitted pilots route each domain's queries to
//! its collection, fusing all experts merges their lists (by id for the same documents), the
//! group survives reopening, and bad settings or a damaged file are clear errors.

use crate::group::{GroupFitQuery, GroupMember, GroupQuery, GroupSpec};
use crate::text::{PassageMode, TextDoc, TextMode, TextSpec};
use crate::{Database, PointId};
use serde_json::Map;

const ANIMALS: [&str; 8] = [
    "The fox hunts rabbits at dawn in the forest",
    "Wolves live and hunt in packs across the tundra",
    "Eagles build large nests on high cliffs",
    "Salmon swim upstream to spawn in rivers",
    "Bees collect nectar and pollen from flowers",
    "Elephants remember water holes for decades",
    "Owls hunt mice at night with silent flight",
    "Frogs lay their eggs in still ponds in spring",
];
const MONEY: [&str; 8] = [
    "The central bank raised interest rates by half a point",
    "Shares fell sharply after the quarterly earnings report",
    "Bond yields rise when inflation expectations grow",
    "A mortgage is a loan secured by a house",
    "Index funds track the whole stock market at low cost",
    "The currency lost value against the dollar this year",
    "Dividends pay shareholders part of a company's profits",
    "Venture capital funds invest in young start-up companies",
];

fn docs(texts: &[&str]) -> Vec<TextDoc> {
    texts
        .iter()
        .enumerate()
        .map(|(i, t)| TextDoc { id: PointId::Num(i as u64), text: t.to_string(), payload: Map::new() })
        .collect()
}

#[test]
fn routing_fusing_and_persistence() {
    let Ok(model) = quarry_text::locate::model_dir("all-MiniLM-L6-v2") else {
        quarry_testkit::skip::missing("the model all-MiniLM-L6-v2", "run scripts/fetch_model.sh");
        return;
    };
    let model = model.display().to_string();
    let dir = std::env::temp_dir().join(format!("quarry-group-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    {
        let db = Database::open(&dir).expect("open");
        let mut spec = TextSpec::new(Some(model.clone()));
        spec.passages.mode = PassageMode::Truncate;
        db.create_text_collection("animals", spec.clone(), "flat")
            .expect("create")
            .upsert(docs(&ANIMALS))
            .expect("up");
        db.create_text_collection("money", spec, "flat").expect("create").upsert(docs(&MONEY)).expect("up");
        let member = |c: &str| GroupMember { collection: c.into(), mode: TextMode::Dense };
        // Bad settings.
        let mut bad = GroupSpec::new(vec![member("animals"), member("nowhere")], &model);
        assert!(db.create_group("g", bad.clone()).is_err());
        bad.members.pop();
        bad.fuse_top = 2;
        assert!(db.create_group("g", bad).is_err());
        assert!(db.create_group("../g", GroupSpec::new(vec![member("animals")], &model)).is_err());
        assert!(db.group("g").is_err());

        db.create_group("g", GroupSpec::new(vec![member("animals"), member("money")], &model))
            .expect("create");
        assert_eq!(db.group_names(), vec!["g".to_string()]);
        // Before fitting: no pilots, every query goes to the first member.
        let r = db.search_group("g", &GroupQuery::new("stock prices", 3)).expect("search");
        assert!(r.hits.iter().all(|h| h.collection == "animals"));
        // Fit: each domain's queries are relevant to their own collection's first documents.
        let train: Vec<(&str, &str)> = vec![
            ("which animals hunt at night", "animals"),
            ("where do birds nest", "animals"),
            ("how fish reproduce", "animals"),
            ("insects and flowers", "animals"),
            ("what moves the price of bonds", "money"),
            ("how to invest in the stock market", "money"),
            ("loans for buying a home", "money"),
            ("central banks and interest", "money"),
        ];
        let queries: Vec<GroupFitQuery> =
            train.iter().map(|(t, l)| GroupFitQuery { text: t.to_string(), label: l.to_string() }).collect();
        let gain = |i: usize, collection: &str, _: &crate::text::TextHit| {
            if collection == train[i].1 {
                1.0
            } else {
                0.0
            }
        };
        let report = db.fit_group("g", &queries, &gain, 1).expect("fit");
        assert_eq!(report.credited, vec![4, 4]);
        assert_eq!(report.pilots, vec![1, 1]);
        for (text, want) in [("a hawk catching its prey", "animals"), ("shares and dividends", "money")] {
            let r = db.search_group("g", &GroupQuery::new(text, 3)).expect("search");
            assert_eq!(r.routing[0].collection, want, "{text}");
            assert!(r.routing[0].searched && !r.routing[1].searched);
            assert!(r.hits.iter().all(|h| h.collection == want), "{text}");
        }
        // Fuse both: hits from both collections, ids kept apart (different documents).
        let mut q = GroupQuery::new("shares and dividends", 16);
        q.fuse_top = Some(2);
        let r = db.search_group("g", &q).expect("fused");
        assert_eq!(r.hits.len(), 16);
        assert!(
            r.hits.iter().any(|h| h.collection == "animals")
                && r.hits.iter().any(|h| h.collection == "money")
        );
        assert!(r.hits.windows(2).all(|w| w[0].hit.score >= w[1].hit.score));
        q.fuse_top = Some(3);
        assert!(db.search_group("g", &q).is_err());

        // The same documents in two modes merge by id.
        let mut same = GroupSpec::new(
            vec![member("money"), GroupMember { collection: "money".into(), mode: TextMode::Bm25 }],
            &model,
        );
        same.same_documents = true;
        same.fuse_top = 2;
        db.create_group("same", same).expect("create");
        let r = db.search_group("same", &GroupQuery::new("interest rates", 8)).expect("search");
        let mut ids: Vec<PointId> = r.hits.iter().map(|h| h.hit.id).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), r.hits.len());
        assert_eq!(r.hits[0].hit.id, PointId::Num(0));
    }
    // Reopened: the pilots are still there.
    {
        let db = Database::open(&dir).expect("reopen");
        let g = db.group("g").expect("group");
        assert_eq!(g.pilots.counts(), vec![1, 1]);
        let r = db.search_group("g", &GroupQuery::new("shares and dividends", 3)).expect("search");
        assert_eq!(r.routing[0].collection, "money");
        assert!(db.delete_group("same").expect("delete"));
        assert!(!db.delete_group("same").expect("delete twice"));
    }
    // A damaged file is a clear error, and other groups and collections keep working.
    let path = dir.join("groups").join("g.qg");
    let mut bytes = std::fs::read(&path).expect("read");
    let n = bytes.len();
    bytes[n - 3] ^= 0x55;
    std::fs::write(&path, bytes).expect("write");
    let db = Database::open(&dir).expect("reopen");
    let err = db.search_group("g", &GroupQuery::new("x", 3)).expect_err("damaged");
    assert!(err.to_string().contains("g.qg"), "{err}");
    assert!(db.text_collection("money").is_ok());
    drop(db);
    let _ = std::fs::remove_dir_all(&dir);
}
