#!/usr/bin/env python3
"""Renders `quarry bench multivector` rows (JSON lines) as a Markdown report and a recall–QPS /
recall–candidates plot (ROWS.png).

The summary answers the issue's questions: the fewest re-ranked candidates (and the QPS) at which
MUVERA and the per-token heuristic reach recall@10 >= 0.95 against exhaustive Chamfer, their ratio,
and MUVERA's speed-up over the exhaustive scan; with judgements, nDCG@10 of late interaction
against the single-vector model.

Usage: multivector_report.py ROWS.jsonl REPORT.md COMMAND
"""
import datetime, json, os, platform, subprocess, sys

sys.path.insert(0, os.path.dirname(__file__))
from bench_plot import machine, git_rev as commit  # noqa: E402

TARGET = 0.95


def first_at(rows, target):
    """The cheapest row (fewest candidates) reaching `target` recall, else None."""
    ok = [r for r in rows if r["recall"] >= target]
    return min(ok, key=lambda r: r["candidates"]) if ok else None


def interpolated(rows, target):
    """(candidates, qps) where the recall curve crosses `target`, linear in recall between the
    neighbouring rows (ordered by candidates); None when no row reaches it."""
    rs = sorted(rows, key=lambda r: r["candidates"])
    for a, b in zip(rs, rs[1:]):
        if a["recall"] < target <= b["recall"]:
            t = (target - a["recall"]) / (b["recall"] - a["recall"])
            return a["candidates"] + t * (b["candidates"] - a["candidates"]), a["qps"] + t * (b["qps"] - a["qps"])
    if rs and rs[0]["recall"] >= target:
        return rs[0]["candidates"], rs[0]["qps"]
    return None


def main():
    src, dst, command = sys.argv[1], sys.argv[2], sys.argv[3]
    rows = [json.loads(l) for l in open(src) if l.strip().startswith("{")]
    if not rows:
        sys.exit(f"{src}: no rows")
    r0 = rows[0]
    ex = next(r for r in rows if r["method"] == "exhaustive" and "system" not in r)
    peer = next((r for r in rows if "system" in r), None)
    single = next((r for r in rows if r["method"] == "single-vector"), None)
    mu = [r for r in rows if r["method"] == "muvera"]
    pt = [r for r in rows if r["method"] == "per-token"]
    k = r0["k"]
    out = []
    p = out.append
    p(f"# Multi-vector retrieval: {r0['dataset']}\n")
    p(f"- Data: {r0['docs']:,} documents ({r0['doc_tokens']:,} token vectors, "
      f"{r0['doc_tokens'] / r0['docs']:.1f} each), {r0['queries']} queries "
      f"({r0['query_tokens'] / r0['queries']:.1f} tokens each), {r0['dim']}-d tokens; "
      "the sentence model's token states (all-MiniLM-L6-v2, unit length, special tokens dropped)")
    p(f"- Machine: {machine()}")
    p(f"- Commit: {commit()}; {datetime.date.today()}")
    p(f"- Command: `{command.strip()}`")
    p("- One search thread, one query per call in a Rust loop; recall@%d against exhaustive Chamfer "
      "(MaxSim) over every document; `candidates` = documents re-ranked by exact Chamfer per query." % k)
    if not peer:
        p("- No peer and no per-token rows in this run (`--token-index none`): see the full run's report "
          f"(`multivector-{r0['dataset']}.md`, same data and queries) for both.\n")
    else:
        p("- Peer: embedded Qdrant (qdrant-edge-py from PyPI, the engine behind Qdrant's multivector API) "
          "with the same token vectors in a `max_sim` multi-vector field, one native search call per query "
          "(an exhaustive MaxSim scan: Qdrant builds no useful graph over multi-vectors and advises using "
          "them to re-rank), timed in the same run (`scripts/peer_multivector.py`). PyPI's PLAID-style "
          "packages (colbert-ai, pylate, fast-plaid) need PyTorch and model downloads this machine cannot "
          "make. The per-token heuristic below is the candidate generation Qdrant, Milvus and Vespa "
          "document for late interaction, run on Quarry's own indexes.\n")
    p("## Summary\n")
    p(f"| | first row at recall@{k} ≥ {TARGET}: candidates | QPS there | × exhaustive QPS | candidates at exactly {TARGET} (interpolated) |")
    p("|---|---|---|---|---|")
    m, t = first_at(mu, TARGET), first_at(pt, TARGET)
    im, it = interpolated(mu, TARGET), interpolated(pt, TARGET)
    for name, r, i in (("MUVERA + re-rank", m, im), ("per-token + re-rank", t, it)):
        if (r is None and name.startswith("per-token") and not pt):
            continue
        if r is None:
            p(f"| {name} | not reached | | | |")
        else:
            p(f"| {name} | {r['candidates']:,.0f} ({'depth ' + str(r['depth']) if 'depth' in r else str(r['per_token']) + ' per token'}, "
              f"recall {r['recall']:.3f}) | {r['qps']:,.1f} | {r['qps'] / ex['qps']:.1f}× | "
              f"{i[0]:,.0f} ({i[1]:,.1f} QPS) |")
    p(f"| exhaustive (Quarry) | {ex['candidates']:,} | {ex['qps']:,.2f} | 1× | |")
    if peer:
        p(f"| exhaustive ({peer['system']}, {peer['queries']} queries) | {peer['docs']:,} (recall "
          f"{peer['recall']:.3f}) | {peer['qps']:,.2f} | {peer['qps'] / ex['qps']:.2f}× | |")
    if m and peer:
        p(f"\nAgainst {peer['system']}'s MaxSim scan, MUVERA + re-rank at recall@{k} ≥ {TARGET} answers "
          f"**{m['qps'] / peer['qps']:.1f}×** as many queries per second.")
    if im and it:
        ratio = it[0] / im[0]
        p(f"\nAt recall@{k} = {TARGET} (interpolated), the per-token heuristic re-ranks {it[0]:,.0f} candidates "
          f"and MUVERA {im[0]:,.0f}: the heuristic needs **{ratio:.2f}×** MUVERA's candidates, and MUVERA "
          f"answers **{im[1] / ex['qps']:.1f}× faster** than the exhaustive scan there.")
    if "ndcg" in ex:
        p(f"\nnDCG@{k}: exhaustive late interaction {ex['ndcg']:.4f}"
          + (f", single-vector (same model, mean pooled) {single['ndcg']:.4f}" if single else "")
          + (f", MUVERA at depth {m['depth']} {m['ndcg']:.4f}" if m and 'ndcg' in m else "") + ".")
    p("\n## All rows\n")
    p(f"| method | setting | candidates | recall@{k} | QPS | × exhaustive |" + (" nDCG@%d |" % k if "ndcg" in ex else ""))
    p("|---|---|---|---|---|---|" + ("---|" if "ndcg" in ex else ""))
    for r in rows:
        if r["method"] == "single-vector" or "system" in r:
            continue
        setting = {"muvera": lambda: f"depth {r['depth']}, {r['index']} ef {r['ef']}, {r['fde_dim']}-d FDE",
                   "per-token": lambda: f"{r['per_token']} per token, {r['index']} ef {r['ef']}",
                   "exhaustive": lambda: "every document"}[r["method"]]()
        line = (f"| {r['method']} | {setting} | {r['candidates']:,.1f} | {r['recall']:.4f} | {r['qps']:,.1f} | "
                f"{r['qps'] / ex['qps']:.1f}× |")
        if "ndcg" in ex:
            line += f" {r.get('ndcg', float('nan')):.4f} |"
        p(line)
    if mu:
        p(f"\nMUVERA: {mu[0]['reps']} repetitions, {mu[0]['bits']} SimHash bits, inner projection "
          f"{mu[0]['proj'] or 'none'}, final projection {mu[0]['final_dim'] or 'none'} → {mu[0]['fde_dim']}-d; "
          f"encoding the documents took {mu[0]['encode_seconds']:.1f} s, the index {mu[0]['build_seconds']:.1f} s.")
    if pt:
        p(f"Per-token index over {r0['doc_tokens']:,} tokens built in {pt[0]['build_seconds']:.1f} s.")
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4.2))
        for name, rs in (("MUVERA + re-rank", mu), ("per-token + re-rank", pt)):
            if rs:
                a1.plot([r["recall"] for r in rs], [r["qps"] for r in rs], "o-", label=name)
                a2.plot([r["candidates"] for r in rs], [r["recall"] for r in rs], "o-", label=name)
        a1.axhline(ex["qps"], color="grey", ls="--", label="exhaustive")
        a1.set_xlabel(f"recall@{k} vs exhaustive Chamfer"); a1.set_ylabel("QPS (1 thread)"); a1.set_yscale("log")
        a2.set_xlabel("documents re-ranked per query"); a2.set_ylabel(f"recall@{k}"); a2.set_xscale("log")
        a2.axhline(TARGET, color="grey", ls=":")
        for a in (a1, a2):
            a.grid(alpha=0.3); a.legend()
        fig.suptitle(f"Multi-vector retrieval, {r0['dataset']}")
        fig.tight_layout()
        png = os.path.splitext(dst)[0] + ".png"
        fig.savefig(png, dpi=110)
        p(f"\n![recall vs QPS and candidates]({os.path.basename(png)})")
    except ImportError:
        p("\n(matplotlib missing: no plot)")
    open(dst, "w").write("\n".join(out) + "\n")
    print(f"wrote {dst}", file=sys.stderr)


if __name__ == "__main__":
    main()
