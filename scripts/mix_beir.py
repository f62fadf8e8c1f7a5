#!/usr/bin/env python3
"""Mixes BEIR folders into one: a corpus and query set spanning several domains.

Every document and query id becomes "<name>/<id>", where <name> is the folder's name, so
`quarry beir --route` can tell the domains apart (it groups pilot queries by the part before
the "/"). Documents keep their order, folder after folder; only the given split's judgements
are kept (as qrels/<split>.tsv).

    python3 scripts/mix_beir.py --split test --out DIR ../shared/data/scifact /tmp/wndict-rev
"""
import argparse
import json
import os


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--split", default="test")
    ap.add_argument("folders", nargs="+")
    a = ap.parse_args()
    names = [os.path.basename(os.path.normpath(f)) for f in a.folders]
    if len(set(names)) != len(names):
        raise SystemExit(f"folder names must differ: {names}")
    os.makedirs(os.path.join(a.out, "qrels"), exist_ok=True)
    with open(os.path.join(a.out, "corpus.jsonl"), "w", encoding="utf-8") as c, open(
        os.path.join(a.out, "queries.jsonl"), "w", encoding="utf-8"
    ) as q, open(os.path.join(a.out, "qrels", f"{a.split}.tsv"), "w", encoding="utf-8") as r:
        r.write("query-id\tcorpus-id\tscore\n")
        for name, folder in zip(names, a.folders):
            for path, out in (("corpus.jsonl", c), ("queries.jsonl", q)):
                with open(os.path.join(folder, path), encoding="utf-8") as f:
                    for line in f:
                        if line.strip():
                            d = json.loads(line)
                            d["_id"] = f"{name}/{d['_id']}"
                            out.write(json.dumps(d, ensure_ascii=False) + "\n")
            with open(os.path.join(folder, "qrels", f"{a.split}.tsv"), encoding="utf-8") as f:
                for i, line in enumerate(f):
                    parts = line.rstrip("\n").split("\t")
                    if i == 0 and not parts[-1].lstrip("-").isdigit():
                        continue
                    if len(parts) >= 3:
                        r.write(f"{name}/{parts[0]}\t{name}/{parts[-2]}\t{parts[-1]}\n")
    print(f"mixed {', '.join(names)} -> {a.out}")


if __name__ == "__main__":
    main()
