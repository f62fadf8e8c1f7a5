#!/usr/bin/env bash
# A release wheel of the Python package (distribution `quarry-retrieval`, import name `quarry`),
# built by maturin into dist/ (override with OUT=...), with cargo's progress shown. The wheel
# installs offline on machines of the same platform and Python ABI (abi3: CPython ≥ 3.9):
#   pip install dist/quarry_retrieval-*.whl
# `pip install ./crates/quarry-py` builds the same thing, but pip hides cargo's output until the
# end unless given -v: the first build compiles for several minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
home=${HOME:-$(getent passwd "$(id -u)" | cut -d: -f6)}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$home/.cache/quarry/target}"
out=${OUT:-dist}
venv="${QUARRY_WHEEL_VENV:-$home/.cache/quarry/maturin-venv}"
[ -x "$venv/bin/maturin" ] || { python3 -m venv "$venv" && "$venv/bin/pip" install -q --disable-pip-version-check "maturin>=1.16,<2"; }
"$venv/bin/maturin" build --release -m crates/quarry-py/Cargo.toml --out "$out"
ls -l "$out"/quarry_retrieval-*.whl
