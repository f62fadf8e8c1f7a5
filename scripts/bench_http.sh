#!/usr/bin/env bash
# Load test of `quarry serve` on the dev set (../shared/data/wndict-384), loopback, one machine:
# search QPS and latency at concurrency 1, 8, 32 (recall@10 of the answers checked), the same
# searches in process, and a mixed 90/10 search/upsert load with kill -9 + restart half-way.
# Rows go to $OUT (default docs/benchmarks/server-wndict-384.jsonl); the report is written by hand
# from them into docs/benchmarks/server-wndict-384.md.
set -euo pipefail
cd "$(dirname "$0")/.."
data=${DATA:-../shared/data/wndict-384}
out=${OUT:-docs/benchmarks/server-wndict-384.jsonl}
export CARGO_TARGET_DIR="${QUARRY_TARGET_DIR:-${CARGO_TARGET_DIR:-$HOME/.cache/quarry/target}}"
cargo build --release --locked -p quarry-cli
: > "$out"
"$CARGO_TARGET_DIR/release/quarry" bench http \
  --base "$data/base.f16.npy" --query "$data/query.f16.npy" --gt "$data/groundtruth.ivecs" \
  --queries 2000 --k 10 --ef "${EF:-64}" --concurrency 1,8,32 --seconds "${SECONDS_PER_LEVEL:-30}" \
  --mixed-seconds "${MIXED_SECONDS:-600}" --mixed-concurrency "${MIXED_CONCURRENCY:-8}" --kill-at 0.5 \
  --out "$out"
