#!/usr/bin/env bash
# HNSW benchmark: Quarry's graphs against hnswlib, faiss IndexHNSWFlat, faiss IndexHNSWSQ (8-bit codes,
# alone and with IndexRefineFlat) and usearch on the same data in the same run, with the same graph
# parameters (M=16, ef_construction=200, built on 2 threads) and the same ef sweep, on 1 search thread:
# Quarry one query at a time in its Rust loop, the peers with one batch call per timed pass (every query
# in one call, so each library loops in its own C++ code, single-threaded — the fair match, issue 18).
# Quarry configurations:
#   hnsw             the default: the walk ranks by 8-bit codes held beside the rows, the best 3k are
#                    re-scored exactly (walk=sq8)
#   hnsw walk=f32    the same graph walked on the f32 rows (the classic HNSW search, as hnswlib's)
#   hnsw+sq8         the compressed graph (rows memory-mapped, read only to re-score 3k), re-scored and
#                    codes-only (--no-rescore), uncapped and in a memory cgroup of 50% of the raw f32 bytes
#                    (page cache included; `--memory-limit-mb`)
# Writes docs/benchmarks/hnsw-<dataset>.{jsonl,md,png} (recall–QPS curves, QPS at recall 0.90/0.95/0.99,
# ratios to hnswlib, build time).
# Usage: scripts/bench_hnsw.sh [DATASET_DIR] [QUERIES]
#   DATASET_DIR holds base.* query.* groundtruth.* (default ../shared/data/wndict-384); QUERIES default 2000
#   METRIC (default ip) overrides the metric, EFS the ef sweep, QUARRY_PEERS_VENV the peers' Python venv,
#   QUARRY_BENCH_OUT the output folder (default docs/benchmarks), QUARRY_BENCH_INDEXES where indexes are
#   saved (default ~/.cache/quarry/bench-indexes). Needs root for the capped rows (memory cgroups).
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-../shared/data/wndict-384}
nq=${2:-2000}
name=hnsw-$(basename "$data")
out=${QUARRY_BENCH_OUT:-docs/benchmarks}
indexes=${QUARRY_BENCH_INDEXES:-$HOME/.cache/quarry/bench-indexes}/$name
M=16 efc=200 efs=${EFS:-10,20,30,40,60,80,120,160,240,320,640,1280} build_threads=2 threads=1 k=10

# shellcheck source=scripts/bench_common.sh
source scripts/bench_common.sh
raw_bytes=$("$venv/bin/python" -c "
import numpy as np, os, sys
p = sys.argv[1]
if p.endswith('.npy'):
    a = np.load(p, mmap_mode='r'); print(a.shape[0] * a.shape[1] * 4)
else:  # .fvecs: a 4-byte dimension before each row
    d = int(np.fromfile(p, dtype=np.int32, count=1)[0]); print(os.path.getsize(p) // (4 * (d + 1)) * d * 4)" "$base")
cap50=$(( raw_bytes / 2 / 1048576 ))
common=(--base "$base" --query "$query" --gt "$gt" --metric "$metric" --threads "$threads" -k "$k"
  --queries "$nq" --json)
mkdir -p "$out" "$indexes"
rm -rf "${indexes:?}"/*
rows=$out/$name.jsonl
: > "$rows"
cmds=()
run() { # run LABEL CMD...: prints the command's rows into $rows and records the command
  local label=$1; shift
  echo "== $label" >&2
  cmds+=("$(shown "${@/#$quarry/quarry}")")
  "$@" | tee -a "$rows"
}
run "quarry hnsw (walk on 8-bit codes, exact re-scoring)" "$quarry" bench ann "${common[@]}" --index hnsw \
  --params "M=$M,efc=$efc" --build-threads "$build_threads" --sweep "ef=$efs" --save "$indexes/hnsw.qhnsw"
run "quarry hnsw, the same graph walked on f32 rows" "$quarry" bench ann "${common[@]}" --index hnsw \
  --load "$indexes/hnsw.qhnsw" --params walk=f32 --sweep "ef=$efs"
run "quarry hnsw+sq8 (re-scored)" "$quarry" bench ann "${common[@]}" --index hnsw+sq8 \
  --params "M=$M,efc=$efc" --build-threads "$build_threads" --sweep "ef=$efs" --save "$indexes/hnsw-sq8"
run "quarry hnsw+sq8 codes only" "$quarry" bench ann "${common[@]}" --index hnsw+sq8 --load "$indexes/hnsw-sq8" \
  --no-rescore --sweep "ef=$efs"
if [ "$(id -u)" = 0 ] && [ "$cap50" -gt 0 ]; then
  run "quarry hnsw+sq8 codes only, capped at $cap50 MiB (50% of the raw f32 bytes)" "$quarry" bench ann \
    "${common[@]}" --index hnsw+sq8 --load "$indexes/hnsw-sq8" --no-rescore --sweep "ef=$efs" --memory-limit-mb "$cap50"
  run "quarry hnsw+sq8 re-scored, capped at $cap50 MiB" "$quarry" bench ann "${common[@]}" --index hnsw+sq8 \
    --load "$indexes/hnsw-sq8" --sweep "ef=$efs" --memory-limit-mb "$cap50"
else
  echo "not root (or data under 2 MiB): no capped rows" >&2
fi
run "peers: hnswlib, faiss-hnsw, usearch" "$venv/bin/python" ../shared/tools/peer_bench.py --base "$base" \
  --query "$query" --gt "$gt" --metric "$metric" --peers hnswlib,faiss-hnsw,usearch --M "$M" --efc "$efc" \
  --ef "$efs" --build-threads "$build_threads" --threads "$threads" --k "$k" --queries "$nq" --calls batch
run "peer: faiss HNSW-SQ8, alone and refined" "$venv/bin/python" scripts/peer_hnsw_sq.py --base "$base" \
  --query "$query" --gt "$gt" --metric "$metric" --M "$M" --efc "$efc" --ef "$efs" \
  --build-threads "$build_threads" --queries "$nq"
plot_cmds=()
for c in "scripts/bench_hnsw.sh${*:+ $*}" "${cmds[@]}"; do plot_cmds+=(--command "${c//$venv\/bin\/python/python}"); done
"$venv/bin/python" scripts/bench_plot.py "$rows" --data "$base" "${plot_cmds[@]}" > "$out/$name.md"
# bench_plot.py says "one query per call"; label how the peers were timed (issue 18).
label_peer_calls "$out/$name.md" "- Peers (hnswlib, faiss, usearch): timed with one batch call per pass — every query in one \
call, so each library loops in its own C++ code, single-threaded (\`peer_bench.py --calls batch\`, \
\`peer_hnsw_sq.py\`); rows carry \"calls\". Capped rows: the search ran in a memory cgroup of 50% of the raw f32 \
bytes ($cap50 MiB, page cache included) after the page cache was dropped"
echo "wrote $out/$name.md and $out/$name.png" >&2
