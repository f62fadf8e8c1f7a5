#!/usr/bin/env bash
# Compressed-index benchmark: Quarry's quantized indexes (flat+… and hnsw+…, codes resident, f32 rows
# memory-mapped for exact re-scoring) against faiss's SQ8, IVF-PQ + refine (8-bit and 4-bit fast-scan),
# RaBitQ (+ refine) and hnswlib, plus Quarry's plain hnsw as the memory reference — same data, same run,
# searched on 1 thread: Quarry one query at a time in its Rust loop, the peers with one batch call per timed
# pass (peer_quant.py --calls batch: every query in one call, the library's own loop, single-threaded; issue
# 18). Then `quarry bench open` measures, in processes that only open and search, the resident memory the OS
# reports for the main configurations.
# Writes docs/benchmarks/quant-<dataset>.{jsonl,md,png} and quant-<dataset>.open.jsonl.
# Usage: scripts/bench_quant.sh [DATASET_DIR] [QUERIES]
#   DATASET_DIR holds base.* query.* groundtruth.* (default ../shared/data/wndict-384); QUERIES default 2000.
#   METRIC (default ip), QUARRY_PEERS_VENV, QUARRY_BENCH_OUT (default docs/benchmarks), ONLY (space-separated
#   subset of: quarry peers open report) as in the other bench scripts.
#   Memory under cgroup caps, page cache included: scripts/bench_capped.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
script_args="$*"
data=${1:-../shared/data/wndict-384}
nq=${2:-2000}
name=quant-$(basename "$data")
out=${QUARRY_BENCH_OUT:-docs/benchmarks}
only=${ONLY:-quarry peers open report}
want() { [[ " $only " == *" $1 "* ]]; }

graph="M=16,efc=200"
efs="10,15,20,30,40,60,80,120,160"

# shellcheck source=scripts/bench_common.sh
source scripts/bench_common.sh
work=$(mktemp -d "${TMPDIR:-/tmp}/quarry-quant-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT
common=(--base "$base" --query "$query" --gt "$gt" --metric "$metric" --build-threads 2 --threads 1 -k 10
  --queries "$nq" --json)

mkdir -p "$out"
rows=$out/$name.jsonl
cmds=()
run() { # run LABEL ARGS...: one quarry bench ann configuration, rows appended
  echo "== quarry $1" >&2
  shift
  cmds+=("quarry bench ann $*")
  "$quarry" bench ann "$@" "${common[@]}" | tee -a "$rows"
}
if want quarry; then
  : > "$rows"
  run "hnsw (f32, reference)" --index hnsw --params "$graph" --sweep "ef=$efs"
  run "hnsw+sq8" --index hnsw+sq8 --params "$graph" --sweep "ef=$efs;rerank=2,4" --save "$work/hnsw-sq8"
  run "hnsw+sq4" --index hnsw+sq4 --params "$graph" --sweep "ef=$efs;rerank=4,8" --save "$work/hnsw-sq4"
  run "hnsw+rabitq 4 bits" --index hnsw+rabitq --params "$graph,bits=4" --sweep "ef=$efs;rerank=0,2" --save "$work/hnsw-rabitq4"
  run "hnsw+rabitq 2 bits" --index hnsw+rabitq --params "$graph,bits=2" --sweep "ef=$efs;rerank=0" --save "$work/hnsw-rabitq2"
  run "hnsw+rabitq 1 bit" --index hnsw+rabitq --params "$graph,bits=1" --sweep "ef=20,40,80,160,320;rerank=0"
  run "flat+sq8" --index flat+sq8 --sweep "rerank=1,2,4"
  run "flat+rabitq 1 bit" --index flat+rabitq --params bits=1 --sweep "rerank=0,4,10,20" --save "$work/flat-rabitq1"
  run "flat+rabitq 4 bits" --index flat+rabitq --params bits=4 --sweep "rerank=0,1,2"
  run "flat+pq 4-bit m=96" --index flat+pq --params m=96,nbits=4 --sweep "rerank=5,10,20,40"
  run "flat+pq 8-bit m=48" --index flat+pq --params m=48,nbits=8 --sweep "rerank=5,10,20,40"
fi
peers_cmd=("$venv/bin/python" scripts/peer_quant.py --base "$base" --query "$query" --gt "$gt" --metric "$metric"
  --build-threads 2 --k 10 --queries "$nq" --nprobe 16,32,64,128,256 --k-factor 4,8,16 --calls batch)
if want peers; then
  echo "== peers (faiss SQ8, IVF-PQ + refine, fast-scan, RaBitQ; hnswlib)" >&2
  "${peers_cmd[@]}" | tee -a "$rows"
fi
if want open; then
  # Resident memory as the OS reports it, in a process that only opens a saved folder and searches.
  opens=$out/$name.open.jsonl
  : > "$opens"
  for cfg in "hnsw-sq8 40 2" "hnsw-sq4 40 4" "hnsw-rabitq4 40 0" "hnsw-rabitq2 60 0" "flat-rabitq1 16 0"; do
    set -- $cfg
    [ -d "$work/$1" ] || continue
    echo "== open $1" >&2
    "$quarry" bench open --index-file "$work/$1" --query "$query" --ef "$2" --rerank "$3" --warm --passes 3 --json \
      | sed "s/^{/{\"config\":\"$1\",/" | tee -a "$opens"
  done
fi
# The report renderer says "one query per call"; label how the peers were timed (issue 18).
if want report; then
  "$venv/bin/python" scripts/bench_quant_report.py "$rows" --data "$base" --command "scripts/bench_quant.sh${script_args:+ $script_args}" \
    "${cmds[@]/#/--command=}" --command "python ${peers_cmd[*]:1}" > "$out/$name.md"
  label_peer_calls "$out/$name.md" "- Peers (faiss, hnswlib): timed with one batch call per pass — every query in one call, so \
the library loops in its own C++ code, single-threaded (\`peer_quant.py --calls batch\`; rows carry \"calls\"; per-query p50 / p99 \
latencies are not measured, mean_ms = 1000 / QPS)"
  echo "wrote $out/$name.md and $out/$name.png" >&2
fi
