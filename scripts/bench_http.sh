#!/usr/bin/env bash
# Load test of `quarry serve` on the dev set (../shared/data/wndict-384), loopback, one machine:
#  1. `quarry bench http`: upload through the REST API, build, then search QPS and latency at
#     concurrency 1, 8, 32 (recall@10 of the answers checked) and the same searches in process;
#  2. wrk (Debian's) against the same server and collection at 1, 8, 32 connections;
#  3. `quarry bench http` again on a fresh folder: a mixed 90% search / 10% upsert load for
#     $MIXED_SECONDS (600) with kill -9 + restart half-way, then every acknowledged write checked.
# Rows go to $OUT (default docs/benchmarks/server-wndict-384.jsonl).
set -euo pipefail
cd "$(dirname "$0")/.."
data=${DATA:-../shared/data/wndict-384}
out=${OUT:-docs/benchmarks/server-wndict-384.jsonl}
ef=${EF:-64}
secs=${SECONDS_PER_LEVEL:-30}
export CARGO_TARGET_DIR="${QUARRY_TARGET_DIR:-${CARGO_TARGET_DIR:-$HOME/.cache/quarry/target}}"
cargo build --release --locked -p quarry-cli
quarry="$CARGO_TARGET_DIR/release/quarry"
command -v wrk >/dev/null || apt-get install -y wrk >/dev/null
py=$(bash scripts/server_test_env.sh)/python
db=$(mktemp -d)
bodies=$(mktemp)
trap 'rm -rf "$db" "$bodies"' EXIT
: > "$out"

"$quarry" bench http --base "$data/base.f16.npy" --query "$data/query.f16.npy" --gt "$data/groundtruth.ivecs" \
  --queries 2000 --k 10 --ef "$ef" --concurrency 1,8,32 --seconds "$secs" --mixed-seconds 0 \
  --data "$db/sweep" --out "$out"

"$py" - "$data/query.f16.npy" "$ef" > "$bodies" <<'PY'
import json, sys
import numpy as np
q = np.load(sys.argv[1]).astype(np.float32)
for row in q:
    print(json.dumps({"vector": [float(x) for x in row], "limit": 10, "params": {"hnsw_ef": int(sys.argv[2])}}))
PY
log=$(mktemp)
"$quarry" serve --data "$db/sweep" --port 0 > "$log" 2>/dev/null &
pid=$!
for _ in $(seq 300); do grep -q listening "$log" && break; sleep 0.1; done
addr=$(grep -o 'http://[0-9.:]*' "$log")
for c in 1 8 32; do
  t=$(( c < 2 ? 1 : 2 ))
  row=$(WRK_BODIES="$bodies" wrk -t"$t" -c"$c" -d"${secs}s" --latency -s scripts/wrk_search.lua "$addr" | tail -1)
  echo "{\"op\": \"search_wrk\", \"concurrency\": $c, ${row#\{}" | tee -a "$out"
done
kill -TERM $pid; wait $pid || true

"$quarry" bench http --base "$data/base.f16.npy" --query "$data/query.f16.npy" \
  --queries 2000 --k 10 --ef "$ef" --concurrency "" --mixed-seconds "${MIXED_SECONDS:-600}" \
  --mixed-concurrency "${MIXED_CONCURRENCY:-8}" --kill-at 0.5 --data "$db/mixed" --out "$out"
