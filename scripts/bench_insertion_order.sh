#!/usr/bin/env bash
# HNSW insertion-order and adaptive-ef study (Elliott & Clark, arXiv 2405.17813;
# docs/benchmarks/hnsw-insertion-order.md).
#  1. `quarry bench order`: LID of every base row (pilot graph, k = 20) checked against exact k-NN on a
#     sample, then one graph per insertion order (as_given, random, lid_asc, lid_desc) and seed
#     (M=16, efc=200), built on ONE thread so the insertion sequence is exactly the order, and
#     recall@10 at fixed ef = 10, 20, 40.
#  2. The same with 2 build threads (insertions taken in order from a shared counter, at most two in
#     flight) and more seeds, plus the rows grouped by nearest of 64 centres and inserted as given.
#  3. The same on SciFact (5,183 × 384, 300 queries, exact ground truth computed by a scan).
#  4. `quarry bench adaptive-ef`: per-query ef from a probe search's features against fixed ef at equal
#     recall (policies fitted on the even queries, timed on the odd ones, thread CPU time).
# Raw Markdown output goes to $QUARRY_BENCH_OUT/hnsw-insertion-order.runs.md (default docs/benchmarks).
# Usage: scripts/bench_insertion_order.sh [DATASET_DIR] [SEEDS] [SEEDS_2T]
#   defaults ../shared/data/wndict-384, 1,2,3 (one-thread builds), 1,2,3,4,5 (two-thread builds and SciFact)
# Takes about an hour on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-../shared/data/wndict-384}
seeds=${2:-1,2,3}
seeds2=${3:-1,2,3,4,5}
out=${QUARRY_BENCH_OUT:-docs/benchmarks}
no_peers=1
# shellcheck source=scripts/bench_common.sh
source scripts/bench_common.sh
set_args=(--base "$base" --query "$query" --gt "$gt" --metric "$metric")

mkdir -p "$out"
log=$out/hnsw-insertion-order.runs.md
run() {
  echo "== quarry $*" >&2
  { printf '\n# `quarry %s`\n\n' "$*"; "$quarry" "$@"; } | tee -a "$log"
}
: > "$log"
run bench order "${set_args[@]}" --M 16 --efc 200 --ef 10,20,40 --seeds "$seeds" --build-threads 1 --passes 0
run bench order "${set_args[@]}" --M 16 --efc 200 --ef 10,20,40 --seeds "$seeds2" --build-threads 2 --passes 0 \
  --lid-sample 0 --grouped 64
scifact=../shared/data/scifact
if [ -f "$scifact/corpus_embeddings.npy" ]; then
  run bench order --base "$scifact/corpus_embeddings.npy" --query "$scifact/query_embeddings.npy" --metric ip \
    --M 16 --efc 200 --ef 10,20,40 --seeds "$seeds2" --build-threads 1 --passes 0 --lid-sample 500 --grouped 32
fi
run bench adaptive-ef "${set_args[@]}" --M 16 --efc 200 --build-threads 2 --passes 7
echo "wrote $log" >&2
