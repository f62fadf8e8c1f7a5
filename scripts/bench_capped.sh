#!/usr/bin/env bash
# Memory as the OS counts it: Quarry's disk-backed and compressed indexes and faiss's IVF / SQ8
# peers searched under memory-cgroup caps of 10%, 15%, 25% and 50% of the raw float32 vector bytes
# (page cache included), and uncapped, in one run. Each index is built once, uncapped, and saved;
# every search then runs in a fresh process inside its own memory cgroup after the page cache is
# dropped (`quarry bench ann --load … --memory-limit-mb N`; the peers' search processes run under
# `quarry bench capped --memory-limit-mb N`), so a system that reads its index with pread or mmap and
# one that loads it into process memory pay for the same bytes. A process the kernel kills for lack
# of memory gets one row with "oom_killed": true. Needs root (cgroups, dropping the page cache).
# Writes docs/benchmarks/capped-<dataset>.{jsonl,md}.
# Usage: scripts/bench_capped.sh [DATASET_DIR] [QUERIES]
#   DATASET_DIR holds base.* query.* groundtruth.* (default ../shared/data/wndict-384); QUERIES (default
#   500: searches under a tight cap run at disk speed). FRACTIONS (default "10 15 25 50", percent of the
#   raw f32 bytes); ONLY (subset of: build quarry peers report); QUARRY_BENCH_INDEXES (default
#   ~/.cache/quarry/bench-indexes); QUARRY_PEERS_VENV; QUARRY_BENCH_OUT (default docs/benchmarks).
set -euo pipefail
cd "$(dirname "$0")/.."
script_args="$*"
data=${1:-../shared/data/wndict-384}
nq=${2:-500}
name=capped-$(basename "$data")
out=${QUARRY_BENCH_OUT:-docs/benchmarks}
indexes=${QUARRY_BENCH_INDEXES:-$HOME/.cache/quarry/bench-indexes}/capped
fractions=${FRACTIONS:-10 15 25 50}
only=${ONLY:-build quarry peers report}
want() { [[ " $only " == *" $1 "* ]]; }
[ "$(id -u)" = 0 ] || { echo "bench_capped.sh needs root (memory cgroups, dropping the page cache)" >&2; exit 1; }

# shellcheck source=scripts/bench_common.sh
source scripts/bench_common.sh
common=(--base "$base" --query "$query" --gt "$gt" --metric "$metric" --build-threads 2 --threads 1 -k 10
  --passes 2 --json)
raw_bytes=$("$venv/bin/python" -c "import numpy as np, sys; a = np.load(sys.argv[1], mmap_mode='r'); print(a.shape[0] * a.shape[1] * 4)" "$base")
caps=()
for f in $fractions; do caps+=("$(( (raw_bytes * f / 100 + 524288) / 1048576 ))"); done
# "Uncapped": a cgroup too large to bind (64 GiB on a 24 GiB machine), so the peak is still measured.
uncapped=65536
caps+=("$uncapped")
echo "raw f32 bytes $raw_bytes; caps ${caps[*]} MiB (${fractions// /%, }% of them, and $uncapped MiB = uncapped)" >&2

mkdir -p "$out" "$indexes"
rows=$out/$name.jsonl
cmds=()
# Quarry configurations: name | build flags | search sweep.
configs=(
  "spann-rabitq4|--index spann --index-dir $indexes/spann-rabitq4 --params head_ratio=0.1,cache_mb=0,codes=rabitq4|max_postings=16,32,64;rerank=0"
  "hnsw+sq8|--index hnsw+sq8 --params M=16,efc=200 --save $indexes/hnsw-sq8|ef=20,40,80;rerank=2"
  "hnsw+rabitq4|--index hnsw+rabitq --params M=16,efc=200,bits=4 --save $indexes/hnsw-rabitq4|ef=20,40,80;rerank=0"
  "hnsw|--index hnsw --params M=16,efc=200 --save $indexes/hnsw.qhnsw|ef=20,40,80"
  "flat+sq8|--index flat+sq8 --save $indexes/flat-sq8|rerank=2"
)
load_flags() { # the --index/--load flags that search a saved configuration
  local flags=$1
  flags=${flags/--index-dir /--load }
  flags=${flags/--save /--load }
  sed -E 's/--params [^ ]+//' <<< "$flags"
}
if want build; then
  for cfg in "${configs[@]}"; do
    IFS='|' read -r tag flags sweep <<< "$cfg"
    echo "== build $tag" >&2
    # shellcheck disable=SC2086 # flags are split into words on purpose
    rm -rf $(sed -E 's/.*(--index-dir|--save) ([^ ]+).*/\2/' <<< "$flags")
    # shellcheck disable=SC2086
    "$quarry" bench ann $flags --sweep "${sweep%%;*}" "${common[@]}" --queries 100 > /dev/null
  done
fi
if want quarry; then
  : > "$rows"
  for cfg in "${configs[@]}"; do
    IFS='|' read -r tag flags sweep <<< "$cfg"
    lf=$(load_flags "$flags")
    # shellcheck disable=SC2086
    cmds+=("$(shown quarry bench ann $lf --sweep "$sweep" "${common[@]}" --queries "$nq") [--memory-limit-mb N]")
    for cap in "${caps[@]}"; do
      echo "== quarry $tag, capped at $cap MiB" >&2
      # shellcheck disable=SC2086
      "$quarry" bench ann $lf --sweep "$sweep" "${common[@]}" --queries "$nq" --memory-limit-mb "$cap" \
        | sed "s/}\$/, \"config\": \"$tag\"}/" | tee -a "$rows"
    done
  done
fi
if want peers; then
  caps_csv=$(IFS=,; echo "${caps[*]}")
  spann_peers=("$venv/bin/python" scripts/peer_spann.py --base "$base" --query "$query" --gt "$gt" --metric "$metric"
    --build-threads 2 --k 10 --queries "$nq" --calls batch --only ivfpq+refine,ivfpqfs+refine --refine sq8,fp16
    --nprobe 32,64,128,256 --k-factor 4,8,16)
  quant_peers=("$venv/bin/python" scripts/peer_quant.py --base "$base" --query "$query" --gt "$gt" --metric "$metric"
    --build-threads 2 --k 10 --queries "$nq" --calls batch --peers faiss-sq8,hnswlib --ef 20,40,80 --sq-k-factor 2)
  cmds+=("$(shown "${spann_peers[@]/#$venv\/bin\/python/python}") [--memory-limit-mb N,…]")
  cmds+=("$(shown "${quant_peers[@]/#$venv\/bin\/python/python}") [--memory-limit-mb N,…]")
  echo "== peers (faiss IVF-PQ + refine), uncapped and capped at $caps_csv MiB" >&2
  QUARRY_BIN=$quarry "${spann_peers[@]}" --memory-limit-mb "$caps_csv" | tee -a "$rows"
  echo "== peers (faiss HNSW-SQ8 + refine, hnswlib), uncapped and capped at $caps_csv MiB" >&2
  QUARRY_BIN=$quarry "${quant_peers[@]}" --memory-limit-mb "$caps_csv" | tee -a "$rows"
fi
if want report; then
  {
    printf '# Recall and QPS under memory caps (page cache included), Quarry and peers in one run\n\n'
    printf -- '- Date: %s; commit %s; data `%s` (%s raw f32 bytes), %s queries, k = 10\n' \
      "$(date -u +%Y-%m-%d)" "$(git rev-parse --short HEAD)" "$data" "$raw_bytes" "$nq"
    printf -- '- Machine: %s, %s cores, %s; single-threaded search\n' \
      "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)" "$(nproc)" "$(uname -sr)"
    printf -- '- Command: `scripts/bench_capped.sh %s`\n' "$script_args"
    printf -- '- Each search runs in a fresh process in a memory cgroup capped at the given MiB (anonymous memory and page cache together), after the page cache is dropped; "uncapped" is a cgroup of 64 GiB, which never binds on this 24 GiB machine but measures the peak the same way. Quarry loops over the queries in Rust, one query per call; faiss and hnswlib get every query in one call (their own C++ loop), single-threaded. QPS is the median of 2 passes after a warm-up of 100 queries; the warm-up and first pass fill whatever the cap allows. "killed" = the kernel killed the process for lack of memory at that cap. Recall is plain |A ∩ G| / k.\n\n'
    printf 'Commands:\n\n'
    for c in "${cmds[@]}"; do printf -- '- `%s`\n' "$c"; done
    printf '\n'
    "$venv/bin/python" scripts/bench_capped_report.py "$rows" "$raw_bytes"
  } > "$out/$name.md"
  echo "wrote $out/$name.md" >&2
fi
