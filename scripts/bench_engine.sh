#!/usr/bin/env bash
# Embedded-database benchmark: Quarry (`quarry bench engine`) against qdrant-edge (qdrant-edge-py 0.9.0,
# scripts/peer_engine.py), same data, same run, same protocol: point i carries the payload
# {"g100": i % 100, "g10": i % 10, "g2": i % 2} with payload indexes on the three fields; durable ingest
# in batches of 1,000, each fsynced before it is acknowledged (Quarry: WAL fsync per batch; qdrant-edge:
# WAL + flush() after each batch), then one HNSW build (M=16, efc=200, timed apart); filtered top-10
# searches under g100 = 0 / g10 = 0 / g2 = 0 (1% / 10% / 50% of the points), one query per call on one
# thread, ids and scores only, swept over ef, recall@10 against a brute force over the admitted points
# (computed before any timing); filtered exact counts. The report gives the "done when" of issue 6:
# ingest >= 1.5x qdrant-edge's, and at every selectivity Quarry's best p50 at recall >= 0.95 <= its.
# Writes docs/benchmarks/engine-<dataset>.{jsonl,md,png}.
# Usage: scripts/bench_engine.sh [DATASET_DIR] [QUERIES]
#   DATASET_DIR holds base.* query.* (default ../shared/data/wndict-384); QUERIES default 200.
#   EFS (ef sweep of both systems, default 16,24,32,40,48,64,96,128; qdrant-edge always adds 64);
#   QUARRY_PEERS_VENV, QUARRY_BENCH_OUT (default docs/benchmarks) as in the other bench scripts;
#   ONLY (space-separated subset of: quarry peer report).
#   The quarry step starts the JSONL afresh; the peer step replaces the qdrant-edge rows in it; ONLY=report
#   re-renders the report from the rows on disk (listing only the commands run by this invocation).
set -euo pipefail
cd "$(dirname "$0")/.."
script_args="$*"
data=${1:-../shared/data/wndict-384}
nq=${2:-200}
name=engine-$(basename "$data")
out=${QUARRY_BENCH_OUT:-docs/benchmarks}
efs=${EFS:-16,24,32,40,48,64,96,128}
only=${ONLY:-quarry peer report}
want() { [[ " $only " == *" $1 "* ]]; }

# shellcheck source=scripts/bench_common.sh
source scripts/bench_common.sh

mkdir -p "$out"
rows=$out/$name.jsonl
env_shown=""
[ -z "${EFS:-}" ] || env_shown+="EFS=$EFS "
[ -z "${ONLY:-}" ] || env_shown+="ONLY='$ONLY' "
cmds=("${env_shown}scripts/bench_engine.sh${script_args:+ $script_args}")

if want quarry; then
  : > "$rows"
  echo "== quarry bench engine" >&2
  quarry_cmd=("$quarry" bench engine --base "$base" --query "$query" --queries "$nq" --ef "$efs")
  cmds+=("$(shown quarry "${quarry_cmd[@]:1}")")
  "${quarry_cmd[@]}" | tee -a "$rows"
fi
if want peer; then
  "$venv/bin/python" -c 'import qdrant_edge' 2>/dev/null || "$venv/bin/pip" install -q qdrant-edge-py==0.9.0
  # A rerun of this step replaces the qdrant-edge rows of an earlier one.
  if [ -f "$rows" ]; then
    kept=$(mktemp "${TMPDIR:-/tmp}/quarry-engine-rows.XXXXXX")
    grep -v -E '"system": ?"qdrant-edge' "$rows" > "$kept" || true
    cat "$kept" > "$rows"
    rm -f "$kept"
  fi
  echo "== qdrant-edge (scripts/peer_engine.py)" >&2
  peer_cmd=("$venv/bin/python" scripts/peer_engine.py --base "$base" --query "$query" --queries "$nq" --ef "$efs")
  cmds+=("$(shown python "${peer_cmd[@]:1}")")
  "${peer_cmd[@]}" | tee -a "$rows"
fi
if want report; then
  "$venv/bin/python" scripts/bench_engine_report.py "$rows" --data "$base" "${cmds[@]/#/--command=}" \
    --png "$out/$name.png" > "$out/$name.md"
  echo "wrote $out/$name.md and $out/$name.png" >&2
fi
