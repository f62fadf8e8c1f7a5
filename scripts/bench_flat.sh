#!/usr/bin/env bash
# Exact-scan benchmark: Quarry's flat index against faiss IndexFlat, same data, same run — Quarry one
# query at a time in its Rust loop and all queries in one search_batch call (blocked matrix products,
# `--calls batch`), faiss with one batch call per timed pass (peer_bench.py --calls batch:
# every query in one index.search call, faiss's own loop; single-threaded at threads=1; issue 18, never
# --calls single here) — then the kernel micro-benchmark (incl. simsimd and the machine's read bandwidth).
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
  echo "== threads=$threads: quarry, one batch call per pass" >&2
  "$quarry" bench ann --base "$base" --query "$query" --gt "$gt" --metric "$metric" --index flat -k 10 \
    --threads "$threads" --queries "$nq" --calls batch --json | tee -a "$rows"
  echo "== threads=$threads: faiss" >&2
  "$venv/bin/python" ../shared/tools/peer_bench.py --base "$base" --query "$query" --gt "$gt" --metric "$metric" \
    --peers faiss-flat --k 10 --threads "$threads" --queries "$nq" --calls batch | tee -a "$rows"
  # Per query: one index.search call per query (a scan takes milliseconds, so Python's per-call cost
  # is under 0.1% of it), matching Quarry's one-query-per-call rows; faiss then scans without BLAS.
  echo "== threads=$threads: faiss, one query per call" >&2
  "$venv/bin/python" ../shared/tools/peer_bench.py --base "$base" --query "$query" --gt "$gt" --metric "$metric" \
    --peers faiss-flat --k 10 --threads "$threads" --queries "$(( nq < 500 ? nq : 500 ))" --calls single | tee -a "$rows"
done
echo "== kernel micro-benchmark" >&2
cargo bench -p quarry-linalg --bench kernels --features simsimd 2>/dev/null | tee "$out/$name.kernels.txt"
"$venv/bin/python" scripts/bench_report.py "$rows" "$out/$name.kernels.txt" "$base" > "$out/$name.md"
# bench_report.py says "one query per call"; label how faiss was timed (issue 18).
label_peer_calls "$out/$name.md" "- faiss: timed with one batch call per pass — every query in one \`index.search\` call, faiss's \
own loop on the row's thread count, single-threaded at 1 thread (\`peer_bench.py --calls batch\`; rows carry \"calls\"). \
With a batch of queries x d >= 128000 floats (faiss 1.15: 334 or more queries at d = 384) faiss scores it with a BLAS \
matrix product, reading the base once per block of up to 4096 queries instead of once per query, so its QPS and scan GB/s \
are not a per-query scan rate"
echo "wrote $out/$name.md" >&2
