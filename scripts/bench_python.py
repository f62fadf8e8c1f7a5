#!/usr/bin/env python3
"""Quarry from Python against hnswlib, faiss and qdrant-edge-py from Python, in one run, on the
dev set (wndict-384: 108,000 x 384 cosine). Every system gets the same float32 unit vectors, HNSW
with M=16 and ef_construction=200, k=10, and an ef sweep; recall@10 against the exact ground truth.

Two groups of systems:
  * float vectors: Quarry `index="hnsw"`, hnswlib, faiss `IndexHNSWFlat`, qdrant-edge-py;
  * int8 codes walked, the best k * RERANK candidates re-scored with the float vectors (so the
    returned scores are exact): Quarry `index="hnsw+sq8"`, faiss `IndexRefineFlat(IndexHNSWSQ)`
    (k_factor RERANK), qdrant-edge-py with int8 scalar quantization (rescore, oversampling RERANK).

Measured per system and ef:
  * single-query: one query per call from a Python loop (the latency a Python service sees),
    QPS = queries / total time, p50 / p99 latency;
  * batch: all queries in one call (Quarry `search_batch`, hnswlib `knn_query`, faiss `search`;
    qdrant-edge-py has no batch call: a Python loop), 2 threads where the library takes them.
Systems take turns per ef (rounds x systems, single queries first, then batches) and the median
round is reported, so machine noise hits them alike. Quarry's Python overhead: on a tiny flat
collection (a search of a few microseconds, so the fixed cost shows), the time of `col.search` from
a Python loop minus the time of the same engine calls in a Rust loop (`_rust_search_ns`), median of
7 alternating passes.

Rows are JSON lines (stdout and --out). Run with the peers' venv after
`pip install ./crates/quarry-py` into it (scripts/bench_python.sh does both).
"""

import argparse
import atexit
import json
import os
import shutil
import sys
import tempfile
import time

import numpy as np


# Candidates re-scored exactly per result by the int8 systems: Quarry's hnsw+sq8 default, and the
# same factor for faiss (IndexRefineFlat k_factor) and Qdrant (oversampling, rescore on).
RERANK = 3


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def emit(out, **row):
    line = json.dumps(row)
    print(line, flush=True)
    if out:
        with open(out, "a") as f:
            f.write(line + "\n")


def recall(found, gt, k):
    return float(np.mean([len(set(map(int, f[:k])) & set(map(int, g[:k]))) / k for f, g in zip(found, gt)]))


def single(fn, queries):
    for q in queries[:20]:
        fn(q)
    lat = np.empty(len(queries))
    found = []
    for i, q in enumerate(queries):
        t = time.perf_counter()
        ids = fn(q)
        lat[i] = time.perf_counter() - t
        found.append(ids)
    return found, lat


def row_stats(lat):
    return dict(qps=len(lat) / float(lat.sum()), p50_ms=float(np.percentile(lat, 50) * 1e3),
                p99_ms=float(np.percentile(lat, 99) * 1e3), mean_us=float(lat.mean() * 1e6))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="../shared/data/wndict-384")
    ap.add_argument("--queries", type=int, default=2000)
    ap.add_argument("--efs", default="16,24,32,36,40,44,48,56,64,96,128")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--systems", default="quarry,quarry-sq8,hnswlib,faiss,faiss-sq8,qdrant-edge,qdrant-edge-sq8")
    ap.add_argument("--out")
    a = ap.parse_args()
    base = np.load(os.path.join(a.data, "base.f16.npy")).astype(np.float32)
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    queries = np.load(os.path.join(a.data, "query.f16.npy")).astype(np.float32)[: a.queries]
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    gt = np.load(os.path.join(a.data, "groundtruth.i32.npy"))[: a.queries]
    n, d = base.shape
    k = 10
    efs = [int(x) for x in a.efs.split(",")]
    systems = a.systems.split(",")
    machine = dict(cpus=os.cpu_count(), n=n, dim=d, queries=len(queries), k=k, rounds=a.rounds)
    log(f"{machine}")
    # Build every index first; then, per ef, the systems take turns (rounds x systems), so that
    # machine noise hits them alike; the median round is reported.
    single_fns, batch_fns, set_ef = {}, {}, {}

    import quarry

    # Every system's files live under one folder, removed when the run ends (about 2 GB here).
    work = tempfile.mkdtemp(prefix="quarry-pybench-")
    atexit.register(shutil.rmtree, work, ignore_errors=True)
    db = quarry.open(os.path.join(work, "quarry"))
    for name, index in (("quarry", "hnsw"), ("quarry-sq8", "hnsw+sq8")):
        if name not in systems:
            continue
        col = db.create_collection(name, dim=d, metric="cosine", index=index)
        t = time.perf_counter()
        for s in range(0, n, 10000):
            col.upsert(np.arange(s, min(s + 10000, n)), base[s: s + 10000])
        col.optimize()
        emit(a.out, system=name, op="build", index=index, seconds=time.perf_counter() - t, machine=machine)
        qp = {}
        set_ef[name] = lambda ef, qp=qp: qp.update(ef=ef)
        single_fns[name] = lambda q, col=col, qp=qp: [h.id for h in col.search(q, k=k, params=qp, with_payload=False)]
        batch_fns[name] = lambda Q, col=col, qp=qp: col.search_batch(Q, k=k, params=qp)[0]

    if "quarry" in systems:
        # Python overhead over the Rust call: a tiny flat collection (the search itself costs a
        # few microseconds, so the fixed cost shows), alternating Rust-loop and Python-loop passes.
        tiny = db.create_collection("tiny", dim=d, metric="cosine", index="flat")
        tiny.upsert(np.arange(64), base[:64])
        py_us, rust_us = [], []
        for _ in range(7):
            rust_us.append(tiny._rust_search_ns(queries, k=k, repeats=1) / 1e3)
            t = time.perf_counter()
            for q in queries:
                tiny.search(q, k=k)
            py_us.append((time.perf_counter() - t) / len(queries) * 1e6)
        emit(a.out, system="quarry", op="python_overhead", collection="64 points, flat, 384-d, k=10, payloads on",
             python_us=float(np.median(py_us)), rust_us=float(np.median(rust_us)),
             overhead_us=float(np.median(np.array(py_us) - np.array(rust_us))), passes_python_us=py_us, passes_rust_us=rust_us)

    if "hnswlib" in systems:
        import hnswlib

        idx = hnswlib.Index(space="ip", dim=d)
        t = time.perf_counter()
        idx.init_index(max_elements=n, ef_construction=200, M=16)
        idx.add_items(base, np.arange(n), num_threads=a.threads)
        emit(a.out, system="hnswlib", op="build", seconds=time.perf_counter() - t)
        set_ef["hnswlib"] = lambda ef: idx.set_ef(max(ef, k))
        single_fns["hnswlib"] = lambda q: idx.knn_query(q, k=k, num_threads=1)[0][0]
        batch_fns["hnswlib"] = lambda Q: idx.knn_query(Q, k=k, num_threads=a.threads)[0]

    if "faiss" in systems or "faiss-sq8" in systems:
        import faiss

    def faiss_system(name, make, hnsw_of):
        fidx = make()
        faiss.omp_set_num_threads(a.threads)
        t = time.perf_counter()
        if not fidx.is_trained:
            fidx.train(base)
        fidx.add(base)
        emit(a.out, system=name, op="build", seconds=time.perf_counter() - t)

        def faiss_ef(ef):
            hnsw_of(fidx).efSearch = max(ef, k)

        def faiss_one(q):
            faiss.omp_set_num_threads(1)
            return fidx.search(q[None, :], k)[1][0]

        def faiss_batch(Q):
            faiss.omp_set_num_threads(a.threads)
            return fidx.search(Q, k)[1]

        set_ef[name], single_fns[name], batch_fns[name] = faiss_ef, faiss_one, faiss_batch

    if "faiss" in systems:

        def make_flat():
            f = faiss.IndexHNSWFlat(d, 16, faiss.METRIC_INNER_PRODUCT)
            f.hnsw.efConstruction = 200
            return f

        faiss_system("faiss", make_flat, lambda f: f.hnsw)

    if "faiss-sq8" in systems:
        # HNSW over 8-bit scalar codes, the best k * RERANK re-scored with the float vectors.
        def make_sq8():
            base_index = faiss.IndexHNSWSQ(d, faiss.ScalarQuantizer.QT_8bit, 16, faiss.METRIC_INNER_PRODUCT)
            base_index.hnsw.efConstruction = 200
            f = faiss.IndexRefineFlat(base_index)
            f.k_factor = RERANK
            return f

        faiss_system("faiss-sq8", make_sq8, lambda f: faiss.downcast_index(f.base_index).hnsw)

    for name, sq8 in (("qdrant-edge", False), ("qdrant-edge-sq8", True)):
        if name not in systems:
            continue
        import qdrant_edge as qe

        cfg = qe.EdgeConfig(
            vectors=qe.EdgeVectorParams(size=d, distance=qe.Distance.Cosine),
            hnsw_config=qe.HnswIndexConfig(m=16, ef_construct=200, full_scan_threshold=10, max_indexing_threads=a.threads),
            quantization_config=qe.ScalarQuantizationConfig(type=qe.ScalarType.Int8, always_ram=True) if sq8 else None,
            optimizers=qe.EdgeOptimizersConfig(indexing_threshold=1000),
            max_search_threads=1,
            wal_enabled=True,
        )
        shard = qe.EdgeShard.create(tempfile.mkdtemp(prefix=f"{name}-", dir=work), cfg)
        t = time.perf_counter()
        for s in range(0, n, 10000):
            vecs = base[s: s + 10000].tolist()
            shard.update(qe.UpdateOperation.upsert_points([qe.Point(i, v, {}) for i, v in zip(range(s, s + len(vecs)), vecs)]))
        shard.flush()
        shard.optimize()
        emit(a.out, system=name, op="build", seconds=time.perf_counter() - t)
        qparams = {}
        quant = qe.QuantizationSearchParams(rescore=True, oversampling=float(RERANK)) if sq8 else None

        def edge_ef(ef, qparams=qparams, quant=quant):
            qparams["p"] = qe.SearchParams(hnsw_ef=max(ef, k), quantization=quant)

        def edge_one(q, shard=shard, qparams=qparams):
            r = qe.SearchRequest(query=qe.Query.Nearest(q.tolist()), limit=k, params=qparams["p"], with_payload=False, with_vector=False)
            return [p.id for p in shard.search(r)]

        set_ef[name], single_fns[name] = edge_ef, edge_one

    for ef in efs:
        rows = {s: [] for s in single_fns}
        for _ in range(a.rounds):
            for s, fn in single_fns.items():
                set_ef[s](ef)
                found, lat = single(fn, queries)
                rows[s].append(dict(recall=recall(found, gt, k), **row_stats(lat)))
        for s, rs in rows.items():
            med = sorted(rs, key=lambda r: r["qps"])[len(rs) // 2]
            emit(a.out, system=s, op="single", ef=ef, **med, qps_rounds=[r["qps"] for r in rs])
        batch = {s: [] for s in batch_fns}
        for _ in range(a.rounds):
            for s, fn in batch_fns.items():
                set_ef[s](ef)
                fn(queries[:50])
                t = time.perf_counter()
                ids = fn(queries)
                batch[s].append((len(queries) / (time.perf_counter() - t), recall(ids, gt, k)))
        for s, rs in batch.items():
            qps = sorted(q for q, _ in rs)
            emit(a.out, system=s, op="batch", ef=ef, recall=rs[0][1], qps=qps[len(qps) // 2], threads=a.threads,
                 qps_rounds=[q for q, _ in rs])


if __name__ == "__main__":
    main()
