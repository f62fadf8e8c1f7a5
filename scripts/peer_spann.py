#!/usr/bin/env python3
"""Benchmark faiss IVF indexes as peers of Quarry's SPANN (memory + disk) index, with measured
resident memory, so the systems can be compared at equal resident memory.

Prints one JSON object per sweep point on stdout (schema close to `shared/tools/peer_bench.py` and
`quarry bench ann --json`):
  {"system", "index", "params", "k", "threads", "recall", "recall_plain", "qps", "p50_ms", "p99_ms",
   "build_seconds", "build_threads", "index_bytes", "resident_bytes", "resident_fraction",
   "process_rss_bytes", "rss_anon_bytes", "rss_file_bytes", "baseline_rss_bytes", "open_seconds",
   "cold", "queries", "calls", "mean_ms"}
with --memory-limit-mb also "memory_limit_bytes", "cgroup_peak_bytes", "oom_killed".
`params` is a dict, e.g. {"nlist": 1314, "M": 48, "nbits": 8, "refine": "sq8", "nprobe": 16,
"k_factor": 4}; IVF-Flat rows have {"nlist", "nprobe"}.

Indexes (--only, comma separated; default all):
  ivfflat          IndexIVFFlat, nprobe sweep (--nprobe). Always run: it is the reference.
  ivfpq+refine     IndexRefine(IndexIVFPQ M=--pq-m nbits=8, refine), nprobe x k_factor sweep
  ivfpqfs+refine   IndexRefine(IndexIVFPQFastScan M=--pqfs-m nbits=4, refine), same sweep
  refine (--refine): sq4 / sq6 / sq8 / fp16 = IndexScalarQuantizer QT_4bit / QT_6bit / QT_8bit /
  QT_fp16, flat = IndexFlat (float32).

Build: --build-threads threads; every trainable part (coarse k-means, PQ, SQ ranges) trains on a
seeded sample of min(N, max(65536, 64 * nlist)) base vectors (as peer_quant.py). build_seconds =
train + add of the IVF index plus train + add of its refine index. Each built index is written with
faiss.write_index to --cache-dir under a name that encodes dataset, metric, seed and configuration,
with a sidecar .json holding its build_seconds; a cached index is reused (and its build_seconds read
from the sidecar). The IVF-PQ base indexes are cached on their own too (*_base), so a refine variant
added later does not retrain them.

Memory (measured, not estimated): every index is searched in a fresh subprocess of this script
(--search-only FILE). It imports faiss/numpy, loads queries and ground truth, preallocates its result
buffers, reads VmRSS / RssAnon / RssFile from /proc/self/status as the baseline, then runs
faiss.read_index(FILE) and the whole sweep, and reads /proc/self/status again:
  resident_bytes    = VmRSS after - VmRSS baseline (the index's own memory as the OS sees it; it
                      also contains the few pages of faiss code first touched by the search)
  resident_fraction = resident_bytes / (N * d * 4), the raw float32 vector bytes
  process_rss_bytes = VmRSS after (whole process: Python, numpy, faiss libraries, queries)
  baseline_rss_bytes= VmRSS baseline
  rss_anon_bytes, rss_file_bytes = RssAnon / RssFile after - baseline (faiss.read_index copies the
                      whole index to anonymous memory, so the index shows up as RssAnon)
  index_bytes       = size of the serialized index file.
All rows of one index carry the same memory figures.

Search: single-threaded (faiss.omp_set_num_threads(1); OMP/OpenBLAS/MKL_NUM_THREADS=1), k=--k.
--calls (as shared/tools/peer_bench.py):
  batch (default)  each pass is ONE index.search(all queries, k) call, so faiss loops over the
                   queries in its own C++ code, single-threaded: the fair match for `quarry bench
                   ann`, which loops in Rust. Per-query latencies do not exist: p50_ms / p99_ms are
                   null. (With queries x d >= 128000 floats per call, faiss 1.15 assigns the coarse
                   lists with one BLAS product; its result/scratch buffers for the whole batch
                   count in the measured memory.)
  single           one Python call per query (the old timing); p50_ms / p99_ms from the per-query
                   latencies of the last pass.
Each sweep point: untimed warm-up of up to 100 queries (batch: one call), then 3 timed passes over
--queries queries; qps = queries / pass seconds, median pass; mean_ms = 1000 / qps (the mean
per-query time of that pass). Every row carries "calls". recall = recall_plain = |A ∩ G| / k
against the first k ground-truth ids. open_seconds = faiss.read_index time (includes reading the
file). With --cold, the page cache is dropped (sync; echo 3 > /proc/sys/vm/drop_caches) before each
search subprocess, and each sweep point is timed on its first pass with no warm-up (rows get
"cold": true; if dropping the cache fails, a warning is printed and the rows get "cold": false).

Note that faiss.read_index loads everything into RAM, so only open_seconds (and the first queries of
the first sweep point) see a cold page cache; later points are "cold" only in the CPU-cache sense.

Memory cap (--memory-limit-mb N[,N...]): the search subprocess of every index is started as
  $QUARRY_BIN bench capped --memory-limit-mb N -- <python> peer_spann.py --search-only FILE ...
once per cap (QUARRY_BIN: the quarry binary, default `quarry` on PATH; root needed). `quarry bench
capped` drops the page cache and runs it in a memory cgroup of N MiB (anonymous memory and page
cache), and adds memory_limit_bytes / cgroup_peak_bytes / oom_killed to its output, which every row
of that index then carries. If the kernel kills the search for lack of memory, the index gets one
row with "oom_killed": true, params = its fixed parameters, and recall / qps / latency / memory
figures null; the next index runs. Builds are never capped. Without the flag no cap fields appear.

--metric: ip, l2, or cos (cos = inner product on L2-normalized base and query vectors).
--max-resident-fraction F skips configurations whose estimated size (serialized bytes, or an
analytic estimate if not built yet, / raw bytes) exceeds F; IVF-Flat is always run.
A progress line per configuration and a summary (resident fraction; best QPS at recall >= 0.95, or
the max recall reached) go to stderr.

Example (the venv with faiss 1.15.1):
  ~/.cache/quarry-peers/bin/python scripts/peer_spann.py \
      --base /work/shared/data/wndict-384/base.f16.npy --query /work/shared/data/wndict-384/query.f16.npy \
      --gt /work/shared/data/wndict-384/groundtruth.ivecs --metric ip --queries 2000 > rows.jsonl
"""
import argparse, json, os, subprocess, sys, time, traceback
import numpy as np


# read_vecs / recall / emit: shared/tools/peer_bench.py's helpers (or local copies), as peer_quant.py
# loads them. Its timed_queries is not used: the sweep needs per-query latencies. The capped-child
# helpers (quarry bench capped) are peer_quant.py's too.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peer_quant import read_vecs, recall, emit, parse_caps, quarry_bin, run_search_child, cap_fields  # noqa: E402

ALL_INDEXES = ["ivfflat", "ivfpq+refine", "ivfpqfs+refine"]
REFINES = {"sq4": "QT_4bit", "sq6": "QT_6bit", "sq8": "QT_8bit", "fp16": "QT_fp16", "flat": None}
WARMUP = 100
PASSES = 3


def log(msg):
    print(f"[peer_spann {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def ints(s):
    return [int(x) for x in s.split(",") if x.strip()]


def load_vectors(path, metric):
    x = np.ascontiguousarray(read_vecs(path, np.float32), dtype=np.float32)
    if metric == "cos":
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        x = np.ascontiguousarray(x / np.maximum(norms, 1e-30), dtype=np.float32)
    return x


def faiss_metric(faiss, metric):
    return faiss.METRIC_L2 if metric == "l2" else faiss.METRIC_INNER_PRODUCT


# ---- search subprocess ---------------------------------------------------------------------------

def proc_status():
    """VmRSS / RssAnon / RssFile of this process in bytes."""
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "RssAnon", "RssFile", "RssShmem"):
                out[key] = int(rest.split()[0]) * 1024
    return out


def search_only(a):
    """Child process: read the index, run the sweep, print one JSON document on stdout."""
    import faiss
    faiss.omp_set_num_threads(1)
    queries = load_vectors(a.query, a.metric)[: a.queries]
    gt = np.ascontiguousarray(read_vecs(a.gt, np.int32)[: a.queries])
    nq, k = len(queries), a.k
    if len(gt) < nq:
        sys.exit(f"ground truth has {len(gt)} rows for {nq} queries")
    sweep = json.loads(a.sweep)  # list of {"nprobe": p} or {"nprobe": p, "k_factor": kf}
    batch = a.calls == "batch"
    ids = np.empty((nq, k), dtype=np.int64)
    dist = np.empty((nq, k), dtype=np.float32)  # batch calls write into ids / dist
    lat = np.empty(nq, dtype=np.float64)
    rates = np.empty(PASSES, dtype=np.float64)
    results = []
    perf = time.perf_counter
    # Exercise the faiss search path on a throw-away index so that interpreter/allocator start-up
    # costs of the first search are not charged to the index.
    tiny = faiss.IndexFlat(queries.shape[1], faiss.METRIC_INNER_PRODUCT)
    tiny.add(queries[:16]); tiny.search(queries[:1], k)
    if batch:  # also the batch path (BLAS) and the result buffers
        tiny.search(queries, k, D=dist, I=ids)
    del tiny
    np.percentile(lat[:2], [50, 99]); np.median(rates); recall(ids[:1], gt[:1], k)
    base_status = proc_status()

    t = perf()
    index = faiss.read_index(a.search_only)
    open_seconds = perf() - t
    ivf = faiss.extract_index_ivf(index)
    refine = isinstance(index, faiss.IndexRefine)

    def one_pass(count):
        if batch:  # one call with the first `count` queries
            index.search(queries[:count], k, D=dist[:count], I=ids[:count])
            return
        for i in range(count):
            t0 = perf()
            ids[i] = index.search(queries[i:i + 1], k)[1][0]
            lat[i] = perf() - t0

    for point in sweep:
        ivf.nprobe = int(point["nprobe"])
        if refine:
            index.k_factor = float(point["k_factor"])
        if a.cold:
            t = perf(); one_pass(nq); rates[0] = nq / (perf() - t)
            qps = float(rates[0])
        else:
            one_pass(min(WARMUP, nq))
            for r in range(PASSES):
                t = perf(); one_pass(nq); rates[r] = nq / (perf() - t)
            qps = float(np.median(rates))
        rec = recall(ids, gt, k)
        results.append(dict(point=point, recall=rec, qps=qps, mean_ms=1e3 / qps,
                            p50_ms=None if batch else float(np.percentile(lat, 50) * 1e3),
                            p99_ms=None if batch else float(np.percentile(lat, 99) * 1e3)))
        print(f"    {point}: recall={rec:.4f} qps={qps:,.0f}", file=sys.stderr, flush=True)

    after = proc_status()
    mem = dict(resident_bytes=after["VmRSS"] - base_status["VmRSS"],
               process_rss_bytes=after["VmRSS"],
               baseline_rss_bytes=base_status["VmRSS"],
               rss_anon_bytes=after.get("RssAnon", 0) - base_status.get("RssAnon", 0),
               rss_file_bytes=after.get("RssFile", 0) - base_status.get("RssFile", 0))
    print(json.dumps(dict(memory=mem, open_seconds=open_seconds, results=results)), flush=True)


# ---- parent: build / cache / launch --------------------------------------------------------------

class Runner:
    def __init__(self, a):
        self.a = a
        import faiss
        self.faiss = faiss
        self.system = f"faiss {faiss.__version__}"
        self.metric = faiss_metric(faiss, a.metric)
        self.base = load_vectors(a.base, a.metric)
        self.n, self.d = self.base.shape
        self.raw_bytes = self.n * self.d * 4
        self.k = a.k
        self.nlist = a.nlist or int(4 * np.sqrt(self.n))
        self.nq = min(a.queries, len(np.load(a.query, mmap_mode="r")) if a.query.endswith(".npy")
                      else a.queries)
        self._sample = None
        self.caps = parse_caps(a.memory_limit_mb)
        if self.caps:
            quarry_bin()  # fail before building anything
        self.cache_dir = os.path.expanduser(a.cache_dir)
        os.makedirs(self.cache_dir, exist_ok=True)
        dataset = os.path.basename(os.path.dirname(os.path.abspath(a.base))) or "data"
        self.tag = f"{dataset}-n{self.n}-d{self.d}-{a.metric}-s{a.seed}"
        self.summary = []  # (label, resident_fraction, resident_bytes, rows); None, None for a kill
        log(f"N={self.n} d={self.d} queries={self.nq} k={self.k} metric={a.metric} nlist={self.nlist} "
            f"raw f32 bytes={self.raw_bytes:,} cache={self.cache_dir} calls={a.calls}"
            + (f" memory caps={self.caps} MiB" if self.caps else ""))

    def sample(self):
        if self._sample is None:
            n_train = min(self.n, max(65536, 64 * self.nlist))
            rng = np.random.default_rng(self.a.seed)
            self._sample = np.ascontiguousarray(self.base[np.sort(rng.choice(self.n, n_train, replace=False))])
        return self._sample

    def timed_build(self, index):
        f = self.faiss
        f.omp_set_num_threads(self.a.build_threads)
        t = time.perf_counter()
        if not index.is_trained:
            index.train(self.sample())
        index.add(self.base)
        secs = time.perf_counter() - t
        f.omp_set_num_threads(1)
        return secs

    def path(self, name):
        return os.path.join(self.cache_dir, f"{self.tag}_{name}.faissindex")

    def cached(self, name):
        p = self.path(name)
        side = p + ".json"
        if os.path.isfile(p) and os.path.isfile(side):
            try:
                with open(side) as f:
                    return json.load(f)
            except Exception as e:
                log(f"WARNING unreadable sidecar {side} ({e}); rebuilding")
        return None

    def save(self, index, name, build_seconds, **extra):
        p = self.path(name)
        tmp = p + ".tmp"
        self.faiss.write_index(index, tmp)
        os.replace(tmp, p)
        meta = dict(build_seconds=build_seconds, build_threads=self.a.build_threads,
                    system=self.system, created=time.strftime("%Y-%m-%dT%H:%M:%S"), **extra)
        with open(p + ".json", "w") as f:
            json.dump(meta, f)
        return meta

    # -- size estimates (for --max-resident-fraction before anything is built)

    def estimate_bytes(self, kind, m, refine):
        n, d = self.n, self.d
        coarse = self.nlist * d * 4
        if kind == "ivfpq":
            b = n * (m + 8) + coarse + 256 * d * 4
        else:  # fast-scan: 4-bit codes packed in blocks of 32 vectors per list
            b = n * (m // 2 + 8) + self.nlist * 16 * m + coarse + 16 * d * 4
        per = {"sq4": d / 2, "sq6": (d * 6 + 7) // 8, "sq8": d, "fp16": 2 * d, "flat": 4 * d}[refine]
        return int(b + n * per)

    # -- searching

    def search(self, label, name, index_name, fixed, sweep, build_meta):
        """Searches one saved index in a subprocess (one per --memory-limit-mb cap, under `quarry bench
        capped`; one uncapped without the flag) and emits its rows."""
        for cap in self.caps or [None]:
            self.search_child(label if cap is None else f"{label} cap={cap}MiB", name, index_name, fixed, sweep,
                              build_meta, cap)

    def search_child(self, label, name, index_name, fixed, sweep, build_meta, cap):
        a = self.a
        path = self.path(name)
        file_bytes = os.path.getsize(path)
        cold = False
        if a.cold:
            try:
                subprocess.run(["sync"], check=True)
                with open("/proc/sys/vm/drop_caches", "w") as f:
                    f.write("3\n")
                cold = True
            except Exception as e:
                log(f"WARNING could not drop the page cache ({e}); rows are marked cold=false")
        cmd = [sys.executable, os.path.abspath(__file__), "--search-only", path,
               "--base", a.base, "--query", a.query, "--gt", a.gt, "--metric", a.metric,
               "--k", str(self.k), "--queries", str(a.queries), "--calls", a.calls, "--sweep", json.dumps(sweep)]
        if cold:
            cmd.append("--cold")
        env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
        log(f"{label}: searching {len(sweep)} points ({file_bytes / 1e6:.1f} MB file"
            f"{', cold' if cold else ''}) ...")
        t = time.perf_counter()
        out = run_search_child(cmd, cap, env)
        capf = cap_fields(out, cap)
        if "results" not in out:  # killed for lack of memory under the cap
            row = dict(system=self.system, index=index_name, params=dict(fixed), k=self.k, threads=1,
                       recall=None, recall_plain=None, qps=None, p50_ms=None, p99_ms=None,
                       build_seconds=build_meta["build_seconds"],
                       build_threads=build_meta.get("build_threads", a.build_threads), index_bytes=file_bytes,
                       resident_bytes=None, resident_fraction=None, process_rss_bytes=None, rss_anon_bytes=None,
                       rss_file_bytes=None, baseline_rss_bytes=None, open_seconds=None, cold=cold,
                       queries=self.nq, calls=a.calls, mean_ms=None, **capf)
            emit(**row)
            log(f"{label}: killed for lack of memory (cgroup peak {(capf.get('cgroup_peak_bytes') or 0) / 1e6:.1f} MB)")
            self.summary.append((label, None, None, [row]))
            return
        mem = out["memory"]
        frac = mem["resident_bytes"] / self.raw_bytes
        rows = []
        for r in out["results"]:
            row = dict(system=self.system, index=index_name, params={**fixed, **r["point"]}, k=self.k,
                       threads=1, recall=r["recall"], recall_plain=r["recall"], qps=r["qps"],
                       p50_ms=r["p50_ms"], p99_ms=r["p99_ms"], build_seconds=build_meta["build_seconds"],
                       build_threads=build_meta.get("build_threads", a.build_threads),
                       index_bytes=file_bytes, resident_bytes=mem["resident_bytes"],
                       resident_fraction=frac, process_rss_bytes=mem["process_rss_bytes"],
                       rss_anon_bytes=mem["rss_anon_bytes"], rss_file_bytes=mem["rss_file_bytes"],
                       baseline_rss_bytes=mem["baseline_rss_bytes"], open_seconds=out["open_seconds"],
                       cold=cold, queries=self.nq, calls=a.calls, mean_ms=r["mean_ms"], **capf)
            emit(**row)
            rows.append(row)
        peak = f", cgroup peak {(capf.get('cgroup_peak_bytes') or 0) / 1e6:.1f} MB" if cap is not None else ""
        log(f"{label}: resident {mem['resident_bytes'] / 1e6:.1f} MB ({frac:.3f} of raw; anon "
            f"{mem['rss_anon_bytes'] / 1e6:.1f} MB, file {mem['rss_file_bytes'] / 1e6:.1f} MB{peak}), "
            f"open {out['open_seconds']:.2f}s, search {time.perf_counter() - t:.0f}s")
        self.summary.append((label, frac, mem["resident_bytes"], rows))

    # -- indexes

    def ivfflat(self):
        f = self.faiss
        name = f"ivfflat_nlist{self.nlist}"
        label = f"ivfflat nlist={self.nlist}"
        meta = self.cached(name)
        if meta is None:
            log(f"{label}: training + adding ...")
            quant = f.IndexFlat(self.d, self.metric)
            idx = f.IndexIVFFlat(quant, self.d, self.nlist, self.metric)
            secs = self.timed_build(idx)
            meta = self.save(idx, name, secs)
            del idx, quant
            log(f"{label}: built in {secs:.1f}s")
        else:
            log(f"{label}: cached (built in {meta['build_seconds']:.1f}s)")
        sweep = [{"nprobe": p} for p in ints(self.a.nprobe)]
        self.search(label, name, "ivfflat", {"nlist": self.nlist}, sweep, meta)

    def ivfpq_refine(self, fast_scan):
        f, a = self.faiss, self.a
        kind = "ivfpqfs" if fast_scan else "ivfpq"
        m = a.pqfs_m if fast_scan else a.pq_m
        nbits = 4 if fast_scan else 8
        if self.d % m:
            raise ValueError(f"d={self.d} is not a multiple of M={m}")
        refines = [r.strip() for r in a.refine.split(",") if r.strip()]
        bad = [r for r in refines if r not in REFINES]
        if bad:
            raise ValueError(f"unknown refine(s) {bad}; known: {', '.join(REFINES)}")
        base_idx, base_secs, quant = None, None, None
        sweep = [{"nprobe": p, "k_factor": kf} for p in ints(a.nprobe) for kf in ints(a.k_factor)]
        for ref in refines:
            label = f"{kind}+refine M={m} nbits={nbits} refine={ref}"
            name = f"{kind}_nlist{self.nlist}_M{m}_nb{nbits}_ref-{ref}"
            meta = self.cached(name)
            if a.max_resident_fraction is not None:
                est = os.path.getsize(self.path(name)) if meta else self.estimate_bytes(kind, m, ref)
                if est / self.raw_bytes > a.max_resident_fraction:
                    log(f"{label}: skipped, estimated size {est / self.raw_bytes:.3f} of raw > "
                        f"--max-resident-fraction {a.max_resident_fraction}")
                    continue
            try:
                if meta is None:
                    if base_idx is None:
                        bname = f"{kind}_nlist{self.nlist}_M{m}_nb{nbits}_base"
                        bmeta = self.cached(bname)
                        if bmeta is not None:
                            base_idx = f.read_index(self.path(bname))
                            base_secs = bmeta["build_seconds"]
                            log(f"{kind} M={m} nbits={nbits}: base index cached (built in {base_secs:.1f}s)")
                        else:
                            log(f"{kind} M={m} nbits={nbits}: training + adding ...")
                            quant = f.IndexFlat(self.d, self.metric)
                            if fast_scan:
                                base_idx = f.IndexIVFPQFastScan(quant, self.d, self.nlist, m, nbits, self.metric)
                            else:
                                base_idx = f.IndexIVFPQ(quant, self.d, self.nlist, m, nbits, self.metric)
                            base_secs = self.timed_build(base_idx)
                            self.save(base_idx, bname, base_secs)
                            log(f"{kind} M={m}: built in {base_secs:.1f}s")
                    qt = REFINES[ref]
                    if qt is None:
                        ridx = f.IndexFlat(self.d, self.metric)
                    else:
                        ridx = f.IndexScalarQuantizer(self.d, getattr(f.ScalarQuantizer, qt), self.metric)
                    rsecs = self.timed_build(ridx)
                    r = f.IndexRefine(base_idx, ridx)
                    meta = self.save(r, name, base_secs + rsecs, base_build_seconds=base_secs,
                                     refine_build_seconds=rsecs)
                    del r, ridx
                    log(f"{label}: refine built in {rsecs:.1f}s (total {base_secs + rsecs:.1f}s)")
                else:
                    log(f"{label}: cached (built in {meta['build_seconds']:.1f}s)")
                self.search(label, name, f"{kind}+refine",
                            {"nlist": self.nlist, "M": m, "nbits": nbits, "refine": ref}, sweep, meta)
            except Exception as e:
                log(f"WARNING {label} failed: {e!r}")
                traceback.print_exc(file=sys.stderr)
        del base_idx, quant

    def print_summary(self, target=0.95):
        log(f"summary (resident = measured RSS growth; raw f32 = {self.raw_bytes / 1e6:.1f} MB; "
            f"best QPS at recall >= {target}):")
        for label, frac, res, rows in self.summary:
            if frac is None:
                print(f"  {label:48s} killed for lack of memory", file=sys.stderr, flush=True)
                continue
            ok = [r for r in rows if r["recall"] >= target]
            best_rec = max(rows, key=lambda r: r["recall"]) if rows else None
            if ok:
                b = max(ok, key=lambda r: r["qps"])
                pts = {k: v for k, v in b["params"].items() if k in ("nprobe", "k_factor")}
                lat = f"p99={b['p99_ms']:.2f}ms" if b["p99_ms"] is not None else f"mean={b['mean_ms']:.3f}ms"
                what = f"qps={b['qps']:,.0f} recall={b['recall']:.4f} {lat} at {pts}"
            else:
                what = f"recall {target} not reached"
            mx = f"max recall {best_rec['recall']:.4f}" if best_rec else "no rows"
            print(f"  {label:48s} resident {res / 1e6:7.1f} MB ({frac:.3f})  {what}; {mx}",
                  file=sys.stderr, flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", required=True); ap.add_argument("--query", required=True)
    ap.add_argument("--gt", required=True); ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--metric", choices=["ip", "l2", "cos"], default="ip")
    ap.add_argument("--only", default=",".join(ALL_INDEXES), help="indexes to run, comma separated")
    ap.add_argument("--queries", type=int, default=2000, help="number of queries to time")
    ap.add_argument("--build-threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0, help="seed of the training sample")
    ap.add_argument("--nlist", type=int, default=0, help="IVF lists (default int(4*sqrt(N)))")
    ap.add_argument("--nprobe", default="8,16,32,64,128,256")
    ap.add_argument("--k-factor", default="2,4,8,16", help="refine k_factor sweep")
    ap.add_argument("--pq-m", type=int, default=48, help="IVF-PQ subquantizers (8-bit)")
    ap.add_argument("--pqfs-m", type=int, default=96, help="IVF-PQ fast-scan subquantizers (4-bit)")
    ap.add_argument("--refine", default="sq4,sq6,sq8,fp16,flat", help="refine indexes, comma separated")
    ap.add_argument("--max-resident-fraction", type=float, default=None,
                    help="skip configs whose estimated size / raw f32 bytes exceeds this (not IVF-Flat)")
    ap.add_argument("--cold", action="store_true", help="drop the page cache before each search process "
                    "and time the first pass without warm-up")
    ap.add_argument("--cache-dir", default="~/.cache/quarry/bench-indexes/peer-spann/")
    ap.add_argument("--calls", choices=["batch", "single"], default="batch",
                    help="batch: each timed pass is one search call with every query (faiss's own loop); "
                    "single: one Python call per query, with p50/p99 latencies")
    ap.add_argument("--memory-limit-mb", metavar="N[,N...]",
                    help="run each index's search subprocess under `$QUARRY_BIN bench capped --memory-limit-mb N` "
                    "(root), once per cap; rows get memory_limit_bytes, cgroup_peak_bytes, oom_killed")
    ap.add_argument("--search-only", metavar="FILE", help=argparse.SUPPRESS)  # internal: child process
    ap.add_argument("--sweep", help=argparse.SUPPRESS)  # internal: JSON list of sweep points
    a = ap.parse_args()

    if a.search_only:
        search_only(a)
        return

    only = [x.strip() for x in a.only.split(",") if x.strip()]
    unknown = [x for x in only if x not in ALL_INDEXES]
    if unknown:
        sys.exit(f"unknown index(es) {', '.join(unknown)}; known: {', '.join(ALL_INDEXES)}")
    if a.max_resident_fraction is not None:
        log(f"--max-resident-fraction {a.max_resident_fraction}: IVF-Flat is run regardless (reference)")
    t0 = time.perf_counter()
    run = Runner(a)
    failed = []
    for name in ALL_INDEXES:
        if name not in only:
            continue
        t = time.perf_counter()
        log(f"== {name}")
        try:
            if name == "ivfflat":
                run.ivfflat()
            else:
                run.ivfpq_refine(fast_scan=name.startswith("ivfpqfs"))
        except Exception as e:
            failed.append(name)
            log(f"WARNING {name} failed: {e!r}")
            traceback.print_exc(file=sys.stderr)
        log(f"== {name} done in {time.perf_counter() - t:.0f}s")
    run.print_summary()
    log(f"all done in {time.perf_counter() - t0:.0f}s" + (f"; failed: {', '.join(failed)}" if failed else ""))


if __name__ == "__main__":
    main()
