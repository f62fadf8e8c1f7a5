#!/usr/bin/env bash
# SPANN (memory + disk) benchmark: Quarry's spann index against faiss IVF-Flat and IVF-PQ + refine
# (scripts/peer_spann.py) and Quarry's plain hnsw, same data, same run, searched on 1 thread, k = 10 —
# Quarry one query at a time in its Rust loop, faiss with one batch call per timed pass (peer_spann.py
# --calls batch: every query in one index.search call, faiss's own loop, single-threaded; issue 18) —
# every system's resident memory measured by the OS (VmRSS growth of a process that only opens the index
# and searches), warm and then cold (page cache dropped before each point: root).
# Writes docs/benchmarks/spann-<dataset>.{jsonl,md,png}.
# Usage: scripts/bench_spann.sh [DATASET_DIR] [QUERIES]
#   DATASET_DIR holds base.* query.* groundtruth.* (default ../shared/data/wndict-384); QUERIES default 2000.
#   METRIC (default ip), QUARRY_PEERS_VENV, QUARRY_BENCH_OUT (default docs/benchmarks) as in the other bench
#   scripts; QUARRY_BENCH_INDEXES (default ~/.cache/quarry/bench-indexes: spann-* folders and the hnsw file
#   are rebuilt there every run, faiss indexes cached under peer-spann/); PROBES (max_postings sweep,
#   default 16,24,32,40,48,64); EFS (hnsw ef sweep); PEERS_ARGS (extra peer_spann.py arguments, e.g. a
#   smaller --nprobe / --refine sweep while developing); ONLY (space-separated subset of: spann cold hnsw
#   peers peers-cold report). Memory under cgroup caps, page cache
#   included: scripts/bench_capped.sh.
#   Rows are appended to the JSONL by every step but `spann` (which starts it afresh): ONLY=report
#   re-renders the report from the rows on disk.
set -euo pipefail
cd "$(dirname "$0")/.."
script_args="$*"
data=${1:-../shared/data/wndict-384}
nq=${2:-2000}
name=spann-$(basename "$data")
out=${QUARRY_BENCH_OUT:-docs/benchmarks}
indexes=${QUARRY_BENCH_INDEXES:-$HOME/.cache/quarry/bench-indexes}
probes=${PROBES:-16,24,32,40,48,64}
only=${ONLY:-spann cold hnsw peers peers-cold report}
want() { [[ " $only " == *" $1 "* ]]; }

# SPANN configurations: folder suffix | build --params | sweep besides max_postings.
spann_configs=(
  "rabitq4|head_ratio=0.1,cache_mb=0,codes=rabitq4|rerank=0"
  "sq8|head_ratio=0.1,cache_mb=0,codes=sq8|rerank=2"
  "rabitq1|head_ratio=0.1,cache_mb=0,codes=rabitq1|rerank=0,6"
)
graph="M=16,efc=200"
efs=${EFS:-10,15,20,30,40,60,80,120,160}

# shellcheck source=scripts/bench_common.sh
source scripts/bench_common.sh
common=(--base "$base" --query "$query" --gt "$gt" --metric "$metric" --build-threads 2 --threads 1 -k 10
  --queries "$nq" --json)

mkdir -p "$out" "$indexes"
rows=$out/$name.jsonl
cmds=()
run() { # run LABEL ARGS...: one quarry bench ann invocation, rows appended
  echo "== quarry $1" >&2
  shift
  cmds+=("$(shown quarry bench ann "$@" "${common[@]}")")
  "$quarry" bench ann "$@" "${common[@]}" | tee -a "$rows"
}
if want spann; then
  : > "$rows"
  for cfg in "${spann_configs[@]}"; do
    IFS='|' read -r tag params sweep <<< "$cfg"
    dir=$indexes/spann-$tag
    rm -rf "$dir"
    run "spann $tag (build, warm)" --index spann --index-dir "$dir" --params "$params" \
      --sweep "max_postings=$probes;$sweep"
  done
fi
if want cold; then
  for cfg in "${spann_configs[@]}"; do
    IFS='|' read -r tag params sweep <<< "$cfg"
    dir=$indexes/spann-$tag
    [ -f "$dir/spann.meta" ] || { echo "missing $dir (run the spann step first); skipped" >&2; continue; }
    # --load ignores the build parameters but takes cache_mb from --params.
    cache=$(grep -o 'cache_mb=[0-9]*' <<< "$params" || echo cache_mb=0)
    run "spann $tag (cold)" --index spann --load "$dir" --params "$cache" --sweep "max_postings=$probes;$sweep" --cold
  done
fi
if want hnsw; then
  # Built and timed in memory; then each ef is searched by `quarry bench open` on the saved file, a
  # process that only opens (memory-maps) the index and searches, for the resident memory the OS reports.
  file=$indexes/hnsw-M16-efc200.qhnsw
  tmp_rows=$(mktemp "${TMPDIR:-/tmp}/quarry-spann-hnsw.XXXXXX")
  tmp_open=$(mktemp "${TMPDIR:-/tmp}/quarry-spann-hnsw-open.XXXXXX")
  trap 'rm -f "$tmp_rows" "$tmp_open"' EXIT
  echo "== quarry hnsw" >&2
  cmds+=("$(shown quarry bench ann --index hnsw --params "$graph" --sweep "ef=$efs" --save "$file" "${common[@]}")")
  "$quarry" bench ann --index hnsw --params "$graph" --sweep "ef=$efs" --save "$file" "${common[@]}" > "$tmp_rows"
  for ef in ${efs//,/ }; do
    "$quarry" bench open --index-file "$file" --query "$query" --queries "$nq" --ef "$ef" --warm --passes 1 --json \
      >> "$tmp_open"
  done
  cmds+=("$(shown quarry bench open --index-file "$file" --query "$query" --queries "$nq" --ef EF --warm --passes 1 --json) (each ef)")
  "$venv/bin/python" - "$tmp_rows" "$tmp_open" "$base" <<'EOF' | tee -a "$rows"
import json, sys
import numpy as np
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
opens = {json.loads(l)["search"]["ef"]: json.loads(l) for l in open(sys.argv[2]) if l.strip()}
n, d = np.load(sys.argv[3], mmap_mode="r").shape if sys.argv[3].endswith(".npy") else (None, None)
for r in rows:
    o = opens[r["params"]["ef"]]
    r.update(cold=False, build_threads=2, resident_bytes=o["resident_bytes"],
             rss_anon_bytes=o["resident_anon_bytes"], rss_file_bytes=o["resident_file_bytes"],
             process_rss_bytes=o["process_rss_bytes"], baseline_rss_bytes=o["baseline_rss_bytes"])
    if n:
        r["resident_fraction"] = o["resident_bytes"] / (n * d * 4)
    print(json.dumps(r), flush=True)
EOF
fi
peers_cmd=("$venv/bin/python" scripts/peer_spann.py --base "$base" --query "$query" --gt "$gt" --metric "$metric"
  --build-threads 2 --k 10 --queries "$nq" --calls batch)
# shellcheck disable=SC2206 # PEERS_ARGS is split into words on purpose
[ -z "${PEERS_ARGS:-}" ] || peers_cmd+=($PEERS_ARGS)
# Cold peers: faiss.read_index loads the whole index into RAM, so only its open and the first queries see the
# cold cache; a smaller sweep of the configurations near the memory budget.
peers_cold_cmd=("${peers_cmd[@]}" --cold --only ivfflat,ivfpq+refine,ivfpqfs+refine --refine sq4,sq8
  --nprobe 16,32,64,128 --k-factor 4,8)
if want peers; then
  echo "== peers (faiss IVF-Flat, IVF-PQ + refine, IVF-PQ fast-scan + refine), warm" >&2
  "${peers_cmd[@]}" | tee -a "$rows"
fi
if want peers-cold; then
  echo "== peers, cold" >&2
  "${peers_cold_cmd[@]}" | tee -a "$rows"
fi
# The report renderer says "one query per call"; label how the peers were timed (issue 18).
if want report; then
  "$venv/bin/python" scripts/bench_spann_report.py "$rows" --data "$base" \
    --command "scripts/bench_spann.sh${script_args:+ $script_args}" "${cmds[@]/#/--command=}" \
    --command "$(shown python "${peers_cmd[@]:1}")" --command "$(shown python "${peers_cold_cmd[@]:1}")" \
    > "$out/$name.md"
  label_peer_calls "$out/$name.md" "- faiss: timed with one batch call per pass — every query in one call, so \
the library loops in its own C++ code, single-threaded (\`peer_spann.py --calls batch\`; rows carry \"calls\"; p50 / p99 latencies \
are not measured then, mean_ms = 1000 / QPS)"
  echo "wrote $out/$name.md and $out/$name.png" >&2
fi
