#!/usr/bin/env python3
"""Renders the SPANN benchmark (JSON rows of `quarry bench ann --index spann`, Quarry's hnsw rows with
`quarry bench open`'s memory merged in, and scripts/peer_spann.py's faiss rows, mixed in one file, as
scripts/bench_spann.sh writes them) as Markdown on stdout and a three-panel plot as ROWS.png:
recall vs QPS, recall vs p99 latency, and resident memory (MB, log) vs the best QPS at recall >= 0.95.

A configuration is every row sharing system, index, build parameters and "cold" (the swept search
parameters -- max_postings, ratio, head_ef, rerank, heads, ef, nprobe, k_factor -- vary within it).
Resident memory is `resident_bytes`, measured by the OS (VmRSS growth of a process that only opens the
index and searches); a row without it falls back on `index_bytes`, flagged "(estimate)". A
configuration's resident figure is the largest of its rows (Quarry measures every sweep point; faiss
once per index). "Best QPS" is the fastest measured row reaching the recall (not interpolated), shown
with its p50 / p99 latency and sweep setting. Recall is plain |A ∩ G| / k for every system.

"Done when" (single-threaded, k = 10):
  1. Quarry SPANN: the fastest warm row with recall >= 0.95 and resident <= 15 % of the raw f32 bytes;
  2. faiss IVF-PQ + refine (8-bit and 4-bit fast-scan): the fastest warm row with recall >= 0.95 among
     configurations whose resident <= that Quarry row's resident; the ratio must be >= 2x. If none reaches
     0.95 at that memory, its max recall there is given. The best faiss IVF-PQ + refine at any memory is
     compared too;
  3. cold-cache rows present; 4. build seconds (with threads) of Quarry SPANN vs faiss IVF-PQ.

Usage: bench_spann_report.py ROWS.jsonl --data BASE_FILE [--command CMD]... [--png P] > REPORT.md
"""
import argparse, datetime, json, os, sys
from collections import OrderedDict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_plot import git_rev, machine, plain, print_commands, read_rows, shape  # noqa: E402
from bench_quant_report import place_labels  # noqa: E402

SWEEP_KEYS = ("max_postings", "ratio", "head_ef", "rerank", "heads", "ef", "nprobe", "k_factor")
# SPANN build parameters left out of labels (the head graph's, defaults, or repeated by other keys).
SPANN_QUIET_KEYS = ("head_count", "efc", "M", "replicas", "cache_mb", "code_bits")
TARGET_RECALL = 0.95
MEMORY_FRACTION = 0.15
SPEEDUP_TARGET = 2.0
EPS = 1e-12


def is_quarry(system):
    return system.lower().startswith("quarry")


def family(system, index):
    """The system a configuration belongs to, for tables and colours."""
    if is_quarry(system):
        return f"Quarry {index}"
    if index == "ivfflat":
        return "faiss IVF-Flat"
    if index == "ivfpqfs+refine":
        return "faiss IVF-PQ fast-scan + refine"
    if index.startswith("ivfpq"):
        return "faiss IVF-PQ + refine"
    return f"{system.split()[0]} {index}"


def is_faiss_ivfpq(cfg):
    return cfg.system.lower().startswith("faiss") and cfg.index.startswith("ivfpq")


def resident(r):
    return r["resident_bytes"] if "resident_bytes" in r else r.get("index_bytes", 0)


def measured(r):
    return "resident_bytes" in r


def sweep_params(r):
    return OrderedDict((k, v) for k, v in r["params"].items() if k in SWEEP_KEYS)


def compact(params):
    return ", ".join(f"{k}={fmt_num(v)}" for k, v in params.items()) or "–"


def fmt_num(v):
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def mb(b):
    return f"{b / 1e6:,.1f}"


class Config:
    def __init__(self, system, index, fixed, cold):
        self.system, self.index, self.fixed, self.cold, self.rows = system, index, fixed, cold, []

    @property
    def quarry(self):
        return is_quarry(self.system)

    @property
    def family(self):
        return family(self.system, self.index)

    def label(self, version=True):
        system = self.system if version else self.system.split()[0]
        fixed = OrderedDict(self.fixed)
        if self.index == "spann":
            bits = fixed.get("code_bits")
            if fixed.get("codes") == "rabitq" and isinstance(bits, (int, float)):
                fixed["codes"] = f"rabitq{bits:g}"  # as --params spells it
            if not fixed.get("ram_codes"):
                fixed.pop("ram_codes", None)
            fixed = OrderedDict((k, v) for k, v in fixed.items() if k not in SPANN_QUIET_KEYS)
        text = ", ".join(f"{k}={fmt_num(v)}" for k, v in fixed.items())
        return f"{system} {self.index}" + (f" ({text})" if text else "")

    def short(self):
        """A few words for the memory panel's marker labels."""
        f = self.fixed
        if self.index == "spann":
            bits = f.get("code_bits")
            codes = f.get("codes", "f32")
            if codes == "rabitq" and isinstance(bits, (int, float)):
                codes = f"rabitq{bits:g}"
            return f"spann {codes}"
        if self.index.startswith("ivfpq"):
            return f"{self.index} {f.get('refine', '')}".strip()
        return self.index

    def build_key(self):
        """Configurations built once and run warm and cold share this."""
        return (self.system, self.index, json.dumps(self.fixed, sort_keys=True))

    def resident(self):
        return max(resident(r) for r in self.rows)

    def measured(self):
        return all(measured(r) for r in self.rows)

    def best(self, target=TARGET_RECALL, max_resident=None):
        ok = [r for r in self.rows if plain(r) >= target - EPS
              and (max_resident is None or resident(r) <= max_resident)]
        return max(ok, key=lambda r: r["qps"]) if ok else None

    def max_recall(self):
        return max(plain(r) for r in self.rows)

    def frontier(self, key="qps", higher=True):
        """Rows not dominated in recall and `key` (QPS: higher is better; latency: lower), by recall."""
        pts = sorted(self.rows, key=lambda r: (-plain(r), -r[key] if higher else r[key]))
        front, best = [], None
        for r in pts:
            v = r[key]
            if best is None or (v > best if higher else v < best):
                front.append(r)
                best = v
        return front[::-1]


def group(rows):
    configs = OrderedDict()
    for r in rows:
        fixed = OrderedDict((k, v) for k, v in r["params"].items() if k not in SWEEP_KEYS)
        cold = bool(r.get("cold", False))
        key = (r["system"], r["index"], json.dumps(fixed, sort_keys=True), cold)
        if key not in configs:
            configs[key] = Config(r["system"], r["index"], fixed, cold)
        configs[key].rows.append(r)
    return list(configs.values())


def build_info(configs):
    """build_key -> (seconds, threads) from the rows that built the index (cold and --load rows say 0)."""
    info = {}
    for c in configs:
        for r in c.rows:
            s = r.get("build_seconds") or 0.0
            if s > 0 and c.build_key() not in info:
                info[c.build_key()] = (s, r.get("build_threads"))
    return info


def fmt_best(r):
    if r is None:
        return "n/a"
    return f"{r['qps']:,.0f} (p50 {r['p50_ms']:.3f} / p99 {r['p99_ms']:.3f} ms; {compact(sweep_params(r))})"


def fmt_build(info, c):
    s, t = info.get(c.build_key(), (None, None))
    if s is None:
        return "–"
    return f"{s:.1f} s" + (f" ({t} threads)" if t else "")


def fmt_resident(c, raw):
    pct = f" ({100 * c.resident() / raw:.1f} %)" if raw else ""
    return mb(c.resident()) + pct + ("" if c.measured() else " (estimate)")


def tables(configs, raw, info):
    by_family = OrderedDict()
    for c in sorted(configs, key=lambda c: not c.quarry):
        by_family.setdefault(c.family, OrderedDict()).setdefault(c.build_key(), {})[c.cold] = c
    for fam, builds in by_family.items():
        print(f"### {fam}\n")
        print(f"| configuration | resident MB (% of raw) | warm: best QPS @ recall ≥ {TARGET_RECALL:.2f} | "
              f"cold: best QPS @ recall ≥ {TARGET_RECALL:.2f} | max recall warm / cold | build |")
        print("|---|---|---|---|---|---|")
        for pair in builds.values():
            warm, cold = pair.get(False), pair.get(True)
            c = warm or cold
            name = f"**{c.label()}**" if c.quarry else c.label()
            recalls = " / ".join(f"{x.max_recall():.4f}" if x else "–" for x in (warm, cold))
            print(f"| {name} | {fmt_resident(c, raw)} | {fmt_best(warm.best()) if warm else 'not run'} | "
                  f"{fmt_best(cold.best()) if cold else 'not run'} | {recalls} | {fmt_build(info, c)} |")
        print()


def done_when(configs, raw, info):
    print("## Done when\n")
    print(f"Single-threaded, k = 10: Quarry SPANN resident ≤ {100 * MEMORY_FRACTION:.0f} % of the raw f32 "
          f"bytes ({mb(MEMORY_FRACTION * raw) if raw else '?'} MB) at recall@10 ≥ {TARGET_RECALL:.2f}; there, "
          f"QPS ≥ {SPEEDUP_TARGET:g}× faiss IVF-PQ + refine's (same run, resident ≤ Quarry's); cold-cache "
          "numbers reported; build time with 2 threads against faiss IVF-PQ's.\n")
    spann = [c for c in configs if c.quarry and c.index == "spann" and not c.cold]
    faiss = [c for c in configs if is_faiss_ivfpq(c) and not c.cold]
    budget = MEMORY_FRACTION * raw if raw else None
    cands = [(c, c.best(max_resident=budget)) for c in spann]
    cands = [(c, r) for c, r in cands if r is not None and measured(r)]
    verdicts = []
    if not spann:
        print("- No warm Quarry SPANN rows: n/a.\n\n**Overall: n/a.**\n")
        return
    if not cands:
        top = max(spann, key=lambda c: c.max_recall())
        print(f"- **FAIL**: no warm Quarry SPANN row reaches recall {TARGET_RECALL:.2f} with measured resident "
              f"≤ {mb(budget) if budget else '?'} MB (best recall {top.max_recall():.4f}, {top.label()}).\n")
        verdicts.append(False)
    else:
        qc, qr = max(cands, key=lambda cr: cr[1]["qps"])
        q_res = resident(qr)
        print(f"- Quarry SPANN: **{qc.label()}**, {compact(sweep_params(qr))}: recall {plain(qr):.4f}, "
              f"{qr['qps']:,.0f} QPS (p50 {qr['p50_ms']:.3f} ms, p99 {qr['p99_ms']:.3f} ms), resident "
              f"{mb(q_res)} MB = {100 * q_res / raw:.1f} % of raw (measured): **PASS** on memory and recall.")
        verdicts.append(True)
        same = [c for c in faiss if c.resident() <= q_res]
        best_same = [(c, c.best()) for c in same]
        best_same = [(c, r) for c, r in best_same if r is not None]
        if not faiss:
            print("- faiss IVF-PQ + refine: no warm rows in this file: the speed check is n/a.")
            verdicts.append(None)
        elif best_same:
            fc, fr = max(best_same, key=lambda cr: cr[1]["qps"])
            ratio = qr["qps"] / fr["qps"]
            ok = ratio >= SPEEDUP_TARGET
            verdicts.append(ok)
            print(f"- faiss IVF-PQ + refine with resident ≤ {mb(q_res)} MB: {fc.label()}, "
                  f"{compact(sweep_params(fr))}: recall {plain(fr):.4f}, {fr['qps']:,.0f} QPS (p99 "
                  f"{fr['p99_ms']:.3f} ms), resident {mb(fc.resident())} MB. Quarry / faiss = **{ratio:.2f}×** "
                  f"(target ≥ {SPEEDUP_TARGET:g}×): **{'PASS' if ok else 'FAIL'}**.")
        elif same:
            top = max(same, key=lambda c: c.max_recall())
            verdicts.append(True)
            print(f"- faiss IVF-PQ + refine cannot reach recall {TARGET_RECALL:.2f} with resident ≤ {mb(q_res)} MB: "
                  f"its best there is {top.max_recall():.4f} ({top.label()}, {mb(top.resident())} MB), so at this "
                  f"memory and recall it has no QPS to compare: **PASS (no faiss rival at this memory)**.")
        else:
            smallest = min(faiss, key=lambda c: c.resident())
            verdicts.append(True)
            print(f"- faiss IVF-PQ + refine has no configuration with resident ≤ {mb(q_res)} MB (its smallest is "
                  f"{smallest.label()} at {mb(smallest.resident())} MB, max recall {smallest.max_recall():.4f}), "
                  f"so it cannot reach recall {TARGET_RECALL:.2f} at this memory: **PASS (no faiss rival at this "
                  f"memory)**.")
        any_mem = [(c, c.best()) for c in faiss]
        any_mem = [(c, r) for c, r in any_mem if r is not None]
        if any_mem:
            fc, fr = max(any_mem, key=lambda cr: cr[1]["qps"])
            print(f"- For reference, faiss IVF-PQ + refine's best at recall ≥ {TARGET_RECALL:.2f} at any memory: "
                  f"{fc.label()}, {compact(sweep_params(fr))}: {fr['qps']:,.0f} QPS (p99 {fr['p99_ms']:.3f} ms) "
                  f"at {mb(fc.resident())} MB ({100 * fc.resident() / raw:.1f} % of raw); Quarry / faiss = "
                  f"**{qr['qps'] / fr['qps']:.2f}×** with {q_res / fc.resident():.2f}× its memory.")
        elif faiss:
            top = max(faiss, key=lambda c: c.max_recall())
            print(f"- faiss IVF-PQ + refine never reaches recall {TARGET_RECALL:.2f} at any memory in this run "
                  f"(max {top.max_recall():.4f}, {top.label()}).")
        cold = [c for c in configs if c.quarry and c.index == "spann" and c.cold
                and c.build_key() == qc.build_key()]
        cr = cold[0].best() if cold else None
        if cr is not None:
            print(f"- Same configuration, cold page cache (dropped before the point, one pass, no warm-up): "
                  f"{fmt_best(cr)}, recall {plain(cr):.4f}.")
    cold_spann = [c for c in configs if c.quarry and c.index == "spann" and c.cold]
    not_dropped = [c for c in configs if c.quarry and c.index == "spann" and not c.cold
                   and any(r.get("open_seconds") is not None for r in c.rows)]
    if cold_spann:
        print(f"- Cold-cache numbers: reported ({len(cold_spann)} Quarry SPANN configuration(s) with \"cold\": true; "
              "see the tables). **PASS**.")
        verdicts.append(True)
    else:
        why = " (the page cache could not be dropped: not root?)" if not_dropped else ""
        print(f"- Cold-cache numbers: **missing**{why}.")
        verdicts.append(False)
    q_builds = [(c, info[c.build_key()]) for c in spann if c.build_key() in info]
    f_builds = [(c, info[c.build_key()]) for c in faiss if c.build_key() in info]
    if q_builds and f_builds:
        print("- Build time:")
        for c, (s, t) in q_builds:
            print(f"  - {c.label()}: {s:.1f} s ({t or '?'} threads)")
        for c, (s, t) in f_builds:
            print(f"  - {c.label()}: {s:.1f} s ({t or '?'} threads)")
        print("  - (faiss: IVF-PQ train + add plus refine train + add; peer_spann.py caches its indexes, and a "
              "cached index keeps the build time of the run that built it. Quarry's SPANN folders are rebuilt "
              "every run.)")
        verdicts.append(True)
    else:
        print("- Build time: n/a (no build rows for " + ("Quarry SPANN" if not q_builds else "faiss IVF-PQ") + ").")
        verdicts.append(False)
    overall = ("PASS" if all(v is not False for v in verdicts) and True in verdicts else "FAIL")
    if any(v is None for v in verdicts) and overall == "PASS":
        overall = "incomplete (some checks n/a)"
    print(f"\n**Overall: {overall}.**\n")


def plot(configs, png, raw, k, title):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("\n(matplotlib missing: no plot)")
        return False
    fig, (ax, lx, mx) = plt.subplots(1, 3, figsize=(21, 7.5))
    builds = OrderedDict()
    for c in sorted(configs, key=lambda c: not c.quarry):
        builds.setdefault(c.build_key(), []).append(c)
    quarry_keys = [key for key, cs in builds.items() if cs[0].quarry]
    peer_keys = [key for key, cs in builds.items() if not cs[0].quarry]
    peer_palette = [plt.get_cmap("Dark2")(j) for j in range(8)] + [plt.get_cmap("Set1")(j) for j in range(9)]
    colors = {key: plt.get_cmap("tab10")(i % 10) for i, key in enumerate(quarry_keys)}
    colors.update({key: peer_palette[i % len(peer_palette)] for i, key in enumerate(peer_keys)})
    markers = {"Quarry spann": "o", "Quarry hnsw": "D", "faiss IVF-Flat": "s", "faiss IVF-PQ + refine": "^",
               "faiss IVF-PQ fast-scan + refine": "v"}
    lo = 1.0
    for key, cs in builds.items():
        for c in cs:
            color = colors[key]
            mk = markers.get(c.family, "x")
            style = dict(lw=2.4 if c.quarry else 1.1, marker=mk, ms=5 if c.quarry else 4,
                         zorder=4 if c.quarry else 2, ls=":" if c.cold else ("-" if c.quarry else "--"),
                         alpha=0.6 if c.cold else 1.0)
            label = c.label(version=False) + (" [cold]" if c.cold else "")
            front = c.frontier("qps", higher=True)
            ax.plot([plain(r) for r in front], [r["qps"] for r in front], color=color, label=label, **style)
            lfront = c.frontier("p99_ms", higher=False)
            lx.plot([plain(r) for r in lfront], [r["p99_ms"] for r in lfront], color=color, **style)
            lo = min(lo, min(plain(r) for r in front))
    lo = max(0.8, lo - 0.005)
    for a_, ylabel, title_ in ((ax, "queries / s (1 thread, one query per call)", "Recall vs QPS (frontiers)"),
                               (lx, "p99 latency, ms", "Recall vs p99 latency (frontiers)")):
        a_.axvline(TARGET_RECALL, color="grey", lw=0.7, ls=":")
        a_.set_xlim(lo, 1.002)
        a_.set_yscale("log")
        a_.set_xlabel(f"recall@{k} (plain)")
        a_.set_ylabel(ylabel)
        a_.set_title(title_ + "; dotted: cold page cache")
        a_.grid(True, which="both", lw=0.3, alpha=0.5)
    for c in configs:
        if c.cold:
            continue
        r = c.best()
        if r is None:
            continue
        mk = markers.get(c.family, "x")
        mx.scatter([resident(r) / 1e6], [r["qps"]], color=colors[c.build_key()], marker=mk,
                   s=160 if c.quarry else 55, edgecolor="black" if c.quarry else "none", linewidth=0.6,
                   zorder=4 if c.quarry else 3)
    if raw:
        mx.axvline(MEMORY_FRACTION * raw / 1e6, color="navy", lw=0.8, ls=":",
                   label=f"{100 * MEMORY_FRACTION:.0f} % of raw f32 ({MEMORY_FRACTION * raw / 1e6:.1f} MB)")
        mx.axvline(raw / 1e6, color="grey", lw=0.8, ls=":", label=f"raw f32 ({raw / 1e6:.1f} MB)")
        mx.legend(fontsize=8, loc="lower right")
    marks = [(c, resident(r) / 1e6, r["qps"]) for c, r in ((c, c.best()) for c in configs if not c.cold) if r]
    mx.set_xscale("log")
    mx.set_yscale("log")
    mx.set_xlabel("resident memory, MB (measured RSS growth; log)")
    mx.set_ylabel(f"best QPS at recall@{k} ≥ {TARGET_RECALL:.2f} (warm)")
    mx.set_title(f"Memory vs speed at recall ≥ {TARGET_RECALL:.2f} (large markers: Quarry)")
    mx.grid(True, which="both", lw=0.3, alpha=0.5)
    mx.margins(x=0.2, y=0.2)
    handles, labels = ax.get_legend_handles_labels()
    ncol = 3
    fig.legend(handles, labels, loc="lower center", ncol=ncol, fontsize=8, frameon=False)
    fig.suptitle(title, fontsize=12)
    nrows = -(-len(labels) // ncol)
    fig.tight_layout(rect=(0, min(0.45, 0.03 * nrows + 0.02), 1, 0.96))
    place_labels(fig, mx, marks)  # after the layout, which moves the axes
    fig.savefig(png, dpi=100)
    plt.close(fig)
    return True


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("rows")
    ap.add_argument("--data", required=True, help="base vector file (named in the report; N and d from its shape)")
    ap.add_argument("--command", action="append", default=[], help="command line to list (repeatable)")
    ap.add_argument("--png", help="plot path (default: ROWS with .png)")
    ap.add_argument("--title", default="SPANN (memory + disk): Quarry vs faiss IVF and Quarry hnsw at measured "
                    "resident memory")
    a = ap.parse_args()
    rows = read_rows(a.rows)
    configs = group(rows)
    info = build_info(configs)
    png = a.png or os.path.splitext(a.rows)[0] + ".png"
    shp = shape(a.data)
    raw = shp[0] * shp[1] * 4 if shp and len(shp) == 2 else None

    def values(key):
        return ", ".join(str(v) for v in sorted({r.get(key) for r in rows}, key=str))

    k = rows[0]["k"]
    print(f"# {a.title}\n")
    print(f"- Date: {datetime.date.today()}; Quarry at {git_rev()}; rows in `{os.path.basename(a.rows)}`")
    size = f" ({shp[0]:,} × {shp[1]}, raw f32 {raw:,} bytes = {raw / 1e6:.1f} MB)" if raw else ""
    print(f"- Data: `{a.data}`{size}; {values('queries')} queries, k = {values('k')}, search threads: "
          f"{values('threads')}, one query per call")
    print("- Warm: untimed warm-up of up to 100 queries, then the median of 3 timed passes. Cold: the page "
          "cache dropped (`sync; echo 3 > /proc/sys/vm/drop_caches`) before each Quarry sweep point (the index "
          "closed and reopened around it) and before each faiss search process, then one pass with no warm-up "
          "(faiss reads its whole index into RAM on open, so only its open sees the cold cache)")
    print("- Resident memory: measured by the OS -- VmRSS growth of a process that only opens the index and "
          "searches, from just before the open to after the searches (Quarry: `quarry bench open`, run per "
          "sweep point; faiss: a search subprocess of peer_spann.py per index). Posting lists read with "
          "positioned reads sit in the page cache, which is not process memory")
    print(f"- Machine: {machine()}")
    print_commands(a.command)
    print()
    done_when(configs, raw, info)
    print("## Configurations\n")
    print(f"Best QPS: the fastest measured row reaching recall {TARGET_RECALL:.2f} (not interpolated), with its "
          "p50 / p99 latency and sweep setting; n/a when no row does. Resident: the largest measured figure of "
          "the configuration's rows. Build: seconds with the build threads (faiss: IVF train + add and refine "
          "train + add).\n")
    tables(configs, raw, info)
    print("## Every row\n")
    print(f"| configuration | cold | sweep | recall@{k} | QPS | p50 ms | p99 ms | resident MB |")
    print("|---|---|---|---|---|---|---|---|")
    for c in sorted(configs, key=lambda c: not c.quarry):
        for r in c.rows:
            print(f"| {c.label()} | {'cold' if c.cold else 'warm'} | {compact(sweep_params(r))} | {plain(r):.4f} | "
                  f"{r['qps']:,.1f} | {r['p50_ms']:.3f} | {r['p99_ms']:.3f} | {mb(resident(r))}"
                  f"{'' if measured(r) else ' (est.)'} |")
    if plot(configs, png, raw, k, a.title):
        print(f"\n![recall vs QPS, recall vs p99, memory vs QPS]({os.path.basename(png)})")


if __name__ == "__main__":
    main()
