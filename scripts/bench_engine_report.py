#!/usr/bin/env python3
"""Renders the embedded-database benchmark (JSON rows of `quarry bench engine` and
scripts/peer_engine.py's qdrant-edge rows, mixed in one file as scripts/bench_engine.sh writes them)
as Markdown on stdout and a three-panel plot (one panel per filter selectivity: recall@10 vs p50
latency, one line per system) as --png (default ROWS.png).

Input rows (one JSON object per line; "system" is e.g. "quarry 0.1.0" or "qdrant-edge 0.9.0"):
  {"system", "op": "ingest", "n", "batch", "points_per_s", "index_seconds", "durability", ...}
      (Quarry adds ingest_seconds and build_threads; qdrant-edge adds convert_seconds,
      update_seconds, flush_seconds, index_threads_effective and more, see peer_engine.py)
  {"system", "op": "search", "selectivity", "ef", "k", "recall", "qps", "p50_ms", "p99_ms", "queries", ...}
  {"system", "op": "count", "selectivity", "p50_ms", "count", ...}
Other ops (e.g. Quarry's "open" row of a --reuse run) are ignored. Both systems must have rows.
When a system has several ingest rows the last one counts.

Summary: durable ingest points/s (ratio Quarry / qdrant-edge), index build seconds, per selectivity
the best search row -- the lowest p50 among the rows with recall@10 >= 0.95 (not interpolated) --
with the ratio qdrant-edge p50 / Quarry p50, and the count p50.

"Done when" (issue 6), each PASS or FAIL:
  1. Quarry's durable ingest points/s >= 1.5 x qdrant-edge's;
  2. at every selectivity, Quarry's best p50 at recall >= 0.95 <= qdrant-edge's best p50 at recall
     >= 0.95 (FAIL if Quarry never reaches 0.95 there; undecided -- not a PASS -- if only qdrant-edge
     never does: widen the ef sweep).

Usage: bench_engine_report.py ROWS.jsonl --data BASE_FILE [--command CMD]... [--png P] > REPORT.md
"""
import argparse, datetime, os, sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_plot import report_args, git_rev, machine, print_commands, read_rows, shape  # noqa: E402

TARGET_RECALL = 0.95
INGEST_TARGET = 1.5
FILTERS = {0.01: ("g100", 100), 0.1: ("g10", 10), 0.5: ("g2", 2)}
SYSTEMS = (("quarry", "Quarry"), ("qdrant-edge", "qdrant-edge"))


def which(system):
    """The key of SYSTEMS a row's system belongs to, or None."""
    s = system.lower()
    return next((key for key, _ in SYSTEMS if s.startswith(key)), None)


def sel_name(sel):
    field = FILTERS.get(sel, (None,))[0]
    pct = f"{sel * 100:g}%"
    return f"{pct} ({field} = 0)" if field else pct


def best(search_rows):
    """The row with the lowest p50 among those with recall >= TARGET_RECALL, or None."""
    ok = [r for r in search_rows if r["recall"] >= TARGET_RECALL]
    return min(ok, key=lambda r: r["p50_ms"]) if ok else None


def speed(peer_ms, quarry_ms):
    """Quarry's latency against the peer's, as "1.23× faster" / "1.10× slower"."""
    if not peer_ms or not quarry_ms:
        return "n/a"
    r = peer_ms / quarry_ms
    return f"{r:.2f}× faster" if r >= 1 else f"{1 / r:.2f}× slower"


def fmt_best(b, search_rows):
    if b is None:
        top = max((r["recall"] for r in search_rows), default=None)
        return "never reaches 0.95" + (f" (max recall {top:.3f})" if top is not None else "")
    return f"{b['p50_ms']:.3f} ms (ef {b['ef']}, recall {b['recall']:.3f})"


def build_threads(ing):
    t = ing.get("build_threads", ing.get("index_threads_effective"))
    return f", {t} threads" if t else ""


def load(path):
    data = {key: {"ingest": None, "search": {}, "count": {}, "system": None} for key, _ in SYSTEMS}
    others = set()
    for r in read_rows(path):
        key = which(r.get("system", ""))
        if key is None:
            others.add(r.get("system"))
            continue
        d = data[key]
        d["system"] = r["system"]
        op = r.get("op")
        if op == "ingest":
            d["ingest"] = r
        elif op == "search":
            d["search"].setdefault(r["selectivity"], []).append(r)
        elif op == "count":
            d["count"][r["selectivity"]] = r
    if others:
        print(f"warning: rows of other systems ignored: {sorted(map(str, others))}", file=sys.stderr)
    missing = [name for key, name in SYSTEMS if data[key]["system"] is None]
    if missing:
        raise SystemExit(f"{path}: no rows for {' and '.join(missing)} (run scripts/bench_engine.sh "
                         f"with the missing step; ONLY=quarry or ONLY=peer)")
    return data


def plot(data, sels, png, title):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import FormatStrFormatter
    except ImportError:
        print(f"warning: matplotlib missing: {png} not written", file=sys.stderr)
        return False
    fig, axes = plt.subplots(1, len(sels), figsize=(5 * len(sels), 4.5), squeeze=False)
    for ax, sel in zip(axes[0], sels):
        for (key, _), style in zip(SYSTEMS, (dict(lw=2.2, marker="o", zorder=3), dict(lw=1.4, marker="s"))):
            rs = sorted(data[key]["search"].get(sel, []), key=lambda r: r["ef"])
            if not rs:
                continue
            ax.plot([r["recall"] for r in rs], [r["p50_ms"] for r in rs], ms=4, label=data[key]["system"], **style)
            for r in rs:
                ax.annotate(f"{r['ef']}", (r["recall"], r["p50_ms"]), textcoords="offset points",
                            xytext=(3, 3), fontsize=6)
        ax.axvline(TARGET_RECALL, color="grey", lw=0.8, ls=":")
        recalls = [r["recall"] for key, _ in SYSTEMS for r in data[key]["search"].get(sel, [])]
        ax.set_xlim(min(recalls + [TARGET_RECALL]) - 0.005, 1.005)
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
        ax.yaxis.set_minor_formatter(FormatStrFormatter("%g"))
        ax.tick_params(axis="y", which="minor", labelsize=7)
        ax.set_xlabel("recall@10")
        ax.set_ylabel("p50 latency, ms (1 thread)")
        ax.set_title(f"filter {sel_name(sel)}")
        ax.grid(True, which="both", lw=0.3, alpha=0.5)
        ax.legend(fontsize=8)
    fig.suptitle(title + " (points labelled with ef)")
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    return True


def main():
    a = report_args(__doc__)
    png = a.png or os.path.splitext(a.rows)[0] + ".png"
    data = load(a.rows)
    q, p = data["quarry"], data["qdrant-edge"]
    sels = sorted(set(q["search"]) | set(p["search"]) | set(q["count"]) | set(p["count"]))

    dataset = os.path.basename(os.path.dirname(os.path.abspath(a.data)))
    shp = shape(a.data)
    size = f" ({shp[0]:,} × {shp[1]})" if shp and len(shp) == 2 else ""
    searches = [r for d in (q, p) for rs in d["search"].values() for r in rs]
    nq = sorted({r.get("queries") for r in searches if r.get("queries")})
    k = sorted({r.get("k") for r in searches if r.get("k")})
    n = next((d["ingest"]["n"] for d in (q, p) if d["ingest"]), None)

    print(f"# Embedded database: Quarry vs qdrant-edge ({dataset})\n")
    print(f"- Date: {datetime.date.today()}; Quarry at {git_rev()}; rows in `{os.path.basename(a.rows)}`")
    print(f"- Systems: {q['system']}, {p['system']}")
    print(f"- Data: `{a.data}`{size}, cosine; {'/'.join(map(str, nq)) or '?'} queries, "
          f"k = {'/'.join(map(str, k)) or '?'}" + (f"; {n:,} points ingested" if n else ""))
    print(f"- Machine: {machine()}")
    print("- Protocol (the same on both sides):")
    print("  - point i carries the payload `{\"g100\": i % 100, \"g10\": i % 10, \"g2\": i % 2}`, with payload "
          "indexes declared on g100, g10 and g2 before the ingest;")
    print("  - durable ingest in batches of 1,000 points, each fsynced before it is acknowledged (Quarry: "
          "WAL fsync per batch; qdrant-edge: WAL on + `flush()` after each batch); points/s covers the "
          "ingest only, the index build after it is timed apart;")
    print("  - filters g100 = 0 / g10 = 0 / g2 = 0, i.e. 1% / 10% / 50% of the points; k = 10; one query per "
          "call on a single thread; ids and scores only (no payloads returned) on both sides;")
    print("  - recall@10 against a brute force over the admitted points, the ground truth computed before "
          "any timing; count = exact count with the same filter (p50 of repeated calls).")
    print_commands(a.command)
    print()

    # ---- summary -----------------------------------------------------------------------------------
    qi, pi = q["ingest"], p["ingest"]
    print("| | Quarry | qdrant-edge | ratio |")
    print("|---|---|---|---|")
    ingest_ratio = None
    if qi and pi:
        ingest_ratio = qi["points_per_s"] / pi["points_per_s"]
    peer_ing = "n/a"
    if pi:
        peer_ing = f"{pi['points_per_s']:,.0f}"
        if all(x in pi for x in ("update_seconds", "flush_seconds")) and pi["update_seconds"] + pi["flush_seconds"] > 0:
            peer_ing += f" ({pi['n'] / (pi['update_seconds'] + pi['flush_seconds']):,.0f} without Python point conversion)"
    quarry_ing = f"{qi['points_per_s']:,.0f}" if qi else "n/a"
    batch = f" (batches of {(qi or pi)['batch']:,})" if (qi or pi) else ""
    ratio = f"{ingest_ratio:.2f}× (≥ {INGEST_TARGET}× required)" if ingest_ratio else "n/a"
    print(f"| durable ingest, points/s{batch} | {quarry_ing} | {peer_ing} | {ratio} |")
    qb = f"{qi['index_seconds']:.1f}{build_threads(qi)}" if qi else "n/a"
    pb = f"{pi['index_seconds']:.1f}{build_threads(pi)}" if pi else "n/a"
    br = f"{qi['index_seconds'] / pi['index_seconds']:.2f}× the time" if qi and pi and pi["index_seconds"] else "n/a"
    print(f"| index build, s | {qb} | {pb} | {br} |")
    bests = {}
    for sel in sels:
        qs, ps = q["search"].get(sel, []), p["search"].get(sel, [])
        bq, bp = best(qs), best(ps)
        bests[sel] = (bq, bp)
        ratio = speed(bp["p50_ms"], bq["p50_ms"]) if bq and bp else "n/a"
        print(f"| {sel_name(sel)}: best p50 at recall ≥ {TARGET_RECALL} | {fmt_best(bq, qs)} | {fmt_best(bp, ps)} | "
              f"{ratio} |")
    for sel in sels:
        qc, pc = q["count"].get(sel), p["count"].get(sel)
        cells = []
        for c, d in ((qc, q), (pc, p)):
            if c is None:
                cells.append("n/a")
                continue
            cell = f"{c['p50_ms']:.3f} ms"
            ing = d["ingest"]
            expected = c.get("expected")
            if expected is None and ing and sel in FILTERS:
                expected = -(-ing["n"] // FILTERS[sel][1])  # ids 0..n admitted by `field == 0`
            if expected is not None and c.get("count") != expected:
                cell += f" (**count {c.get('count')}, expected {expected}**)"
            cells.append(cell)
        ratio = speed(pc["p50_ms"], qc["p50_ms"]) if qc and pc else "n/a"
        print(f"| {sel_name(sel)}: count p50 | {cells[0]} | {cells[1]} | {ratio} |")
    print()
    print(f"Best p50: the lowest p50 among the measured ef values whose recall@10 is ≥ {TARGET_RECALL} (no "
          "interpolation). Ratios of latencies are qdrant-edge's / Quarry's, stated for Quarry.\n")

    # ---- done when ---------------------------------------------------------------------------------
    print("## Done when (issue 6)\n")
    verdicts = []
    if ingest_ratio is None:
        ok, why = False, "ingest rows missing"
    else:
        ok = ingest_ratio >= INGEST_TARGET
        why = f"{qi['points_per_s']:,.0f} vs {pi['points_per_s']:,.0f} points/s = {ingest_ratio:.2f}×"
    verdicts.append(ok)
    print(f"- **{'PASS' if ok else 'FAIL'}**: durable ingest ≥ {INGEST_TARGET}× qdrant-edge's ({why})")
    for sel in sels:
        bq, bp = bests[sel]
        if bq is None:
            ok, verdict = False, "FAIL"
            why = f"Quarry never reaches recall {TARGET_RECALL}"
        elif bp is None:
            ok, verdict = False, "UNDECIDED"
            why = f"qdrant-edge never reaches recall {TARGET_RECALL}; widen the ef sweep"
        else:
            ok = bq["p50_ms"] <= bp["p50_ms"]
            verdict = "PASS" if ok else "FAIL"
            why = f"{bq['p50_ms']:.3f} ms vs {bp['p50_ms']:.3f} ms, {speed(bp['p50_ms'], bq['p50_ms'])}"
        verdicts.append(ok)
        print(f"- **{verdict}**: filter {sel_name(sel)}, Quarry's best p50 at recall ≥ {TARGET_RECALL} ≤ "
              f"qdrant-edge's ({why})")
    if not sels:
        verdicts.append(False)
        print("- **FAIL**: no search rows")
    print(f"\nOverall: **{'PASS' if all(verdicts) else 'FAIL'}**.\n")

    # ---- every row ---------------------------------------------------------------------------------
    print("## Every search row\n")
    for sel in sels:
        print(f"### Filter {sel_name(sel)}\n")
        print("| system | ef | recall@10 | p50 ms | p99 ms | QPS |")
        print("|---|---|---|---|---|---|")
        for key, _ in SYSTEMS:
            for r in sorted(data[key]["search"].get(sel, []), key=lambda r: r["ef"]):
                print(f"| {r['system']} | {r['ef']} | {r['recall']:.4f} | {r['p50_ms']:.3f} | {r['p99_ms']:.3f} | "
                      f"{r['qps']:,.0f} |")
        print()

    if plot(data, sels, png, f"Quarry vs qdrant-edge, {dataset}{size}, k=10"):
        print(f"![recall@10 vs p50 latency per filter]({os.path.basename(png)})")


if __name__ == "__main__":
    main()
