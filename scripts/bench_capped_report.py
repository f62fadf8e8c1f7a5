#!/usr/bin/env python3
"""Markdown tables of scripts/bench_capped.sh's rows: for every system and configuration, at each
memory cap (and uncapped), the best QPS among sweep points reaching recall@10 >= 0.95 (else the
highest recall reached, marked), the recall there, and the cgroup's peak (anonymous memory plus
page cache). "killed" means the kernel killed the search for lack of memory at that cap.

Usage: bench_capped_report.py ROWS.jsonl RAW_BYTES
"""
import json
import sys
from collections import defaultdict

TARGET = 0.95


def label(r):
    if "config" in r:
        return f"Quarry {r['config']}"
    system = r.get("system", "?").split()[0]
    p = r.get("params") or {}
    extra = ", ".join(f"{k}={p[k]}" for k in ("refine", "M", "m") if k in p)
    return f"{system} {r.get('index', '?')}" + (f" ({extra})" if extra else "")


def main():
    rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip().startswith("{")]
    raw = int(sys.argv[2])
    # A cap of 16 GiB or more never binds here: it is the measured "uncapped" run.
    for r in rows:
        if (r.get("memory_limit_bytes") or 0) >= 16 << 30:
            r["memory_limit_bytes"] = None
    caps = sorted({r["memory_limit_bytes"] for r in rows if r.get("memory_limit_bytes")})
    cells = defaultdict(list)
    for r in rows:
        cells[(label(r), r.get("memory_limit_bytes"))].append(r)
    systems = sorted({k[0] for k in cells}, key=lambda s: (not s.startswith("Quarry"), s))

    def cell(rs):
        if any(r.get("oom_killed") for r in rs) and not any(r.get("qps") for r in rs):
            return "killed", ""
        ok = [r for r in rs if r.get("qps") and r.get("recall") is not None]
        if not ok:
            return "—", ""
        peak = max((r.get("cgroup_peak_bytes") or 0) for r in ok)
        hit = [r for r in ok if r["recall"] >= TARGET]
        if hit:
            best = max(hit, key=lambda r: r["qps"])
            text = f"{best['qps']:,.0f} @ {best['recall']:.3f}"
        else:
            best = max(ok, key=lambda r: r["recall"])
            text = f"{best['qps']:,.0f} @ {best['recall']:.3f} (max recall)"
        return text, (f"{peak / 1e6:.0f}" if peak else "")

    head = ["system / index", "uncapped"] + [f"{c / 1048576:.0f} MiB ({100 * c / raw:.0f}%)" for c in caps]
    print(f"QPS at recall@10 >= {TARGET} (best sweep point; else the highest recall reached), and the cgroup's peak in MB:\n")
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for s in systems:
        out = [s]
        for c in [None] + caps:
            text, peak = cell(cells.get((s, c), []))
            out.append(text + (f", peak {peak} MB" if peak else ""))
        print("| " + " | ".join(out) + " |")
    print()
    # Ratios at each cap: Quarry's best against the best peer that reaches the target.
    print("Best Quarry configuration against the best peer at recall >= 0.95, per cap (QPS ratio):\n")
    print("| cap | Quarry | peer | ratio |")
    print("|---|---|---|---|")
    for c in [None] + caps:
        def best(pred):
            cands = [(r["qps"], k[0]) for k, rs in cells.items() if k[1] == c and pred(k[0])
                     for r in rs if r.get("qps") and (r.get("recall") or 0) >= TARGET]
            return max(cands) if cands else None
        q = best(lambda s: s.startswith("Quarry"))
        p = best(lambda s: not s.startswith("Quarry"))
        name = "uncapped" if c is None else f"{c / 1048576:.0f} MiB ({100 * c / raw:.0f}%)"
        qs = f"{q[1]}: {q[0]:,.0f}" if q else "none reaches 0.95"
        ps = f"{p[1]}: {p[0]:,.0f}" if p else "none reaches 0.95 (killed or below)"
        ratio = f"{q[0] / p[0]:.2f}×" if q and p else "—"
        print(f"| {name} | {qs} | {ps} | {ratio} |")


if __name__ == "__main__":
    main()
