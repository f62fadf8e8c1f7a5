#!/usr/bin/env python3
"""Renders an ANN sweep benchmark (JSON rows of `quarry bench ann --sweep` and peer_bench.py) as
Markdown on stdout, and a recall–QPS plot (one line per system, QPS on a log scale) as ROWS.png.

The table gives, per system, the QPS at recall@k 0.90 / 0.95 / 0.99, linearly interpolated in recall
between neighbouring sweep points ("n/a" when the sweep never reaches the target; "≥ x" when even the
smallest setting is above it, so only a lower bound is known), the build time, the index size, and
the ratio of Quarry's QPS to hnswlib's at each target.

Recall here is plain |A ∩ G| / k for every system (`recall_plain` of Quarry's rows, `recall` of the
peers'), so every curve uses the same formula; Quarry's tie-aware recall is listed beside it.

Usage: bench_plot.py ROWS.jsonl --data BASE_FILE [--command CMD]... > REPORT.md
"""
import argparse, datetime, json, os, platform, subprocess, sys
from collections import OrderedDict

TARGETS = (0.90, 0.95, 0.99)
SWEEP_KEYS = ("ef", "nprobe")


def plain(r):
    return r.get("recall_plain", r["recall"])


def sweep_value(r):
    return next((r["params"][k] for k in SWEEP_KEYS if k in r["params"]), None)


def label(r):
    """System name plus the build parameters (everything but the swept one)."""
    fixed = ", ".join(f"{k}={v}" for k, v in r["params"].items() if k not in SWEEP_KEYS)
    cap = r.get("memory_limit_bytes")
    capped = f" [capped at {cap / 2**20:,.0f} MiB]" if cap and cap < 2**35 else ""
    return f"{r['system']} {r['index']}" + (f" ({fixed})" if fixed else "") + capped


def qps_at(points, target):
    """(qps, exact?) at recall `target` on a sweep given in sweep order as (recall, qps) pairs.

    The first segment whose recall crosses the target is interpolated linearly in recall; a point
    exactly at the target is taken as is. (None, False) if the target is never reached; (q, False)
    with q the QPS of the fastest point above it when every point is above it (a lower bound)."""
    if not points or max(r for r, _ in points) < target:
        return None, False
    if all(r >= target for r, _ in points):
        return max(q for r, q in points), False
    for (r0, q0), (r1, q1) in zip(points, points[1:]):
        if r0 == target:
            return q0, True
        if r0 < target <= r1:
            return q0 + (q1 - q0) * (target - r0) / (r1 - r0), True
    return next(q for r, q in points if r >= target), True


def fmt_qps(v):
    q, exact = v
    if q is None:
        return "n/a"
    return f"{q:,.0f}" if exact else f"≥ {q:,.0f}"


def fmt_ratio(num, den):
    (a, ea), (b, eb) = num, den
    if a is None or b is None or (not ea and not eb):
        return "n/a"
    if ea and eb:
        return f"{a / b:.2f}×"
    # A lower bound in the numerator bounds the ratio from below, in the denominator from above.
    return f"≥ {a / b:.2f}×" if not ea else f"≤ {a / b:.2f}×"


def shape(path):
    """(rows, dim) of a .npy or .fvecs/.bvecs file, or None."""
    try:
        if path.endswith(".npy"):
            import numpy as np
            return tuple(np.load(path, mmap_mode="r").shape)
        with open(path, "rb") as f:
            dim = int.from_bytes(f.read(4), "little")
        width = 1 if path.endswith(".bvecs") else 4
        return os.path.getsize(path) // (4 + dim * width), dim
    except Exception:
        return None


def machine():
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB RAM, {platform.system()} {platform.machine()}"


def git_rev():
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True).stdout.strip()
        return rev + (" + uncommitted changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def read_rows(path):
    """The JSON rows of a JSONL file; lines that do not parse (a run still writing) are skipped with
    a warning; no rows at all is an error."""
    rows = []
    for i, line in enumerate(open(path), 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            print(f"warning: {path}:{i} is not JSON (a run still writing?); skipped", file=sys.stderr)
    if not rows:
        raise SystemExit(f"{path} holds no rows")
    return rows


def print_commands(commands):
    """The report header's list of commands (nothing without any)."""
    if commands:
        print("- Commands:")
        for c in commands:
            print(f"  - `{c}`")


def report_args(doc):
    """The arguments every report script takes: ROWS, --data, --command (repeatable), --png."""
    ap = argparse.ArgumentParser(description=doc.split("\n")[0])
    ap.add_argument("rows")
    ap.add_argument("--data", required=True, help="base vector file (named in the report)")
    ap.add_argument("--command", action="append", default=[], help="command line to list (repeatable)")
    ap.add_argument("--png", help="plot path (default: ROWS with .png)")
    return ap.parse_args()


def main():
    a = report_args(__doc__)
    rows = [json.loads(l) for l in open(a.rows) if l.strip()]
    # Capped runs the kernel killed (or that timed out) carry no recall: listed apart, not plotted.
    killed = [r for r in rows if r.get("qps") is None]
    rows = [r for r in rows if r.get("qps") is not None]
    if not rows:
        raise SystemExit(f"{a.rows} holds no rows")
    systems = OrderedDict()
    for r in rows:
        systems.setdefault(label(r), []).append(r)
    curves = {name: [(plain(r), r["qps"]) for r in rs] for name, rs in systems.items()}
    at = {name: [qps_at(c, t) for t in TARGETS] for name, c in curves.items()}
    quarry = next((n for n in systems if n.startswith("quarry")), None)
    hnswlib = next((n for n in systems if n.startswith("hnswlib")), None)
    k = rows[0]["k"]
    png = a.png or os.path.splitext(a.rows)[0] + ".png"

    shp = shape(a.data)
    size = f" ({shp[0]:,} × {shp[1]})" if shp and len(shp) == 2 else ""
    first = rows[0]
    print(f"# HNSW: recall–QPS of Quarry and its peers\n")
    print(f"- Date: {datetime.date.today()}; Quarry at {git_rev()}; rows in `{os.path.basename(a.rows)}`")
    print(f"- Data: `{a.data}`{size}; {first['queries']} queries, k = {k}, search threads: {first['threads']}, "
          "one query per call, median of 3 timed passes")
    print(f"- Machine: {machine()}")
    print_commands(a.command)
    print()

    heads = " | ".join(f"QPS @ recall {t:.2f}" for t in TARGETS)
    print(f"| system | {heads} | max recall@{k} | build s | index MB |")
    print("|---|" + "---|" * (len(TARGETS) + 3))
    for name, rs in systems.items():
        cells = " | ".join(fmt_qps(v) for v in at[name])
        print(f"| {name} | {cells} | {max(plain(r) for r in rs):.4f} | {rs[0]['build_seconds']:.1f} | "
              f"{rs[0]['index_bytes'] / 1e6:.1f} |")
    for name in (n for n in systems if n.startswith("quarry")) if hnswlib else ():
        cells = " | ".join(fmt_ratio(q, h) for q, h in zip(at[name], at[hnswlib]))
        build = systems[name][0]["build_seconds"] / max(systems[hnswlib][0]["build_seconds"], 1e-9)
        build = f"{build:.2f}× the time" if systems[name][0]["build_seconds"] > 0 else "(loaded)"
        mem = systems[name][0]["index_bytes"] / max(systems[hnswlib][0]["index_bytes"], 1)
        short = name.removeprefix("quarry ").split(" (")[0]
        extra = name[len("quarry ") + len(short):]
        print(f"| **Quarry {short} / hnswlib**{extra} | {cells} | | {build} | {mem:.2f}× the bytes |")
    print()
    print(f"QPS at a recall target is interpolated linearly in recall between the two sweep points around it; "
          f"\"≥\" marks a lower bound (the smallest ef already exceeds the target), n/a a target the sweep never "
          f"reaches. Recall is plain |A ∩ G|/{k} for every system. Build time and size are as each library "
          f"reports them (hnswlib's size is peer_bench.py's estimate; faiss's its serialised size).\n")

    for r in killed:
        what = "killed for lack of memory" if r.get("oom_killed") else "timed out"
        cap = r.get("memory_limit_bytes") or 0
        words = r.get("command", "").split()
        index = words[words.index("--index") + 1] if "--index" in words[:-1] else r.get("index", "")
        mode = " codes only" if "--no-rescore" in words else ""
        print(f"- {r.get('system', 'quarry')} {index}{mode}: {what} at a cap of {cap / 2**20:,.0f} MiB "
              f"(peak {(r.get('cgroup_peak_bytes') or 0) / 1e6:,.1f} MB); no rows\n")

    print("## Every sweep point\n")
    print(f"| system | ef | recall@{k} | tie-aware recall@{k} | QPS |")
    print("|---|---|---|---|---|")
    for name, rs in systems.items():
        for r in rs:
            tie = f"{r['recall']:.4f}" if "recall_plain" in r else "–"
            print(f"| {name} | {sweep_value(r)} | {plain(r):.4f} | {tie} | {r['qps']:,.1f} |")

    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("\n(matplotlib missing: no plot)")
        return
    fig, ax = plt.subplots(figsize=(8, 5))
    for name, rs in systems.items():
        style = dict(lw=2.2, zorder=3) if name == quarry else dict(lw=1.4)
        ax.plot([plain(r) for r in rs], [r["qps"] for r in rs], marker="o", ms=4, label=name, **style)
        if name == quarry:
            for r in rs:
                ax.annotate(f"ef={sweep_value(r)}", (plain(r), r["qps"]), textcoords="offset points",
                            xytext=(4, 4), fontsize=7)
    for t in TARGETS:
        ax.axvline(t, color="grey", lw=0.6, ls=":")
    ax.set_yscale("log")
    ax.set_xlabel(f"recall@{k}")
    ax.set_ylabel(f"queries / s ({first['threads']} thread, one query per call)")
    ax.set_title(f"HNSW, {os.path.basename(os.path.dirname(os.path.abspath(a.data)))}{size}, k={k}")
    ax.grid(True, which="both", lw=0.3, alpha=0.5)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    print(f"\n![recall–QPS]({os.path.basename(png)})")


if __name__ == "__main__":
    main()
