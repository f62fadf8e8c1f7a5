#!/usr/bin/env bash
# Object-storage tests against a local S3-compatible server: moto's server mode (PyPI
# `moto[server]`, pinned below). Why moto: it installs from PyPI with no other service, implements
# S3's conditional PUT (If-None-Match: *) that commits rely on, and starts in about a second.
# MinIO is not in the registries this project may use.
#
# Starts moto on a free port, creates a bucket, runs quarry-store's object tests with
# QUARRY_S3_URL pointing at it (QUARRY_REQUIRE_S3=1: a missing server fails instead of skipping)
# and 500 rounds of the 8-writer race, then stops the server.
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
