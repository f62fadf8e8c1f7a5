#!/usr/bin/env bash
# Collections under memory caps (issue 19): Quarry collections of several index families, rows on
# disk (`quarry collection create --on-disk`), built through the collection API by
# `quarry bench engine --index SPEC --on-disk`, then reopened and searched (unfiltered, one thread,
# one query per call, recall@10 against the dataset's ground truth) in a memory cgroup capped at
# 50 / 25 / 15 % of the raw f32 bytes, page cache included and dropped first
# (`quarry bench engine --dir D --reuse --memory-limit-mb N`), and uncapped (a 64 GiB cgroup, so
# the peak is still measured). Peers in the same run, under the same caps (`quarry bench capped`):
# hnswlib (peer_bench.py, all queries in one batch call, single-threaded, in memory) and
# qdrant-edge with vectors on disk and int8 or binary codes in RAM (scripts/peer_edge_capped.py:
# built once, then reopened and searched one call per query, exact rescoring).
# Writes docs/benchmarks/engine-capped-<dataset>.{jsonl,md,png}.
# Usage: scripts/bench_engine_capped.sh [DATASET_DIR] [QUERIES]
#   DATASET_DIR holds base.* query.* groundtruth.* (default ../shared/data/wndict-384); QUERIES
#   default 2000 (distinct queries: a cap is not helped by the same queries repeating).
#   CONFIGS (index specs, default "hnsw+rabitq4 hnsw+sq8 spann+rabitq4"), EFS (default
#   24,32,48,64,96,128), PASSES (timed passes per point, default 2), CAPS_PCT (default "50 25 15"),
#   ONLY (subset of: build device quarry peer edge report; `device` measures the disk's 4 KiB
#   random-read limit with fio at queue depths 1, 8 and 32, O_DIRECT, the physical anchor of
#   every capped row), EDGE_QUANT (default "int8 binary"),
#   NO_RESCORE (default yes: compressed graphs `hnsw+<codes>` and qdrant-edge are also run ranking
#   by their codes alone, `--no-rescore` / `rescore: false`, no original vector read; tagged
#   "<config> codes-only"), POINT_TIMEOUT (seconds a peer's capped run may take before it is stopped: default 600),
#   QUARRY_BENCH_OUT (default docs/benchmarks).
set -euo pipefail
cd "$(dirname "$0")/.."
script_args="$*"
data=${1:-../shared/data/wndict-384}
nq=${2:-2000}
name=engine-capped-$(basename "$data")
out=${QUARRY_BENCH_OUT:-docs/benchmarks}
configs=${CONFIGS:-hnsw+rabitq4 hnsw+sq8 spann+rabitq4}
efs=${EFS:-24,32,48,64,96,128}
passes=${PASSES:-2}
caps_pct=${CAPS_PCT:-50 25 15}
only=${ONLY:-build device quarry peer edge report}
edge_quant=${EDGE_QUANT:-int8 binary}
point_timeout=${POINT_TIMEOUT:-600}
no_rescore=${NO_RESCORE:-yes}
want() { [[ " $only " == *" $1 "* ]]; }
# shellcheck source=scripts/bench_common.sh
source scripts/bench_common.sh
dirs=${QUARRY_BENCH_DIRS:-$HOME/.cache/quarry/bench-engine-capped/$(basename "$data")}
mkdir -p "$out" "$dirs"
rows=$out/$name.jsonl
raw_mb=$("$venv/bin/python" -c "
import numpy as np, sys
p = sys.argv[1]
n, d = (np.load(p, mmap_mode='r').shape if p.endswith('.npy') else (None, None))
print(n * d * 4 / 2**20)" "$base")
caps=()
for p in $caps_pct; do caps+=("$("$venv/bin/python" -c "print(int($raw_mb * $p / 100))")"); done
common=(--base "$base" --query "$query" --queries "$nq" --gt "$gt" --no-filters --no-payload-graphs)
tag() { sed "s/}\$/, \"config\": \"$1\", \"cap_pct\": \"$2\"}/"; }

if want build; then
  for spec in $configs; do
    echo "== build $spec (rows on disk)" >&2
    rm -rf "${dirs:?}/$spec"
    "$quarry" bench engine "${common[@]}" --index "$spec" --on-disk --dir "$dirs/$spec" --ef 64 > "$dirs/$spec.build.jsonl"
  done
fi
if want quarry || want device; then
  : > "$rows"
fi
if want device; then
  command -v fio >/dev/null || apt-get install -y -q fio >/dev/null
  for qd in 1 8 32; do
    echo "== device: fio 4 KiB random reads, O_DIRECT, queue depth $qd" >&2
    fio --name=anchor --filename="$dirs/fio.tmp" --size=1G --rw=randread --bs=4k --direct=1 --ioengine=libaio \
      --iodepth=$qd --runtime=10 --time_based --output-format=json \
      | "$venv/bin/python" -c '
import json, sys
j = json.load(sys.stdin)["jobs"][0]["read"]
print(json.dumps({"op": "device", "tool": "fio", "bs": 4096, "iodepth": int(sys.argv[1]), "iops": j["iops"],
                  "clat_mean_us": j["clat_ns"]["mean"] / 1e3, "clat_p99_us": j["clat_ns"]["percentile"]["99.000000"] / 1e3,
                  "config": "device", "cap_pct": "none"}))' "$qd" | tee -a "$rows"
  done
  rm -f "$dirs/fio.tmp"
fi
if want quarry; then
  for spec in $configs; do
    cat "$dirs/$spec.build.jsonl" | grep '"op":"ingest"' | tag "$spec" build >> "$rows" || true
    variants=(exact)
    if [ "$no_rescore" = yes ] && [[ $spec == hnsw+* ]]; then variants+=(codes-only); fi
    for v in "${variants[@]}"; do
      label=$spec; flags=()
      if [ "$v" = codes-only ]; then label="$spec codes-only"; flags=(--no-rescore); fi
      for pct in none $caps_pct; do
        if [ "$pct" = none ]; then cap=65536; else cap=${caps[$(( $(tr ' ' '\n' <<< "$caps_pct" | grep -n "^$pct\$" | cut -d: -f1) - 1 ))]}; fi
        echo "== quarry $label, cap ${pct}% ($cap MiB)" >&2
        "$quarry" bench engine "${common[@]}" --dir "$dirs/$spec" --reuse --ef "$efs" --passes "$passes" --memory-limit-mb "$cap" "${flags[@]}" \
          | tag "$label" "$pct" | tee -a "$rows"
      done
    done
  done
fi
if want peer; then
  for pct in none $caps_pct; do
    if [ "$pct" = none ]; then cap=65536; else cap=${caps[$(( $(tr ' ' '\n' <<< "$caps_pct" | grep -n "^$pct\$" | cut -d: -f1) - 1 ))]}; fi
    echo "== hnswlib, cap ${pct}% ($cap MiB)" >&2
    "$quarry" bench capped --memory-limit-mb "$cap" -- "$venv/bin/python" ../shared/tools/peer_bench.py \
      --base "$base" --query "$query" --gt "$gt" --metric "$metric" --peers hnswlib --M 16 --efc 200 \
      --ef "$efs" --build-threads 2 --threads 1 --k 10 --queries "$nq" --calls batch \
      | tag hnswlib "$pct" | tee -a "$rows"
  done
fi
if want edge; then
  "$venv/bin/python" -c 'import qdrant_edge' 2>/dev/null || "$venv/bin/pip" install -q qdrant-edge-py==0.9.0
  for qz in $edge_quant; do
    edir="$dirs/edge-$qz"
    if [ ! -d "$edir" ] || want build; then
      echo "== build qdrant-edge $qz (vectors on disk)" >&2
      rm -rf "$edir"
      "$venv/bin/python" scripts/peer_edge_capped.py build --dir "$edir" --quant "$qz" --base "$base" \
        | tag "qdrant-edge-$qz" build | tee -a "$rows"
    fi
    variants=(exact)
    if [ "$no_rescore" = yes ]; then variants+=(codes-only); fi
    for v in "${variants[@]}"; do
      label=qdrant-edge-$qz; flags=()
      if [ "$v" = codes-only ]; then label="qdrant-edge-$qz codes-only"; flags=(--no-rescore); fi
      for pct in none $caps_pct; do
        if [ "$pct" = none ]; then cap=65536; else cap=${caps[$(( $(tr ' ' '\n' <<< "$caps_pct" | grep -n "^$pct\$" | cut -d: -f1) - 1 ))]}; fi
        echo "== $label, cap ${pct}% ($cap MiB)" >&2
        "$quarry" bench capped --memory-limit-mb "$cap" --timeout-s "$point_timeout" -- "$venv/bin/python" scripts/peer_edge_capped.py search \
          --dir "$edir" --quant "$qz" --query "$query" --gt "$gt" --queries "$nq" --ef "$efs" --passes "$passes" "${flags[@]}" \
          | tag "$label" "$pct" | tee -a "$rows"
      done
    done
  done
fi
if want report; then
  "$venv/bin/python" scripts/bench_engine_capped_report.py "$rows" --raw-mb "$raw_mb" --data "$data" \
    --plot "$out/$name.png" --command "scripts/bench_engine_capped.sh${script_args:+ $script_args}" > "$out/$name.md"
  echo "wrote $out/$name.md" >&2
fi
