#!/usr/bin/env python3
"""Generate golden trec_eval fixtures for crates/quarry-eval/tests/trec_eval_parity.rs.

Writes ~50 random (qrels, run) pairs and the measures pytrec_eval (a wrapper around trec_eval)
computes for them into crates/quarry-eval/tests/fixtures/trec/, so the Rust evaluator can be
checked against trec_eval on a clean clone without any shared data.

The cases cover graded and negative grades, unjudged documents, score ties (including -0.0 vs
0.0), queries missing from the run, queries only in the run, queries without relevant documents,
runs shorter than the cutoffs, cutoffs 5/10/100/1000, relevance levels 1-3, BEIR-format qrels,
repeated judgements (last wins), shuffled run lines with meaningless rank columns and extra
fields after the tag, and trec_eval's -M (max results per query).

Query-set semantics reproduced here (pytrec_eval only reports queries present in both the run
and the qrels):
  * mean          = average over queries in both run and qrels (trec_eval default);
  * mean_complete = sum over those queries / number of qrels queries (trec_eval -c);
  * num_ret, num_rel, num_rel_ret are summed, not averaged, in both (trec_eval's summary).
-M is emulated by truncating each query's results to the top n in trec_eval order (score
descending, docno descending) before calling pytrec_eval, which has no such option.

Usage (deterministic; the seed is fixed):
    /root/.cache/quarry-peers/bin/python scripts/gen_trec_fixtures.py
(if that venv is missing: bash /work/shared/tools/setup_peers.sh)
"""

import json
import os
import random
import sys
from importlib import metadata

import pytrec_eval

SEED = 20250613
N_CASES = 50
CUTOFFS = "5,10,100,1000"
PYTREC_MEASURES = {
    f"P.{CUTOFFS}",
    f"recall.{CUTOFFS}",
    f"ndcg_cut.{CUTOFFS}",
    f"map_cut.{CUTOFFS}",
    "map",
    "recip_rank",
    "ndcg",
    "Rprec",
    "num_ret",
    "num_rel",
    "num_rel_ret",
}
COUNTS = {"num_ret", "num_rel", "num_rel_ret"}
NAMES = sorted([f"{m}_{k}" for m in ("P", "recall", "ndcg_cut", "map_cut") for k in CUTOFFS.split(",")]
               + ["map", "recip_rank", "ndcg", "Rprec"] + sorted(COUNTS))
OUT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "crates", "quarry-eval", "tests",
                       "fixtures", "trec")


def docno_style(rng):
    """A docno formatter; mixed widths make byte order differ from numeric order."""
    return rng.choice([lambda n: f"d{n}", lambda n: str(n), lambda n: f"DOC-{n:03d}", lambda n: f"x{n}y"])


def make_qrels(rng, qids, doc):
    grades = [-2, -1, 0, 0, 0, 1, 1, 1, 2, 3]
    qrels = {}
    for qid in qids:
        n = rng.choice([1, 2, 3, 5, 8, 12, 20, 30])
        docs = rng.sample(range(60), n)
        judged = {doc(d): rng.choice(grades) for d in docs}
        if rng.random() < 0.2:  # a query without relevant documents
            judged = {d: min(g, 0) for d, g in judged.items()}
        if all(g < 0 for g in judged.values()):
            # trec_eval keeps stale per-query state when every grade is negative; avoid that case.
            judged[next(iter(judged))] = 0
        qrels[qid] = judged
    return qrels


def make_scores(rng, n, mode):
    if mode == "ties":
        return [rng.choice([0.0, -0.0, 1.0, 2.0, 2.5, 3.0]) for _ in range(n)]
    if mode == "rounded":
        return [round(rng.uniform(-1, 1), 1) for _ in range(n)]
    return [round(rng.uniform(-5, 20), rng.choice([4, 6, 9])) for _ in range(n)]


def make_run(rng, qrels, doc, extra_qids):
    run = {}
    qids = [q for q in qrels if rng.random() < 0.8] + extra_qids
    mode = rng.choice(["ties", "rounded", "distinct"])
    for qid in qids:
        length = rng.choice([1, 2, 3, 4, 7, 9, 10, 11, 15, 30, 50, 101])
        if rng.random() < 0.015:
            length = rng.choice([999, 1000, 1001, 1050])
        judged = list(qrels.get(qid, {}))
        docs = rng.sample(judged, min(len(judged), rng.randint(0, len(judged))))
        pool = [doc(d) for d in range(60, 60 + 2 * length + 10)] + [doc(d) for d in range(60)]
        for d in pool:
            if len(docs) >= length:
                break
            if d not in docs and rng.random() < 0.7:
                docs.append(d)
        if not docs:
            docs = [doc(9999)]
        run[qid] = dict(zip(docs, make_scores(rng, len(docs), mode)))
    return run


def trec_order(hits):
    """trec_eval's ranking: score descending, then docno descending (byte order)."""
    by_docno = sorted(hits.items(), key=lambda kv: kv[0].encode(), reverse=True)
    return sorted(by_docno, key=lambda kv: kv[1], reverse=True)  # stable: keeps docno order in ties


def write_qrels(path, qrels, rng, beir):
    lines = []
    for qid, judged in qrels.items():
        for d, g in judged.items():
            if rng.random() < 0.05:  # an earlier, overridden judgement: the last one wins
                lines.append((qid, d, g + 1))
            lines.append((qid, d, g))
    with open(path, "w") as f:
        if beir:
            f.write("query-id\tcorpus-id\tscore\n")
            f.writelines(f"{q}\t{d}\t{g}\n" for q, d, g in lines)
        else:
            f.writelines(f"{q} {rng.choice(['0', 'Q0', '1'])} {d} {g}\n" for q, d, g in lines)


def write_run(path, run, rng):
    lines = []
    for qid, hits in run.items():
        for rank, (d, s) in enumerate(hits.items()):
            extra = " extra" if rng.random() < 0.02 else ""
            lines.append(f"{qid} Q0 {d} {rank if rng.random() < 0.5 else rng.randint(0, 9)} {s!r} tag{extra}\n")
    rng.shuffle(lines)
    with open(path, "w") as f:
        f.writelines(lines)


def summarise(per_query, n_qrels):
    mean, complete = {}, {}
    for m in NAMES:
        total = sum(values[m] for values in per_query.values())
        if m in COUNTS:
            mean[m] = complete[m] = total
        else:
            mean[m] = total / len(per_query) if per_query else 0.0
            complete[m] = total / n_qrels
    return mean, complete


def main():
    rng = random.Random(SEED)
    os.makedirs(OUT_DIR, exist_ok=True)
    for name in os.listdir(OUT_DIR):
        if name.startswith("case_") or name == "expected.json":
            os.remove(os.path.join(OUT_DIR, name))
    cases = []
    for i in range(N_CASES):
        doc = docno_style(rng)
        qids = rng.sample(["1", "2", "9", "10", "11", "100", "q7", "Q7", "abc", "a-b"], rng.randint(1, 7))
        extra = [f"only{j}" for j in range(rng.choice([0, 0, 1, 2]))]
        qrels = make_qrels(rng, qids, doc)
        run = make_run(rng, qrels, doc, extra)
        level = rng.choice([1, 1, 1, 1, 2, 3])
        max_results = rng.choice([None] * 5 + [1, 3, 8, 50])
        name = f"case_{i:02d}"
        beir = rng.random() < 0.2
        write_qrels(os.path.join(OUT_DIR, name + ".qrels"), qrels, rng, beir)
        write_run(os.path.join(OUT_DIR, name + ".run"), run, rng)
        evaluated = run
        if max_results is not None:
            evaluated = {q: dict(trec_order(h)[:max_results]) for q, h in run.items()}
        evaluator = pytrec_eval.RelevanceEvaluator(qrels, PYTREC_MEASURES, relevance_level=level)
        per_query = evaluator.evaluate(evaluated)
        mean, complete = summarise(per_query, len(qrels))
        cases.append({
            "name": name,
            "qrels": name + ".qrels",
            "run": name + ".run",
            "relevance_level": level,
            "max_results": max_results,
            "num_q": len(per_query),
            "num_q_complete": len(qrels),
            "mean": mean,
            "mean_complete": complete,
            "per_query": dict(sorted(per_query.items())),
        })
    expected = {
        "generator": "scripts/gen_trec_fixtures.py",
        "seed": SEED,
        "tool": f"pytrec_eval-terrier {metadata.version('pytrec_eval-terrier')} (trec_eval semantics)",
        "note": "mean: over queries in both run and qrels; mean_complete: trec_eval -c (missing "
                "queries count 0); num_* are summed; max_results: trec_eval -M.",
        "measures": NAMES,
        "cases": cases,
    }
    with open(os.path.join(OUT_DIR, "expected.json"), "w") as f:
        json.dump(expected, f, separators=(",", ":"), sort_keys=True)
        f.write("\n")
    total = sum(os.path.getsize(os.path.join(OUT_DIR, n)) for n in os.listdir(OUT_DIR))
    print(f"wrote {N_CASES} cases to {os.path.normpath(OUT_DIR)} ({total / 1024:.0f} KiB)", file=sys.stderr)


if __name__ == "__main__":
    main()
