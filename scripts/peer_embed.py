#!/usr/bin/env python3
"""sentence-transformers (PyTorch) embedding throughput, measured as `quarry bench embed` measures
Quarry: the same texts (JSONL "text" with "title" prepended when present, or plain lines; the
first --n), the same batch size, torch.set_num_threads(--threads), one untimed warm-up batch, then
--passes timed passes of model.encode(texts, batch_size) (padding to the longest text of a batch,
truncation at max_seq_length, as sentence-transformers always does); the median is reported.

Prints one JSON row: {"system", "op": "embed", "texts", "batch", "threads", "texts_per_s", "passes"}.
Usage: ~/.cache/quarry-peers/bin/python scripts/peer_embed.py --model DIR --texts FILE [--batch 256]
"""
import argparse, json, os, sys, time


def read_texts(path):
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            if line.lstrip().startswith("{"):
                v = json.loads(line)
                text, title = v.get("text") or "", v.get("title") or ""
                out.append(f"{title} {text}" if title else text)
            else:
                out.append(line.rstrip("\n"))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=os.path.expanduser("~/.cache/quarry/models/all-MiniLM-L6-v2"))
    ap.add_argument("--texts", required=True)
    ap.add_argument("--n", type=int)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--passes", type=int, default=3)
    a = ap.parse_args()
    import torch
    torch.set_num_threads(a.threads)
    from sentence_transformers import SentenceTransformer
    import sentence_transformers
    model = SentenceTransformer(a.model, device="cpu")
    texts = read_texts(a.texts)[: a.n] if a.n else read_texts(a.texts)
    model.encode(texts[: a.batch], batch_size=a.batch)
    rates = []
    for p in range(a.passes):
        t = time.perf_counter()
        m = model.encode(texts, batch_size=a.batch)
        s = time.perf_counter() - t
        rates.append(len(texts) / s)
        print(f"pass {p + 1}: {len(texts)} texts in {s:.2f} s ({len(texts) / s:.1f} texts/s), dim {m.shape[1]}", file=sys.stderr)
    print(json.dumps({"system": f"sentence-transformers {sentence_transformers.__version__} (torch {torch.__version__})",
                      "op": "embed", "texts": len(texts), "batch": a.batch, "threads": a.threads,
                      "texts_per_s": sorted(rates)[len(rates) // 2], "passes": rates}))


if __name__ == "__main__":
    main()
