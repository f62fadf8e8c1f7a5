#!/usr/bin/env bash
# The web console in a real headless browser: Chromium and its driver from Debian (installed here
# when missing, as root), Selenium from PyPI in a venv outside the clone ($QUARRY_PY_CONSOLE,
# default ~/.cache/quarry/pyconsole). Starts `quarry serve` with an API key over a database made
# here (documents ingested, a vector collection) and a reports folder, then drives /console:
# the key, collections, a text search with explain, a document, a vector search, report charts.
# Screenshots are kept in $CONSOLE_ARTIFACTS (default artifacts/console/). Called by
# scripts/test.sh after the cargo tests built the binary; QUARRY_BIN overrides the binary.
set -euo pipefail
cd "$(dirname "$0")/.."
home=${HOME:-$(getent passwd "$(id -u)" | cut -d: -f6)}
target="${CARGO_TARGET_DIR:-$home/.cache/quarry/target}"
QUARRY_BIN="${QUARRY_BIN:-$target/debug/quarry}"
if ! command -v chromium > /dev/null || ! command -v chromedriver > /dev/null; then
  if [ "$(id -u)" != 0 ]; then
    echo "the console test needs chromium and chromium-driver (apt-get install chromium chromium-driver)" >&2
    exit 1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver > /dev/null
fi
venv="${QUARRY_PY_CONSOLE:-$home/.cache/quarry/pyconsole}"
pins="selenium==4.51.0 pytest==8.4.2"
stamp="$venv/.quarry-pins"
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$pins" ]; then
  python3 -m venv "$venv"
  # shellcheck disable=SC2086
  "$venv/bin/pip" install --disable-pip-version-check -q $pins
  echo "$pins" > "$stamp"
fi

work=$(mktemp -d)
out="$work/serve.log"
pid=
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; rm -rf "$work"' EXIT
mkdir -p "$work/docs" "$work/reports"
printf '# Granite\n\nGranite is an igneous rock of quartz and feldspar, quarried for buildings and monuments.\n' > "$work/docs/granite.md"
printf '<html><head><title>Basalt</title></head><body><h1>Basalt</h1><p>Basalt is a dark volcanic rock formed from lava.</p></body></html>' > "$work/docs/basalt.html"
printf 'Marble\n\nMarble is metamorphosed limestone, loved by sculptors.\n' > "$work/docs/marble.txt"
"$QUARRY_BIN" ingest --dir "$work/db" --collection kb --files "$work/docs" --model none > /dev/null 2>&1
"$QUARRY_BIN" collection create --dir "$work/db" --name vec --dim 3 --metric l2 > /dev/null
printf '{"id": 1, "vector": [1, 0, 0], "payload": {"name": "x axis"}}\n{"id": 2, "vector": [0, 1, 0], "payload": {"name": "y axis"}}\n{"id": 3, "vector": [0, 0, 1], "payload": {"name": "z axis"}}\n' > "$work/vec.jsonl"
"$QUARRY_BIN" ingest --dir "$work/db" --collection vec --jsonl "$work/vec.jsonl" > /dev/null
cp docs/benchmarks/hnsw-wndict-384.jsonl docs/benchmarks/beir-scifact.jsonl "$work/reports/"
key="console-key-123"
"$QUARRY_BIN" serve --data "$work/db" --port 0 --api-key "$key" --reports "$work/reports" > "$out" 2>&1 &
pid=$!
for _ in $(seq 100); do grep -q listening "$out" && break; sleep 0.1; done
addr=$(grep -o 'http://[0-9.:]*' "$out" | head -1)
export QUARRY_URL="$addr" QUARRY_KEY="$key" CONSOLE_ARTIFACTS="${CONSOLE_ARTIFACTS:-$PWD/artifacts/console}"
mkdir -p "$CONSOLE_ARTIFACTS"
"$venv/bin/pytest" -q -rs -p no:cacheprovider crates/quarry-server/tests/console
echo "console screenshots in $CONSOLE_ARTIFACTS"
