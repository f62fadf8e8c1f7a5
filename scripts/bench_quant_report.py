#!/usr/bin/env python3
"""Renders a quantized-index benchmark (JSON rows of `quarry bench ann --json` for quantized indexes,
scripts/peer_quant.py and shared/tools/peer_bench.py, mixed in one file) as Markdown on stdout and a
two-panel plot (recall–QPS Pareto frontiers; bytes per vector vs QPS at recall 0.95) as ROWS.png.

A configuration is every row sharing system, index and parameters other than the swept ones
(ef, nprobe, k_factor, rerank, qb). For each the report gives the resident bytes per vector (the
index's own memory over N, the base file's row count; `resident_bytes` when the row has it, else
`index_bytes` -- the float vectors used for re-scoring are memory-mapped, not resident), the code's
bits per dimension, the build time, and the best measured QPS among its rows reaching recall@k 0.90 /
0.95 / 0.99 (no interpolation; the sweep setting achieving it is shown), then the two "Done when"
checks of the quantization work:
  (a) best Quarry configuration with ≤ 4 bits/dim vs the best faiss IVF-PQ + refine configuration
      (fast-scan included), QPS at recall ≥ 0.95, target ≥ 1.5×;
  (b) best Quarry hnsw+sq8 / hnsw+rabitq QPS at recall ≥ 0.95 vs hnswlib's QPS at 0.95 (interpolated
      over its ef sweep, as bench_plot.py does), target ≥ 1.5×, with resident memory ≤ 40 % of
      Quarry's plain hnsw index.
Recall is plain |A ∩ G| / k for every system (`recall_plain` of Quarry's rows).

Usage: bench_quant_report.py ROWS.jsonl --data BASE_FILE [--command CMD]... [--title T] [--png P] > REPORT.md
"""
import argparse, datetime, json, math, os, sys
from collections import OrderedDict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_plot  # noqa: E402
from bench_plot import fmt_qps, git_rev, machine, plain, print_commands, qps_at, read_rows, shape  # noqa: E402

TARGETS = (0.90, 0.95, 0.99)
SWEEP_KEYS = ("ef", "nprobe", "k_factor", "rerank", "qb")
# Parameters describing the codes that have their own column (or repeat the index name): kept in the
# configuration key, left out of its label.
QUIET_KEYS = ("bits_per_dim", "code_bytes", "codes")
# Further keys left out of the short labels of the plot.
PLOT_QUIET_KEYS = QUIET_KEYS + ("efc", "nlist", "qtype", "storage", "seed")
CHECK_RECALL = 0.95
SPEEDUP_TARGET = 1.5
MEMORY_TARGET = 0.40
EPS = 1e-12


def is_quarry(system):
    return system.lower().startswith("quarry")


def is_hnswlib(system, index):
    return system.lower().startswith("hnswlib") or index == "hnswlib"


def is_faiss_ivfpq(system, index):
    """faiss IVF-PQ (+ refine), fast-scan included: index "faiss-ivfpq*" or a faiss row's "ivfpq*"."""
    if index.startswith("faiss-ivfpq"):
        return True
    return system.lower().startswith("faiss") and index.startswith("ivfpq")


def resident(r):
    return r.get("resident_bytes", r["index_bytes"])


def sweep_params(r):
    return OrderedDict((k, v) for k, v in r["params"].items() if k in SWEEP_KEYS)


def compact(params):
    return ",".join(f"{k}={v}" for k, v in params.items()) or "–"


def fmt_num(v):
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)


class Config:
    def __init__(self, system, index, fixed):
        self.system, self.index, self.fixed, self.rows = system, index, fixed, []

    @property
    def quarry(self):
        return is_quarry(self.system)

    def label(self, quiet=QUIET_KEYS, version=True):
        system = self.system if version else self.system.split()[0]
        fixed = ", ".join(f"{k}={fmt_num(v)}" for k, v in self.fixed.items() if k not in quiet)
        return f"{system} {self.index}" + (f" ({fixed})" if fixed else "")

    def short(self):
        return self.label(PLOT_QUIET_KEYS, version=False)

    def resident(self):
        return max(resident(r) for r in self.rows)

    def bits_per_dim(self):
        for r in self.rows:
            for v in (r.get("bits_per_dim"), r["params"].get("bits_per_dim")):
                if isinstance(v, (int, float)):
                    return float(v)
        return None

    def build_seconds(self):
        return self.rows[0].get("build_seconds", 0.0)

    def best(self, target):
        """(qps, row) of the fastest row with recall ≥ target, or None."""
        ok = [r for r in self.rows if plain(r) >= target - EPS]
        if not ok:
            return None
        r = max(ok, key=lambda r: r["qps"])
        return r["qps"], r

    def max_recall(self):
        return max(plain(r) for r in self.rows)

    def frontier(self):
        """Rows not dominated in both recall and QPS, by increasing recall."""
        pts = sorted(self.rows, key=lambda r: (-plain(r), -r["qps"]))
        front, best_qps = [], -1.0
        for r in pts:  # decreasing recall: keep a row when it is faster than every row of higher recall
            if r["qps"] > best_qps:
                front.append(r)
                best_qps = r["qps"]
        return front[::-1]


def group(rows):
    configs = OrderedDict()
    for r in rows:
        fixed = OrderedDict((k, v) for k, v in r["params"].items() if k not in SWEEP_KEYS)
        key = (r["system"], r["index"], json.dumps(fixed, sort_keys=True))
        if key not in configs:
            configs[key] = Config(r["system"], r["index"], fixed)
        configs[key].rows.append(r)
    # Quarry first, then the peers, each in order of appearance.
    return sorted(configs.values(), key=lambda c: not c.quarry)


def fmt_best(b):
    if b is None:
        return "n/a"
    q, r = b
    return f"{q:,.0f} ({compact(sweep_params(r))})"


def fmt_bpv(nbytes, n):
    if not n:
        return "–"
    v = nbytes / n
    return f"{v:,.0f}" if v >= 100 else f"{v:.1f}"


def fmt_bits(b):
    return "–" if b is None else f"{b:.3g}"


def hnswlib_curve(cfg):
    """(recall, qps) of hnswlib's ef sweep in ef order; rows repeating an ef are averaged."""
    by_ef = OrderedDict()
    for r in cfg.rows:
        by_ef.setdefault(r["params"].get("ef", 0), []).append(r)
    pts = []
    for ef in sorted(by_ef, key=lambda e: (e is None, e)):
        rs = by_ef[ef]
        pts.append((sum(plain(r) for r in rs) / len(rs), sum(r["qps"] for r in rs) / len(rs)))
    return pts, any(len(rs) > 1 for rs in by_ef.values())


def check_a(configs, n):
    print(f"### (a) codes ≤ 4 bits/dim: Quarry vs faiss IVF-PQ + refine at recall ≥ {CHECK_RECALL:.2f}\n")
    quarry = [(c, c.best(CHECK_RECALL)) for c in configs
              if c.quarry and c.bits_per_dim() is not None and c.bits_per_dim() <= 4 + EPS]
    faiss = [(c, c.best(CHECK_RECALL)) for c in configs if is_faiss_ivfpq(c.system, c.index)]
    q_ok = [(c, b) for c, b in quarry if b]
    f_ok = [(c, b) for c, b in faiss if b]
    qb = max(q_ok, key=lambda cb: cb[1][0]) if q_ok else None
    fb = max(f_ok, key=lambda cb: cb[1][0]) if f_ok else None
    print(f"| side | configuration | bits/dim | resident B/vector | best QPS @ recall ≥ {CHECK_RECALL:.2f} |")
    print("|---|---|---|---|---|")
    for side, pick, pool in (("Quarry, ≤ 4 bits/dim", qb, quarry), ("faiss IVF-PQ + refine", fb, faiss)):
        if pick:
            c, b = pick
            print(f"| {side} | {c.label()} | {fmt_bits(c.bits_per_dim())} | {fmt_bpv(c.resident(), n)} | "
                  f"{fmt_best(b)} |")
        else:
            why = "no configuration in the rows" if not pool else f"no configuration reaches {CHECK_RECALL:.2f}"
            print(f"| {side} | {why} | | | n/a |")
    if qb and fb:
        ratio = qb[1][0] / fb[1][0]
        verdict = "**PASS**" if ratio >= SPEEDUP_TARGET else "**FAIL**"
        print(f"| **Quarry / faiss** | | | | **{ratio:.2f}×** (target ≥ {SPEEDUP_TARGET}×): {verdict} |")
        print(f"\nDone when (a): {verdict.strip('*')} -- {ratio:.2f}× faiss IVF-PQ + refine's best QPS.\n")
    else:
        print(f"| **Quarry / faiss** | | | | n/a |")
        if qb and faiss:
            top = max(c.max_recall() for c, _ in faiss)
            why = (f"faiss IVF-PQ + refine never reaches {CHECK_RECALL:.2f} (max recall {top:.4f}) while "
                   f"Quarry does at {qb[1][0]:,.0f} QPS, so the ratio is unbounded")
        else:
            why = "one side is missing or never reaches the recall target"
        print(f"\nDone when (a): n/a -- {why}.\n")


def check_b(configs, n):
    print(f"### (b) Quarry hnsw+sq8 / hnsw+rabitq vs hnswlib at recall {CHECK_RECALL:.2f}, and memory\n")
    cands = [c for c in configs if c.quarry and c.index in ("hnsw+sq8", "hnsw+rabitq")]
    plains = [c for c in configs if c.quarry and c.index == "hnsw"]
    libs = [c for c in configs if is_hnswlib(c.system, c.index)]
    if not cands:
        print("No Quarry hnsw+sq8 or hnsw+rabitq rows: check (b) n/a.\n")
        return
    # The strongest hnswlib configuration at the target.
    lib, lib_at, averaged = None, (None, False), False
    for c in libs:
        pts, dup = hnswlib_curve(c)
        v = qps_at(pts, CHECK_RECALL)
        if v[0] is not None and (lib_at[0] is None or v[0] > lib_at[0]):
            lib, lib_at, averaged = c, v, dup
    if not libs:
        print("No hnswlib rows: the QPS half of (b) is n/a.\n")
    elif lib is None:
        print(f"hnswlib never reaches recall {CHECK_RECALL:.2f}: the QPS half of (b) is n/a.\n")
    else:
        note = "; rows repeating an ef averaged" if averaged else ""
        if not lib_at[1]:
            note += f"; a lower bound: its smallest ef already exceeds {CHECK_RECALL:.2f}"
        print(f"hnswlib reference: {lib.label()}, {fmt_qps(lib_at)} QPS at recall {CHECK_RECALL:.2f} "
              f"(interpolated over its ef sweep{note}).\n")
    if not plains:
        print("Quarry's plain `hnsw` row is missing from the rows: the memory half of (b) is n/a.\n")

    def plain_for(c):
        same = [p for p in plains if all(p.fixed.get(k) == c.fixed.get(k) for k in ("M", "efc"))]
        return (same or plains or [None])[0]

    print(f"| Quarry configuration | best QPS @ recall ≥ {CHECK_RECALL:.2f} | × hnswlib @ {CHECK_RECALL:.2f} | "
          f"resident MB | plain hnsw MB | memory ratio | verdict |")
    print("|---|---|---|---|---|---|---|")
    results = []
    for c in cands:
        b = c.best(CHECK_RECALL)
        p = plain_for(c)
        speed, speed_ok = "n/a", None
        if b and lib is not None:
            ratio = b[0] / lib_at[0]
            if lib_at[1]:
                speed, speed_ok = f"{ratio:.2f}×", ratio >= SPEEDUP_TARGET
            else:  # hnswlib's figure is a lower bound, so the ratio is an upper bound
                speed, speed_ok = f"≤ {ratio:.2f}×", (None if ratio >= SPEEDUP_TARGET else False)
        mem, mem_ok, pmb = "n/a", None, "missing"
        if p is not None:
            pbytes = p.rows[0]["index_bytes"]
            pmb = f"{pbytes / 1e6:.1f}"
            m = c.resident() / pbytes
            mem, mem_ok = f"{100 * m:.0f} %", m <= MEMORY_TARGET
        if b is None:
            verdict = f"FAIL (never reaches {CHECK_RECALL:.2f})"
        elif speed_ok is False or mem_ok is False:
            verdict = "FAIL"
        elif speed_ok and mem_ok:
            verdict = "PASS"
        else:
            verdict = "n/a"
        results.append((c, b, verdict))
        print(f"| {c.label()} | {fmt_best(b)} | {speed} | {c.resident() / 1e6:.1f} | {pmb} | {mem} | {verdict} |")
    print(f"\nTargets: ≥ {SPEEDUP_TARGET}× hnswlib's QPS at recall {CHECK_RECALL:.2f}, resident memory ≤ "
          f"{100 * MEMORY_TARGET:.0f} % of Quarry's plain hnsw index (same M/efc when present).")
    passing = [(c, b) for c, b, v in results if v == "PASS"]
    reached = [(c, b, v) for c, b, v in results if b]
    if passing:
        c, b = max(passing, key=lambda cb: cb[1][0])
        print(f"\nDone when (b): PASS -- {c.label()} at {fmt_best(b)}.\n")
    elif reached:
        c, b, v = max(reached, key=lambda cbv: cbv[1][0])
        word = "FAIL" if v.startswith("FAIL") else "n/a"
        print(f"\nDone when (b): {word} -- best is {c.label()} at {fmt_best(b)} ({v}).\n")
    else:
        print(f"\nDone when (b): FAIL -- no hnsw+sq8 / hnsw+rabitq configuration reaches {CHECK_RECALL:.2f}.\n")


def place_labels(fig, ax, marks):
    """Labels each (config, x, y) marker, moving a label up or down when it would overlap one placed."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    legend = ax.get_legend()
    placed = [legend.get_window_extent(renderer)] if legend else []
    axes_box = ax.get_window_extent(renderer)
    steps = [(6, 4), (6, -11), (6, 13), (6, -20), (6, 22), (6, -29), (6, 31), (-6, 4), (-6, -11)]
    for c, x, y in sorted(marks, key=lambda m: -m[2]):
        px = ax.transData.transform((x, y))[0]
        # Labels of markers in the right third of the axes go to their left, so they stay inside.
        right = px > axes_box.x0 + 0.66 * axes_box.width
        offsets = [(-dx, dy) for dx, dy in steps] if right else steps
        for dx, dy in offsets:
            t = ax.annotate(c.short(), (x, y), textcoords="offset points", xytext=(dx, dy), fontsize=7,
                            ha="left" if dx > 0 else "right", fontweight="bold" if c.quarry else "normal")
            box = t.get_window_extent(renderer).expanded(1.02, 1.1)
            if not any(box.overlaps(p) for p in placed):
                break
            t.remove()
        else:
            t = ax.annotate(c.short(), (x, y), textcoords="offset points", xytext=offsets[0], fontsize=7,
                            ha="left" if offsets[0][0] > 0 else "right")
            box = t.get_window_extent(renderer)
        placed.append(box)


def plot(configs, png, n, k, threads, title, recall_min):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("\n(matplotlib missing: no plot)")
        return False
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(16, 7.5))
    quarry_cfgs = [c for c in configs if c.quarry]
    peer_cfgs = [c for c in configs if not c.quarry]
    peer_palette = [plt.get_cmap("Dark2")(j) for j in range(8)] + [plt.get_cmap("Set1")(j) for j in range(9)]
    colors = {id(c): plt.get_cmap("tab10")(i % 10) for i, c in enumerate(quarry_cfgs)}
    colors.update({id(c): peer_palette[i % len(peer_palette)] for i, c in enumerate(peer_cfgs)})
    for c in quarry_cfgs + peer_cfgs:
        front = c.frontier()
        style = (dict(lw=2.6, marker="o", ms=5, zorder=4) if c.quarry
                 else dict(lw=1.2, ls="--", marker=".", ms=6, zorder=2))
        ax.plot([plain(r) for r in front], [r["qps"] for r in front], color=colors[id(c)], label=c.short(), **style)
    for t in TARGETS:
        ax.axvline(t, color="grey", lw=0.6, ls=":")
    lo = max(recall_min, min((plain(r) for c in configs for r in c.rows), default=recall_min) - 0.005)
    ax.set_xlim(lo, 1.002)
    ax.set_yscale("log")
    cut = any(plain(r) < lo for c in configs for r in c.frontier())
    ax.set_xlabel(f"recall@{k} (plain)" + (f"; points below {lo:.2f} cut off (--recall-min)" if cut else ""))
    ax.set_ylabel(f"queries / s ({threads} thread(s), one query per call)")
    ax.set_title("Pareto frontier of each configuration (bold: Quarry)")
    ax.grid(True, which="both", lw=0.3, alpha=0.5)

    # Right: memory vs speed at the check's recall.
    scale = n if n else 1e6
    marks = []
    for c in configs:
        b = c.best(CHECK_RECALL)
        if not b:
            continue
        x = c.resident() / scale
        style = (dict(marker="*", s=220, edgecolor="black", linewidth=0.6, zorder=4) if c.quarry
                 else dict(marker="o", s=60, zorder=3))
        bx.scatter([x], [b[0]], color=colors[id(c)], **style)
        marks.append((c, x, b[0]))
    libs = [c for c in configs if is_hnswlib(c.system, c.index)]
    lib_q = max((qps_at(hnswlib_curve(c)[0], CHECK_RECALL)[0] or 0 for c in libs), default=0)
    if lib_q:
        bx.axhline(SPEEDUP_TARGET * lib_q, color="firebrick", lw=0.8, ls=":",
                   label=f"{SPEEDUP_TARGET}× hnswlib @ {CHECK_RECALL:.2f} ({SPEEDUP_TARGET * lib_q:,.0f} QPS)")
    plains = [c for c in configs if c.quarry and c.index == "hnsw"]
    if plains:
        x40 = MEMORY_TARGET * plains[0].rows[0]["index_bytes"] / scale
        bx.axvline(x40, color="navy", lw=0.8, ls=":",
                   label=f"{100 * MEMORY_TARGET:.0f} % of Quarry plain hnsw ({x40:,.0f})")
    bx.set_xscale("log")
    bx.set_yscale("log")
    bx.set_xlabel("resident bytes per vector" if n else "resident MB")
    bx.set_ylabel(f"best QPS at recall@{k} ≥ {CHECK_RECALL:.2f}")
    bx.set_title(f"Memory vs speed at recall ≥ {CHECK_RECALL:.2f} (★ Quarry)")
    bx.grid(True, which="both", lw=0.3, alpha=0.5)
    bx.margins(x=0.15, y=0.15)
    if lib_q or plains:
        bx.legend(fontsize=8, loc="lower right")
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=8, frameon=False)
    fig.suptitle(title, fontsize=12)
    rows_legend = math.ceil(len(labels) / 3)
    fig.tight_layout(rect=(0, min(0.4, 0.035 * rows_legend + 0.02), 1, 0.96))
    place_labels(fig, bx, marks)  # after the layout, which moves the axes
    fig.savefig(png, dpi=110)
    plt.close(fig)
    return True


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("rows")
    ap.add_argument("--data", required=True, help="base vector file (named in the report; N from its shape)")
    ap.add_argument("--command", action="append", default=[], help="command line to list (repeatable)")
    ap.add_argument("--png", help="plot path (default: ROWS with .png)")
    ap.add_argument("--title", default="Quantized indexes: recall, QPS and memory of Quarry and its peers")
    ap.add_argument("--recall-min", type=float, default=0.8, help="left end of the recall axis of the plot")
    a = ap.parse_args()
    rows = read_rows(a.rows)
    configs = group(rows)
    png = a.png or os.path.splitext(a.rows)[0] + ".png"
    shp = shape(a.data)
    n = shp[0] if shp else None
    size = f" ({shp[0]:,} × {shp[1]})" if shp and len(shp) == 2 else " (shape unknown: bytes per vector n/a)"

    def values(key):
        vs = sorted({r[key] for r in rows})
        return ", ".join(str(v) for v in vs)

    k = rows[0]["k"]
    threads = values("threads")
    print(f"# {a.title}\n")
    print(f"- Date: {datetime.date.today()}; Quarry at {git_rev()}; rows in `{os.path.basename(a.rows)}`")
    print(f"- Data: `{a.data}`{size}; {values('queries')} queries, k = {values('k')}, search threads: {threads}, "
          "one query per call, median of 3 timed passes")
    print(f"- Machine: {machine()}")
    print_commands(a.command)
    print()

    print("## Configurations\n")
    heads = " | ".join(f"best QPS @ recall ≥ {t:.2f}" for t in TARGETS)
    print(f"| configuration | bits/dim | resident B/vector | build s | {heads} | max recall@{k} |")
    print("|---|" + "---|" * (len(TARGETS) + 4))
    for c in configs:
        name = f"**{c.label()}**" if c.quarry else c.label()
        cells = " | ".join(fmt_best(c.best(t)) for t in TARGETS)
        print(f"| {name} | {fmt_bits(c.bits_per_dim())} | {fmt_bpv(c.resident(), n)} | {c.build_seconds():.1f} | "
              f"{cells} | {c.max_recall():.4f} |")
    print(f"\nA configuration is one system, index and set of build parameters; its rows sweep "
          f"{', '.join(SWEEP_KEYS)}. \"Best QPS\" is the fastest measured row reaching the recall (not "
          f"interpolated), with the sweep setting that achieves it; n/a when no row does. Resident bytes are "
          f"the index's own memory (codes, quantizer, graph) over N = {f'{n:,}' if n else '?'}: the float "
          f"vectors used for re-scoring are memory-mapped by Quarry and excluded from the peers' figure too "
          f"(`resident_bytes`); rows without it count `index_bytes` (hnswlib: peer_bench.py's estimate; faiss: "
          f"its serialised size). Recall is plain |A ∩ G|/{k} for every system.\n")

    print("## Done when\n")
    check_a(configs, n)
    check_b(configs, n)

    print("## Every row\n")
    print(f"| configuration | sweep | recall@{k} | QPS | resident MB | on frontier |")
    print("|---|---|---|---|---|---|")
    for c in configs:
        front = {id(r) for r in c.frontier()}
        for r in c.rows:
            print(f"| {c.label()} | {compact(sweep_params(r))} | {plain(r):.4f} | {r['qps']:,.1f} | "
                  f"{resident(r) / 1e6:.1f} | {'✓' if id(r) in front else ''} |")

    if plot(configs, png, n, k, threads, a.title, a.recall_min):
        print(f"\n![recall–QPS frontiers and memory]({os.path.basename(png)})")


if __name__ == "__main__":
    main()
