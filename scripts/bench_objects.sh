#!/usr/bin/env bash
# One query node serving a collection from object storage through a block cache of a fraction of
# the collection's bytes, against the same collection on local disk in the same run
# (`quarry bench objects`), on wndict-384: cache fractions, injected request latency (0 / 20 ms,
# as object storage answers), a Zipf workload, and two code families. Rows go to
# docs/benchmarks/object-storage-node.jsonl with the commit and the machine.
#
# The work folder is on tmpfs by default (/dev/shm): on this VM, proactive reclaim (DAMON
# `pageout`) evicts cold page-cache pages between passes, which made local-disk rates vary 2×
# from run to run. On tmpfs the store, the writer's folder and the node's slab all stay in RAM,
# as a warm page cache would keep them.
set -euo pipefail
cd "$(dirname "$0")/.."
data=${DATA:-../shared/data}/wndict-384
out=${OUT:-docs/benchmarks}/object-storage-node.jsonl
work=${WORK:-/dev/shm/quarry-bench-objects}
threads=${THREADS:-256}
export CARGO_TARGET_DIR="${QUARRY_TARGET_DIR:-${CARGO_TARGET_DIR:-$HOME/.cache/quarry/target}}"
cargo build --release -q -p quarry-cli
quarry=$CARGO_TARGET_DIR/release/quarry
commit=$(git rev-parse --short HEAD)
machine="$(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(free -g | awk '/Mem:/{print $2}') GB RAM"
run() { # run LABEL INDEX EF [extra args]
  local label=$1 index=$2 ef=$3
  shift 3
  local dir="$work/${index//+/-}"
  local reuse=()
  [ -d "$dir/store" ] && reuse=(--reuse)
  "$quarry" bench objects --base "$data/base.f16.npy" --query "$data/query.f16.npy" --gt "$data/groundtruth.ivecs" \
    --dir "$dir" "${reuse[@]}" --index "$index" --ef "$ef" --threads "$threads" --queries 1000 \
    --cycles "${CYCLES:-4}" "$@" |
    python3 -c "
import json, sys
for line in sys.stdin:
    r = json.loads(line); r.update({'run': '$label', 'commit': '$commit', 'machine': '$machine', 'data': 'wndict-384'})
    print(json.dumps(r))
" >>"$out"
}
run "rabitq4 cache 10%" spann+rabitq4 32 --block 4096 --cache-fraction 0.1 --latency-ms 0,20 --warm-passes 2
for f in 0.25 0.5 1.0; do
  run "rabitq4 cache ${f}" spann+rabitq4 32 --block 4096 --cache-fraction "$f" --latency-ms 20 --warm-passes 2
done
run "rabitq4 cache 10% block 16KiB" spann+rabitq4 32 --block 16384 --cache-fraction 0.1 --latency-ms 20 --warm-passes 2
run "rabitq4 cache 10% zipf 1.0" spann+rabitq4 32 --block 4096 --cache-fraction 0.1 --latency-ms 20 --warm-passes 2 \
  --zipf 1.0 --draws 5000
run "sq8 cache 10%" spann+sq8 64 --block 4096 --cache-fraction 0.1 --latency-ms 20 --warm-passes 2
echo "rows appended to $out" >&2
