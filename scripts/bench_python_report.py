#!/usr/bin/env python3
"""Markdown tables from the JSON lines of scripts/bench_python.py (stdout): every sweep point per
system, and QPS at recall@10 targets (linear interpolation in recall between the two sweep points
around the target; "n/a" if the sweep never brackets it) with the ratio of each system to hnswlib;
with --png, recall-QPS curves (single query and batch side by side).

Usage: python scripts/bench_python_report.py RUN.jsonl [--targets 0.90,0.95,0.97] [--png OUT.png]
"""

import argparse
import json
import sys
from collections import defaultdict


def at_recall(points, target):
    """QPS at `target` recall from (recall, qps) points, interpolated between the two points around
    it (sweep order, by ef); None if no pair brackets it."""
    pts = sorted(points)
    for (r0, q0), (r1, q1) in zip(pts, pts[1:]):
        if r0 <= target <= r1:
            if r1 == r0:
                return max(q0, q1)
            return q0 + (q1 - q0) * (target - r0) / (r1 - r0)
    return None


def fmt(x):
    return "n/a" if x is None else f"{x:,.0f}"


def plot(by, order, png):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"warning: matplotlib missing: {png} not written", file=sys.stderr)
        return
    ops = [op for op in ("single", "batch") if by[op]]
    fig, axes = plt.subplots(1, len(ops), figsize=(6.5 * len(ops), 4.8), squeeze=False)
    for ax, op in zip(axes[0], ops):
        for s in order:
            rs = sorted(by[op].get(s, []), key=lambda r: r["ef"])
            if not rs:
                continue
            style = dict(lw=2.2, marker="o", zorder=3) if s.startswith("quarry") else dict(lw=1.2, marker=".")
            ls = "--" if s.endswith("sq8") else "-"
            ax.plot([r["recall"] for r in rs], [r["qps"] for r in rs], ls=ls, ms=4, label=s, **style)
        ax.axvline(0.95, color="grey", lw=0.8, ls=":")
        ax.set_xlim(0.9, 1.0)
        ax.set_yscale("log")
        ax.set_xlabel("recall@10")
        ax.set_ylabel("queries per second" + (" (1 thread)" if op == "single" else " (2 threads)"))
        ax.set_title("single query from a Python loop" if op == "single" else "batch call")
        ax.grid(True, which="both", lw=0.3, alpha=0.5)
        ax.legend(fontsize=8)
    fig.suptitle("Quarry and peers from Python, wndict-384 (dashed: int8 codes + exact re-scoring)")
    fig.tight_layout()
    fig.savefig(png, dpi=110)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("run")
    ap.add_argument("--targets", default="0.90,0.95,0.97")
    ap.add_argument("--png")
    a = ap.parse_args()
    rows = [json.loads(line) for line in open(a.run) if line.strip()]
    targets = [float(t) for t in a.targets.split(",")]
    by = defaultdict(lambda: defaultdict(list))
    order = []
    for r in rows:
        if r.get("op") in ("single", "batch"):
            if r["system"] not in order:
                order.append(r["system"])
            by[r["op"]][r["system"]].append(r)
    for op, title in (("single", "Single query from a Python loop"), ("batch", "Batch (all queries in one call)")):
        systems = [s for s in order if s in by[op]]
        if not systems:
            continue
        print(f"### {title}: QPS at recall@10\n")
        print("| system | " + " | ".join(f"QPS @ {t:.2f}" for t in targets) + " | " +
              " | ".join(f"× hnswlib @ {t:.2f}" for t in targets) + " |")
        print("|---" * (1 + 2 * len(targets)) + "|")
        ref = {t: at_recall([(r["recall"], r["qps"]) for r in by[op].get("hnswlib", [])], t) for t in targets}
        for s in systems:
            q = {t: at_recall([(r["recall"], r["qps"]) for r in by[op][s]], t) for t in targets}
            ratios = [("n/a" if q[t] is None or not ref[t] else f"{q[t] / ref[t]:.2f}×") for t in targets]
            print(f"| {s} | " + " | ".join(fmt(q[t]) for t in targets) + " | " + " | ".join(ratios) + " |")
        print()
    for op in ("single", "batch"):
        systems = [s for s in order if s in by[op]]
        if not systems:
            continue
        efs = sorted({r["ef"] for s in systems for r in by[op][s]})
        print(f"### Every sweep point, {op}: recall@10 / QPS" + (" / p50 ms" if op == "single" else "") + "\n")
        print("| ef | " + " | ".join(systems) + " |")
        print("|---" * (1 + len(systems)) + "|")
        for ef in efs:
            cells = []
            for s in systems:
                r = next((x for x in by[op][s] if x["ef"] == ef), None)
                if r is None:
                    cells.append("—")
                elif op == "single":
                    cells.append(f"{r['recall']:.4f} / {r['qps']:,.0f} / {r['p50_ms']:.3f}")
                else:
                    cells.append(f"{r['recall']:.4f} / {r['qps']:,.0f}")
            print(f"| {ef} | " + " | ".join(cells) + " |")
        print()
    builds = [r for r in rows if r.get("op") == "build"]
    if builds:
        print("### Build (insert + index, seconds)\n")
        print("| " + " | ".join(r["system"] for r in builds) + " |")
        print("|---" * len(builds) + "|")
        print("| " + " | ".join(f"{r['seconds']:.1f}" for r in builds) + " |\n")
    if a.png:
        plot(by, order, a.png)
    for r in rows:
        if r.get("op") == "python_overhead":
            print(f"Python overhead ({r['collection']}): **{r['overhead_us']:.2f} µs** per query "
                  f"(Python loop {r['python_us']:.2f} µs, Rust loop {r['rust_us']:.2f} µs; median of "
                  f"{len(r['passes_python_us'])} alternating passes).\n")


if __name__ == "__main__":
    main()
