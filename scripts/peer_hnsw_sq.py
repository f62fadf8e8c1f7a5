#!/usr/bin/env python3
"""faiss's quantized graph as a peer of Quarry's compressed graphs: IndexHNSWSQ (HNSW walked on
8-bit scalar codes), alone (codes only, like `quarry bench ann --index hnsw+sq8 --no-rescore`) and
inside IndexRefineFlat (the best k_factor x k candidates re-scored on float32 rows, like Quarry's
default re-scoring). Same JSON rows as shared/tools/peer_bench.py and `quarry bench ann --json`.

Build with --build-threads (OpenMP), search single-threaded with one call per timed pass holding
every query (faiss's own C++ loop: the fair match for `quarry bench ann`, which loops in Rust).

Usage: peer_hnsw_sq.py --base B --query Q --gt G [--metric ip|l2] [--M 16] [--efc 200]
       [--ef 10,20,...] [--k-factor 3] [--queries N] [--build-threads 2]
"""
import argparse, json, os, sys, time
import numpy as np


def helpers():
    """read_vecs / recall / timed_batch / emit from shared/tools/peer_bench.py."""
    here = os.path.dirname(os.path.abspath(__file__))
    for path in (os.environ.get("PEER_BENCH_DIR"), os.path.join(here, "..", "..", "shared", "tools"),
                 "/work/shared/tools"):
        if path and os.path.isfile(os.path.join(path, "peer_bench.py")):
            sys.path.insert(0, path)
            import peer_bench
            return peer_bench
    sys.exit("peer_hnsw_sq.py needs shared/tools/peer_bench.py (set PEER_BENCH_DIR)")


def main():
    pb = helpers()
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True); ap.add_argument("--query", required=True)
    ap.add_argument("--gt", required=True); ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--metric", choices=["ip", "l2"], default="ip")
    ap.add_argument("--M", type=int, default=16); ap.add_argument("--efc", type=int, default=200)
    ap.add_argument("--ef", default="10,20,40,80,160,320")
    ap.add_argument("--k-factor", type=int, default=3, help="refine: k_factor x k candidates re-scored")
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--build-threads", type=int, default=2)
    a = ap.parse_args()
    import faiss
    base = np.ascontiguousarray(pb.read_vecs(a.base, np.float32))
    queries = np.ascontiguousarray(pb.read_vecs(a.query, np.float32)[: a.queries])
    gt = pb.read_vecs(a.gt, np.int32)[: a.queries]
    n, d = base.shape
    k = a.k
    metric = faiss.METRIC_INNER_PRODUCT if a.metric == "ip" else faiss.METRIC_L2
    faiss.omp_set_num_threads(a.build_threads)
    sq = faiss.IndexHNSWSQ(d, faiss.ScalarQuantizer.QT_8bit, a.M, metric)
    sq.hnsw.efConstruction = a.efc
    t = time.perf_counter()
    sq.train(base)
    sq.add(base)
    build = time.perf_counter() - t
    code_bytes = len(faiss.serialize_index(sq))
    t = time.perf_counter()
    refine = faiss.IndexRefineFlat(sq, faiss.swig_ptr(base))  # copies the float rows it re-scores from
    refine_build = build + time.perf_counter() - t
    faiss.omp_set_num_threads(1)
    common = dict(k=k, threads=1, queries=len(queries), calls="batch")
    for ef in [int(x) for x in a.ef.split(",")]:
        sq.hnsw.efSearch = max(ef, k)
        qps, ids = pb.timed_batch(lambda Q: sq.search(Q, k)[1], queries)
        pb.emit(system=f"faiss {faiss.__version__}", index="hnsw+sq8", params={"M": a.M, "efc": a.efc, "ef": ef},
                recall=pb.recall(ids, gt, k), qps=qps, build_seconds=build, index_bytes=code_bytes, **common)
        params = faiss.IndexRefineSearchParameters(
            k_factor=a.k_factor, base_index_params=faiss.SearchParametersHNSW(efSearch=max(ef, k * a.k_factor)))
        qps, ids = pb.timed_batch(lambda Q: refine.search(Q, k, params=params)[1], queries)
        pb.emit(system=f"faiss {faiss.__version__}", index="hnsw+sq8+refine",
                params={"M": a.M, "efc": a.efc, "ef": ef, "k_factor": a.k_factor},
                recall=pb.recall(ids, gt, k), qps=qps, build_seconds=refine_build,
                index_bytes=code_bytes + n * d * 4, **common)


if __name__ == "__main__":
    main()
