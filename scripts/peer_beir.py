#!/usr/bin/env python3
"""Text-retrieval peers of Quarry on a BEIR dataset: BM25 (bm25s), dense (sentence-transformers,
exact cosine search in numpy) and hybrid (reciprocal rank fusion of the two), each evaluated with
pytrec_eval.

Prints one JSON object per mode on stdout (and appends it to --json-out); progress goes to stderr:
  {"engine": "bm25s 0.3.16" | "sentence-transformers 6.2.0" | "bm25s+sentence-transformers RRF",
   "mode": "bm25" | "dense" | "hybrid", "dataset", "docs", "queries", "queries_evaluated",
   "ndcg_cut_10", "recall_100", "recip_rank", "map", "index_s", "query_s", "qps", "threads", "k",
   ...per-mode timing parts}

Protocol (shared with the Quarry commands it is compared with):
  * Data: a BEIR folder (--dataset): corpus.jsonl (_id, title, text), queries.jsonl (_id, text),
    qrels/test.tsv (a header line, then query-id, corpus-id, score). Only queries that appear in
    the qrels are run. Documents are indexed as `title + " " + text` (stripped; the BEIR
    convention), queries as their text.
  * bm25: bm25s, method "lucene", k1 = 1.5, b = 0.75 (bm25s defaults); bm25s.tokenize with
    stopwords "en" and PyStemmer's English stemmer, for documents and queries alike; top --k.
    Documents with score 0 (no query term) are dropped, so a query may return fewer than k
    (as Lucene does). index_s = corpus tokenization + BM25.index; query_s = query tokenization
    + retrieve (n_threads = --threads, 0 = sequential when --threads is 1).
  * dense: sentence-transformers from --model, CPU, model.encode(normalize_embeddings=True) with
    batch 64 for the corpus and 256 for the queries (ST sorts each input by length internally);
    exact cosine top --k = float32 inner product of the normalised vectors in numpy, ties by
    document order. index_s = corpus encoding; query_s = query encoding + search; model loading
    is reported apart (load_s).
  * hybrid: RRF, score(d) = sum over the bm25 and dense top-k lists of 1 / (60 + rank), ranks
    from 1; a list without d contributes 0; sorted by score descending, ties by document id
    ascending (string order); the top k are kept. index_s and query_s are the sums of the two
    components' (query_s also includes the fusion).
  * Threads: --threads is applied to torch (set_num_threads, set_num_interop_threads) and, before
    numpy/torch are imported, to OMP/MKL/OpenBLAS env vars; tokenizers parallelism is off.
  * Runs: TREC format `qid Q0 docid rank score peer`, one file per mode in --run-dir
    (peer_<mode>.trec); scores are written as Python floats in full (repr), or rounded to
    --score-decimals places, and the evaluation is done on exactly the values written. Note
    trec_eval (and so pytrec_eval) re-sorts each query by score descending, breaking score ties by
    document id descending, whatever the rank column says: rounding can create ties and so move
    documents (the shared SciFact reference runs are written with 6 decimals; on bm25 this moves
    one relevant document of query 873 from rank 10 to 11: nDCG@10 0.6860 with
    --score-decimals 6, 0.6863 in full precision).
  * Evaluation: pytrec_eval on ndcg_cut_10, recall_100, recip_rank, map; the mean is over the
    queries present in both the run and the qrels (trec_eval's default, not -c).

Environment (venv ~/.cache/quarry-peers): bm25s 0.3.16, PyStemmer 3.1.0,
sentence-transformers 6.2.0, torch 2.15.0, pytrec_eval-terrier 0.5.11, numpy 2.4.6.

Example:
  ~/.cache/quarry-peers/bin/python scripts/peer_beir.py \\
      --dataset /work/shared/data/scifact --model ~/.cache/quarry/models/all-MiniLM-L6-v2 \\
      --modes bm25,dense,hybrid --run-dir /tmp/peer-runs --json-out peer_beir.jsonl
"""
import argparse
import json
import os
import sys
import time

MODES = ("bm25", "dense", "hybrid")
MEASURES = ("ndcg_cut_10", "recall_100", "recip_rank", "map")
RRF_K = 60
DEFAULT_MODEL = "~/.cache/quarry/models/all-MiniLM-L6-v2"


def log(msg):
    print(f"[peer_beir {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description="BM25 (bm25s), dense (sentence-transformers) and RRF hybrid peers on a BEIR "
                    "dataset, evaluated with pytrec_eval. One JSON line per mode on stdout.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--dataset", required=True,
                   help="BEIR folder with corpus.jsonl, queries.jsonl and qrels/test.tsv")
    p.add_argument("--model", default=DEFAULT_MODEL,
                   help="sentence-transformers model folder (dense and hybrid modes)")
    p.add_argument("--modes", default="bm25,dense,hybrid",
                   help=f"comma-separated subset of {','.join(MODES)}")
    p.add_argument("--k", type=int, default=100, help="results per query (and RRF input depth)")
    p.add_argument("--threads", type=int, default=2,
                   help="threads for torch/BLAS and bm25s retrieval")
    p.add_argument("--run-dir", help="write TREC runs peer_<mode>.trec here")
    p.add_argument("--json-out", help="append the JSON lines to this file")
    p.add_argument("--score-decimals", type=int,
                   help="round run scores to this many decimals before writing and evaluating; "
                        "None = full precision (the shared reference runs use 6)")
    a = p.parse_args(argv)
    a.modes = [m.strip() for m in a.modes.split(",") if m.strip()]
    bad = [m for m in a.modes if m not in MODES]
    if bad or not a.modes:
        p.error(f"--modes: unknown {bad}; choose from {','.join(MODES)}")
    if a.k < 1 or a.threads < 1:
        p.error("--k and --threads must be >= 1")
    a.model = os.path.expanduser(a.model)
    return a


def limit_threads(n):
    """Must run before numpy / torch are imported for the env vars to take effect."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS"):
        os.environ[var] = str(n)
    os.environ["TOKENIZERS_PARALLELISM"] = "false"


def package_version(name):
    from importlib.metadata import version
    try:
        return version(name)
    except Exception:
        return "?"


# ---- data ----------------------------------------------------------------------------------------

def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def read_qrels(path):
    """{qid: {docid: relevance}}; the header line (query-id ...) is skipped."""
    qrels = {}
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f):
            parts = line.rstrip("\n").split("\t")
            if len(parts) < 3 or (i == 0 and parts[0] == "query-id"):
                continue
            qid, docid, rel = parts[0], parts[1], int(parts[2])
            qrels.setdefault(qid, {})[docid] = rel
    return qrels


def load_beir(folder):
    """(doc_ids, doc_texts, query_ids, query_texts, qrels), queries restricted to the qrels."""
    corpus = read_jsonl(os.path.join(folder, "corpus.jsonl"))
    doc_ids = [str(d["_id"]) for d in corpus]
    doc_texts = [(d.get("title", "") + " " + d.get("text", "")).strip() for d in corpus]
    qrels = read_qrels(os.path.join(folder, "qrels", "test.tsv"))
    queries = {str(q["_id"]): q["text"] for q in read_jsonl(os.path.join(folder, "queries.jsonl"))}
    missing = [q for q in qrels if q not in queries]
    if missing:
        log(f"warning: {len(missing)} judged queries missing from queries.jsonl, e.g. {missing[:3]}")
    query_ids = [q for q in queries if q in qrels]
    query_texts = [queries[q] for q in query_ids]
    return doc_ids, doc_texts, query_ids, query_texts, qrels


# ---- retrieval -----------------------------------------------------------------------------------

def run_bm25(doc_ids, doc_texts, query_texts, k, threads):
    """(run lists [[(docid, score)]], info dict) with bm25s Lucene BM25."""
    import bm25s
    import Stemmer

    stemmer = Stemmer.Stemmer("english")
    t0 = time.perf_counter()
    corpus_tokens = bm25s.tokenize(doc_texts, stopwords="en", stemmer=stemmer, show_progress=False)
    t1 = time.perf_counter()
    retriever = bm25s.BM25(method="lucene", k1=1.5, b=0.75)
    retriever.index(corpus_tokens, show_progress=False)
    t2 = time.perf_counter()
    query_tokens = bm25s.tokenize(query_texts, stopwords="en", stemmer=stemmer, show_progress=False)
    t3 = time.perf_counter()
    docs, scores = retriever.retrieve(query_tokens, k=min(k, len(doc_ids)), show_progress=False,
                                      n_threads=threads if threads > 1 else 0)
    t4 = time.perf_counter()
    lists = [[(doc_ids[d], float(s)) for d, s in zip(row_d, row_s) if s > 0]
             for row_d, row_s in zip(docs.tolist(), scores.tolist())]
    info = dict(engine=f"bm25s {package_version('bm25s')}", index_s=t2 - t0, query_s=t4 - t2,
                tokenize_corpus_s=t1 - t0, build_s=t2 - t1, tokenize_queries_s=t3 - t2,
                retrieve_s=t4 - t3, vocab=len(corpus_tokens.vocab))
    return lists, info


def run_dense(model_dir, doc_ids, doc_texts, query_texts, k, threads):
    """(run lists [[(docid, score)]], info dict) with sentence-transformers + exact cosine."""
    import numpy as np
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(threads)
    except RuntimeError:  # already set (parallel work has started)
        pass
    t0 = time.perf_counter()
    model = SentenceTransformer(model_dir, device="cpu")
    load_s = time.perf_counter() - t0
    log(f"dense: model {model_dir} loaded in {load_s:.1f}s; encoding {len(doc_texts):,} docs")

    t0 = time.perf_counter()
    doc_emb = model.encode(doc_texts, batch_size=64, normalize_embeddings=True,
                           convert_to_numpy=True, show_progress_bar=False)
    t1 = time.perf_counter()
    log(f"dense: corpus encoded in {t1 - t0:.1f}s")
    q_emb = model.encode(query_texts, batch_size=256, normalize_embeddings=True,
                         convert_to_numpy=True, show_progress_bar=False)
    t2 = time.perf_counter()
    top_idx, top_scores = exact_top_k(np.asarray(q_emb, np.float32),
                                      np.asarray(doc_emb, np.float32), k)
    t3 = time.perf_counter()
    lists = [[(doc_ids[d], float(s)) for d, s in zip(row_d, row_s)]
             for row_d, row_s in zip(top_idx.tolist(), top_scores.tolist())]
    info = dict(engine=f"sentence-transformers {package_version('sentence-transformers')}",
                index_s=t1 - t0, query_s=t3 - t1, load_s=load_s, encode_corpus_s=t1 - t0,
                encode_queries_s=t2 - t1, search_s=t3 - t2, dim=int(doc_emb.shape[1]))
    return lists, info


def exact_top_k(queries, docs, k):
    """Top-k (indices, scores) by inner product, best first, ties by document index."""
    import numpy as np

    scores = queries @ docs.T
    k = min(k, docs.shape[0])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    part_scores = np.take_along_axis(scores, part, 1)
    order = np.lexsort((part, -part_scores), axis=1)
    return np.take_along_axis(part, order, 1), np.take_along_axis(part_scores, order, 1)


def rrf(list_a, list_b, k, rrf_k=RRF_K):
    """Reciprocal rank fusion of two best-first [(docid, score)] lists, top k."""
    fused = {}
    for lst in (list_a, list_b):
        for rank, (docid, _) in enumerate(lst, start=1):
            fused[docid] = fused.get(docid, 0.0) + 1.0 / (rrf_k + rank)
    return sorted(fused.items(), key=lambda x: (-x[1], x[0]))[:k]


# ---- output --------------------------------------------------------------------------------------

def round_scores(lists, decimals):
    """Scores as they will be written: unchanged, or rounded to `decimals` places."""
    if decimals is None:
        return lists
    return [[(d, float(f"{s:.{decimals}f}")) for d, s in lst] for lst in lists]


def format_score(score, decimals):
    return repr(score) if decimals is None else f"{score:.{decimals}f}"


def to_run(query_ids, lists):
    """pytrec_eval run dict; queries with no results are left out."""
    return {qid: {d: s for d, s in lst} for qid, lst in zip(query_ids, lists) if lst}


def write_trec(path, query_ids, lists, tag, decimals=None):
    with open(path, "w", encoding="utf-8") as f:
        for qid, lst in zip(query_ids, lists):
            for rank, (docid, score) in enumerate(lst, start=1):
                f.write(f"{qid} Q0 {docid} {rank} {format_score(score, decimals)} {tag}\n")


def evaluate(qrels, run):
    """Mean of MEASURES over the queries in both run and qrels, and that query count."""
    import pytrec_eval

    per_query = pytrec_eval.RelevanceEvaluator(qrels, set(MEASURES)).evaluate(run)
    n = len(per_query)
    means = {m: (sum(v[m] for v in per_query.values()) / n if n else 0.0) for m in MEASURES}
    return means, n


def emit(row, json_out):
    line = json.dumps(row)
    print(line, flush=True)
    if json_out:
        with open(json_out, "a", encoding="utf-8") as f:
            f.write(line + "\n")


# ---- main ----------------------------------------------------------------------------------------

def main(argv=None):
    a = parse_args(argv)
    limit_threads(a.threads)
    dataset = os.path.basename(os.path.normpath(a.dataset))
    doc_ids, doc_texts, query_ids, query_texts, qrels = load_beir(a.dataset)
    log(f"{dataset}: {len(doc_ids):,} docs, {len(query_ids):,} judged queries; modes={a.modes} "
        f"k={a.k} threads={a.threads}")
    if a.run_dir:
        os.makedirs(a.run_dir, exist_ok=True)

    results = {}  # mode -> (lists, info)
    if "bm25" in a.modes or "hybrid" in a.modes:
        results["bm25"] = run_bm25(doc_ids, doc_texts, query_texts, a.k, a.threads)
        log(f"bm25: index {results['bm25'][1]['index_s']:.2f}s, "
            f"query {results['bm25'][1]['query_s']:.2f}s")
    if "dense" in a.modes or "hybrid" in a.modes:
        results["dense"] = run_dense(a.model, doc_ids, doc_texts, query_texts, a.k, a.threads)
        log(f"dense: index {results['dense'][1]['index_s']:.1f}s, "
            f"query {results['dense'][1]['query_s']:.2f}s")
    if "hybrid" in a.modes:
        (bl, bi), (dl, di) = results["bm25"], results["dense"]
        t0 = time.perf_counter()
        lists = [rrf(x, y, a.k) for x, y in zip(bl, dl)]
        fuse_s = time.perf_counter() - t0
        results["hybrid"] = (lists, dict(
            engine="bm25s+sentence-transformers RRF", index_s=bi["index_s"] + di["index_s"],
            query_s=bi["query_s"] + di["query_s"] + fuse_s, fuse_s=fuse_s, rrf_k=RRF_K))

    for mode in a.modes:
        lists, info = results[mode]
        lists = round_scores(lists, a.score_decimals)
        if a.run_dir:
            path = os.path.join(a.run_dir, f"peer_{mode}.trec")
            write_trec(path, query_ids, lists, "peer", a.score_decimals)
            log(f"{mode}: run written to {path}")
        means, n_eval = evaluate(qrels, to_run(query_ids, lists))
        info = dict(info)
        row = dict(engine=info.pop("engine"), mode=mode, dataset=dataset, docs=len(doc_ids),
                   queries=len(query_ids), queries_evaluated=n_eval, **means,
                   index_s=info.pop("index_s"), query_s=info.pop("query_s"))
        row["qps"] = len(query_ids) / row["query_s"] if row["query_s"] > 0 else None
        row.update(threads=a.threads, k=a.k, score_decimals=a.score_decimals, **info)
        emit(row, a.json_out)


if __name__ == "__main__":
    main()
