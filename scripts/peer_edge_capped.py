#!/usr/bin/env python3
"""qdrant-edge (qdrant-edge-py, package `qdrant_edge`) as the memory peer of Quarry's collections
under caps (scripts/bench_engine_capped.sh): vectors `on_disk`, codes in RAM (`always_ram`), as a
Qdrant user saves memory.

  build  --base B --dir D --quant int8|binary  ingest with the payload {"g100", "g10", "g2"} and
         integer indexes on them (as `quarry bench engine`), batches of 1,000 with flush(), then
         optimize() (HNSW M=16, ef_construct=200); prints {"op": "ingest", ...}.
  search --dir D --quant Q --query Q --gt GT --queries N --ef 24,32,... --passes P
         reopens the shard (EdgeShard.load) and times unfiltered top-10 searches one call each, one
         search thread, quantized search with exact rescoring of the candidates (Qdrant's default
         for on-disk vectors; `--no-rescore`: the codes' ranking alone, no original vector read);
         prints {"op": "search", "ef", "recall", "qps", "pass_qps", "rescore", ...}.

Run `search` under `quarry bench capped --memory-limit-mb N -- python scripts/peer_edge_capped.py
search ...`: the page cache is dropped first and counted, as for Quarry. The search process reads
no base vectors (only queries and ground truth)."""

import argparse
import json
import sys
import time

import numpy as np

from peer_engine import timed_searches  # the same timed loop as the engine peer


def load(path, n=None):
    if path.endswith(".npy"):
        x = np.load(path, mmap_mode="r")
        x = x[:n] if n else x
        return np.ascontiguousarray(x, dtype=np.float32)
    raw = np.fromfile(path, dtype=np.int32)
    d = raw[0]
    x = raw.reshape(-1, d + 1)[:, 1:].view(np.float32 if path.endswith(".fvecs") else np.int32)
    return np.ascontiguousarray(x[:n] if n else x)


def config(qe, d, quant):
    q = {
        "int8": qe.ScalarQuantizationConfig(type=qe.ScalarType.Int8, always_ram=True),
        "binary": qe.BinaryQuantizationConfig(always_ram=True),
    }[quant]
    return qe.EdgeConfig(
        vectors=qe.EdgeVectorParams(size=d, distance=qe.Distance.Cosine, on_disk=True, quantization_config=q),
        hnsw_config=qe.HnswIndexConfig(m=16, ef_construct=200, full_scan_threshold=10000),
        optimizers=qe.EdgeOptimizersConfig(indexing_threshold=1),
        max_search_threads=1,
        wal_enabled=True,
    )


def emit(**row):
    print(json.dumps(row), flush=True)


def main():
    import qdrant_edge as qe
    from importlib.metadata import version

    ap = argparse.ArgumentParser()
    ap.add_argument("cmd", choices=["build", "search"])
    ap.add_argument("--dir", required=True)
    ap.add_argument("--quant", choices=["int8", "binary"], required=True)
    ap.add_argument("--base")
    ap.add_argument("--n", type=int, default=None)
    ap.add_argument("--query")
    ap.add_argument("--gt")
    ap.add_argument("--queries", type=int, default=2000)
    ap.add_argument("--ef", default="24,32,48,64,96,128")
    ap.add_argument("--passes", type=int, default=2)
    ap.add_argument("--oversampling", type=float, default=None,
                    help="QuantizationSearchParams(oversampling=X): X × limit candidates from the codes are re-scored")
    ap.add_argument("--no-rescore", action="store_true",
                    help="rank by the quantized codes alone (QuantizationSearchParams(rescore=False)): no original vector is read")
    a = ap.parse_args()
    system = f"qdrant-edge {version('qdrant-edge-py')}"
    if a.cmd == "build":
        base = load(a.base, a.n)
        n, d = base.shape
        shard = qe.EdgeShard.create(a.dir, config(qe, d, a.quant))
        for field in ("g100", "g10", "g2"):
            shard.update(qe.UpdateOperation.create_field_index(field, qe.PayloadSchemaType.Integer))
        t = time.perf_counter()
        for b in range(0, n, 1000):
            pts = [qe.Point(i, base[i].tolist(), {"g100": i % 100, "g10": i % 10, "g2": i % 2})
                   for i in range(b, min(b + 1000, n))]
            shard.update(qe.UpdateOperation.upsert_points(pts))
            shard.flush()
        ingest = time.perf_counter() - t
        t = time.perf_counter()
        shard.optimize()
        shard.flush()
        index = time.perf_counter() - t
        info = shard.info()
        shard.close()
        emit(system=system, op="ingest", n=n, points_per_s=n / ingest, index_seconds=index,
             indexed_vectors=info.indexed_vectors_count, quantization=a.quant, on_disk=True)
        print(f"{system}: built {n} points ({a.quant}, on_disk) in {ingest:.1f}+{index:.1f} s", file=sys.stderr)
        return
    queries = load(a.query, a.queries)
    gt = load(a.gt)[: len(queries), :10]
    t = time.perf_counter()
    shard = qe.EdgeShard.load(a.dir, None)
    open_seconds = time.perf_counter() - t
    emit(system=system, op="open", open_seconds=open_seconds, quantization=a.quant, on_disk=True)
    qlists = [q.tolist() for q in queries]
    for ef in [int(x) for x in a.ef.split(",")]:
        qp = qe.QuantizationSearchParams(rescore=not a.no_rescore, oversampling=a.oversampling)
        params = qe.SearchParams(hnsw_ef=ef, quantization=qp)
        reqs = [qe.SearchRequest(query=qe.Query.Nearest(v), limit=10, params=params, with_payload=False,
                                 with_vector=False) for v in qlists]
        pass_qps, lat, found = [], None, None
        for _ in range(max(a.passes, 1)):
            lat, found = timed_searches(shard, reqs)
            pass_qps.append(len(reqs) / float(lat.sum()))
        rec = float(np.mean([len(set(f) & set(g.tolist())) / 10 for f, g in zip(found, gt)]))
        emit(system=system, op="search", ef=ef, k=10, recall=rec, qps=pass_qps[-1], pass_qps=pass_qps,
             p50_ms=float(np.percentile(lat, 50) * 1e3), p99_ms=float(np.percentile(lat, 99) * 1e3),
             queries=len(reqs), threads=1, quantization=a.quant, on_disk=True, rescore=not a.no_rescore,
             oversampling=a.oversampling)
        print(f"{system} {a.quant} ef {ef}: recall {rec:.4f}, {pass_qps[-1]:,.0f} QPS", file=sys.stderr)
    shard.close()


if __name__ == "__main__":
    main()
