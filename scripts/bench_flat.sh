#!/usr/bin/env bash
# Exact-scan benchmark: Quarry's flat index against faiss IndexFlat, same data, same run, one query
# per call, then the kernel micro-benchmark (incl. simsimd and the machine's read bandwidth).
# Writes docs/benchmarks/<name>.{jsonl,md,png}.
# Usage: scripts/bench_flat.sh [DATASET_DIR] [QUERIES]
#   DATASET_DIR holds base.* query.* groundtruth.* (default ../shared/data/wndict-384)
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-../shared/data/wndict-384}
nq=${2:-2000}
name=flat-$(basename "$data")
out=docs/benchmarks
# shellcheck source=scripts/bench_common.sh
source scripts/bench_common.sh
mkdir -p "$out"
rows=$out/$name.jsonl
: > "$rows"
for threads in 1 2; do
  echo "== threads=$threads: quarry" >&2
  "$quarry" bench ann --base "$base" --query "$query" --gt "$gt" --metric "$metric" --index flat -k 10 \
    --threads "$threads" --queries "$nq" --storage f32,f16 --json | tee -a "$rows"
  echo "== threads=$threads: faiss" >&2
  "$venv/bin/python" ../shared/tools/peer_bench.py --base "$base" --query "$query" --gt "$gt" --metric "$metric" \
    --peers faiss-flat --k 10 --threads "$threads" --queries "$nq" | tee -a "$rows"
done
echo "== kernel micro-benchmark" >&2
cargo bench -p quarry-linalg --bench kernels --features simsimd 2>/dev/null | tee "$out/$name.kernels.txt"
"$venv/bin/python" scripts/bench_report.py "$rows" "$out/$name.kernels.txt" "$base" > "$out/$name.md"
echo "wrote $out/$name.md" >&2
