#!/usr/bin/env bash
# Throughput of read-only nodes behind HAProxy (scripts/cluster.sh) on this machine: the
# wndict-384 vectors loaded through the writer node into an object store (a local folder, or
# STORE=s3://…), then the same search load (`quarry bench http`, concurrency $CONC, $SECONDS_PER
# seconds) against: a plain single server on local disk, one read-only node directly, and the
# balancer with 1, 2 and 4 read-only nodes. Rows go to docs/benchmarks/object-storage-cluster.jsonl.
#
# NODE_CPU=F gives every server (the local one and each read-only node) a budget of F of one core
# (a cgroup each: scripts/cpu_cap.sh, root), as separate machines would: the balancer and the
# load generator keep the rest of the machine, and each row says how busy the nodes were against
# their budget and how much of the machine stayed idle, which shows whether the load generator
# or the balancer was the bottleneck.
set -euo pipefail
cd "$(dirname "$0")/.."
data=${DATA:-../shared/data}/wndict-384
out=${OUT:-docs/benchmarks}/object-storage-cluster.jsonl
conc=${CONC:-16}
secs=${SECONDS_PER:-15}
state=${STATE:-/tmp/quarry-cluster}
export CARGO_TARGET_DIR="${QUARRY_TARGET_DIR:-${CARGO_TARGET_DIR:-$HOME/.cache/quarry/target}}"
cargo build --release -q -p quarry-cli
export QUARRY=$CARGO_TARGET_DIR/release/quarry
commit=$(git rev-parse --short HEAD)
rm -rf "$state"
store=${STORE:-file://$state/store}
node_cpu=${NODE_CPU:-}
busy() { # busy NAMES…: CPU seconds used by the capped groups, then the machine's idle and total jiffies
  local t=0
  for g in "$@"; do t=$(awk -v a="$t" -v b="$(bash scripts/cpu_cap.sh usage "$g")" 'BEGIN {print a + b}'); done
  echo "$t $(awk '/^cpu / {print $5 + $6, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9}' /proc/stat)"
}
bench() { # bench LABEL URL [extra args]; $GROUPS_NOW: the capped groups serving
  local label=$1 url=$2
  shift 2
  local before after
  before=$([ -n "$node_cpu" ] && busy $GROUPS_NOW || echo "0 0 0")
  "$QUARRY" bench http --url "$url" --skip-load --base "$data/base.f16.npy" --query "$data/query.f16.npy" \
    --gt "$data/groundtruth.ivecs" --concurrency "$conc" --seconds "$secs" "$@" |
    python3 -c "
import json, sys
for line in sys.stdin:
    r = json.loads(line); r.update({'setup': '$label', 'commit': '$commit', 'store': '$store'})
    if '$node_cpu':
        r['node_cpu_budget'] = float('$node_cpu')
    print(json.dumps(r)); sys.stderr.write(f\"{r['setup']:<28} {r.get('qps') or 0:8.0f} q/s  p99 {r.get('p99_ms') or 0:6.1f} ms  recall {r.get('recall') or 0:.3f}\\n\")
" >>"$out"
  if [ -n "$node_cpu" ]; then
    after=$(busy $GROUPS_NOW)
    python3 - "$before" "$after" "$secs" "$node_cpu" "$label" "$commit" "$(echo $GROUPS_NOW | wc -w)" <<'PY' | tee -a "$out" >&2
import json, sys
b, a = [list(map(float, x.split())) for x in sys.argv[1:3]]
secs, budget, label, commit = float(sys.argv[3]), float(sys.argv[4]), sys.argv[5], sys.argv[6]
n = int(sys.argv[7])
hz_total = a[2] - b[2]
print(json.dumps({"setup": label, "commit": commit, "phase": "cpu", "nodes": n, "node_cpu_budget": budget,
    "node_cores_used": round((a[0] - b[0]) / secs, 3), "node_cores_budget": round(n * budget, 3),
    "machine_idle_fraction": round((a[1] - b[1]) / hz_total, 3) if hz_total else None}))
PY
  fi
}
ready() { # ready PORT: wait until the node at PORT serves the whole collection
  for _ in $(seq 1 600); do
    c=$(curl -sf -X POST "http://127.0.0.1:$1/collections/bench/points/count" -H 'Content-Type: application/json' -d '{}' |
      python3 -c 'import json,sys; print(json.load(sys.stdin)["result"]["count"])' 2>/dev/null || echo 0)
    [ "$c" = 108000 ] && return 0
    sleep 1
  done
  echo "node :$1 never had the collection" >&2
  return 1
}
# Load through the writer (it writes through to the store), then the baseline: a plain server
# on a local folder holding the same collection (a copy of the writer's).
bash scripts/cluster.sh start 1 "$store"
"$QUARRY" bench http --url http://127.0.0.1:8090 --base "$data/base.f16.npy" --query "$data/query.f16.npy" \
  --concurrency "" --out /dev/null
ready 8091
bash scripts/cluster.sh stop
cp -r "$state/writer" "$state/local"
"$QUARRY" serve --data "$state/local" --port 8099 >"$state/local.log" 2>&1 &
local_pid=$!
[ -n "$node_cpu" ] && bash scripts/cpu_cap.sh "$local_pid" local "$node_cpu"
sleep 1
ready 8099
GROUPS_NOW=local bench "local disk, 1 server" http://127.0.0.1:8099
kill $local_pid
for n in 1 2 4; do
  bash scripts/cluster.sh start "$n" "$store"
  for i in $(seq 1 "$n"); do ready $((8090 + i)); done
  export GROUPS_NOW
  GROUPS_NOW=$(for i in $(seq 1 "$n"); do printf 'reader-%s ' "$i"; done)
  [ "$n" = 1 ] && bench "read-only node, direct" http://127.0.0.1:8091
  bench "balancer, $n read-only node(s)" http://127.0.0.1:${LB_PORT:-8080}
  bash scripts/cluster.sh stop
done
echo "rows in $out"
