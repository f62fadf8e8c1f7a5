#!/usr/bin/env bash
# Text retrieval on a BEIR folder, Quarry against its peers in the same run: Quarry's `quarry
# beir` (a text collection built through the engine: BM25, dense with its own embeddings, hybrid)
# and scripts/peer_beir.py (bm25s, sentence-transformers with exact numpy search, their RRF).
# Quarry collections: BM25 only; flat (exact) with truncation at the model window (the published
# protocol); hnsw with truncation (to compare with exact); hnsw with max-over-passages (Quarry's
# default for long documents). Dense and hybrid runs reuse each built collection (--reuse).
# Hybrid: weighted = equal-weight convex combination of min-max scores (the default), rrf = k 60.
# Writes docs/benchmarks/beir-<name>.{jsonl,md}; the TREC runs go to $RUNS_DIR (default
# /tmp/quarry-beir-runs-<name>, not kept in the repository: about 17 MB).
# Usage: scripts/bench_beir.sh [BEIR_DIR]   (default ../shared/data/scifact)
#   THREADS (default 2), QUARRY_PEERS_VENV, QUARRY_BENCH_OUT as elsewhere; SKIP_PEERS=1 to run
#   Quarry only (the report then has no peer column).
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-../shared/data/scifact}
name=$(basename "$data")
threads=${THREADS:-2}
out=${QUARRY_BENCH_OUT:-docs/benchmarks}
venv=${QUARRY_PEERS_VENV:-$HOME/.cache/quarry-peers}
export CARGO_TARGET_DIR="${QUARRY_TARGET_DIR:-${CARGO_TARGET_DIR:-$HOME/.cache/quarry/target}}"
bash scripts/fetch_model.sh
model=${QUARRY_MODELS:-$HOME/.cache/quarry/models}/all-MiniLM-L6-v2
cargo build --release -p quarry-cli
quarry=$CARGO_TARGET_DIR/release/quarry
runs=${RUNS_DIR:-/tmp/quarry-beir-runs-$name}
mkdir -p "$out" "$runs"
rows=$out/beir-$name.jsonl
: > "$rows"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
q() { # tag, then quarry beir arguments
  local tag=$1; shift
  echo "== quarry $tag" >&2
  RAYON_NUM_THREADS=$threads "$quarry" beir --dataset "$data" --model "$model" --json \
    --run-out "$runs/quarry-$tag.trec" "$@" | sed "s/^{/{\"run\":\"quarry-$tag\",/" | tee -a "$rows"
}
q bm25 --mode bm25
q bm25-k1.5 --mode bm25 --k1 1.5
q dense-flat --mode dense --index flat --passages truncate --dir "$work/flat"
q rrf-flat --mode hybrid --fusion rrf --index flat --passages truncate --dir "$work/flat" --reuse
q hybrid-flat --mode hybrid --fusion weighted --index flat --passages truncate --dir "$work/flat" --reuse
rm -rf "$work/flat"
q dense-hnsw --mode dense --index hnsw --passages truncate --dir "$work/hnsw"
q hybrid-hnsw --mode hybrid --fusion weighted --index hnsw --passages truncate --dir "$work/hnsw" --reuse
rm -rf "$work/hnsw"
q dense-hnsw-max --mode dense --index hnsw --passages max --dir "$work/max"
q rrf-hnsw-max --mode hybrid --fusion rrf --index hnsw --passages max --dir "$work/max" --reuse
q hybrid-hnsw-max --mode hybrid --fusion weighted --index hnsw --passages max --dir "$work/max" --reuse
rm -rf "$work/max"
if [ "${SKIP_PEERS:-0}" != 1 ]; then
  [ -x "$venv/bin/python" ] || bash ../shared/tools/setup_peers.sh "$venv"
  "$venv/bin/python" -c 'import sentence_transformers, bm25s, Stemmer' 2>/dev/null \
    || "$venv/bin/pip" install -q sentence-transformers bm25s PyStemmer
  echo "== peers" >&2
  "$venv/bin/python" scripts/peer_beir.py --dataset "$data" --model "$model" --modes bm25,dense,hybrid \
    --threads "$threads" --run-dir "$runs" | sed 's/^{/{"run":"peer",/' | tee -a "$rows"
fi
python3 scripts/bench_beir_report.py "$rows" "$data" "$threads" > "$out/beir-$name.md"
cat "$out/beir-$name.md"
