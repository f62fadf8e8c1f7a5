#!/usr/bin/env bash
# The Python tools of the server tests, pinned: the official qdrant-client (driven against
# `quarry serve`), schemathesis (fuzzes /openapi.json), pytest. Installed once into a venv outside
# the clone ($QUARRY_PY_SERVER, default ~/.cache/quarry/pyserver); prints the venv's bin folder.
set -euo pipefail
home=${HOME:-$(getent passwd "$(id -u)" | cut -d: -f6)}
venv="${QUARRY_PY_SERVER:-$home/.cache/quarry/pyserver}"
pins="qdrant-client==1.20.0 schemathesis==4.32.5 pytest==8.4.2 httpx numpy"
stamp="$venv/.quarry-pins"
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$pins" ]; then
  python3 -m venv "$venv" >&2
  # shellcheck disable=SC2086
  "$venv/bin/pip" install --disable-pip-version-check -q $pins >&2
  echo "$pins" > "$stamp"
fi
echo "$venv/bin"
