#!/usr/bin/env python3
"""Quarry from Python against hnswlib, faiss and qdrant-edge-py from Python, in one run, on the
dev set (wndict-384: 108,000 x 384 cosine). Every system gets the same float32 unit vectors, HNSW
with M=16 and ef_construction=200, k=10, and an ef sweep; recall@10 against the exact ground truth.

Measured per system and ef:
  * single-query: one query per call from a Python loop (the latency a Python service sees),
    QPS = queries / total time, p50 / p99 latency;
  * batch: all queries in one call (Quarry `search_batch`, hnswlib `knn_query`, faiss `search`;
    qdrant-edge-py has no batch call: a Python loop), 2 threads where the library takes them.
Quarry's Python overhead: for each query, the mean time of `col.search` from Python minus the
mean time of the same engine call run in a Rust loop (`_rust_search_ns`).

Rows are JSON lines (stdout and --out). Run with the peers' venv after
`pip install ./crates/quarry-py` into it (scripts/bench_python.sh does both).
"""

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np


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
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--efs", default="16,24,32,48,64,96,128")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--systems", default="quarry,hnswlib,faiss,qdrant-edge")
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
    machine = dict(cpus=os.cpu_count(), n=n, dim=d, queries=len(queries), k=k)
    log(f"{machine}")

    if "quarry" in systems:
        import quarry

        tmp = tempfile.mkdtemp(prefix="quarry-pybench-")
        db = quarry.open(tmp)
        col = db.create_collection("b", dim=d, metric="cosine", index="hnsw")
        t = time.perf_counter()
        for s in range(0, n, 10000):
            col.upsert(np.arange(s, min(s + 10000, n)), base[s: s + 10000])
        col.optimize()
        build = time.perf_counter() - t
        emit(a.out, system="quarry", op="build", seconds=build, machine=machine)
        for ef in efs:
            p = {"ef": ef}
            found, lat = single(lambda q: [h.id for h in col.search(q, k=k, params=p, with_payload=False)], queries)
            emit(a.out, system="quarry", op="single", ef=ef, recall=recall(found, gt, k), **row_stats(lat))
            t = time.perf_counter()
            ids, _ = col.search_batch(queries, k=k, params=p)
            secs = time.perf_counter() - t
            emit(a.out, system="quarry", op="batch", ef=ef, recall=recall(ids, gt, k), qps=len(queries) / secs, threads=a.threads)
        # Python overhead over the Rust call, at ef 64 (with payloads, as col.search returns them).
        p = {"ef": 64}
        py_us, rust_us = [], []
        for q in queries[:200]:
            rust_us.append(col._rust_search_ns(q, k=k, repeats=20, params=p) / 1e3)
            t = time.perf_counter()
            for _ in range(20):
                col.search(q, k=k, params=p)
            py_us.append((time.perf_counter() - t) / 20 * 1e6)
        emit(a.out, system="quarry", op="python_overhead", ef=64, python_us=float(np.mean(py_us)),
             rust_us=float(np.mean(rust_us)), overhead_us=float(np.mean(py_us) - np.mean(rust_us)),
             overhead_median_us=float(np.median(np.array(py_us) - np.array(rust_us))))
        del col, db

    if "hnswlib" in systems:
        import hnswlib

        idx = hnswlib.Index(space="ip", dim=d)
        t = time.perf_counter()
        idx.init_index(max_elements=n, ef_construction=200, M=16)
        idx.add_items(base, np.arange(n), num_threads=a.threads)
        emit(a.out, system="hnswlib", op="build", seconds=time.perf_counter() - t)
        for ef in efs:
            idx.set_ef(max(ef, k))
            found, lat = single(lambda q: idx.knn_query(q, k=k, num_threads=1)[0][0], queries)
            emit(a.out, system="hnswlib", op="single", ef=ef, recall=recall(found, gt, k), **row_stats(lat))
            t = time.perf_counter()
            labels, _ = idx.knn_query(queries, k=k, num_threads=a.threads)
            secs = time.perf_counter() - t
            emit(a.out, system="hnswlib", op="batch", ef=ef, recall=recall(labels, gt, k), qps=len(queries) / secs, threads=a.threads)
        del idx

    if "faiss" in systems:
        import faiss

        faiss.omp_set_num_threads(a.threads)
        idx = faiss.IndexHNSWFlat(d, 16, faiss.METRIC_INNER_PRODUCT)
        idx.hnsw.efConstruction = 200
        t = time.perf_counter()
        idx.add(base)
        emit(a.out, system="faiss", op="build", seconds=time.perf_counter() - t)
        for ef in efs:
            idx.hnsw.efSearch = max(ef, k)
            faiss.omp_set_num_threads(1)
            found, lat = single(lambda q: idx.search(q[None, :], k)[1][0], queries)
            emit(a.out, system="faiss", op="single", ef=ef, recall=recall(found, gt, k), **row_stats(lat))
            faiss.omp_set_num_threads(a.threads)
            t = time.perf_counter()
            _, labels = idx.search(queries, k)
            secs = time.perf_counter() - t
            emit(a.out, system="faiss", op="batch", ef=ef, recall=recall(labels, gt, k), qps=len(queries) / secs, threads=a.threads)
        del idx

    if "qdrant-edge" in systems:
        import qdrant_edge as qe

        tmp = tempfile.mkdtemp(prefix="qedge-pybench-")
        cfg = qe.EdgeConfig(
            vectors=qe.EdgeVectorParams(size=d, distance=qe.Distance.Cosine),
            hnsw_config=qe.HnswIndexConfig(m=16, ef_construct=200, full_scan_threshold=10, max_indexing_threads=a.threads),
            optimizers=qe.EdgeOptimizersConfig(indexing_threshold=1000),
            max_search_threads=1,
            wal_enabled=True,
        )
        shard = qe.EdgeShard.create(tmp, cfg)
        t = time.perf_counter()
        for s in range(0, n, 10000):
            vecs = base[s: s + 10000].tolist()
            shard.update(qe.UpdateOperation.upsert_points([qe.Point(i, v, {}) for i, v in zip(range(s, s + len(vecs)), vecs)]))
        shard.flush()
        shard.optimize()
        emit(a.out, system="qdrant-edge", op="build", seconds=time.perf_counter() - t)
        qlists = [q.tolist() for q in queries]
        for ef in efs:
            params = qe.SearchParams(hnsw_ef=max(ef, k))

            def one(i):
                r = qe.SearchRequest(query=qe.Query.Nearest(qlists[i]), limit=k, params=params, with_payload=False, with_vector=False)
                return [p.id for p in shard.search(r)]

            found, lat = single(one, list(range(len(qlists))))
            emit(a.out, system="qdrant-edge", op="single", ef=ef, recall=recall(found, gt, k), **row_stats(lat))


if __name__ == "__main__":
    main()
