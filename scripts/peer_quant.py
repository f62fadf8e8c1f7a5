#!/usr/bin/env python3
"""Benchmark faiss's compressed (quantized) indexes as peers of Quarry's quantized indexes.

Prints one JSON object per configuration on stdout, in the schema of `shared/tools/peer_bench.py`
(and `quarry bench ann --json`):
  {"system", "index", "params", "k", "threads", "recall", "recall_plain", "qps", "build_seconds",
   "index_bytes", "queries", "resident_bytes", "code_bytes", "refine_bytes", "bits_per_dim", "calls",
   "mean_ms", "p50_ms", "p99_ms"}
with --memory-limit-mb also "open_seconds", "memory_limit_bytes", "cgroup_peak_bytes", "oom_killed".
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

Search is single-threaded (--threads), k=10, median QPS of 3 timed passes after an untimed warm-up of
up to 100 queries; build (train + add) uses --build-threads. faiss trains on a seeded sample of
min(N, max(65536, 64 * nlist)) base vectors. build_seconds of refine rows includes adding the float
vectors to the refine IndexFlat.

Calls (--calls, as shared/tools/peer_bench.py):
  batch (default)  every timed pass is ONE search call with all queries (faiss index.search(Q, k),
                   hnswlib knn_query(Q, k, num_threads=--threads)), so the library loops over them in
                   its own C++ code, single-threaded (faiss.omp_set_num_threads(--threads), which also
                   governs faiss's OpenMP OpenBLAS): the fair match for `quarry bench ann`, which loops
                   in Rust. The warm-up is one call with the first 100 queries.
  single           one Python call per query (the old timing; adds Python's per-call overhead).
qps = queries / pass seconds (median pass); mean_ms = 1000 / qps, the mean per-query time of that
pass. p50_ms / p99_ms are null: per-query latencies are not measured by this script (in batch mode
they do not exist). Every row carries "calls".

Memory cap (--memory-limit-mb N[,N...]): instead of searching in this process, each index is
written (faiss.write_index / hnswlib save_index) to a fresh folder under --tmp-dir and searched by a
child process of this script (--search-only FILE) that loads it and runs the sweep, started as
  $QUARRY_BIN bench capped --memory-limit-mb N -- <python> peer_quant.py --search-only FILE ...
(QUARRY_BIN: the quarry binary, default `quarry` on PATH; root needed), once per cap. Only the
search child is capped; the build stays in this process. `quarry bench capped` drops the page
cache, runs the child in a memory cgroup of N MiB (page cache included) and adds
memory_limit_bytes / cgroup_peak_bytes / oom_killed to its JSON output; every row of that index
gets these three fields, plus open_seconds (faiss.read_index / load_index time). A child the kernel
kills for lack of memory gives one row for the index with "oom_killed": true and recall / qps null
(params then hold the index's fixed parameters only), and the next index runs. The child's memory
is the whole loaded index: refine indexes hold their float32 IndexFlat (refine_bytes) in RAM, so
what is charged is index_bytes, not the resident_bytes figure above. Without --memory-limit-mb
nothing of this happens and no cap fields are added.

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
import argparse, json, os, shutil, subprocess, sys, tempfile, time, traceback
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
WARMUP = 100
PASSES = 3
# Fields `quarry bench capped` adds to the JSON output of a capped child (issue 18).
CAP_KEYS = ("memory_limit_bytes", "cgroup_peak_bytes", "oom_killed")


def log(msg):
    print(f"[peer_quant {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def ints(s):
    return [int(x) for x in s.split(",") if x.strip()]


# ---- timing (also used by peer_spann.py / bench_quant_ab.py) ---------------------------------------

def timed_batch(search_all, queries, repeats=PASSES):
    """Median QPS over `repeats` passes of ONE call with every query; returns (qps, ids of last pass)."""
    rates, ids = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        ids = search_all(queries)
        rates.append(len(queries) / (time.perf_counter() - t))
    return float(np.median(rates)), ids


def measure(search_one, search_all, queries, gt, k, calls):
    """Warm-up, then the timed passes: one call per pass with every query (calls="batch") or one call
    per query (calls="single", the old timing). Returns recall, qps (median pass), mean_ms = 1000 / qps,
    and p50_ms / p99_ms = None (per-query latencies are not measured)."""
    warm = queries[: min(WARMUP, len(queries))]
    if calls == "batch":
        search_all(warm)  # untimed warm-up: one call
        qps, ids = timed_batch(search_all, queries)
    else:
        for x in warm:  # untimed warm-up
            search_one(x)
        qps, ids = timed_queries(search_one, queries)
    return dict(recall=recall(ids, gt, k), qps=qps, mean_ms=1e3 / qps, p50_ms=None, p99_ms=None)


def searchers(index, kind, k, threads):
    """(one query per call, all queries in one call) for a faiss index or an hnswlib.Index."""
    if kind == "hnswlib":
        return (lambda q: index.knn_query(q, k)[0][0]), (lambda Q: index.knn_query(Q, k, num_threads=threads)[0])
    return (lambda q: index.search(q[None], k)[1][0]), (lambda Q: index.search(Q, k)[1])


def apply_point(faiss, index, point, k, kind):
    """Sets the search parameters of one sweep point: ef (hnswlib), k_factor (IndexRefine), nprobe (the
    IVF inside), qb (RaBitQ query bits, on the index or the base index of a refine)."""
    if kind == "hnswlib":
        index.set_ef(max(int(point["ef"]), k))
        return
    if "k_factor" in point:
        index.k_factor = float(point["k_factor"])
    if "nprobe" in point:
        faiss.extract_index_ivf(index).nprobe = int(point["nprobe"])
    if "qb" in point:
        base = faiss.downcast_index(index.base_index) if isinstance(index, faiss.IndexRefine) else index
        base.qb = int(point["qb"])


# ---- capped search children (also used by peer_spann.py) -------------------------------------------

def parse_caps(text):
    """--memory-limit-mb N[,N...] -> list of MiB (None when not given)."""
    if text is None:
        return None
    try:
        caps = [int(x) for x in str(text).split(",") if x.strip()]
    except ValueError:
        sys.exit(f"--memory-limit-mb wants MiB as integers, comma separated (got {text!r})")
    if not caps or any(c <= 0 for c in caps):
        sys.exit(f"--memory-limit-mb wants positive MiB (got {text!r})")
    return caps


def quarry_bin():
    """The quarry binary that runs `bench capped`: $QUARRY_BIN, default `quarry` on PATH."""
    name = os.environ.get("QUARRY_BIN") or "quarry"
    path = shutil.which(name)
    if path is None:
        sys.exit(f"--memory-limit-mb runs each search child under `quarry bench capped`, but QUARRY_BIN={name!r} "
                 "is not an executable file nor on PATH: set QUARRY_BIN to the quarry binary "
                 "(e.g. QUARRY_BIN=$CARGO_TARGET_DIR/release/quarry)")
    return os.path.abspath(path)


def last_json(stdout):
    """The last line of `stdout` that is a JSON object."""
    for line in reversed(stdout.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                doc = json.loads(line)
            except ValueError:
                continue
            if isinstance(doc, dict):
                return doc
    raise RuntimeError("the search subprocess printed no JSON document")


def run_search_child(cmd, cap_mb, env):
    """Runs a --search-only child and returns its JSON document. With cap_mb, the child runs under
    `$QUARRY_BIN bench capped --memory-limit-mb cap_mb --`, whose fields (CAP_KEYS) are merged into the
    document; a child killed for lack of memory returns {"oom_killed": true, ...} without "results"."""
    if cap_mb is not None:
        cmd = [quarry_bin(), "bench", "capped", "--memory-limit-mb", str(cap_mb), "--"] + cmd
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, env=env, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"search subprocess exited with {proc.returncode}"
                           + (f" under a {cap_mb} MiB cap" if cap_mb is not None else ""))
    doc = last_json(proc.stdout)
    if cap_mb is not None:
        missing = [k for k in CAP_KEYS if k not in doc]
        if missing:
            log(f"WARNING `quarry bench capped` output lacks {missing}; rows get null there")
        if doc.get("oom_killed") and "results" not in doc:
            return {k: doc.get(k) for k in CAP_KEYS}
    if "results" not in doc:
        raise RuntimeError(f"the search subprocess printed no results: {json.dumps(doc)[:300]}")
    return doc


def cap_fields(doc, cap_mb):
    """The cap fields for the rows of one capped child ({} when not capped)."""
    return {} if cap_mb is None else {k: doc.get(k) for k in CAP_KEYS}


def search_only(a):
    """Child process (--search-only FILE): load one saved index, run its sweep (--sweep JSON:
    {"kind": "faiss"|"hnswlib", "points": [...], "space", "dim", "n"}), print one JSON document."""
    spec = json.loads(a.sweep)
    kind, points, k = spec["kind"], spec["points"], a.k
    queries = np.ascontiguousarray(read_vecs(a.query, np.float32)[: a.queries])
    gt = read_vecs(a.gt, np.int32)[: a.queries]
    if len(gt) < len(queries):
        sys.exit(f"ground truth has {len(gt)} rows for {len(queries)} queries")
    faiss = None
    t = time.perf_counter()
    if kind == "hnswlib":
        import hnswlib
        index = hnswlib.Index(space=spec["space"], dim=int(spec["dim"]))
        index.load_index(a.search_only, max_elements=int(spec["n"]))
        index.set_num_threads(a.threads)
    else:
        import faiss
        faiss.omp_set_num_threads(a.threads)
        index = faiss.read_index(a.search_only)
    open_seconds = time.perf_counter() - t
    one, all_ = searchers(index, kind, k, a.threads)
    results = []
    for point in points:
        apply_point(faiss, index, point, k, kind)
        res = measure(one, all_, queries, gt, k, a.calls)
        results.append(res)
        print(f"    {point}: recall={res['recall']:.4f} qps={res['qps']:,.0f}", file=sys.stderr, flush=True)
    print(json.dumps(dict(results=results, open_seconds=open_seconds)), flush=True)


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
        self.caps = parse_caps(a.memory_limit_mb)
        self.tmp = None  # folder of the saved indexes searched by capped children
        if self.caps:
            quarry_bin()  # fail before building anything
            root = os.path.expanduser(a.tmp_dir)
            os.makedirs(root, exist_ok=True)
            self.tmp = tempfile.mkdtemp(prefix="peer-quant-", dir=root)
        import faiss
        self.faiss = faiss
        self.system = f"faiss {faiss.__version__}"
        self.metric = faiss.METRIC_INNER_PRODUCT if a.metric == "ip" else faiss.METRIC_L2
        log(f"N={self.n} d={self.d} queries={len(self.queries)} k={self.k} metric={a.metric} nlist={self.nlist} "
            f"calls={a.calls}" + (f" memory caps={self.caps} MiB (indexes saved under {self.tmp})" if self.caps else ""))

    def close(self):
        if self.tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)

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

    def emit_row(self, index_name, params, res, build_seconds, code_bytes, refine_bytes, bits, system=None,
                 resident_bytes=None, **extra):
        resident = code_bytes if resident_bytes is None else resident_bytes
        emit(system=system or self.system, index=index_name, params=params, k=self.k,
             threads=self.a.threads, recall=res["recall"], recall_plain=res["recall"], qps=res["qps"],
             build_seconds=build_seconds, index_bytes=int(code_bytes + refine_bytes),
             queries=len(self.queries), resident_bytes=int(resident), code_bytes=int(code_bytes),
             refine_bytes=int(refine_bytes), bits_per_dim=bits, calls=self.a.calls, mean_ms=res["mean_ms"],
             p50_ms=res["p50_ms"], p99_ms=res["p99_ms"], **extra)
        if res["qps"] is None:
            log(f"  {index_name} {params}: killed for lack of memory under the cap "
                f"(cgroup peak {(extra.get('cgroup_peak_bytes') or 0) / 1e6:.1f} MB)")
        else:
            log(f"  {index_name} {params}: recall={res['recall']:.4f} qps={res['qps']:,.0f}")

    def group(self, index, index_name, fixed, points, build, code, refine_bytes, bits, kind="faiss", **row):
        """Searches `index` at every sweep point (dicts of search parameters; row params = fixed + point)
        and emits one row per point: in this process, or, with --memory-limit-mb, in a child process
        per cap that loads the saved index under `quarry bench capped`."""
        a, k = self.a, self.k
        if not self.caps:
            one, all_ = searchers(index, kind, k, a.threads)
            for point in points:
                apply_point(self.faiss, index, point, k, kind)
                res = measure(one, all_, self.queries, self.gt, k, a.calls)
                self.emit_row(index_name, {**fixed, **point}, res, build, code, refine_bytes, bits, **row)
            return
        path = os.path.join(self.tmp, index_name.replace("+", "-") + (".hnswlib" if kind == "hnswlib" else ".faissindex"))
        if kind == "hnswlib":
            index.save_index(path)
        else:
            self.faiss.write_index(index, path)
        spec = dict(kind=kind, points=points, space="ip" if a.metric == "ip" else "l2", dim=self.d, n=self.n)
        cmd = [sys.executable, os.path.abspath(__file__), "--search-only", path, "--base", a.base,
               "--query", a.query, "--gt", a.gt, "--metric", a.metric, "--k", str(k), "--queries", str(a.queries),
               "--threads", str(a.threads), "--calls", a.calls, "--sweep", json.dumps(spec)]
        nt = str(a.threads)
        env = dict(os.environ, OMP_NUM_THREADS=nt, OPENBLAS_NUM_THREADS=nt, MKL_NUM_THREADS=nt)
        try:
            for cap in self.caps:
                log(f"{index_name} {fixed}: searching {len(points)} points in a child under a {cap} MiB cap "
                    f"({os.path.getsize(path) / 1e6:.1f} MB file)")
                doc = run_search_child(cmd, cap, env)
                capf = cap_fields(doc, cap)
                if "results" not in doc:  # killed for lack of memory
                    none = dict(recall=None, qps=None, mean_ms=None, p50_ms=None, p99_ms=None)
                    self.emit_row(index_name, dict(fixed), none, build, code, refine_bytes, bits, **row,
                                  open_seconds=None, **capf)
                    continue
                for point, res in zip(points, doc["results"]):
                    self.emit_row(index_name, {**fixed, **point}, res, build, code, refine_bytes, bits, **row,
                                  open_seconds=doc.get("open_seconds"), **capf)
        finally:
            os.remove(path)

    def sweep_refine(self, index_name, r, fixed, build, code, refine_bytes, bits, grid):
        """grid: list of search-parameter dicts over the base index; k_factor is swept inside."""
        points = [{**extra, "k_factor": kf} for extra in grid for kf in ints(self.a.k_factor)]
        self.group(r, index_name, fixed, points, build, code, refine_bytes, bits)

    # ---- peers ---------------------------------------------------------------------------------

    def faiss_sq8(self):
        f = self.faiss
        idx = f.IndexScalarQuantizer(self.d, f.ScalarQuantizer.QT_8bit, self.metric)
        build = self.build(idx)
        code, bits = self.code_bytes(idx), self.bits_per_dim(idx)
        log(f"sq8 built in {build:.1f}s, {code:,} bytes")
        self.group(idx, "sq8", {"qtype": "QT_8bit"}, [{}], build, code, 0, bits)
        r, fsecs, fbytes = self.refine(idx)
        self.group(r, "sq8+refine", {"qtype": "QT_8bit"}, [{"k_factor": kf} for kf in ints(self.a.sq_k_factor)],
                   build + fsecs, code, fbytes, bits)

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
            grid = [{"nprobe": p} for p in ints(self.a.nprobe)]
            self.sweep_refine(name.replace("faiss-", "").replace("-refine", "+refine"), r,
                              {"nlist": self.nlist, "M": m, "nbits": nbits}, build + fsecs, code, fbytes,
                              bits, grid)
            del r, idx, quant

    def faiss_ivfpq_refine(self):
        self._ivf_pq("faiss-ivfpq-refine", fast_scan=False)

    def faiss_ivfpqfs_refine(self):
        self._ivf_pq("faiss-ivfpqfs-refine", fast_scan=True)

    def _qb_grid(self, idx, qbs):
        """{"qb": qb} for each query-bit width the index accepts, or one entry without qb when unsupported."""
        if not hasattr(idx, "qb"):
            log("  this faiss has no qb attribute: query bits not swept")
            return [{}]
        grid = []
        for qb in qbs:
            try:
                idx.qb = qb
                grid.append({"qb": qb})
            except Exception as e:
                log(f"  qb={qb} rejected ({e})")
        return grid or [{}]

    def faiss_rabitq(self):
        f = self.faiss
        idx = f.IndexRaBitQ(self.d, self.metric)
        log("rabitq: training + adding ...")
        build = self.build(idx)
        code, bits = self.code_bytes(idx), self.bits_per_dim(idx)
        r, fsecs, fbytes = self.refine(idx)
        log(f"rabitq built in {build:.1f}s, {code:,} code bytes ({bits:.3g} bits/dim)")
        nb = int(getattr(getattr(idx, "rabitq", None), "nb_bits", 1))
        self.sweep_refine("rabitq+refine", r, {"nb_bits": nb}, build + fsecs, code, fbytes, bits,
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
        grid = [{**q, "nprobe": p} for q in self._qb_grid(idx, ints(self.a.ivf_qb)) for p in ints(self.a.nprobe)]
        self.sweep_refine("ivfrabitq+refine", r, {"nlist": self.nlist, "nb_bits": nb}, build + fsecs,
                          code, fbytes, bits, grid)

    def hnswlib(self):
        import hnswlib
        a, n, d = self.a, self.n, self.d
        idx = hnswlib.Index(space="ip" if a.metric == "ip" else "l2", dim=d)
        idx.init_index(max_elements=n, M=a.M, ef_construction=a.efc, random_seed=100)
        idx.set_num_threads(a.build_threads)
        log("hnswlib: building ...")
        t = time.perf_counter(); idx.add_items(self.base); build = time.perf_counter() - t
        idx.set_num_threads(a.threads)
        log(f"hnswlib built in {build:.1f}s")
        size = int(n * (d * 4 + a.M * 2 * 4 + 8))
        version = getattr(hnswlib, "__version__", "0.8.0")
        self.group(idx, "hnsw", {"M": a.M, "efc": a.efc}, [{"ef": ef} for ef in ints(a.ef)], build, size, 0, 32.0,
                   kind="hnswlib", system=f"hnswlib {version}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", required=True); ap.add_argument("--query", required=True)
    ap.add_argument("--gt", required=True); ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--metric", choices=["ip", "l2"], default="ip")
    ap.add_argument("--peers", default=ALL_PEERS)
    ap.add_argument("--queries", type=int, default=2000, help="number of queries to time")
    ap.add_argument("--threads", type=int, default=1, help="search threads (default 1)")
    ap.add_argument("--calls", choices=["batch", "single"], default="batch",
                    help="batch: each timed pass is one call with every query (the library's own loop); "
                    "single: one Python call per query")
    ap.add_argument("--memory-limit-mb", metavar="N[,N...]",
                    help="search each index in a child process under `$QUARRY_BIN bench capped "
                    "--memory-limit-mb N` (root), once per cap; rows get memory_limit_bytes, cgroup_peak_bytes, "
                    "oom_killed")
    ap.add_argument("--tmp-dir", default="~/.cache/quarry/bench-indexes",
                    help="where a per-run folder holds the saved indexes of capped children (removed at the end)")
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
    ap.add_argument("--search-only", metavar="FILE", help=argparse.SUPPRESS)  # internal: capped child
    ap.add_argument("--sweep", help=argparse.SUPPRESS)  # internal: JSON spec of the child's sweep
    a = ap.parse_args()

    if a.search_only:
        search_only(a)
        return

    t0 = time.perf_counter()
    peers = [p.strip() for p in a.peers.split(",") if p.strip()]
    unknown = [p for p in peers if p not in ALL_PEERS.split(",")]
    if unknown:
        sys.exit(f"unknown peer(s) {', '.join(unknown)}; known: {ALL_PEERS}")
    run = Runner(a)
    failed = []
    try:
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
    finally:
        run.close()
    log(f"all done in {time.perf_counter() - t0:.0f}s" + (f"; failed: {', '.join(failed)}" if failed else ""))


if __name__ == "__main__":
    main()
