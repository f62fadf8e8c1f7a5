#!/usr/bin/env bash
# Object-storage tests against a local S3-compatible server: moto's server mode (PyPI
# `moto[server]`, pinned below). Why moto: it installs from PyPI with no other service, implements
# S3's conditional PUT (If-None-Match: *) that commits rely on, and starts in about a second.
# MinIO is not in the registries this project may use.
#
# Starts moto on a free port, creates a bucket, runs quarry-store's object tests with
# QUARRY_S3_URL pointing at it (QUARRY_REQUIRE_S3=1: a missing server fails instead of skipping)
# and 500 rounds of the 8-writer race; then, end to end with `quarry serve` built with the
# `object-store` feature: a writer node on s3:// loads points and is killed with SIGKILL, and a
# read-only node with an empty cache must serve every acknowledged point and refuse writes.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${QUARRY_S3_VENV:-$HOME/.cache/quarry/s3-venv}
if [ ! -x "$venv/bin/moto_server" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q 'moto[server]==5.2.1'
fi
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
log=$(mktemp)
"$venv/bin/moto_server" -H 127.0.0.1 -p "$port" >"$log" 2>&1 &
moto=$!
trap 'kill $moto 2>/dev/null || true; rm -f "$log"' EXIT
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$port/" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -sf -X PUT "http://127.0.0.1:$port/quarry-test" >/dev/null
export AWS_ENDPOINT_URL="http://127.0.0.1:$port" AWS_ALLOW_HTTP=true AWS_REGION=us-east-1 \
  AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test
export QUARRY_S3_URL="s3://quarry-test/ci" QUARRY_REQUIRE_S3=1 QUARRY_RACE_ROUNDS=${QUARRY_RACE_ROUNDS:-500}
cargo test -p quarry-store --features object-store --test objects --locked -- --nocapture --test-threads 1

# End to end on S3: kill -9 the writer, then an empty-cache read-only node serves every ack.
cargo build --release -q -p quarry-cli --features object-store --locked
quarry=${CARGO_TARGET_DIR:-target}/release/quarry
work=$(mktemp -d)
free() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
up() { for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$1/readyz" >/dev/null 2>&1 && return 0; sleep 0.1; done; echo "node :$1 did not start" >&2; return 1; }
pw=$(free)
url="s3://quarry-test/e2e-$$"
"$quarry" serve --data "$url" --cache-dir "$work/w" --port "$pw" >"$work/w.log" 2>&1 &
writer=$!
trap 'kill $moto $writer 2>/dev/null || true; rm -rf "$log" "$work"' EXIT
up "$pw"
curl -sf -X PUT "http://127.0.0.1:$pw/collections/c" -H 'Content-Type: application/json' \
  -d '{"vectors": {"size": 4, "distance": "Dot"}}' >/dev/null
acked=0
for b in $(seq 0 29); do
  pts=$(python3 -c "import json; print(json.dumps({'points': [{'id': $b * 10 + j, 'vector': [1, j, 2, $b]} for j in range(10)]}))")
  curl -sf -X PUT "http://127.0.0.1:$pw/collections/c/points?wait=true" -H 'Content-Type: application/json' -d "$pts" >/dev/null
  acked=$((acked + 10))
done
kill -9 $writer
wait $writer 2>/dev/null || true
pr=$(free)
"$quarry" serve --data "$url" --cache-dir "$work/r" --read-only --port "$pr" >"$work/r.log" 2>&1 &
reader=$!
trap 'kill $moto $reader 2>/dev/null || true; rm -rf "$log" "$work"' EXIT
up "$pr"
count=$(curl -sf -X POST "http://127.0.0.1:$pr/collections/c/points/count" -H 'Content-Type: application/json' -d '{}' |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["result"]["count"])')
[ "$count" = "$acked" ] || { echo "the read-only node serves $count of $acked acknowledged points" >&2; exit 1; }
status=$(curl -s -o /dev/null -w '%{http_code}' -X PUT "http://127.0.0.1:$pr/collections/c/points?wait=true" \
  -H 'Content-Type: application/json' -d '{"points": [{"id": 1, "vector": [1, 1, 1, 1]}]}')
[ "$status" = 400 ] || { echo "a write to the read-only node answered $status" >&2; exit 1; }
echo "s3 end to end: writer killed with SIGKILL; the read-only node serves all $acked acknowledged points and refuses writes"
