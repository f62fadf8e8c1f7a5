#!/usr/bin/env python3
"""Benchmark embedded Qdrant (qdrant-edge-py, package `qdrant_edge`) as the engine peer of Quarry:
durable ingest, HNSW build, filtered top-k search and filtered count.

Prints one JSON object per measurement on stdout, progress and a summary on stderr:
  {"system": "qdrant-edge 0.9.0", "op": "ingest", "n", "batch", "points_per_s", "index_seconds",
   "durability", ...}
  {"system", "op": "search", "selectivity", "filter", "ef", "k", "recall", "qps", "p50_ms", "p99_ms",
   "mean_ms", "queries", "search_threads"}
  {"system", "op": "count", "selectivity", "filter", "p50_ms", "count", "expected", "ok", "reps"}

Protocol (shared with the Quarry command it is compared with):
  * Data: --base / --query .npy (float16 is converted to float32; .fvecs also read), the first --n
    base vectors (default all) and the first --queries queries (default 200). Vectors are already
    L2-normalised; the collection uses Distance.Cosine.
  * Point i has integer id i and payload {"g100": i % 100, "g10": i % 10, "g2": i % 2}.
  * Before ingest, integer payload indexes are declared on g100, g10, g2
    (UpdateOperation.create_field_index(field, PayloadSchemaType.Integer)).
  * Ingest: UpdateOperation.upsert_points of --batch points (default 1000) per call, each followed by
    EdgeShard.flush(). Durability: the write-ahead log is on (EdgeConfig(wal_enabled=True), every
    update is appended to the WAL before it is applied), and flush() after every batch persists the
    WAL and then all segments with FlushMode::Sync - the strongest mode the API offers (there is no
    per-update `wait`/fsync flag; without flush() the WAL is written but not synced). The timed
    ingest covers building the Point objects from numpy (vector.tolist()), update() and flush();
    the three parts are also reported separately (convert_seconds, update_seconds, flush_seconds).
    points_per_s = n / ingest seconds; the index build afterwards is not included.
  * Indexing: HnswIndexConfig(m=16, ef_construct=200, full_scan_threshold=--full-scan-threshold
    (default 10000 KB, Qdrant's default), max_indexing_threads=--index-threads (default 0 = auto:
    min(CPUs, 8))), EdgeOptimizersConfig(indexing_threshold=1) - 1 KB, i.e. any non-empty segment
    is indexed (0 would disable indexing in Qdrant). qdrant-edge runs no background optimizer: all
    points land in one appendable (plain, unindexed) segment, and EdgeShard.optimize() - which blocks
    until no optimisation is planned - builds the HNSW segment. index_seconds = optimize() + one
    flush(). The run checks info().indexed_vectors_count == n before any search is timed.
    Qdrant also builds its payload-aware extra HNSW links for the indexed fields (payload_m, default
    = m) during optimize(); that is part of index_seconds (--payload-m changes it; 0 disables it).
  * Filtered search: selectivity 1% (g100 == 0), 10% (g10 == 0), 50% (g2 == 0); k=10; one query per
    EdgeShard.search(SearchRequest(Query.Nearest(q), limit=10, filter, SearchParams(hnsw_ef=ef)))
    call in the calling thread, single-threaded (EdgeConfig(max_search_threads=1): the per-segment
    search pool has one thread); ef = 64 plus the --ef sweep (default 32,64,128,256). Requests are
    built before timing; each call is timed with perf_counter. Before each (selectivity, ef)
    configuration an untimed warm-up pass over the first 20 queries. Reported: p50_ms, p99_ms,
    mean_ms, qps = queries / sum of latencies, recall@10 = |found ∩ exact| / 10 averaged, where
    exact is numpy brute force (inner product of the float32 vectors) over the admitted points.
    Qdrant's query planner decides per segment between HNSW and an exact scan of the payload-index
    hits: filters whose estimated cardinality is below full_scan_threshold (10000 KB / 1536 B =
    6666 vectors at d=384) are answered exactly, so at n=108k the 1% rows are an exact scan.
  * Count: EdgeShard.count(CountRequest(exact=True, filter)) for each selectivity, one untimed call,
    then 50 timed repetitions (--count-reps): p50_ms; the count is checked against the number of
    i in 0..n admitted by the filter.
  * Threads: search uses max_search_threads=1; indexing uses max_indexing_threads (reported as
    index_threads_config), and the ingest row also reports the CPU seconds / wall seconds of the
    ingest and index phases (getrusage of this process) and the process's thread count.
  * Data folder: --dir (must be empty or absent; default a fresh temp dir), deleted afterwards unless
    --keep.

Example (venv with qdrant-edge-py 0.9.0):
  ~/.cache/quarry-peers/bin/python scripts/peer_engine.py \\
      --base /work/shared/data/wndict-384/base.f16.npy --query /work/shared/data/wndict-384/query.f16.npy \\
      > peer_engine.jsonl 2> peer_engine.err
"""
import argparse, json, os, resource, shutil, sys, tempfile, time
import numpy as np

SELECTIVITIES = [(0.01, "g100", 100), (0.10, "g10", 10), (0.50, "g2", 2)]
FIELDS = ["g100", "g10", "g2"]


def log(msg):
    print(f"[peer_engine {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def emit(**row):
    print(json.dumps(row), flush=True)


def ints(s):
    return [int(x) for x in s.split(",") if x.strip()]


def read_vecs(path, limit=None):
    """float32 [rows, d] from .npy (any float dtype) or TEXMEX .fvecs."""
    if path.endswith(".npy"):
        arr = np.load(path, mmap_mode="r")
    else:
        raw = np.fromfile(path, dtype=np.int32)
        arr = raw.reshape(-1, raw[0] + 1)[:, 1:].view(np.float32)
    if limit is not None:
        arr = arr[:limit]
    return np.ascontiguousarray(arr, dtype=np.float32)


def cpu_seconds():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def thread_count():
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return None


def dir_bytes(path):
    """(allocated bytes, apparent bytes) of the files under path (mmap'd files may be sparse)."""
    alloc = apparent = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                st = os.stat(os.path.join(root, f))
            except OSError:
                continue
            alloc += st.st_blocks * 512
            apparent += st.st_size
    return alloc, apparent


def timed_searches(shard, reqs):
    """Runs each request once through `shard.search`, one call each (one search thread): the
    per-call latencies in seconds and the ids each returned."""
    lat = np.empty(len(reqs))
    found = []
    for i, r in enumerate(reqs):
        t = time.perf_counter()
        res = shard.search(r)
        lat[i] = time.perf_counter() - t
        found.append([p.id for p in res])
    return lat, found


def pct(lat_s, p):
    return float(np.percentile(lat_s, p) * 1e3)


class Runner:
    def __init__(self, a):
        import qdrant_edge as qe
        self.qe, self.a = qe, a
        try:
            from importlib.metadata import version
            ver = version("qdrant-edge-py")
        except Exception:
            ver = getattr(qe, "__version__", "?")
        self.system = f"qdrant-edge {ver}"
        self.base = read_vecs(a.base, a.n)
        self.queries = read_vecs(a.query, a.queries)
        self.n, self.d = self.base.shape
        if self.queries.shape[1] != self.d:
            sys.exit(f"query dim {self.queries.shape[1]} != base dim {self.d}")
        self.k = a.k
        self.efs = sorted(set([64] + ints(a.ef)))
        self.ids = np.arange(self.n)
        log(f"{self.system}: n={self.n} d={self.d} queries={len(self.queries)} k={self.k} "
            f"batch={a.batch} efs={self.efs}")

    # ---- setup -----------------------------------------------------------------------------------

    def config(self):
        qe, a = self.qe, self.a
        hnsw_kw = dict(m=a.m, ef_construct=a.ef_construct, full_scan_threshold=a.full_scan_threshold,
                       max_indexing_threads=a.index_threads)
        if a.payload_m is not None:
            hnsw_kw["payload_m"] = a.payload_m
        return qe.EdgeConfig(
            vectors=qe.EdgeVectorParams(size=self.d, distance=qe.Distance.Cosine),
            hnsw_config=qe.HnswIndexConfig(**hnsw_kw),
            optimizers=qe.EdgeOptimizersConfig(indexing_threshold=a.indexing_threshold),
            max_search_threads=1,
            wal_enabled=True,
        )

    def ground_truth(self):
        """{field: (expected count, exact top-k ids [queries, k])} by brute-force inner product."""
        gt = {}
        for sel, field, mod in SELECTIVITIES:
            admitted = self.ids[self.ids % mod == 0]
            scores = self.queries @ self.base[admitted].T
            kk = min(self.k, len(admitted))
            top = np.argpartition(-scores, kk - 1, axis=1)[:, :kk]
            order = np.take_along_axis(scores, top, 1).argsort(axis=1)[:, ::-1]
            gt[field] = (len(admitted), admitted[np.take_along_axis(top, order, 1)])
        return gt

    # ---- phases ----------------------------------------------------------------------------------

    def ingest(self, shard):
        qe, a, n = self.qe, self.a, self.n
        for f in FIELDS:
            shard.update(qe.UpdateOperation.create_field_index(f, qe.PayloadSchemaType.Integer))
        shard.flush()
        conv = upd = fl = 0.0
        c0, t_start = cpu_seconds(), time.perf_counter()
        last_log = t_start
        max_threads = thread_count()
        for b in range(0, n, a.batch):
            t0 = time.perf_counter()
            vecs = self.base[b: b + a.batch].tolist()
            pts = [qe.Point(i, v, {"g100": i % 100, "g10": i % 10, "g2": i % 2})
                   for i, v in zip(range(b, b + len(vecs)), vecs)]
            t1 = time.perf_counter()
            shard.update(qe.UpdateOperation.upsert_points(pts))
            t2 = time.perf_counter()
            shard.flush()
            t3 = time.perf_counter()
            conv += t1 - t0; upd += t2 - t1; fl += t3 - t2
            if t3 - last_log > 10:
                last_log = t3
                max_threads = max(max_threads or 0, thread_count() or 0)
                log(f"  ingested {b + len(vecs):,}/{n:,} ({(b + len(vecs)) / (t3 - t_start):,.0f} pts/s)")
        secs = time.perf_counter() - t_start
        cpu = cpu_seconds() - c0
        return dict(seconds=secs, convert_seconds=conv, update_seconds=upd, flush_seconds=fl,
                    cpu_seconds=cpu, threads=max(max_threads or 0, thread_count() or 0))

    def build_index(self, shard):
        info = shard.info()
        log(f"before optimize: segments={info.segments_count} points={info.points_count} "
            f"indexed={info.indexed_vectors_count}")
        c0, t = cpu_seconds(), time.perf_counter()
        optimized = shard.optimize()
        shard.flush()
        secs = time.perf_counter() - t
        cpu = cpu_seconds() - c0
        info = shard.info()
        log(f"optimize() -> {optimized} in {secs:.1f}s (cpu {cpu:.1f}s): segments={info.segments_count} "
            f"points={info.points_count} indexed={info.indexed_vectors_count}")
        if info.indexed_vectors_count < self.n:
            log(f"WARNING only {info.indexed_vectors_count} of {self.n} vectors are in an HNSW index")
        if info.points_count != self.n:
            log(f"WARNING shard has {info.points_count} points, expected {self.n}")
        schema = {k: f"{v.data_type}".split(".")[-1] + f"/{v.points}" for k, v in info.payload_schema.items()}
        return dict(seconds=secs, cpu_seconds=cpu, optimized=bool(optimized), threads=thread_count(),
                    segments=info.segments_count, points=info.points_count,
                    indexed_vectors=info.indexed_vectors_count, payload_schema=schema)

    def flt(self, field):
        qe = self.qe
        return qe.Filter(must=[qe.FieldCondition(key=field, match=qe.MatchValue(0))])

    def search(self, shard, gt):
        qe, k = self.qe, self.k
        qlists = [q.tolist() for q in self.queries]
        nq = len(qlists)
        best = {}
        for sel, field, mod in SELECTIVITIES:
            flt = self.flt(field)
            exact = gt[field][1]
            for ef in self.efs:
                params = qe.SearchParams(hnsw_ef=ef)
                reqs = [qe.SearchRequest(query=qe.Query.Nearest(v), limit=k, filter=flt, params=params,
                                         with_payload=False, with_vector=False) for v in qlists]
                for r in reqs[:20]:  # untimed warm-up
                    shard.search(r)
                lat, found = timed_searches(shard, reqs)
                rec = float(np.mean([len(set(f[:k]) & set(g.tolist())) / k for f, g in zip(found, exact)]))
                row = dict(system=self.system, op="search", selectivity=sel, filter=f"{field} == 0", ef=ef,
                           k=k, recall=rec, qps=nq / float(lat.sum()), p50_ms=pct(lat, 50),
                           p99_ms=pct(lat, 99), mean_ms=float(lat.mean() * 1e3), queries=nq,
                           search_threads=1, n=self.n)
                emit(**row)
                log(f"  search sel={sel:.2f} ef={ef}: recall={rec:.4f} qps={row['qps']:,.0f} "
                    f"p50={row['p50_ms']:.3f}ms p99={row['p99_ms']:.3f}ms")
                if rec >= 0.95 and (sel not in best or row["p50_ms"] < best[sel]["p50_ms"]):
                    best[sel] = row
        return best

    def count(self, shard, gt):
        qe = self.qe
        rows = {}
        for sel, field, mod in SELECTIVITIES:
            req = qe.CountRequest(exact=True, filter=self.flt(field))
            expected = gt[field][0]
            c = shard.count(req)  # untimed warm-up
            lat = np.empty(self.a.count_reps)
            for i in range(self.a.count_reps):
                t = time.perf_counter()
                c = shard.count(req)
                lat[i] = time.perf_counter() - t
            ok = int(c) == expected
            row = dict(system=self.system, op="count", selectivity=sel, filter=f"{field} == 0",
                       p50_ms=pct(lat, 50), count=int(c), expected=expected, ok=ok,
                       reps=self.a.count_reps, n=self.n)
            emit(**row)
            rows[sel] = row
            log(f"  count sel={sel:.2f}: {c} (expected {expected}{'' if ok else ' MISMATCH'}) "
                f"p50={row['p50_ms']:.3f}ms")
        return rows

    # ---- driver ----------------------------------------------------------------------------------

    def run(self, path):
        a, qe = self.a, self.qe
        t0 = time.perf_counter()
        log("exact filtered ground truth (numpy) ...")
        gt = self.ground_truth()
        log(f"  done in {time.perf_counter() - t0:.1f}s; admitted: "
            + ", ".join(f"{f}={gt[f][0]}" for _, f, _ in SELECTIVITIES))

        shard = qe.EdgeShard.create(path, self.config())
        try:
            log(f"ingest into {path} ...")
            ing = self.ingest(shard)
            pps = self.n / ing["seconds"]
            log(f"ingest: {self.n:,} points in {ing['seconds']:.1f}s = {pps:,.0f} pts/s "
                f"(convert {ing['convert_seconds']:.1f}s, update {ing['update_seconds']:.1f}s, "
                f"flush {ing['flush_seconds']:.1f}s; cpu {ing['cpu_seconds']:.1f}s)")
            log("optimize() (HNSW build) ...")
            idx = self.build_index(shard)
            index_threads_auto = min(os.cpu_count() or 1, 8)
            disk = dir_bytes(path)
            emit(system=self.system, op="ingest", n=self.n, batch=a.batch, points_per_s=pps,
                 ingest_seconds=ing["seconds"], index_seconds=idx["seconds"],
                 durability="wal_enabled=True + EdgeShard.flush() after every upsert batch "
                            "(WAL flush + all segments FlushMode::Sync)",
                 convert_seconds=ing["convert_seconds"], update_seconds=ing["update_seconds"],
                 flush_seconds=ing["flush_seconds"],
                 ingest_cpu_seconds=ing["cpu_seconds"], index_cpu_seconds=idx["cpu_seconds"],
                 ingest_threads_seen=ing["threads"], index_threads_seen=idx["threads"],
                 index_threads_config=a.index_threads,
                 index_threads_effective=a.index_threads or index_threads_auto,
                 hnsw={"m": a.m, "ef_construct": a.ef_construct, "full_scan_threshold_kb":
                       a.full_scan_threshold, "payload_m": a.payload_m},
                 indexing_threshold_kb=a.indexing_threshold, segments=idx["segments"],
                 indexed_vectors=idx["indexed_vectors"], payload_indexes=idx["payload_schema"],
                 disk_bytes=disk[0], disk_apparent_bytes=disk[1], distance="Cosine", cpus=os.cpu_count())
            log("filtered search ...")
            best = self.search(shard, gt)
            log("filtered count ...")
            counts = self.count(shard, gt)
        finally:
            shard.close()

        log("summary:")
        log(f"  ingest {pps:,.0f} pts/s (batch {a.batch}, flush per batch), index {idx['seconds']:.1f}s "
            f"({idx['cpu_seconds'] / max(idx['seconds'], 1e-9):.2f} cores busy)")
        for sel, field, _ in SELECTIVITIES:
            b = best.get(sel)
            s = (f"best p50 at recall>=0.95: {b['p50_ms']:.3f}ms (ef={b['ef']}, recall={b['recall']:.4f})"
                 if b else "no ef reached recall 0.95")
            log(f"  sel {sel:.2f} ({field}==0): {s}; count p50 {counts[sel]['p50_ms']:.3f}ms "
                f"{'ok' if counts[sel]['ok'] else 'MISMATCH'}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", required=True); ap.add_argument("--query", required=True)
    ap.add_argument("--n", type=int, default=None, help="number of base points (default all)")
    ap.add_argument("--queries", type=int, default=200, help="number of queries (the first ones)")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--batch", type=int, default=1000, help="points per upsert (flush after each)")
    ap.add_argument("--ef", default="32,64,128,256", help="hnsw_ef sweep (64 is always included)")
    ap.add_argument("--m", type=int, default=16); ap.add_argument("--ef-construct", type=int, default=200)
    ap.add_argument("--full-scan-threshold", type=int, default=10000,
                    help="HnswIndexConfig.full_scan_threshold in KB (Qdrant default 10000)")
    ap.add_argument("--payload-m", type=int, default=None,
                    help="HnswIndexConfig.payload_m (default: Qdrant's default, = m; 0 disables)")
    ap.add_argument("--indexing-threshold", type=int, default=1,
                    help="EdgeOptimizersConfig.indexing_threshold in KB (0 disables indexing in Qdrant)")
    ap.add_argument("--index-threads", type=int, default=0,
                    help="HnswIndexConfig.max_indexing_threads (0 = auto, min(CPUs, 8))")
    ap.add_argument("--count-reps", type=int, default=50)
    ap.add_argument("--dir", default=None, help="shard folder (absent or empty; default a fresh temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the shard folder afterwards")
    a = ap.parse_args()

    t0 = time.perf_counter()
    run = Runner(a)
    if a.dir:
        if os.path.exists(a.dir) and os.listdir(a.dir):
            sys.exit(f"--dir {a.dir} is not empty")
        os.makedirs(a.dir, exist_ok=True)
        path = a.dir
    else:
        path = tempfile.mkdtemp(prefix="peer_engine_")
    try:
        run.run(path)
    finally:
        if a.keep:
            log(f"kept {path}")
        else:
            shutil.rmtree(path, ignore_errors=True)
    log(f"all done in {time.perf_counter() - t0:.0f}s")


if __name__ == "__main__":
    main()
