#!/usr/bin/env python3
"""Renders the rows of scripts/bench_engine_capped.sh as markdown: per memory cap, each Quarry
collection's and hnswlib's best QPS at recall@10 >= 0.95 (first and last timed pass), the cgroup
peak (page cache included), the reopen time, and the ratio to hnswlib's uncapped QPS."""

import argparse
import json
import platform
import subprocess


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("rows")
    ap.add_argument("--raw-mb", type=float, required=True)
    ap.add_argument("--data", default="")
    ap.add_argument("--command", action="append", default=[])
    ap.add_argument("--target", type=float, default=0.95)
    ap.add_argument("--plot", default=None, help="also draw the table as bars into this PNG")
    a = ap.parse_args()
    rows = [json.loads(l) for l in open(a.rows) if l.strip().startswith("{")]
    caps = ["none"] + sorted({r["cap_pct"] for r in rows if r.get("cap_pct") not in ("none", "build")}, key=lambda c: -int(c))
    configs = []
    for r in rows:
        if r.get("config") and r["config"] != "device" and r["config"] not in configs:
            configs.append(r["config"])

    def best(config, cap):
        pts = [r for r in rows if r.get("config") == config and r.get("cap_pct") == cap and "qps" in r and r.get("recall", 0) >= a.target]
        killed = any(r.get("oom_killed") for r in rows if r.get("config") == config and r.get("cap_pct") == cap)
        if any(r.get("timed_out") for r in rows if r.get("config") == config and r.get("cap_pct") == cap) and not pts:
            killed = "timed out"
        if not pts:
            return None, killed
        return max(pts, key=lambda r: r["qps"]), killed

    def opened(config, cap):
        return next((r for r in rows if r.get("config") == config and r.get("cap_pct") == cap and r.get("op") == "open"), None)

    base_hnswlib, _ = best("hnswlib", "none")
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    except OSError:
        commit = "?"
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
    print(f"# Collections under memory caps: {a.data.rstrip('/').split('/')[-1]}\n")
    print(f"- Data: {a.data}, raw f32 {a.raw_mb:.1f} MiB; recall@10 against the dataset's ground truth; one search thread, "
          "Quarry one query per call through the collection API (its Rust loop), hnswlib all queries in one batch call.")
    print(f"- Machine: {cpu}, {platform.machine()}; commit {commit}.")
    print("- Caps: a memory cgroup (page cache included, dropped before each run); `none` is a 64 GiB cgroup, "
          "so the peak is still measured. `first`/`last`: QPS of the first and last timed pass over the same queries.")
    if any("codes-only" in c for c in configs):
        print("- `codes-only`: the compressed graph (or qdrant-edge's quantized search) ranks by its codes alone and "
              "returns their estimated scores, reading no original vector (`SearchOptions::rescore` false; "
              "Qdrant's `params.quantization.rescore: false`). Every other row re-scores its candidates "
              "exactly from the f32 rows on disk.")
    print("- Commands: " + "; ".join(f"`{c}`" for c in a.command) + "\n")
    print(f"| cap | system | ef | recall | QPS first | QPS last | vs hnswlib uncapped | p99 ms | cgroup peak MB | reopen s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for cap in caps:
        cap_label = "none" if cap == "none" else f"{cap}% ({int(a.raw_mb * int(cap) / 100)} MiB)"
        for config in configs:
            r, killed = best(config, cap)
            o = opened(config, cap)
            if r is None:
                ran = any(x.get("config") == config and x.get("cap_pct") == cap for x in rows)
                tops = [x["recall"] for x in rows if x.get("config") == config and x.get("cap_pct") == cap and "recall" in x]
                what = ("stopped: no answer within the time limit (thrashing)" if killed == "timed out"
                        else "killed (out of memory)" if killed
                        else f"< {a.target} (best {max(tops):.3f})" if ran and tops else "not run at this cap")
                print(f"| {cap_label} | {config} | | {what} | | | | | | |")
                continue
            passes = r.get("pass_qps") or [r["qps"]]
            ratio = f"{r['qps'] / base_hnswlib['qps']:.2f}x" if base_hnswlib else ""
            ef = r.get("ef", (r.get("params") or {}).get("ef", ""))
            peak = r.get("cgroup_peak_bytes")
            print(f"| {cap_label} | {config} | {ef} | {r['recall']:.4f} | {passes[0]:,.0f} | {passes[-1]:,.0f} | {ratio} | "
                  f"{r.get('p99_ms', float('nan')):.3f} | {peak / 1e6 if peak else float('nan'):.1f} | "
                  f"{o['open_seconds']:.2f} |" if o else
                  f"| {cap_label} | {config} | {ef} | {r['recall']:.4f} | {passes[0]:,.0f} | {passes[-1]:,.0f} | {ratio} | "
                  f"{r.get('p99_ms', float('nan')):.3f} | {peak / 1e6 if peak else float('nan'):.1f} | |")
    if a.plot:
        plot(a.plot, caps, configs, best, a.raw_mb, a.target)
        print(f"\n![QPS at recall@10 >= {a.target} per memory cap]({a.plot.split('/')[-1]})")
    device = [r for r in rows if r.get("op") == "device"]
    if device:
        print("\n**Device anchor** (fio, 4 KiB random reads, O_DIRECT, 10 s each): what the disk under the page cache "
              "can do. A query that must read re-scored rows or posting lists from the device waits at least one "
              "round trip of this latency.\n")
        print("| queue depth | IOPS | mean latency µs | p99 latency µs |")
        print("|---|---|---|---|")
        for r in device:
            print(f"| {r['iodepth']} | {r['iops']:,.0f} | {r['clat_mean_us']:.0f} | {r['clat_p99_us']:.0f} |")
    builds = [r for r in rows if r.get("op") == "ingest"]
    if builds:
        print("\n| collection | ingest points/s (fsync per batch) | index build s |")
        print("|---|---|---|")
        for r in builds:
            print(f"| {r['config']} | {r['points_per_s']:,.0f} | {r['index_seconds']:.1f} |")


def plot(path, caps, configs, best, raw_mb, target):
    """Bars: each system's QPS (last pass) at recall >= target, per cap; an x for killed."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(8, 4.2))
    width = 0.8 / max(len(configs), 1)
    for j, config in enumerate(configs):
        for i, cap in enumerate(caps):
            r, killed = best(config, cap)
            x = i + (j - (len(configs) - 1) / 2) * width
            if r is None:
                ax.plot([x], [1.2], marker="x", color=f"C{j}")
                continue
            ax.bar(x, r["qps"], width, color=f"C{j}", label=config if i == 0 or not ax.get_legend_handles_labels()[1].count(config) else None)
    ax.set_xticks(range(len(caps)))
    ax.set_xticklabels(["uncapped" if c == "none" else f"{c}% ({int(raw_mb * int(c) / 100)} MiB)" for c in caps])
    ax.set_yscale("log")
    ax.set_ylim(1, None)
    ax.set_ylabel(f"QPS at recall@10 >= {target} (x: killed)")
    ax.set_title("Collections reopened under memory caps (page cache included), one thread")
    handles, labels = ax.get_legend_handles_labels()
    seen = {}
    for h, l in zip(handles, labels):
        seen.setdefault(l, h)
    ax.legend(seen.values(), seen.keys(), fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
