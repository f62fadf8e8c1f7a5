#!/usr/bin/env bash
# Routing among expert models (issue 22, RouterRetriever): a mix of two judged domains — BEIR
# SciFact and a reverse-dictionary task built from WordNet/GCIDE (scripts/make_dict_beir.py) —
# with one dense collection per expert model (and BM25), pilots fitted on the odd-numbered judged
# queries of both domains, and the even-numbered ones run by each expert alone, routed (mean and
# max), fused over all experts, and by the per-query oracle.
#
#   scripts/bench_routing.sh [--reuse]        (DATA=../shared/data, OUT=docs/benchmarks)
#
# Writes docs/benchmarks/quality-routing.jsonl (one JSON row per run, with the machine and commit)
# and prints the summary. The expert collections live in $WORK (default /tmp/quarry-routing);
# --reuse keeps them between runs.
set -euo pipefail
cd "$(dirname "$0")/.."
data=${DATA:-../shared/data}
out=${OUT:-docs/benchmarks}
work=${WORK:-/tmp/quarry-routing}
experts=${EXPERTS:-all-MiniLM-L6-v2,bge-small-en-v1.5-int8,bm25}
reuse=()
[ "${1:-}" = "--reuse" ] && reuse=(--reuse)
export CARGO_TARGET_DIR="${QUARRY_TARGET_DIR:-${CARGO_TARGET_DIR:-$HOME/.cache/quarry/target}}"
cargo build --release -p quarry-cli
quarry=$CARGO_TARGET_DIR/release/quarry
bash scripts/fetch_model.sh >/dev/null
bash scripts/fetch_extra_models.sh >/dev/null
mkdir -p "$work"
python3 scripts/make_dict_beir.py --texts "$data/wndict-384/texts.jsonl" --out "$work/wndict-rev"
python3 scripts/mix_beir.py --out "$work/scifact-wndict" "$data/scifact" "$work/wndict-rev"
row=$("$quarry" beir --dataset "$work/scifact-wndict" --dir "$work/db" "${reuse[@]}" --index flat \
  --route "$experts" --json)
commit=$(git rev-parse --short HEAD)
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')
echo "$row" | python3 -c "
import json, sys
r = json.load(sys.stdin)
r.update({'commit': '$commit', 'machine': '$cpu, $(nproc) cores', 'command': 'scripts/bench_routing.sh'})
print(json.dumps(r))" >> "$out/quality-routing.jsonl"
echo "$row" | python3 -c "
import json, sys
r = json.load(sys.stdin)
print(f\"{r['dataset']}: {r['docs']} documents, {r['fit_queries']} fit / {r['eval_queries']} eval queries\")
for name, v in r['runs'].items():
    doms = ', '.join(f'{d} {x:.4f}' for d, x in v['ndcg_cut_10_by_domain'].items())
    print(f\"  {name:<40} nDCG@10 {v['ndcg_cut_10']:.4f} ({doms})  {v['mean_ms']:.1f} ms/query, {v['experts_searched']:.0f} expert(s)\")
print(f\"  best single {r['best_single_ndcg_cut_10']:.4f}, oracle {r['oracle_ndcg_cut_10']:.4f}, routing accuracy {r['routing_accuracy']}\")"
