"""The `quarry` package from Python: round trips, filters against a hand oracle, search against
numpy brute force, bad inputs, concurrent searches from threads, and a database written from Rust
(by the quarry CLI, when $QUARRY_BIN names it) reopened from Python."""

import json
import pathlib
import os
import subprocess
import threading

import jsonschema
import numpy as np
import pytest

import quarry


def unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


@pytest.fixture
def db(tmp_path):
    return quarry.open(tmp_path / "db")


@pytest.fixture
def col(db):
    rng = np.random.default_rng(1)
    c = db.create_collection("items", dim=16, metric="cosine", index="hnsw", payload_indexes=["tag"])
    v = rng.standard_normal((500, 16)).astype(np.float32)
    n = c.upsert(list(range(500)), v, payloads=[{"tag": i % 4, "name": f"n{i}", "score": i / 10} for i in range(500)])
    assert n == 500
    return WithVectors(c, v)


class WithVectors:
    """A collection and the vectors written to it."""

    def __init__(self, c, v):
        self._c, self.vectors = c, v

    def __getattr__(self, name):
        return getattr(self._c, name)

    def __len__(self):
        return len(self._c)


def exact(v, q, k, allowed=None):
    s = unit(v) @ unit(q)
    order = [int(i) for i in np.argsort(-s, kind="stable") if allowed is None or int(i) in allowed]
    return order[:k], s


def test_round_trip_and_reopen(tmp_path, col):
    r = col.get(7)
    assert r.id == 7 and r.payload == {"tag": 3, "name": "n7", "score": 0.7}
    # A cosine collection stores vectors normalised (as Qdrant does).
    assert r.vector.dtype == np.float32 and np.allclose(r.vector, unit(col.vectors[7]), atol=1e-6)
    assert col.get(12345) is None
    assert col.count() == 500 and len(col) == 500
    assert col.delete([1, 2, 999]) == 2
    assert col.count() == 498
    del col
    db2 = quarry.open(tmp_path / "db")
    c2 = db2.collection("items")
    assert c2.count() == 498 and c2.get(1) is None and c2.get(3).payload["name"] == "n3"
    assert db2.collections() == ["items"]


def test_search_matches_brute_force(col):
    rng = np.random.default_rng(2)
    for _ in range(5):
        q = rng.standard_normal(16).astype(np.float32)
        want, s = exact(col.vectors, q, 10)
        hits = col.search(q, k=10, params={"ef": 500})
        assert [h.id for h in hits] == want
        assert all(abs(h.score - s[h.id]) < 1e-5 for h in hits)
        assert hits[0].payload["name"] == f"n{hits[0].id}"
    # Lists work too.
    assert [h.id for h in col.search(q.tolist(), k=3, params={"ef": 500})] == exact(col.vectors, q, 3)[0]


def test_filters_match_hand_selection(col):
    rng = np.random.default_rng(3)
    q = rng.standard_normal(16).astype(np.float32)
    f = {"must": [{"key": "tag", "match": {"any": [1, 2]}}], "must_not": [{"key": "score", "range": {"gte": 30}}]}
    allowed = {i for i in range(500) if i % 4 in (1, 2) and i / 10 < 30}
    assert col.count(filter=f) == len(allowed)
    hits = col.search(q, k=8, filter=f, params={"ef": 500})
    assert [h.id for h in hits] == exact(col.vectors, q, 8, allowed)[0]


def test_search_batch_returns_arrays(col):
    rng = np.random.default_rng(4)
    qs = rng.standard_normal((20, 16)).astype(np.float32)
    ids, scores = col.search_batch(qs, k=5, params={"ef": 500})
    assert ids.shape == (20, 5) and ids.dtype == np.int64 and scores.dtype == np.float32
    for i in range(20):
        assert list(ids[i]) == exact(col.vectors, qs[i], 5)[0]
    # Fewer matches than k: padded with -1 / -inf.
    ids, scores = col.search_batch(qs[:2], k=5, filter={"must": [{"has_id": [1, 2]}]})
    assert (ids[:, 2:] == -1).all() and np.isneginf(scores[:, 2:]).all()


def test_scroll_pages(col):
    seen, off = [], None
    while True:
        recs, off = col.scroll(limit=64, offset=off)
        seen += [r.id for r in recs]
        if off is None:
            break
    assert seen == list(range(500))
    recs, _ = col.scroll(limit=2, with_vectors=True)
    assert np.allclose(recs[1].vector, unit(col.vectors[1]), atol=1e-6)


def test_bad_inputs_raise_clear_errors(db, col):
    with pytest.raises(ValueError, match="dimension"):
        col.search(np.zeros(8, dtype=np.float32) + 1)
    with pytest.raises(ValueError, match="non-finite"):
        col.search(np.full(16, np.nan, dtype=np.float32))
    with pytest.raises(ValueError, match="non-finite"):
        col.upsert([9000], np.full((1, 16), np.inf, dtype=np.float32))
    with pytest.raises(ValueError, match="shape"):
        col.upsert([1, 2], np.ones((3, 16), dtype=np.float32))
    with pytest.raises(TypeError, match="dtype"):
        col.search(np.array(["a"] * 16))
    with pytest.raises(TypeError, match="dtype"):
        col.search(np.ones(16, dtype=np.complex64))
    with pytest.raises(ValueError, match="bad filter"):
        col.search(np.ones(16, dtype=np.float32), filter={"must": [{"key": "tag", "match": {}}]})
    with pytest.raises(ValueError):
        col.upsert([-1], np.ones((1, 16), dtype=np.float32))
    with pytest.raises(KeyError, match="unknown collection"):
        db.collection("nope")
    with pytest.raises(ValueError):
        db.create_collection("items", dim=16)
    assert col.count() == 500, "bad input changed nothing"
    # Other real dtypes and strided arrays are converted (same answers).
    q = np.random.default_rng(5).standard_normal(16)
    want = [h.id for h in col.search(q.astype(np.float32), k=5)]
    assert [h.id for h in col.search(q, k=5)] == want  # float64
    wide = np.zeros((16, 2), dtype=np.float32)
    wide[:, 0] = q
    assert [h.id for h in col.search(wide[:, 0], k=5)] == want  # non-contiguous
    m = np.asfortranarray(np.stack([q, q]).astype(np.float32))
    assert list(col.search_batch(m, k=5)[0][0]) == want


def test_threads_search_concurrently(col):
    rng = np.random.default_rng(6)
    qs = rng.standard_normal((64, 16)).astype(np.float32)
    want = [[h.id for h in col.search(q, k=5)] for q in qs]
    got = [None] * len(qs)

    def work(lo, hi):
        for i in range(lo, hi):
            got[i] = [h.id for h in col.search(qs[i], k=5)]

    threads = [threading.Thread(target=work, args=(i * 16, (i + 1) * 16)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert got == want


def test_uuid_ids_and_text_collections(db):
    c = db.create_collection("u", dim=2, metric="l2", index="flat")
    ids = ["00000000-0000-0000-0000-000000000001", "00000000-0000-0000-0000-000000000002"]
    c.upsert(ids, np.array([[0, 0], [5, 5]], dtype=np.float32), texts=["a", "b"])
    hits = c.search(np.array([4, 4], dtype=np.float32), k=1)
    assert hits[0].id == ids[1] and hits[0].payload == {"text": "b"}
    ids_arr, _ = c.search_batch(np.array([[4, 4]], dtype=np.float32), k=2)
    assert ids_arr.dtype == object and ids_arr[0, 0] == ids[1]
    t = db.create_text_collection("docs")
    t.upsert([1, 2, 3], texts=["the quick brown fox", "a lazy dog", "fox fox fox"], payloads=[{"l": "en"}, {"l": "en"}, {"l": "xx"}])
    hits = t.search_text("fox", explain=True)
    assert [h.id for h in hits] == [3, 1]
    assert hits[0].explain[0]["source"] == "bm25"
    assert [h.id for h in t.search_text("fox", filter={"must": [{"key": "l", "match": {"value": "en"}}]})] == [1]
    with pytest.raises(ValueError, match="not a text collection"):
        c.search_text("x")
    assert db.delete_collection("docs") and "docs" not in db.collections()


SCHEMA = pathlib.Path(__file__).resolve().parents[3] / "docs" / "schemas" / "ragnarok-request.schema.json"


def test_get_or_create_returns_the_existing_collection(db):
    a = db.get_or_create_collection("g", dim=3, metric="l2", index="flat")
    a.upsert([1], np.array([[1, 2, 3]], dtype=np.float32))
    b = db.get_or_create_collection("g")
    assert b.count() == 1
    with pytest.raises(ValueError, match="dimension 3, not 4"):
        db.get_or_create_collection("g", dim=4)
    with pytest.raises(ValueError, match="give dim"):
        db.get_or_create_collection("new")
    t = db.get_or_create_text_collection("tg")
    t.upsert([1], texts=["hello"])
    assert db.get_or_create_text_collection("tg").count() == 1
    with pytest.raises(ValueError, match="not a text collection"):
        db.get_or_create_text_collection("g")


def test_documents_ingest_and_context_for_an_llm(db, tmp_path):
    docs = tmp_path / "docs"
    (docs / "sub").mkdir(parents=True)
    (docs / "granite.md").write_text("# Granite\n\nGranite is an igneous rock of quartz and feldspar.\n")
    (docs / "sub" / "basalt.html").write_text("<html><head><title>Basalt</title></head><body><p>Basalt is a dark volcanic rock.</p></body></html>")
    (docs / "marble.txt").write_text("Marble\n\nMarble is metamorphosed limestone.\n")
    (docs / "bad.pdf").write_bytes(b"%PDF-1.4 not really")
    t = db.create_text_collection("kb")
    r = t.ingest_files(str(docs))
    outcomes = sorted((f["path"].rsplit("/", 1)[-1], f["outcome"]) for f in r["files"])
    assert outcomes == [("bad.pdf", "failed"), ("basalt.html", "added"), ("granite.md", "added"), ("marble.txt", "added")]
    assert r["chunks_written"] == t.count()
    again = t.ingest_files([str(docs / "granite.md"), str(docs / "marble.txt")])
    assert [f["outcome"] for f in again["files"]] == ["unchanged", "unchanged"]
    ctx = t.context("volcanic rock", budget_tokens=50, qid="q1")
    jsonschema.validate(ctx, json.loads(SCHEMA.read_text()))
    assert ctx["query"] == {"text": "volcanic rock", "qid": "q1"}
    top = ctx["candidates"][0]
    assert top["doc"]["title"] == "Basalt" and top["doc"]["url"].startswith("file://") and ctx["tokens"] <= 50
    text = t.context("volcanic rock", budget_tokens=50, as_text=True)
    assert text.startswith("Question: volcanic rock\n\n[1] Basalt (")
    with pytest.raises(ValueError, match="budget_tokens"):
        t.context("x", budget_tokens=0)


def _model_or_skip():
    path = os.path.join(os.environ.get("QUARRY_MODELS", os.path.expanduser("~/.cache/quarry/models")), "all-MiniLM-L6-v2")
    if not os.path.exists(os.path.join(path, "model.safetensors")):
        why = "the model all-MiniLM-L6-v2 is missing (scripts/fetch_model.sh)"
        if os.environ.get("QUARRY_REQUIRE_DATA", "0") not in ("", "0"):
            pytest.fail("QUARRY_REQUIRE_DATA=1 but " + why)
        pytest.skip(why)
    return path


def test_quality_steps_of_text_collections(db):
    model = _model_or_skip()
    t = db.create_text_collection("q", model=model, index="flat")
    topics = ["foxes and dogs", "stock markets", "bread baking", "bird migration", "ocean tides"]
    ids, texts = [], []
    for ti, topic in enumerate(topics):
        for i in range(80):
            ids.append(ti * 100 + i)
            texts.append(f"Note {i} about {topic}: observation {i * 7 + ti} on {topic}")
    t.upsert(ids, texts=texts)
    with pytest.raises(ValueError, match="calibrat"):
        t.search_text("birds migrating", mode="dense", min_relevance="auto")
    # Judged queries: each topic's notes are relevant to a question about it.
    queries = [f"a question about {topic}" for topic in topics]
    relevant = [[ti * 100 + i for i in range(80)] for ti in range(len(topics))]
    cal = t.calibrate(queries, relevant, mode="dense", depth=150)
    assert cal["features"] and all(w >= 0 for w in cal["weights"])
    uncut = t.search_text("birds migrating", k=150, mode="dense")
    cut = t.search_text("birds migrating", k=150, mode="dense", min_relevance="auto")
    assert 0 < len(cut) < len(uncut) and [h.id for h in cut] == [h.id for h in uncut[: len(cut)]]
    assert all(h.relevance is not None and h.relevance >= cal["threshold"] for h in cut)
    assert uncut[0].relevance is None
    report = t.fit_hubness([f"question {i} about stock markets" for i in range(20)], strength=1.0)
    assert report["bank_queries"] == 20
    assert isinstance(t.hubness(queries, k=5), float)
    # Re-scoring re-orders the top 100 candidates (the fusion depth): the same set at k = 100.
    fixed = t.search_text("stock market notes", k=100, mode="dense", hubness=True)
    raw = t.search_text("stock market notes", k=100, mode="dense")
    assert sorted(h.id for h in fixed) == sorted(h.id for h in raw)
    # A "new" model that is the same model: the fitted map is (nearly) the identity.
    fit = t.align(model, pairs=400, plain=True)
    assert fit["mean_cosine"] > 0.99
    mapped = t.search_text("birds migrating", k=5, mode="dense", query_model=model)
    assert [h.id for h in mapped][:3] == [h.id for h in uncut][:3]
    with pytest.raises(ValueError, match="no map"):
        t.search_text("x", mode="dense", query_model="some-other-model")


def test_expert_groups_route_and_fuse(db):
    model = _model_or_skip()
    animals = ["the fox hunts rabbits at dawn", "eagles nest on high cliffs", "salmon swim upstream to spawn"]
    money = ["the bank raised interest rates", "shares fell after the earnings report", "a mortgage is a loan on a house"]
    for name, texts in (("animals", animals), ("money", money)):
        db.create_text_collection(name, model=model, index="flat").upsert(list(range(3)), texts=texts)
    db.create_group("g", ["animals", "money:dense"], router_model=model)
    assert db.groups() == ["g"]
    report = db.fit_group(
        "g",
        ["wild animals hunting", "birds of prey", "stock market news", "borrowing to buy a home"],
        [[("animals", 0)], [("animals", 1)], [("money", 1)], [("money", 2)]],
        labels=["a", "a", "m", "m"],
    )
    assert report["credited"] == [2, 2]
    hits, routing = db.search_group("g", "dividends and bonds", k=2)
    assert routing[0]["collection"] == "money" and routing[0]["searched"] and not routing[1]["searched"]
    assert len(hits) == 2 and all(h.collection == "money" for h in hits)
    hits, _ = db.search_group("g", "dividends", k=6, fuse_top=2)
    assert {h.collection for h in hits} == {"animals", "money"}
    with pytest.raises(ValueError, match="fuse_top"):
        db.search_group("g", "x", fuse_top=3)
    with pytest.raises(ValueError, match="mode"):
        db.create_group("bad", ["animals:sideways"], router_model=model)
    assert db.delete_group("g") and db.groups() == []


def test_database_written_from_rust_reopens(tmp_path):
    binary = os.environ.get("QUARRY_BIN")
    if not binary or not os.path.exists(binary):
        why = "set QUARRY_BIN to the quarry CLI to write a database from Rust"
        if os.environ.get("QUARRY_REQUIRE_DATA", "0") not in ("", "0"):
            pytest.fail("QUARRY_REQUIRE_DATA=1 but the quarry binary is missing: " + why)
        pytest.skip(why)
    d = tmp_path / "rustdb"
    subprocess.run([binary, "collection", "create", "--dir", str(d), "--name", "r", "--dim", "3", "--metric", "l2", "--index", "flat"], check=True)
    lines = [json.dumps({"id": i, "vector": [i, 0, 0], "payload": {"i": i}}) for i in range(10)]
    (tmp_path / "p.jsonl").write_text("\n".join(lines) + "\n")
    subprocess.run([binary, "ingest", "--dir", str(d), "--collection", "r", "--jsonl", str(tmp_path / "p.jsonl")], check=True, capture_output=True)
    c = quarry.open(d).collection("r")
    assert c.count() == 10
    hits = c.search([6.2, 0, 0], k=2)
    assert [h.id for h in hits] == [6, 7] and hits[0].payload == {"i": 6}


@pytest.mark.parametrize("on_disk", [False, True])
@pytest.mark.parametrize("index", ["hnsw", "hnsw+sq8", "hnsw+rabitq4", "flat", "flat+sq8", "spann+rabitq4"])
def test_sealed_graph_indexes_match_brute_force(db, index, on_disk):
    # optimize() seals the points into a segment with a graph (int8 codes walked, then the best
    # candidates re-scored with the float vectors for hnsw+sq8): recall against numpy's exact
    # answer, exact scores, filters, and the same answers after reopening.
    rng = np.random.default_rng(7)
    v = rng.standard_normal((3000, 32)).astype(np.float32)
    c = db.create_collection("g", dim=32, metric="cosine", index=index, payload_indexes=["tag"], on_disk=on_disk)
    c.upsert(np.arange(3000), v, payloads=[{"tag": i % 3} for i in range(3000)])
    c.optimize()
    qs = rng.standard_normal((50, 32)).astype(np.float32)
    found = 0
    for q in qs:
        want, s = exact(v, q, 10)
        hits = c.search(q, k=10, params={"ef": 128})
        assert len(hits) == 10
        assert all(abs(h.score - s[h.id]) < 1e-5 for h in hits), "scores are exact"
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
        found += len({h.id for h in hits} & set(want))
    assert found / 500 >= 0.95, f"recall@10 {found / 500}"
    f = {"must": [{"key": "tag", "match": {"value": 2}}]}
    allowed = {i for i in range(3000) if i % 3 == 2}
    hits = c.search(qs[0], k=10, filter=f, params={"ef": 256})
    assert {h.id for h in hits} <= allowed and len(hits) == 10
    assert len({h.id for h in hits} & set(exact(v, qs[0], 10, allowed)[0])) >= 8
    ids, _ = c.search_batch(qs, k=10, params={"ef": 128})
    assert [list(r) for r in ids] == [[h.id for h in c.search(q, k=10, params={"ef": 128})] for q in qs]
    del c
    c2 = quarry.open(db.path).collection("g")
    assert [h.id for h in c2.search(qs[1], k=10, params={"ef": 128})] == list(ids[1])


def test_one_process_holds_a_database_folder(tmp_path):
    db = quarry.open(tmp_path / "held")
    c = db.create_collection("c", dim=2, metric="l2", index="flat")
    c.upsert([1], np.array([[1.0, 2.0]], dtype=np.float32))
    # A second open in this process shares the open database.
    again = quarry.open(tmp_path / "held")
    assert again.collection("c").count() == 1
    binary = os.environ.get("QUARRY_BIN")
    if binary and os.path.exists(binary):
        # Another process is refused, naming this one.
        r = subprocess.run([binary, "count", "--dir", str(tmp_path / "held"), "--collection", "c"], capture_output=True, text=True)
        assert r.returncode != 0 and f"PID {os.getpid()}" in r.stderr, r.stderr


def test_snapshot_restores_every_point_and_refuses_an_existing_name(tmp_path, db, col):
    # A snapshot taken after sealing half the points holds the sealed and the unsealed ones.
    col.optimize()
    col.upsert([1000], np.ones((1, 16), dtype=np.float32), payloads=[{"tag": 9}])
    path = tmp_path / "items.qsnap"
    assert col.snapshot(path) > 0
    r = db.restore_snapshot(path, "copy")
    assert r.count() == col.count() == 501
    q = col.vectors[3]
    # A beam as wide as the collection: both graphs answer exactly, so approximate-search
    # differences between the original and the restored graphs cannot decide the comparison.
    wide = {"ef": 600}
    assert [h.id for h in r.search(q, k=5, params=wide)] == [h.id for h in col.search(q, k=5, params=wide)]
    assert r.get(1000).payload == {"tag": 9}
    with pytest.raises(ValueError):
        db.restore_snapshot(path, "items")


def _maxsim(q, d):
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    dn = d / np.linalg.norm(d, axis=1, keepdims=True)
    return float((qn @ dn.T).max(axis=1).sum())


@pytest.mark.parametrize("multivector", [True, {"candidates": "tokens", "per_token": 40}])
def test_multivector_collections_rank_by_maxsim(db, multivector):
    """A multi-vector collection takes one 2-D array per point (sizes may differ) or a 3-D array,
    answers 2-D queries by exact MaxSim before and after sealing, returns 2-D vectors, and refuses
    malformed sets with ValueError, storing nothing."""
    rng = np.random.default_rng(5)
    name = "late" + ("" if multivector is True else "-tokens")
    c = db.create_collection(name, dim=6, multivector=multivector)
    assert c.schema["vectors"][0]["multivector"]["comparator"] == "max_sim"
    sets = [rng.standard_normal((int(rng.integers(1, 7)), 6)).astype(np.float32) for _ in range(400)]
    assert c.upsert(list(range(400)), sets, payloads=[{"i": i} for i in range(400)]) == 400
    c.upsert([400, 401], np.ones((2, 3, 6), dtype=np.float32))
    sets += [np.ones((3, 6), dtype=np.float32)] * 2
    queries = [rng.standard_normal((3, 6)).astype(np.float32) for _ in range(8)]

    def found():
        hits = 0
        for q in queries:
            scores = np.array([_maxsim(q, d) for d in sets])
            want = set(int(i) for i in np.argsort(-scores)[:5])
            got = c.search(q, k=5)
            for h in got:
                assert abs(h.score - scores[h.id]) < 1e-4
            hits += len(want & {h.id for h in got})
        return hits

    assert found() == 40
    c.optimize()
    assert found() >= 36
    ids, scores = c.search_batch(queries, k=5)
    assert ids.shape == (8, 5) and scores.shape == (8, 5)
    assert [int(x) for x in ids[0]] == [h.id for h in c.search(queries[0], k=5)]
    assert len(c.search(queries[0], k=5, params={"candidates": 200})) == 5
    v = c.get(7).vector
    assert v.shape == sets[7].shape
    assert np.allclose(v, sets[7] / np.linalg.norm(sets[7], axis=1, keepdims=True), atol=1e-6)
    for bad in ([np.ones(6, dtype=np.float32)], [np.ones((2, 5), dtype=np.float32)], [np.full((1, 6), np.nan, dtype=np.float32)]):
        with pytest.raises(ValueError):
            c.upsert([999], bad)
    with pytest.raises(ValueError):
        c.search(np.ones(6, dtype=np.float32))
    assert len(c) == 402
