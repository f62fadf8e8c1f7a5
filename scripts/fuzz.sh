#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for a bounded time each, one after the other, and prints
# per target the seconds, the executions and whether it crashed (a panic, abort, sanitizer report
# or timeout). Exits non-zero if any target crashed; the crashing input is left in
# fuzz/artifacts/<target>/ (reproduce: cd fuzz && cargo +nightly fuzz run <target> <file>).
#
#   scripts/fuzz.sh                  # every target, 60 s each
#   FUZZ_SECONDS=600 scripts/fuzz.sh wal_record filter_json
#
# Environment: FUZZ_SECONDS (per target, default 60), FUZZ_MAX_LEN (largest input, default 8192),
# FUZZ_SANITIZER (address (default), none, ...: passed to cargo fuzz -s), CARGO_BUILD_JOBS (build
# parallelism). Uses `cargo +nightly fuzz` when a nightly toolchain is installed, else
# `RUSTC_BOOTSTRAP=1 cargo fuzz`; installs cargo-fuzz when it is missing. Small valid seeds (from
# the golden files in tests/compat/ and hand-written bodies) are written into the gitignored
# fuzz/corpus/<target>/ before the runs.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root/fuzz"
seconds="${FUZZ_SECONDS:-60}"
max_len="${FUZZ_MAX_LEN:-8192}"
sanitizer="${FUZZ_SANITIZER:-address}"

if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    cargo=(cargo +nightly)
else
    cargo=(env RUSTC_BOOTSTRAP=1 cargo)
fi
if ! "${cargo[@]}" fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <("${cargo[@]}" fuzz list)
fi

# ---- seeds -------------------------------------------------------------------------------------
if command -v python3 >/dev/null 2>&1; then
    python3 - "$root" <<'PY'
import json, os, struct, sys

root = sys.argv[1]
compat = os.path.join(root, "tests", "compat")
corpus = os.path.join(root, "fuzz", "corpus")

def put(target, name, data):
    d = os.path.join(corpus, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)

def chunks(items):
    return b"".join(struct.pack("<H", len(x)) + x for x in items if len(x) < 65536)

def wal_records(log):
    """Payloads of the records of a WAL file (docs/FORMAT.md, "Write-ahead log")."""
    out, at = [], 32
    while at + 16 <= len(log):
        (n,) = struct.unpack_from("<I", log, at)
        out.append(log[at + 16 : at + 16 + n])
        at += 16 + n
    return out

wal_path = os.path.join(compat, "engine-v1", "collections", "docs", "wal.log")
if os.path.exists(wal_path):
    log = open(wal_path, "rb").read()
    recs = wal_records(log)
    put("wal_record", "file", b"\0" + log)
    put("wal_record", "header", b"\1" + log[12:20] + log[32:])
    for damage in range(4):
        put("wal_record", f"framed-{damage}", b"\2" + bytes([damage]) + log[12:20] + struct.pack("<H", 40) + chunks(recs))
    for i, r in enumerate(recs):
        put("wal_record", f"op-{i}", r)

snap_path = os.path.join(compat, "engine-v1.qsnap")
if os.path.exists(snap_path):
    snap = open(snap_path, "rb").read()
    put("snapshot_restore", "file", b"\0" + snap)
    put("snapshot_restore", "unchecked", b"\1" + snap[:-4])
    (n,) = struct.unpack_from("<Q", snap, 12)
    schema = snap[20 : 20 + n]
    log = snap[20 + n + 8 : -4]
    put("snapshot_restore", "parts", b"\2" + struct.pack("<H", len(schema)) + schema + chunks(wal_records(log)))
    small = json.dumps({"vectors": [{"name": "", "dim": 2, "metric": "l2", "index": "flat"}]}).encode()
    op = b"\1" + struct.pack("<I", 1) + b"\0" + struct.pack("<Q", 7) + struct.pack("<I", 1) + struct.pack("<I", 2)
    op += struct.pack("<ff", 1.0, 2.0) + struct.pack("<I", 2) + b"{}"
    put("snapshot_restore", "small", b"\2" + struct.pack("<H", len(small)) + small + chunks([op]))

filters = [
    {},
    {"must": [{"key": "tag", "match": {"value": "a"}}]},
    {"must": {"key": "n", "range": {"gte": -5, "lt": 10}}},
    {"should": [{"key": "tags", "match": {"any": ["x", 3]}}, {"has_id": [1, 2]}]},
    {"must_not": [{"is_empty": {"key": "tags"}}, {"is_null": {"key": "tag"}}]},
    {"must": [{"exists": {"key": "big"}}, {"key": "big", "range": {"gt": 1e15}}]},
    {"must": [{"key": "nested.k", "match": {"except": [0, 1]}}, {"must": [{"key": "flag", "match": {"value": True}}]}]},
    {"must": [{"key": "nested.list.v", "match": {"value": 7}}, {"key": "f", "range": {"lte": 2.25}}]},
    {"must": [{"key": "mixed", "match": {"any": [4, "5"]}}]},
]
for i, f in enumerate(filters):
    put("filter_json", str(i), json.dumps(f).encode())

routes = ["retrieve", "scroll", "count", "search", "search_batch", "query", "query_batch", "upsert",
          "delete", "set_payload", "overwrite_payload", "delete_payload", "clear_payload", "index", "create"]
flt = {"must": [{"key": "tag", "match": {"value": "a"}}]}
bodies = {
    "retrieve": [({"ids": [1, 3, "00000000-0000-0000-0000-000000000007"], "with_payload": True, "with_vector": True}, 0)],
    "scroll": [({"filter": flt, "limit": 5, "offset": 3, "with_vector": ["a"]}, 0)],
    "count": [({"filter": flt, "exact": True}, 0)],
    "search": [({"vector": {"name": "a", "vector": [0.1, 0.2, 0.3, 0.4]}, "limit": 3, "filter": flt,
                 "with_payload": {"include": ["tag"]}, "params": {"hnsw_ef": 16}}, 0),
               ({"vector": [1, 0, 0, 1], "limit": 4, "offset": 1, "score_threshold": 0.1}, 1)],
    "search_batch": [({"searches": [{"vector": [1, 2, 3, 4], "limit": 2}]}, 1)],
    "query": [({"prefetch": [{"query": [1, 0, 0, 0], "limit": 5}, {"query": [0, 1, 0, 0], "filter": flt}],
                "query": {"fusion": "rrf"}, "limit": 3, "with_payload": True}, 1),
              ({"query": {"nearest": [0.5, 0.5, 0.5]}, "using": "b", "params": {"exact": True}}, 0),
              ({"prefetch": {"query": 4, "using": "a"}, "query": [1, 1, 1, 1], "using": "a"}, 0)],
    "query_batch": [({"searches": [{"query": {"rrf": {"k": 5}}, "prefetch": [{"query": [1, 2, 3, 4]}]}]}, 1)],
    "upsert": [({"points": [{"id": 100, "vector": {"a": [1, 2, 3, 4], "b": [1, 2, 3]}, "payload": {"tag": "q"}}]}, 0),
               ({"batch": {"ids": [101, "00000000-0000-0000-0000-0000000000aa"], "vectors": [[1, 2, 3, 4], [4, 3, 2, 1]],
                           "payloads": [{"n": 1}, None]}}, 1)],
    "delete": [({"points": [1, 2]}, 0), ({"filter": flt}, 1)],
    "set_payload": [({"payload": {"k": [1, 2]}, "points": [4, 5]}, 0)],
    "overwrite_payload": [({"payload": {"only": True}, "filter": flt}, 1)],
    "delete_payload": [({"keys": ["tag", "n"], "points": [6]}, 0)],
    "clear_payload": [({"points": [8]}, 1)],
    "index": [({"field_name": "n", "field_schema": "integer"}, 0)],
    "create": [({"vectors": {"x": {"size": 3, "distance": "Dot"}}, "optimizers_config": {"indexing_threshold": 0},
                 "quarry": {"index": "flat", "fsync": False}}, 0)],
}
for route, items in bodies.items():
    for j, (body, second) in enumerate(items):
        pick = routes.index(route) + 15 * second
        put("http_bodies", f"{route}-{j}", bytes([pick]) + json.dumps(body).encode())
PY
else
    echo "(python3 not found: fuzzing without seeds)"
fi

# ---- build once, then run each target ----------------------------------------------------------
build_flags=(--release --debug-assertions -s "$sanitizer")
echo "== building ${#targets[@]} fuzz targets (${cargo[*]} fuzz build ${build_flags[*]})"
"${cargo[@]}" fuzz build "${build_flags[@]}"

mkdir -p target/fuzz-logs
declare -a summary
failed=0
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "artifacts/$t"
    log="target/fuzz-logs/$t.log"
    before=$(find "artifacts/$t" -type f | wc -l)
    echo "== $t: ${seconds}s"
    start=$SECONDS
    set +e
    "${cargo[@]}" fuzz run "${build_flags[@]}" "$t" "corpus/$t" -- \
        -max_total_time="$seconds" -max_len="$max_len" -timeout=30 -detect_leaks=0 \
        -print_final_stats=1 >"$log" 2>&1
    rc=$?
    set -e
    elapsed=$((SECONDS - start))
    # Scratch folders of the engine and server targets (named by PID) whose process is gone.
    for d in /dev/shm/quarry-fuzz-"$t"-* "${TMPDIR:-/tmp}"/quarry-fuzz-"$t"-*; do
        if [ -d "$d" ] && ! kill -0 "${d##*-}" 2>/dev/null; then rm -rf "$d"; fi
    done
    after=$(find "artifacts/$t" -type f | wc -l)
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
    [ -n "$runs" ] || runs=$(grep -o '^#[0-9]*' "$log" | tail -1 | tr -d '#')
    if [ "$rc" -ne 0 ] || [ "$after" -gt "$before" ]; then
        failed=1
        result="CRASH (exit $rc; see fuzz/$log and fuzz/artifacts/$t/)"
        grep -m1 -E "panicked at|ERROR: (libFuzzer|AddressSanitizer)" "$log" | sed 's/^/    /' || true
    else
        result="ok"
    fi
    line=$(printf '%-18s %5ss %12s runs  %s' "$t" "$elapsed" "${runs:-?}" "$result")
    echo "$line"
    summary+=("$line")
done

echo
echo "== fuzz summary"
printf '%s\n' "${summary[@]}"
exit "$failed"
