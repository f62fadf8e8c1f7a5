#!/usr/bin/env python3
"""Builds data/quickstart/ (shipped with the repository) from the team's wndict-384 set.

Keeps WordNet entries only (WordNet 3.0 licence: redistribution allowed with its notice, kept in
data/quickstart/LICENSE-WordNet); GCIDE entries are left out. Output:
  base.f16.npy     float16 [N_BASE, 384]  all-MiniLM-L6-v2 embeddings (unit length), row i = line i of base.jsonl
  base.jsonl       {"id": i, "text": ...}
  queries.f16.npy  float16 [N_QUERY, 384]
  queries.jsonl    {"id": i, "text": ...}
Usage: python3 scripts/make_quickstart_data.py [SHARED_DATA_DIR]
"""
import json, os, sys
import numpy as np

N_BASE, N_QUERY = 4000, 100
src = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "../../shared/data")
wn = os.path.join(src, "wndict-384")
out = os.path.join(os.path.dirname(__file__), "../data/quickstart")
texts = [json.loads(l) for l in open(os.path.join(wn, "texts.jsonl"))]
base = np.load(os.path.join(wn, "base.f16.npy"))
query = np.load(os.path.join(wn, "query.f16.npy"))
qi = [i for i in range(len(query)) if texts[i]["src"] == "wordnet"][:N_QUERY]
bi = [j for j in range(len(base)) if texts[2000 + j]["src"] == "wordnet"][:N_BASE]
np.save(os.path.join(out, "base.f16.npy"), base[bi].astype(np.float16))
np.save(os.path.join(out, "queries.f16.npy"), query[qi].astype(np.float16))
with open(os.path.join(out, "base.jsonl"), "w") as f:
    for n, j in enumerate(bi):
        f.write(json.dumps({"id": n, "text": texts[2000 + j]["text"]}) + "\n")
with open(os.path.join(out, "queries.jsonl"), "w") as f:
    for n, i in enumerate(qi):
        f.write(json.dumps({"id": n, "text": texts[i]["text"]}) + "\n")
print(f"wrote {len(bi)} base and {len(qi)} query entries to {out}")
