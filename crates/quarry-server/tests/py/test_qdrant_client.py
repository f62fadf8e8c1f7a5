"""The official qdrant-client (pinned in scripts/server_test_env.sh) against `quarry serve`, through
every call of the Qdrant-compatible subset, each result checked against what was written.

qdrant-client 1.20 no longer has `search` / `search_batch` (replaced by `query_points`); those two
REST routes, still served for older clients, are driven with the client's own HTTP session and its
response models.
"""

import math
import uuid

import httpx

import numpy as np
import pytest
from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import UnexpectedResponse

from conftest import API_KEY, READ_KEY

DIM = 8


@pytest.fixture(scope="module")
def client(server):
    return QdrantClient(url=server["url"], api_key=API_KEY, https=False, prefer_grpc=False, timeout=30)


@pytest.fixture(scope="module")
def reader(server):
    return QdrantClient(url=server["url"], api_key=READ_KEY, https=False, prefer_grpc=False, timeout=30)


def vectors(n, seed=7):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, DIM)).astype(np.float32)


def cosine_top(data, q, k, allowed=None):
    d = data / np.linalg.norm(data, axis=1, keepdims=True)
    s = d @ (q / np.linalg.norm(q))
    order = [i for i in np.argsort(-s) if allowed is None or i in allowed]
    return [int(i) for i in order[:k]], s


@pytest.fixture(scope="module")
def filled(client):
    name = "items"
    if client.collection_exists(name):
        client.delete_collection(name)
    assert client.create_collection(name, vectors_config=models.VectorParams(size=DIM, distance=models.Distance.COSINE))
    data = vectors(300)
    points = [
        models.PointStruct(id=i, vector=data[i].tolist(), payload={"tag": i % 5, "name": f"item {i}", "price": float(i) / 10, "flags": ["a", "b"] if i % 2 else ["c"]})
        for i in range(300)
    ]
    res = client.upsert(name, points=points, wait=True)
    assert res.status == models.UpdateStatus.COMPLETED
    return name, data


def test_version_and_collections(client, filled):
    name, _ = filled
    info = client.info()
    assert info.version.startswith("1.")
    names = [c.name for c in client.get_collections().collections]
    assert name in names
    assert client.collection_exists(name)
    assert not client.collection_exists("no-such")
    ci = client.get_collection(name)
    assert ci.points_count == 300
    assert ci.config.params.vectors.size == DIM
    assert ci.config.params.vectors.distance == models.Distance.COSINE


def test_retrieve_returns_what_was_written(client, filled):
    name, data = filled
    recs = client.retrieve(name, ids=[3, 17, 999], with_payload=True, with_vectors=True)
    assert sorted(r.id for r in recs) == [3, 17]
    for r in recs:
        assert r.payload["tag"] == r.id % 5 and r.payload["name"] == f"item {r.id}"
        # A cosine collection stores vectors normalised, as Qdrant does.
        assert np.allclose(r.vector, data[r.id] / np.linalg.norm(data[r.id]), atol=1e-6)
    only = client.retrieve(name, ids=[3], with_payload=["name"], with_vectors=False)
    assert only[0].payload == {"name": "item 3"} and only[0].vector is None


def test_query_points_equals_exact_cosine(client, filled):
    name, data = filled
    q = vectors(1, seed=11)[0]
    want, scores = cosine_top(data, q, 10)
    res = client.query_points(name, query=q.tolist(), limit=10, with_payload=True)
    assert [p.id for p in res.points] == want
    for p in res.points:
        assert math.isclose(p.score, float(scores[p.id]), abs_tol=1e-5)
        assert p.payload["name"] == f"item {p.id}"


def test_filters_match_hand_selection(client, filled):
    name, data = filled
    q = vectors(1, seed=12)[0]
    flt = models.Filter(
        must=[models.FieldCondition(key="tag", match=models.MatchAny(any=[1, 2]))],
        must_not=[models.FieldCondition(key="price", range=models.Range(gte=20.0))],
    )
    allowed = {i for i in range(300) if i % 5 in (1, 2) and i / 10 < 20.0}
    want, _ = cosine_top(data, q, 7, allowed)
    res = client.query_points(name, query=q.tolist(), query_filter=flt, limit=7)
    assert [p.id for p in res.points] == want
    assert client.count(name, count_filter=flt, exact=True).count == len(allowed)
    flt2 = models.Filter(should=[models.FieldCondition(key="flags", match=models.MatchValue(value="c"))])
    assert client.count(name, count_filter=flt2).count == 150


def test_search_and_search_batch_rest_routes(client, filled):
    name, data = filled
    qs = vectors(3, seed=13)
    body = {"vector": qs[0].tolist(), "limit": 5, "with_payload": True}

    r = httpx.post(f"{client._client.rest_uri}/collections/{name}/points/search", json=body, headers={"api-key": API_KEY})
    assert r.status_code == 200
    hits = [models.ScoredPoint(**h) for h in r.json()["result"]]
    want, _ = cosine_top(data, qs[0], 5)
    assert [h.id for h in hits] == want
    r = httpx.post(
        f"{client._client.rest_uri}/collections/{name}/points/search/batch",
        json={"searches": [{"vector": q.tolist(), "limit": 4} for q in qs]},
        headers={"api-key": API_KEY},
    )
    assert r.status_code == 200
    for q, lst in zip(qs, r.json()["result"]):
        assert [models.ScoredPoint(**h).id for h in lst] == cosine_top(data, q, 4)[0]


def test_query_batch_and_prefetch_rrf(client, filled):
    name, data = filled
    qs = vectors(2, seed=14)
    res = client.query_batch_points(name, requests=[models.QueryRequest(query=q.tolist(), limit=3) for q in qs])
    assert [[p.id for p in r.points] for r in res] == [cosine_top(data, q, 3)[0] for q in qs]
    a, b = cosine_top(data, qs[0], 20)[0], cosine_top(data, qs[1], 20)[0]
    fused = client.query_points(
        name,
        prefetch=[models.Prefetch(query=qs[0].tolist(), limit=20), models.Prefetch(query=qs[1].tolist(), limit=20)],
        query=models.FusionQuery(fusion=models.Fusion.RRF),
        limit=10,
    )
    score = {}
    for lst in (a, b):
        for rank, i in enumerate(lst):
            score[i] = score.get(i, 0.0) + 1.0 / (2 + rank + 1)
    want = sorted(score, key=lambda i: (-score[i], i))[:10]
    assert [p.id for p in fused.points] == want


def test_scroll_pages_through_everything(client, filled):
    name, _ = filled
    seen, offset = [], None
    while True:
        pts, offset = client.scroll(name, limit=64, offset=offset, with_payload=False, with_vectors=False)
        seen += [p.id for p in pts]
        if offset is None:
            break
    assert seen == list(range(300))
    flt = models.Filter(must=[models.FieldCondition(key="tag", match=models.MatchValue(value=0))])
    pts, nxt = client.scroll(name, scroll_filter=flt, limit=1000)
    assert [p.id for p in pts] == list(range(0, 300, 5)) and nxt is None


def test_payload_operations(client, filled):
    name, _ = filled
    client.set_payload(name, payload={"color": "red"}, points=[1, 2], wait=True)
    assert client.retrieve(name, ids=[1])[0].payload["color"] == "red"
    client.overwrite_payload(name, payload={"only": 1}, points=[2], wait=True)
    assert client.retrieve(name, ids=[2])[0].payload == {"only": 1}
    client.delete_payload(name, keys=["color"], points=[1], wait=True)
    assert "color" not in client.retrieve(name, ids=[1])[0].payload
    client.clear_payload(name, points_selector=models.PointIdsList(points=[2]), wait=True)
    assert client.retrieve(name, ids=[2])[0].payload == {}
    flt = models.Filter(must=[models.FieldCondition(key="tag", match=models.MatchValue(value=4))])
    client.set_payload(name, payload={"four": True}, points=flt, wait=True)
    cnt = client.count(name, count_filter=models.Filter(must=[models.FieldCondition(key="four", match=models.MatchValue(value=True))]))
    assert cnt.count == 60


def test_payload_index_and_deletes(client):
    name = "deletes"
    if client.collection_exists(name):
        client.delete_collection(name)
    client.create_collection(name, vectors_config={"img": models.VectorParams(size=4, distance=models.Distance.DOT), "txt": models.VectorParams(size=2, distance=models.Distance.EUCLID)})
    ids = [str(uuid.UUID(int=i + 1)) for i in range(40)]
    client.upsert(
        name,
        points=models.Batch(ids=ids, vectors={"img": [[1, i, 0, 0] for i in range(40)], "txt": [[i, 0] for i in range(40)]}, payloads=[{"g": i % 4} for i in range(40)]),
        wait=True,
    )
    assert client.create_payload_index(name, field_name="g", field_schema=models.PayloadSchemaType.INTEGER, wait=True).status == models.UpdateStatus.COMPLETED
    g = client.get_collection(name).payload_schema["g"]
    assert g.data_type == models.PayloadSchemaType.INTEGER and g.points == 40
    res = client.query_points(name, query=[3.2, 0], using="txt", limit=2, with_vectors=["txt"])
    assert [p.id for p in res.points] == [ids[3], ids[4]]
    assert math.isclose(res.points[0].score, 0.2, abs_tol=1e-5)
    assert res.points[0].vector == {"txt": [3.0, 0.0]}
    client.delete(name, points_selector=models.PointIdsList(points=ids[:5]), wait=True)
    client.delete(name, points_selector=models.FilterSelector(filter=models.Filter(must=[models.FieldCondition(key="g", match=models.MatchValue(value=1))])), wait=True)
    left = client.count(name).count
    assert left == 40 - 5 - len([i for i in range(5, 40) if i % 4 == 1])
    client.delete_payload_index(name, field_name="g", wait=True)
    assert "g" not in client.get_collection(name).payload_schema
    assert client.delete_collection(name)
    assert not client.collection_exists(name)


def test_upsert_without_wait_is_applied(client):
    name = "nowait"
    if client.collection_exists(name):
        client.delete_collection(name)
    client.create_collection(name, vectors_config=models.VectorParams(size=2, distance=models.Distance.COSINE))
    for i in range(50):
        r = client.upsert(name, points=[models.PointStruct(id=i, vector=[1.0, float(i)])], wait=False)
        assert r.status == models.UpdateStatus.ACKNOWLEDGED
    client.upsert(name, points=[models.PointStruct(id=1000, vector=[1.0, 1.0])], wait=True)
    assert client.count(name).count == 51


def test_errors_are_client_errors(client, reader, filled):
    name, _ = filled
    with pytest.raises(UnexpectedResponse) as e:
        client.upsert(name, points=[models.PointStruct(id=1, vector=[1.0, 2.0])], wait=True)
    assert e.value.status_code == 400 and "dimension" in str(e.value)
    with pytest.raises(UnexpectedResponse) as e:
        client.query_points("no-such", query=[0.0] * DIM)
    assert e.value.status_code == 404
    with pytest.raises(UnexpectedResponse) as e:
        reader.upsert(name, points=[models.PointStruct(id=1, vector=[1.0] * DIM)], wait=True)
    assert e.value.status_code == 403
    assert reader.count(name).count == 300, "the read-only key reads"
    with pytest.raises(Exception):
        QdrantClient(url=client._client.rest_uri, api_key="wrong-key-zzzz", https=False, check_compatibility=False).get_collections()


@pytest.mark.parametrize(
    "quantization, spec_codes",
    [
        (None, None),
        (models.ScalarQuantization(scalar=models.ScalarQuantizationConfig(type=models.ScalarType.INT8)), "scalar"),
        (models.BinaryQuantization(binary=models.BinaryQuantizationConfig()), "binary"),
        (models.ProductQuantization(product=models.ProductQuantizationConfig(compression=models.CompressionRatio.X4)), "product"),
    ],
)
@pytest.mark.parametrize("on_disk", [False, True])
def test_quantization_and_on_disk_build_sealed_segments_that_answer(client, server, quantization, spec_codes, on_disk):
    """quantization_config and on_disk map onto an index family with codes and rows on disk; the
    collection reports them back, and after sealing (the native optimize route) queries still find
    the exact neighbours."""
    name = f"quant-{spec_codes}-{on_disk}"
    if client.collection_exists(name):
        client.delete_collection(name)
    assert client.create_collection(
        name,
        vectors_config=models.VectorParams(size=DIM, distance=models.Distance.COSINE, on_disk=on_disk),
        quantization_config=quantization,
    )
    data = vectors(400, seed=11)
    client.upsert(name, points=[models.PointStruct(id=i, vector=data[i].tolist(), payload={"i": i}) for i in range(400)], wait=True)
    r = httpx.post(f"{server['url']}/quarry/collections/{name}/optimize", headers={"api-key": API_KEY}, timeout=60)
    assert r.status_code == 200, r.text
    info = client.get_collection(name)
    params = info.config.params.vectors
    assert params.on_disk == on_disk
    q = info.config.quantization_config
    if spec_codes is None:
        assert q is None
    else:
        assert q is not None and getattr(q, spec_codes) is not None, q
    found = 0
    for qi in range(20):
        query = data[qi * 7] + 0.01
        want, _ = cosine_top(data, query, 5)
        got = client.query_points(name, query=query.tolist(), limit=5, search_params=models.SearchParams(hnsw_ef=128)).points
        assert got[0].id == want[0]
        found += len(set(p.id for p in got) & set(want))
    assert found >= 90, f"{found} of 100 neighbours"
    if spec_codes == "scalar":
        # rescore: false ranks by the int8 codes alone: estimated scores, near the exact ones.
        fast_params = models.SearchParams(hnsw_ef=128, quantization=models.QuantizationSearchParams(rescore=False))
        found, differs = 0, 0
        for qi in range(20):
            query = data[qi * 7] + 0.01
            want, _ = cosine_top(data, query, 5)
            exact = {p.id: p.score for p in client.query_points(name, query=query.tolist(), limit=5, search_params=models.SearchParams(hnsw_ef=128)).points}
            got = client.query_points(name, query=query.tolist(), limit=5, search_params=fast_params).points
            found += len(set(p.id for p in got) & set(want))
            for p in got:
                if p.id in exact:
                    assert abs(p.score - exact[p.id]) < 0.05, (p.score, exact[p.id])
                    differs += p.score != exact[p.id]
        assert found >= 85, f"codes only: {found} of 100 neighbours"
        assert differs > 0, "rescore: false gave exact scores"
        bad = httpx.post(f"{server['url']}/collections/{name}/points/search", headers={"api-key": API_KEY},
                         json={"vector": data[0].tolist(), "limit": 3, "params": {"quantization": {"rescore": "no"}}})
        assert bad.status_code == 400 and "rescore" in bad.text, bad.text
    client.delete_collection(name)


def test_snapshots_create_list_and_recover(client):
    name = "snap"
    if client.collection_exists(name):
        client.delete_collection(name)
    client.create_collection(name, vectors_config=models.VectorParams(size=DIM, distance=models.Distance.DOT))
    data = vectors(50, seed=3)
    client.upsert(name, points=[models.PointStruct(id=i, vector=data[i].tolist(), payload={"i": i}) for i in range(50)], wait=True)
    snap = client.create_snapshot(name)
    assert snap.name.endswith(".snapshot") and snap.size > 0
    assert [s.name for s in client.list_snapshots(name)] == [snap.name]
    with pytest.raises(UnexpectedResponse) as e:
        client.recover_snapshot(name, location=snap.name)
    assert e.value.status_code == 409
    client.delete_collection(name)
    assert client.recover_snapshot(name, location=snap.name)
    assert client.count(name, exact=True).count == 50
    assert client.retrieve(name, ids=[7])[0].payload == {"i": 7}
    assert client.delete_snapshot(name, snap.name)
    client.delete_collection(name)


def token_sets(n, seed, lo=1, hi=6):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((int(rng.integers(lo, hi + 1)), DIM)).astype(np.float32) for _ in range(n)]


def maxsim(q, d):
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    dn = d / np.linalg.norm(d, axis=1, keepdims=True)
    return float((qn @ dn.T).max(axis=1).sum())


@pytest.mark.parametrize("candidates", ["muvera", "tokens"])
def test_multivector_max_sim_fields(client, server, candidates):
    """Qdrant's multivector API: a named dense field beside a `max_sim` multi-vector field; points
    carry sets of vectors; `query_points` with a list of vectors ranks by exact MaxSim (before and
    after sealing); a dense prefetch re-ranked by the multi-vector field; vectors read back as
    lists of vectors; bad sets are 400s that store nothing."""
    name = f"colbert-{candidates}"
    if client.collection_exists(name):
        client.delete_collection(name)
    mv = models.MultiVectorConfig(comparator=models.MultiVectorComparator.MAX_SIM)
    assert client.create_collection(
        name,
        vectors_config={
            "dense": models.VectorParams(size=DIM, distance=models.Distance.COSINE),
            "colbert": models.VectorParams(size=DIM, distance=models.Distance.COSINE, multivector_config=mv),
        },
    )
    if candidates == "tokens":
        # Quarry's own settings ride in the same object (ignored by Qdrant's models).
        client.delete_collection(name)
        r = httpx.put(f"{server['url']}/collections/{name}", headers={"api-key": API_KEY}, json={"vectors": {
            "dense": {"size": DIM, "distance": "Cosine"},
            "colbert": {"size": DIM, "distance": "Cosine", "multivector_config": {"comparator": "max_sim", "candidates": "tokens", "per_token": 50}}}})
        assert r.status_code == 200, r.text
    info = client.get_collection(name)
    assert info.config.params.vectors["colbert"].multivector_config.comparator == models.MultiVectorComparator.MAX_SIM
    sets = token_sets(300, seed=3)
    dense = vectors(300, seed=4)
    client.upsert(name, points=[
        models.PointStruct(id=i, vector={"dense": dense[i].tolist(), "colbert": sets[i].tolist()}, payload={"odd": i % 2})
        for i in range(300)], wait=True)
    queries = token_sets(10, 5, 2, 4)

    def check(min_found):
        found = 0
        for q in queries:
            scores = np.array([maxsim(q, d) for d in sets])
            want = [int(i) for i in np.argsort(-scores)[:5]]
            got = client.query_points(name, query=q.tolist(), using="colbert", limit=5).points
            for p in got:
                assert math.isclose(p.score, scores[p.id], abs_tol=1e-4), (p.score, scores[p.id])
            found += len(set(p.id for p in got) & set(want))
        assert found >= min_found, f"{found} of {5 * len(queries)}"

    check(50)  # the unsealed points are scored exhaustively
    r = httpx.post(f"{server['url']}/quarry/collections/{name}/optimize", headers={"api-key": API_KEY}, timeout=60)
    assert r.status_code == 200, r.text
    check(45)
    # Filtered, and a dense prefetch re-ranked by MaxSim.
    q = queries[0]
    got = client.query_points(name, query=q.tolist(), using="colbert", limit=5,
                              query_filter=models.Filter(must=[models.FieldCondition(key="odd", match=models.MatchValue(value=1))])).points
    assert got and all(p.id % 2 == 1 for p in got)
    pre = client.query_points(name, prefetch=models.Prefetch(query=dense[7].tolist(), using="dense", limit=20),
                              query=q.tolist(), using="colbert", limit=3).points
    cands, _ = cosine_top(dense, dense[7], 20)
    want = sorted(cands, key=lambda i: -maxsim(q, sets[i]))[:3]
    assert [p.id for p in pre] == want
    rec = client.retrieve(name, ids=[5], with_vectors=True)[0]
    back = np.array(rec.vector["colbert"])
    assert back.shape == sets[5].shape
    assert np.allclose(back, sets[5] / np.linalg.norm(sets[5], axis=1, keepdims=True), atol=1e-6)
    # Bad sets: a flat vector, a wrong dimension, an empty set; nothing stored.
    for bad in ([1.0] * DIM, [[1.0] * (DIM - 1)], []):
        with pytest.raises(UnexpectedResponse) as e:
            client.upsert(name, points=[models.PointStruct(id=1000, vector={"dense": dense[0].tolist(), "colbert": bad})], wait=True)
        assert e.value.status_code == 400
    assert client.count(name).count == 300
    client.delete_collection(name)
