#!/usr/bin/env bash
# Quarry from Python vs hnswlib, faiss and qdrant-edge-py from Python on the dev set, one run:
# installs the package into the peers' venv (scripts/setup_peers.sh's, ~/.cache/quarry-peers) and
# writes docs/benchmarks/python-wndict-384.jsonl.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${PEERS_VENV:-$HOME/.cache/quarry-peers}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/quarry/target}"
"$venv/bin/pip" install --disable-pip-version-check -q ./crates/quarry-py
out=${OUT:-docs/benchmarks/python-wndict-384.jsonl}
: > "$out"
"$venv/bin/python" scripts/bench_python.py --out "$out" "$@"
"$venv/bin/python" scripts/bench_python_report.py "$out" --png "${out%.jsonl}.png" > "${out%.jsonl}.tables.md"
echo "tables: ${out%.jsonl}.tables.md, plot: ${out%.jsonl}.png" >&2
