#!/usr/bin/env bash
# Server tests that need Python: the official qdrant-client against `quarry serve` (pytest), then
# schemathesis over /openapi.json with 0 server errors allowed (keys on, every route). Called by
# scripts/test.sh after the cargo tests built the binary; QUARRY_BIN overrides the binary.
set -euo pipefail
cd "$(dirname "$0")/.."
home=${HOME:-$(getent passwd "$(id -u)" | cut -d: -f6)}
target="${CARGO_TARGET_DIR:-$home/.cache/quarry/target}"
export QUARRY_BIN="${QUARRY_BIN:-$target/debug/quarry}"
bin=$(bash scripts/server_test_env.sh)

echo "-- qdrant-client $("$bin/python" -c 'import importlib.metadata as m; print(m.version("qdrant-client"))') against quarry serve"
"$bin/pytest" -q -rs crates/quarry-server/tests/py

echo "-- schemathesis against /openapi.json"
data=$(mktemp -d)
out=$(mktemp)
key="schemathesis-key-1"
"$QUARRY_BIN" serve --data "$data" --port 0 --api-key "$key" > "$out" 2>/dev/null &
pid=$!
trap 'kill $pid 2>/dev/null || true; rm -rf "$data" "$out"' EXIT
for _ in $(seq 100); do grep -q listening "$out" && break; sleep 0.1; done
addr=$(grep -o 'http://[0-9.:]*' "$out")
# Existing collections give the fuzzer real targets besides 404s.
curl -sf -X PUT "$addr/collections/c" -H "api-key: $key" -d '{"vectors": {"size": 3, "distance": "Cosine"}}' > /dev/null
curl -sf -X POST "$addr/quarry/collections/t/text" -H "api-key: $key" -d '{}' > /dev/null
"$bin/schemathesis" run "$addr/openapi.json" -H "api-key: $key" --checks not_a_server_error \
  -n "${SCHEMATHESIS_EXAMPLES:-50}" --seed 1 --suppress-health-check all
kill -TERM $pid
wait $pid
echo "server tests passed"
