#!/usr/bin/env bash
# HNSW benchmark: Quarry's hnsw index against hnswlib, faiss IndexHNSWFlat and usearch on the same
# data in the same run, with the same graph parameters (M=16, ef_construction=200, built on 2 threads)
# and the same ef sweep, on 1 search thread: Quarry one query at a time in its Rust loop, the peers with one
# batch call per timed pass (peer_bench.py --calls batch: every query in one call, so each library loops in
# its own C++ code, single-threaded — the fair match, issue 18; never --calls single here).
# Writes docs/benchmarks/hnsw-<dataset>.{jsonl,md,png} (recall–QPS curves, QPS at recall 0.90/0.95/0.99).
# Usage: scripts/bench_hnsw.sh [DATASET_DIR] [QUERIES]
#   DATASET_DIR holds base.* query.* groundtruth.* (default ../shared/data/wndict-384); QUERIES default 2000
#   METRIC (default ip) overrides the metric, QUARRY_PEERS_VENV the peers' Python venv, QUARRY_BENCH_OUT
#   the output folder (default docs/benchmarks).
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-../shared/data/wndict-384}
nq=${2:-2000}
name=hnsw-$(basename "$data")
out=${QUARRY_BENCH_OUT:-docs/benchmarks}
M=16 efc=200 efs=10,20,40,80,160,320 build_threads=2 threads=1 k=10

# shellcheck source=scripts/bench_common.sh
source scripts/bench_common.sh
quarry_cmd=("$quarry" bench ann --base "$base" --query "$query" --gt "$gt" --metric "$metric" --index hnsw
  --params "M=$M,efc=$efc" --sweep "ef=$efs" --build-threads "$build_threads" --threads "$threads"
  -k "$k" --queries "$nq" --json)
peers_cmd=("$venv/bin/python" ../shared/tools/peer_bench.py --base "$base" --query "$query" --gt "$gt"
  --metric "$metric" --peers hnswlib,faiss-hnsw,usearch --M "$M" --efc "$efc" --ef "$efs"
  --build-threads "$build_threads" --threads "$threads" --k "$k" --queries "$nq" --calls batch)

mkdir -p "$out"
rows=$out/$name.jsonl
: > "$rows"
echo "== quarry hnsw" >&2
"${quarry_cmd[@]}" | tee -a "$rows"
echo "== peers: hnswlib, faiss-hnsw, usearch" >&2
"${peers_cmd[@]}" | tee -a "$rows"
"$venv/bin/python" scripts/bench_plot.py "$rows" --data "$base" \
  --command "scripts/bench_hnsw.sh${*:+ $*}" --command "$(shown quarry "${quarry_cmd[@]:1}")" \
  --command "$(shown python "${peers_cmd[@]:1}")" \
  > "$out/$name.md"
# bench_plot.py says "one query per call"; label how the peers were timed (issue 18).
label_peer_calls "$out/$name.md" "- Peers (hnswlib, faiss, usearch): timed with one batch call per pass — every query in one \
call, so each library loops in its own C++ code, single-threaded (\`peer_bench.py --calls batch\`); rows carry \"calls\""
echo "wrote $out/$name.md and $out/$name.png" >&2
