#!/usr/bin/env python3
"""Benchmark faiss's compressed (quantized) indexes as peers of Quarry's quantized indexes.

Prints one JSON object per configuration on stdout, in the schema of `shared/tools/peer_bench.py`
(and `quarry bench ann --json`):
  {"system", "index", "params", "k", "threads", "recall", "recall_plain", "qps", "build_seconds",
   "index_bytes", "queries", "resident_bytes", "code_bytes", "refine_bytes", "bits_per_dim"}
`params` is a dict, e.g. {"nlist": 1314, "M": 48, "nbits": 8, "nprobe": 16, "k_factor": 4}.

Memory accounting:
  * code_bytes     - faiss.serialize_index size of the compressed index (codes, ids, coarse
                     centroids, codebooks / quantizer state).
  * refine_bytes   - serialized size of the float32 IndexFlat used to re-score the candidates of
                     refine indexes (0 for indexes without refinement).
  * resident_bytes - the index's own memory. For refine indexes it is code_bytes only: in Quarry
                     the float vectors used for re-scoring are memory-mapped from the vector file,
                     not held by the index, so the fair peer figure excludes them (they are still
                     reported as refine_bytes, and index_bytes = code_bytes + refine_bytes is faiss's
                     total). For hnswlib it is the same estimate peer_bench.py uses.
  * bits_per_dim   - code bits per dimension, excluding ids (code_size * 8 / d; for RaBitQ this
                     includes its per-vector correction factors).
recall / recall_plain are both plain |A ∩ G| / k against the first k ground-truth ids (identical;
recall_plain is there so the rows line up with Quarry's).

Search is single-threaded (--threads), one query per call, k=10, median QPS of 3 timed passes after
an untimed warm-up of up to 100 queries; build (train + add) uses --build-threads. faiss trains on a
seeded sample of min(N, max(65536, 64 * nlist)) base vectors. build_seconds of refine rows includes
adding the float vectors to the refine IndexFlat.

Peers (--peers, comma separated; default all):
  faiss-sq8            IndexScalarQuantizer QT_8bit flat scan; plus IndexRefine k_factor sweep (--sq-k-factor)
  faiss-ivfpq-refine   IndexIVFPQ (M from --pq-m, --pq-nbits) + refine; nprobe x k_factor sweep
  faiss-ivfpqfs-refine IndexIVFPQFastScan (4-bit, M from --pq-m) + refine; same sweep
  faiss-rabitq         IndexRaBitQ (1 bit/dim) + refine; k_factor x qb (query bits) sweep
  faiss-ivfrabitq      IndexIVFRaBitQ + refine; nprobe x k_factor x qb sweep
  hnswlib              M=16, efc=200, ef sweep, for reference
A peer that fails prints a warning on stderr and the others still run.

Example (the venv with faiss 1.15.1 and hnswlib 0.8):
  ~/.cache/quarry-peers/bin/python scripts/peer_quant.py \
      --base /work/shared/data/wndict-384/base.f16.npy --query /work/shared/data/wndict-384/query.f16.npy \
      --gt /work/shared/data/wndict-384/groundtruth.ivecs --metric ip --queries 2000 > rows.jsonl
"""
import argparse, json, os, sys, time, traceback
import numpy as np


def _shared_helpers():
    """read_vecs/recall/timed_queries/emit from shared/tools/peer_bench.py, else local copies."""
    here = os.path.dirname(os.path.abspath(__file__))
    candidates = [os.environ.get("PEER_BENCH_DIR"), "/work/shared/tools",
                  os.path.join(here, "..", "..", "shared", "tools")]
    for path in candidates:
        if path and os.path.isfile(os.path.join(path, "peer_bench.py")):
            sys.path.insert(0, path)
            try:
                import peer_bench
                return peer_bench.read_vecs, peer_bench.recall, peer_bench.timed_queries, peer_bench.emit
            except Exception:
                pass
            finally:
                sys.path.remove(path)

    def read_vecs(path, dtype):
        if path.endswith(".npy"):
            return np.load(path).astype(dtype)
        raw = np.fromfile(path, dtype=np.int32)
        d = raw[0]
        rows = raw.reshape(-1, d + 1)
        return rows[:, 1:].view(dtype) if dtype == np.float32 else rows[:, 1:]

    def recall(found, gt, k):
        hits = sum(len(set(f[:k]) & set(g[:k])) for f, g in zip(found, gt))
        return hits / (k * len(gt))

    def timed_queries(search_one, queries, repeats=3):
        rates, ids = [], None
        for _ in range(repeats):
            t = time.perf_counter()
            ids = [search_one(q) for q in queries]
            rates.append(len(queries) / (time.perf_counter() - t))
        return float(np.median(rates)), ids

    def emit(**row):
        print(json.dumps(row), flush=True)

    return read_vecs, recall, timed_queries, emit


read_vecs, recall, timed_queries, emit = _shared_helpers()

ALL_PEERS = "faiss-sq8,faiss-ivfpq-refine,faiss-ivfpqfs-refine,faiss-rabitq,faiss-ivfrabitq,hnswlib"


def log(msg):
    print(f"[peer_quant {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def ints(s):
    return [int(x) for x in s.split(",") if x.strip()]


class Runner:
    def __init__(self, a):
        self.a = a
        self.base = np.ascontiguousarray(read_vecs(a.base, np.float32))
        self.queries = np.ascontiguousarray(read_vecs(a.query, np.float32)[: a.queries])
        self.gt = read_vecs(a.gt, np.int32)[: a.queries]
        if len(self.gt) < len(self.queries):
            sys.exit(f"ground truth has {len(self.gt)} rows for {len(self.queries)} queries")
        self.n, self.d = self.base.shape
        self.k = a.k
        self.nlist = a.nlist or int(4 * np.sqrt(self.n))
        self.common = dict(k=a.k, threads=a.threads, queries=len(self.queries))
        self.alive = []  # faiss objects referenced by C++ (quantizers, wrapped indexes); cleared per peer
        self._flat = None  # shared float refine index: (IndexFlat, add seconds, serialized bytes)
        import faiss
        self.faiss = faiss
        self.system = f"faiss {faiss.__version__}"
        self.metric = faiss.METRIC_INNER_PRODUCT if a.metric == "ip" else faiss.METRIC_L2
        log(f"N={self.n} d={self.d} queries={len(self.queries)} k={self.k} metric={a.metric} nlist={self.nlist}")

    # ---- helpers -------------------------------------------------------------------------------

    def sample(self, nlist=0):
        n_train = min(self.n, max(65536, 64 * nlist))
        rng = np.random.default_rng(self.a.seed)
        return np.ascontiguousarray(self.base[np.sort(rng.choice(self.n, n_train, replace=False))])

    def build(self, index, nlist=0):
        """Train on the seeded sample and add all base vectors; returns seconds."""
        f = self.faiss
        f.omp_set_num_threads(self.a.build_threads)
        t = time.perf_counter()
        index.train(self.sample(nlist))
        index.add(self.base)
        secs = time.perf_counter() - t
        f.omp_set_num_threads(self.a.threads)
        return secs

    def flat(self):
        if self._flat is None:
            f = self.faiss
            f.omp_set_num_threads(self.a.build_threads)
            idx = f.IndexFlat(self.d, self.metric)
            t = time.perf_counter(); idx.add(self.base); secs = time.perf_counter() - t
            f.omp_set_num_threads(self.a.threads)
            self._flat = (idx, secs, len(f.serialize_index(idx)))
        return self._flat

    def refine(self, base_index):
        """IndexRefine over `base_index` with the shared float IndexFlat; (refine, add secs, bytes)."""
        flat, secs, nbytes = self.flat()
        r = self.faiss.IndexRefine(base_index, flat)
        self.alive += [base_index, flat]  # SWIG objects take no extra attributes; keep them alive here
        return r, secs, nbytes

    def code_bytes(self, index):
        return len(self.faiss.serialize_index(index))

    def bits_per_dim(self, index):
        return index.code_size * 8 / self.d

    def measure(self, search_one):
        q = self.queries
        for x in q[: min(100, len(q))]:  # untimed warm-up
            search_one(x)
        qps, ids = timed_queries(search_one, q)
        return recall(ids, self.gt, self.k), qps

    def row(self, index_name, params, search_one, build_seconds, code_bytes, refine_bytes, bits,
            system=None, resident_bytes=None):
        rec, qps = self.measure(search_one)
        resident = code_bytes if resident_bytes is None else resident_bytes
        emit(system=system or self.system, index=index_name, params=params, k=self.k,
             threads=self.a.threads, recall=rec, recall_plain=rec, qps=qps,
             build_seconds=build_seconds, index_bytes=int(code_bytes + refine_bytes),
             queries=len(self.queries), resident_bytes=int(resident), code_bytes=int(code_bytes),
             refine_bytes=int(refine_bytes), bits_per_dim=bits)
        log(f"  {index_name} {params}: recall={rec:.4f} qps={qps:,.0f}")

    def sweep_refine(self, index_name, r, base_index, fixed, build, code, refine_bytes, bits, grid):
        """grid: list of (params dict, setter) over the base index; k_factor is swept inside."""
        k = self.k
        search = lambda q: r.search(q[None], k)[1][0]
        for extra, setter in grid:
            setter()
            for kf in ints(self.a.k_factor):
                r.k_factor = float(kf)
                self.row(index_name, {**fixed, **extra, "k_factor": kf}, search, build, code,
                         refine_bytes, bits)

    # ---- peers ---------------------------------------------------------------------------------

    def faiss_sq8(self):
        f, k = self.faiss, self.k
        idx = f.IndexScalarQuantizer(self.d, f.ScalarQuantizer.QT_8bit, self.metric)
        build = self.build(idx)
        code, bits = self.code_bytes(idx), self.bits_per_dim(idx)
        log(f"sq8 built in {build:.1f}s, {code:,} bytes")
        self.row("sq8", {"qtype": "QT_8bit"}, lambda q: idx.search(q[None], k)[1][0], build, code, 0, bits)
        r, fsecs, fbytes = self.refine(idx)
        search = lambda q: r.search(q[None], k)[1][0]
        for kf in ints(self.a.sq_k_factor):
            r.k_factor = float(kf)
            self.row("sq8+refine", {"qtype": "QT_8bit", "k_factor": kf}, search, build + fsecs, code, fbytes, bits)

    def _ivf_pq(self, name, fast_scan):
        f = self.faiss
        nbits = 4 if fast_scan else self.a.pq_nbits
        for m in ints(self.a.pq_m):
            try:
                if self.d % m:
                    raise ValueError(f"d={self.d} is not a multiple of M={m}")
                quant = f.IndexFlat(self.d, self.metric)
                if fast_scan:
                    idx = f.IndexIVFPQFastScan(quant, self.d, self.nlist, m, nbits, self.metric)
                else:
                    idx = f.IndexIVFPQ(quant, self.d, self.nlist, m, nbits, self.metric)
                self.alive.append(quant)
                log(f"{name} M={m} nbits={nbits}: training + adding ...")
                build = self.build(idx, self.nlist)
            except Exception as e:
                log(f"WARNING {name} M={m}: construction failed, skipped ({e})")
                continue
            code, bits = self.code_bytes(idx), self.bits_per_dim(idx)
            r, fsecs, fbytes = self.refine(idx)
            log(f"{name} M={m} built in {build:.1f}s, {code:,} code bytes ({bits:.3g} bits/dim)")
            grid = [({"nprobe": p}, (lambda p=p: setattr(idx, "nprobe", p))) for p in ints(self.a.nprobe)]
            self.sweep_refine(name.replace("faiss-", "").replace("-refine", "+refine"), r, idx,
                              {"nlist": self.nlist, "M": m, "nbits": nbits}, build + fsecs, code, fbytes,
                              bits, grid)
            del r, idx, quant

    def faiss_ivfpq_refine(self):
        self._ivf_pq("faiss-ivfpq-refine", fast_scan=False)

    def faiss_ivfpqfs_refine(self):
        self._ivf_pq("faiss-ivfpqfs-refine", fast_scan=True)

    def _qb_grid(self, idx, qbs, extra=None):
        """(params, setter) for each query-bit width, or one entry without qb when unsupported."""
        if not hasattr(idx, "qb"):
            log("  this faiss has no qb attribute: query bits not swept")
            return [({}, lambda: None)]
        grid = []
        for qb in qbs:
            try:
                idx.qb = qb
                grid.append(({"qb": qb}, (lambda qb=qb: setattr(idx, "qb", qb))))
            except Exception as e:
                log(f"  qb={qb} rejected ({e})")
        return grid or [({}, lambda: None)]

    def faiss_rabitq(self):
        f = self.faiss
        idx = f.IndexRaBitQ(self.d, self.metric)
        log("rabitq: training + adding ...")
        build = self.build(idx)
        code, bits = self.code_bytes(idx), self.bits_per_dim(idx)
        r, fsecs, fbytes = self.refine(idx)
        log(f"rabitq built in {build:.1f}s, {code:,} code bytes ({bits:.3g} bits/dim)")
        nb = int(getattr(getattr(idx, "rabitq", None), "nb_bits", 1))
        self.sweep_refine("rabitq+refine", r, idx, {"nb_bits": nb}, build + fsecs, code, fbytes, bits,
                          self._qb_grid(idx, ints(self.a.qb)))

    def faiss_ivfrabitq(self):
        f = self.faiss
        quant = f.IndexFlat(self.d, self.metric)
        idx = f.IndexIVFRaBitQ(quant, self.d, self.nlist, self.metric)
        self.alive.append(quant)
        log("ivfrabitq: training + adding ...")
        build = self.build(idx, self.nlist)
        code, bits = self.code_bytes(idx), self.bits_per_dim(idx)
        r, fsecs, fbytes = self.refine(idx)
        log(f"ivfrabitq built in {build:.1f}s, {code:,} code bytes ({bits:.3g} bits/dim)")
        nb = int(getattr(getattr(idx, "rabitq", None), "nb_bits", 1))
        grid = []
        for qparams, qset in self._qb_grid(idx, ints(self.a.ivf_qb)):
            for p in ints(self.a.nprobe):
                def setter(p=p, qset=qset):
                    qset(); idx.nprobe = p
                grid.append(({**qparams, "nprobe": p}, setter))
        self.sweep_refine("ivfrabitq+refine", r, idx, {"nlist": self.nlist, "nb_bits": nb}, build + fsecs,
                          code, fbytes, bits, grid)

    def hnswlib(self):
        import hnswlib
        a, n, d, k = self.a, self.n, self.d, self.k
        idx = hnswlib.Index(space="ip" if a.metric == "ip" else "l2", dim=d)
        idx.init_index(max_elements=n, M=a.M, ef_construction=a.efc, random_seed=100)
        idx.set_num_threads(a.build_threads)
        log("hnswlib: building ...")
        t = time.perf_counter(); idx.add_items(self.base); build = time.perf_counter() - t
        idx.set_num_threads(a.threads)
        log(f"hnswlib built in {build:.1f}s")
        size = int(n * (d * 4 + a.M * 2 * 4 + 8))
        version = getattr(hnswlib, "__version__", "0.8.0")
        for ef in ints(a.ef):
            idx.set_ef(max(ef, k))
            self.row("hnsw", {"M": a.M, "efc": a.efc, "ef": ef}, lambda q: idx.knn_query(q, k)[0][0],
                     build, size, 0, 32.0, system=f"hnswlib {version}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", required=True); ap.add_argument("--query", required=True)
    ap.add_argument("--gt", required=True); ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--metric", choices=["ip", "l2"], default="ip")
    ap.add_argument("--peers", default=ALL_PEERS)
    ap.add_argument("--queries", type=int, default=2000, help="number of queries to time")
    ap.add_argument("--threads", type=int, default=1, help="search threads (default 1)")
    ap.add_argument("--build-threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0, help="seed of the training sample")
    ap.add_argument("--nlist", type=int, default=0, help="IVF lists (default int(4*sqrt(N)))")
    ap.add_argument("--pq-m", default="48,96", help="PQ subquantizers, comma separated")
    ap.add_argument("--pq-nbits", type=int, default=8, help="bits per PQ code (IVF-PQ; fast-scan is 4)")
    ap.add_argument("--nprobe", default="1,2,4,8,16,32,64")
    ap.add_argument("--k-factor", default="2,4,8,16", help="refine k_factor sweep of the IVF and RaBitQ peers")
    ap.add_argument("--sq-k-factor", default="1,2,4", help="refine k_factor sweep of faiss-sq8")
    ap.add_argument("--qb", default="4,8", help="RaBitQ query bits sweep (flat RaBitQ)")
    ap.add_argument("--ivf-qb", default="4,8", help="RaBitQ query bits sweep (IVF RaBitQ)")
    ap.add_argument("--M", type=int, default=16); ap.add_argument("--efc", type=int, default=200)
    ap.add_argument("--ef", default="10,20,40,80,160,320", help="hnswlib ef sweep")
    a = ap.parse_args()

    t0 = time.perf_counter()
    run = Runner(a)
    peers = [p.strip() for p in a.peers.split(",") if p.strip()]
    unknown = [p for p in peers if p not in ALL_PEERS.split(",")]
    if unknown:
        sys.exit(f"unknown peer(s) {', '.join(unknown)}; known: {ALL_PEERS}")
    failed = []
    for peer in peers:
        t = time.perf_counter()
        log(f"== {peer}")
        try:
            getattr(run, peer.replace("-", "_"))()
        except Exception as e:
            failed.append(peer)
            log(f"WARNING {peer} failed: {e!r}")
            traceback.print_exc(file=sys.stderr)
        run.alive.clear()
        log(f"== {peer} done in {time.perf_counter() - t:.0f}s")
    log(f"all done in {time.perf_counter() - t0:.0f}s" + (f"; failed: {', '.join(failed)}" if failed else ""))


if __name__ == "__main__":
    main()
