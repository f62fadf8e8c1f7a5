#!/usr/bin/env python3
"""Renders an exact-scan benchmark (JSON rows from `quarry bench ann` and peer_bench.py, plus the
kernel micro-benchmark table) as Markdown with machine details, and a bar chart PNG beside it.
Usage: bench_report.py ROWS.jsonl KERNELS.txt BASE_FILE > REPORT.md"""
import json, os, platform, re, subprocess, sys, datetime

rows_path, kernels_path, base = sys.argv[1:4]
rows = [json.loads(l) for l in open(rows_path) if l.strip()]
kernels = open(kernels_path).read()
bw = re.search(r"memory read.*?\|\s*[\d.]+\s*\|\s*([\d.]+)", kernels)
bandwidth = float(bw.group(1)) if bw else None
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30


def storage(r):
    return r["params"].get("storage", "f32")


print(f"# Exact scan: Quarry flat vs faiss IndexFlat\n")
print(f"- Date: {datetime.date.today()}; command: `scripts/bench_flat.sh` (rows in `{os.path.basename(rows_path)}`)")
print(f"- Data: `{base}`; {rows[0]['queries']} queries, k = {rows[0]['k']}, median of 3 timed passes after a "
      "warm-up; `calls`: `single` = one query per call (Quarry's Rust loop), `batch` = every query in one call "
      "(Quarry's `search_batch`: blocked matrix products; faiss's `index.search`: BLAS)")
print(f"- Machine: {os.cpu_count()} cores ({cpu}), {mem_gb:.0f} GiB RAM, {platform.system()} {platform.machine()}")
if bandwidth:
    print(f"- Single-core memory read bandwidth, measured in the same run: **{bandwidth:.1f} GB/s**")
print()
print("| system | calls | storage | threads | recall@10 | plain recall@10 | QPS | vs faiss (batch) | scan GB/s | % of 1-core bandwidth |")
print("|---|---|---|---|---|---|---|---|---|---|")
faiss = {r["threads"]: r["qps"] for r in rows if r["system"].startswith("faiss")}
for r in rows:
    gbps = r["index_bytes"] * r["qps"] / 1e9
    ratio = r["qps"] / faiss[r["threads"]] if r["threads"] in faiss else float("nan")
    pct = f"{100 * gbps / bandwidth:.0f}%" if bandwidth and r["threads"] == 1 else "–"
    print(f"| {r['system']} | {r.get('calls', 'single')} | {storage(r)} | {r['threads']} | {r['recall']:.4f} | {r.get('recall_plain', r['recall']):.4f} | {r['qps']:.1f} | "
          f"{ratio:.2f}× | {gbps:.1f} | {pct} |")
print("\nrecall@10 credits exact ties with the 10th true neighbour; plain recall is |A ∩ G|/10 as the peer script computes it.")
print("Scan GB/s = bytes held by the index × QPS (each query streams every stored vector once).")
print("f16 storage keeps the f16 input bit for bit (lossless for this f16 dataset) and streams half the bytes.\n")
print("## Kernel micro-benchmark (`cargo bench -p quarry-linalg --bench kernels --features simsimd`)\n")
print(kernels.strip())

try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    labels = [f"{r['system'].split()[0]} {storage(r)} {r.get('calls', 'single')}\n{r['threads']} thr" for r in rows]
    fig, ax = plt.subplots(figsize=(8, 3.6))
    colors = ["#1f77b4" if r["system"].startswith("quarry") else "#d62728" for r in rows]
    ax.bar(range(len(rows)), [r["qps"] for r in rows], color=colors)
    ax.set_xticks(range(len(rows)), labels, fontsize=8)
    ax.set_ylabel("queries / s (one per call)")
    ax.set_title(f"Exact scan, {os.path.basename(os.path.dirname(base))}, k=10")
    fig.tight_layout()
    png = os.path.splitext(rows_path)[0] + ".png"
    fig.savefig(png, dpi=110)
    print(f"\n![QPS]({os.path.basename(png)})")
except ImportError:
    pass
