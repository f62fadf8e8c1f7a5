#!/usr/bin/env bash
# Multi-vector (late interaction) benchmark: MUVERA candidates and the per-token heuristic, each
# re-ranked by exact Chamfer (MaxSim), against exhaustive Chamfer, one search thread.
#
#   scripts/bench_multivector.sh scifact   # SciFact corpus + its 300 judged test queries (nDCG@10 too)
#   scripts/bench_multivector.sh wndict    # WordNet/GCIDE glosses: $WNDICT_DOCS documents (50,000), 300 queries
#
# Token vectors come from `quarry embed --tokens` with the local sentence model ($MODEL,
# all-MiniLM-L6-v2): its last hidden states per token, unit length, special tokens dropped (no
# late-interaction model ships its weights in a package registry this machine can reach). They are
# cached in $WORK (~/.cache/quarry/multivector/<set>). Extra arguments go to `quarry bench multivector`.
# Writes docs/benchmarks/multivector-<set>.{jsonl,md,png}.
set -euo pipefail
cd "$(dirname "$0")/.."
set_name=${1:-scifact}
shift || true
shared=${QUARRY_SHARED_DATA:-../shared/data}
model=${MODEL:-all-MiniLM-L6-v2}
work=${WORK:-$HOME/.cache/quarry/multivector/$set_name}
export CARGO_TARGET_DIR="${QUARRY_TARGET_DIR:-${CARGO_TARGET_DIR:-$HOME/.cache/quarry/target}}"
cargo build --release -p quarry-cli
quarry=$CARGO_TARGET_DIR/release/quarry
mkdir -p "$work" docs/benchmarks
extra=()
case "$set_name" in
  scifact)
    src=$shared/scifact
    [ -f "$work/docs.jsonl" ] || cp "$src/corpus.jsonl" "$work/docs.jsonl"
    [ -f "$work/queries.jsonl" ] || python3 - "$src" "$work" <<'PY'
import json, sys
src, work = sys.argv[1], sys.argv[2]
judged = {l.split("\t")[0] for l in open(f"{src}/qrels/test.tsv").read().splitlines()[1:] if l.strip()}
with open(f"{work}/queries.jsonl", "w") as out:
    for line in open(f"{src}/queries.jsonl"):
        q = json.loads(line)
        if q["_id"] in judged:
            out.write(json.dumps({"_id": q["_id"], "text": q["text"]}) + "\n")
PY
    extra=(--qrels "$src/qrels/test.tsv" --doc-ids "$work/doc_ids.txt" --query-ids "$work/query_ids.txt")
    ;;
  wndict)
    n=${WNDICT_DOCS:-50000}
    src=$shared/wndict-384/texts.jsonl
    [ -f "$work/docs.jsonl" ] || { head -n 300 "$src" > "$work/queries.jsonl"; tail -n +2001 "$src" | head -n "$n" > "$work/docs.jsonl"; }
    ;;
  *) echo "unknown set $set_name (scifact or wndict)" >&2; exit 2 ;;
esac
for side in docs queries; do
  ids=$work/${side/queries/query}_ids.txt; ids=${ids/docs_ids/doc_ids}
  [ -f "$work/$side.tokens.npy" ] || "$quarry" embed --model "$model" --texts "$work/$side.jsonl" --tokens \
    --out "$work/$side.tokens.npy" --ids-out "$ids"
  [ -f "$work/$side.single.npy" ] || "$quarry" embed --model "$model" --texts "$work/$side.jsonl" \
    --out "$work/$side.single.npy"
done
out=docs/benchmarks/multivector-$set_name
cmd=("$quarry" bench multivector --dataset "$set_name" --docs "$work/docs.tokens.npy" --queries "$work/queries.tokens.npy"
  --single-docs "$work/docs.single.npy" --single-queries "$work/queries.single.npy" --work-dir "$work/index" "${extra[@]}" "$@")
echo "+ ${cmd[*]}" >&2
"${cmd[@]}" | tee "$out.jsonl"
# The late-interaction peer: embedded Qdrant's multi-vector MaxSim (exhaustive plain segment), in
# the same run, on the first $PEER_QUERIES queries (it answers about one query per second).
venv=${QUARRY_PEERS_VENV:-$HOME/.cache/quarry-peers}
[ -x "$venv/bin/python" ] || bash ../shared/tools/setup_peers.sh "$venv"
"$venv/bin/python" scripts/peer_multivector.py --docs "$work/docs.tokens.npy" --queries "$work/queries.tokens.npy" \
  --limit "${PEER_QUERIES:-100}" --dataset "$set_name" | tee -a "$out.jsonl"
"$venv/bin/python" scripts/multivector_report.py "$out.jsonl" "$out.md" "scripts/bench_multivector.sh $set_name $*"
