#!/usr/bin/env bash
# The Python package: `pip install ./crates/quarry-py` (maturin builds the extension; here with the
# dev profile, whose optimised dependencies `cargo test` has already built in the shared target
# directory — a user's `pip install` builds the release profile) into a venv outside the clone
# ($QUARRY_PY_PKG, default ~/.cache/quarry/pypkg), then its pytest suite. Called by scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
home=${HOME:-$(getent passwd "$(id -u)" | cut -d: -f6)}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$home/.cache/quarry/target}"
venv="${QUARRY_PY_PKG:-$home/.cache/quarry/pypkg}"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install --disable-pip-version-check -q "numpy>=1.21" "pytest==8.4.2" "jsonschema==4.25.1"
MATURIN_PEP517_ARGS="${MATURIN_PEP517_ARGS:---profile dev}" \
  "$venv/bin/pip" install --disable-pip-version-check -q --force-reinstall --no-deps ./crates/quarry-py
export QUARRY_BIN="${QUARRY_BIN:-$CARGO_TARGET_DIR/debug/quarry}"
"$venv/bin/pytest" -q -rs crates/quarry-py/tests
