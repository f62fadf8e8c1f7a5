# Shared preamble of the benchmark scripts (sourced, not run): resolves the dataset files in $data
# (base/query/ground truth in TEXMEX or .npy form), the peers' venv (made on first use), the cargo
# target directory, builds the release `quarry` binary, and defines `shown` for listing commands.
# Reads: data (dataset folder), no_peers (set to skip the venv). Sets: base query gt metric venv quarry.
pick() { for f in "$@"; do [ -f "$f" ] && { echo "$f"; return; }; done; echo "missing: $*" >&2; exit 1; }
base=$(pick "$data"/base.fvecs "$data"/base.f16.npy "$data"/base.npy)
query=$(pick "$data"/query.fvecs "$data"/query.f16.npy "$data"/query.npy)
gt=$(pick "$data"/groundtruth.ivecs "$data"/groundtruth.i32.npy)
metric=${METRIC:-ip}
venv=${QUARRY_PEERS_VENV:-$HOME/.cache/quarry-peers}
export CARGO_TARGET_DIR="${QUARRY_TARGET_DIR:-${CARGO_TARGET_DIR:-$HOME/.cache/quarry/target}}"
[ -n "${no_peers:-}" ] || [ -x "$venv/bin/python" ] || bash ../shared/tools/setup_peers.sh "$venv"
cargo build --release -p quarry-cli
quarry=$CARGO_TARGET_DIR/release/quarry
# Command lines as run (binaries by name; arguments quoted only when the shell needs it).
shown() {
  local out=() a
  for a in "$@"; do
    if [[ $a =~ ^[A-Za-z0-9_./=,:+@-]+$ ]]; then out+=("$a"); else out+=("'${a//\'/\'\\\'\'}'"); fi
  done
  echo "${out[*]}"
}
# The report renderers say "one query per call"; label_peer_calls REPORT.md NOTE fixes the "- Data:"
# line to say that is Quarry's loop and adds NOTE (how the peers were timed) after it (issue 18).
label_peer_calls() { # label_peer_calls REPORT.md NOTE: fixes the "- Data:" line, adds NOTE after it
  grep -qi 'batch call' "$1" && return 0
  awk -v note="$2" '!done && /^- Data:/ { sub(/, one query per call/, ", Quarry one query per call (its Rust loop)")
    print; print note; done = 1; next } { print }' "$1" > "$1.tmp" && mv "$1.tmp" "$1"
}
