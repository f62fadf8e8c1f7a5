#!/usr/bin/env python3
"""Late-interaction peer of `quarry bench multivector`: embedded Qdrant (qdrant-edge-py, the
engine behind Qdrant's multivector API) storing every document's token vectors in a multi-vector
field (`MultiVectorConfig(comparator=MaxSim)`, Cosine) and answering each query (its token
vectors) by MaxSim, one `EdgeShard.search` call per query on one search thread.

Qdrant retrieves multi-vector candidates by scanning MaxSim over every point unless an HNSW graph
is built over the multi-vectors (whose every graph distance is itself a MaxSim); Qdrant's guide
advises against that graph and recommends the multi-vector field for re-ranking only, so this is
the exhaustive plain segment (qdrant-edge runs no background optimizer; nothing is indexed). Its
row is what Qdrant charges for exact late interaction, beside Quarry's exhaustive scan and
MUVERA.

Input: the same token files (`quarry embed --tokens`: a [tokens, dim] .npy and its int64
`.offsets.npy`). Recall@k is against an exhaustive f32 MaxSim computed here with numpy (a
blocked matrix product), so it checks the peer too. Prints one JSON row:
  {"system": "qdrant-edge 0.9.0", "method": "exhaustive", "recall", "qps", "p50_ms", "queries",
   "ingest_seconds", "docs", "doc_tokens"}
"""
import argparse, json, sys, tempfile, time
import numpy as np


def sets(tokens, offsets, limit=None):
    t = np.load(tokens, mmap_mode="r")
    o = np.load(offsets).ravel().astype(np.int64)
    n = len(o) - 1 if limit is None else min(limit, len(o) - 1)
    return [np.asarray(t[o[i]:o[i + 1]], dtype=np.float32) for i in range(n)]


def unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", required=True)
    ap.add_argument("--queries", required=True)
    ap.add_argument("--limit", type=int, default=None, help="first N queries")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--dataset", default="")
    a = ap.parse_args()
    import qdrant_edge as qe
    try:
        from importlib.metadata import version
        system = f"qdrant-edge {version('qdrant-edge-py')}"
    except Exception:
        system = "qdrant-edge"
    docs = sets(a.docs, a.docs.replace(".npy", ".offsets.npy"))
    queries = sets(a.queries, a.queries.replace(".npy", ".offsets.npy"), a.limit)
    dim = docs[0].shape[1]
    print(f"{system}: {len(docs)} documents, {len(queries)} queries, dim {dim}", file=sys.stderr)
    path = tempfile.mkdtemp() + "/shard"
    mv = qe.MultiVectorConfig(comparator=qe.MultiVectorComparator.MaxSim)
    cfg = qe.EdgeConfig(vectors=qe.EdgeVectorParams(size=dim, distance=qe.Distance.Cosine, multivector_config=mv),
                        max_search_threads=1, wal_enabled=False)
    shard = qe.EdgeShard.create(path, cfg)
    t = time.perf_counter()
    for b in range(0, len(docs), 500):
        shard.update(qe.UpdateOperation.upsert_points(
            [qe.Point(i, docs[i].tolist(), {}) for i in range(b, min(b + 500, len(docs)))]))
    shard.flush()
    ingest = time.perf_counter() - t
    print(f"ingested in {ingest:.1f} s", file=sys.stderr)
    # Exact MaxSim with numpy: all document tokens in one matrix, the max per document per query token.
    allt = unit(np.concatenate(docs))
    owner_start = np.cumsum([0] + [len(d) for d in docs])[:-1]
    truth = []
    for q in queries:
        s = unit(q) @ allt.T
        per_doc = np.maximum.reduceat(s, owner_start, axis=1).sum(axis=0)
        truth.append(set(np.argsort(-per_doc, kind="stable")[:a.k].tolist()))
    reqs = [qe.SearchRequest(query=qe.Query.Nearest(q.tolist()), limit=a.k, with_payload=False, with_vector=False)
            for q in queries]
    shard.search(reqs[0])  # warm-up
    lat, found = [], []
    for r in reqs:
        t = time.perf_counter()
        res = shard.search(r)
        lat.append(time.perf_counter() - t)
        found.append([p.id for p in res])
    lat = np.array(lat)
    recall = float(np.mean([len(set(f) & g) / a.k for f, g in zip(found, truth)]))
    row = dict(system=system, dataset=a.dataset, method="exhaustive", recall=recall, qps=len(reqs) / float(lat.sum()),
               p50_ms=float(np.percentile(lat, 50) * 1e3), queries=len(reqs), k=a.k, docs=len(docs),
               doc_tokens=int(sum(len(d) for d in docs)), ingest_seconds=ingest, search_threads=1,
               calls="one query per call (native MaxSim scan)")
    print(json.dumps(row), flush=True)
    print(f"recall@{a.k} {recall:.4f}, {row['qps']:.2f} QPS", file=sys.stderr)


if __name__ == "__main__":
    main()
