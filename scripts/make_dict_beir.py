#!/usr/bin/env python3
"""Builds a BEIR-format reverse-dictionary task from WordNet glosses and GCIDE senses.

The task: given a WordNet gloss (the definition only, without its words), find the GCIDE
dictionary senses of the words it defines. A second judged domain, very unlike SciFact (short
general-vocabulary definitions instead of biomedical claims against abstracts), used to test
routing among expert models (docs/benchmarks/quality-routing.md).

Input: a JSONL file of {"src": "wordnet"|"gcide", "text": ...} lines, as in
../shared/data/wndict-384/texts.jsonl (WordNet 3.0 from Debian `wordnet-base`, GCIDE from
Debian `dict-gcide`; "lemma, lemma (pos): gloss" and "Headword: sense").

Output folder: corpus.jsonl (GCIDE senses: every sense of each judged query's words plus
random other senses up to --docs), queries.jsonl (glosses), qrels/test.tsv (a sense is relevant,
grade 1, when its headword is one of the gloss's lemmas, case-insensitively). Deterministic for a
seed.

    python3 scripts/make_dict_beir.py --texts ../shared/data/wndict-384/texts.jsonl --out DIR
"""
import argparse
import collections
import json
import os
import random
import re


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--texts", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--queries", type=int, default=600)
    ap.add_argument("--docs", type=int, default=10000)
    ap.add_argument("--max-relevant", type=int, default=12)
    ap.add_argument("--seed", type=int, default=13)
    a = ap.parse_args()

    senses = collections.defaultdict(list)  # headword (lower) -> [sense text]
    glosses = []  # (lemmas, gloss)
    with open(a.texts, encoding="utf-8") as f:
        for line in f:
            d = json.loads(line)
            t = d["text"]
            if d["src"] == "gcide":
                head, sep, rest = t.partition(": ")
                # Keep definitions, not quotations, etymologies or notes.
                if not sep or len(rest) < 12 or rest.startswith(("Note:", "[")) or "--" in rest[:3]:
                    continue
                senses[head.strip().lower()].append(t)
            else:
                m = re.match(r"^(.*?) \((noun|verb|adjective|adverb|adjective satellite)\): (.+)$", t)
                if m:
                    lemmas = [x.strip().lower() for x in m.group(1).split(",") if x.strip()]
                    glosses.append((lemmas, m.group(3)))

    rng = random.Random(a.seed)
    candidates = []
    for lemmas, gloss in glosses:
        rel = sorted({s for lem in lemmas for s in senses.get(lem, [])})
        # A gloss that names its own word is a string match, not a definition lookup.
        if 1 <= len(rel) <= a.max_relevant and not any(
            re.search(r"\b" + re.escape(lem) + r"\b", gloss.lower()) for lem in lemmas
        ):
            candidates.append((lemmas, gloss, rel))
    rng.shuffle(candidates)
    chosen, seen_lemma = [], set()
    for c in candidates:
        if len(chosen) == a.queries:
            break
        if any(lem in seen_lemma for lem in c[0]):
            continue
        seen_lemma.update(c[0])
        chosen.append(c)

    docs = {}
    for _, _, rel in chosen:
        for t in rel:
            docs.setdefault(t, None)
    others = sorted({t for v in senses.values() for t in v} - set(docs))
    rng.shuffle(others)
    for t in others[: max(0, a.docs - len(docs))]:
        docs.setdefault(t, None)
    order = list(docs)
    rng.shuffle(order)
    doc_id = {t: f"d{i}" for i, t in enumerate(order)}

    os.makedirs(os.path.join(a.out, "qrels"), exist_ok=True)
    with open(os.path.join(a.out, "corpus.jsonl"), "w", encoding="utf-8") as f:
        for t in order:
            f.write(json.dumps({"_id": doc_id[t], "title": "", "text": t}) + "\n")
    with open(os.path.join(a.out, "queries.jsonl"), "w", encoding="utf-8") as q, open(
        os.path.join(a.out, "qrels", "test.tsv"), "w", encoding="utf-8"
    ) as r:
        r.write("query-id\tcorpus-id\tscore\n")
        for i, (_, gloss, rel) in enumerate(chosen):
            q.write(json.dumps({"_id": f"q{i}", "text": gloss}) + "\n")
            for t in rel:
                r.write(f"q{i}\t{doc_id[t]}\t1\n")
    print(f"{len(order)} documents, {len(chosen)} queries, "
          f"{sum(len(c[2]) for c in chosen)} judgements -> {a.out}")


if __name__ == "__main__":
    main()
