"""Quarry: an embedded retrieval engine (like SQLite, for embeddings).

    import numpy as np, quarry
    db = quarry.open("./db")
    col = db.create_collection("docs", dim=384, metric="cosine", index="hnsw")
    col.upsert([1, 2], np.random.rand(2, 384).astype(np.float32), payloads=[{"tag": 1}, {"tag": 2}])
    hits = col.search(np.random.rand(384).astype(np.float32), k=5,
                      filter={"must": [{"key": "tag", "match": {"value": 1}}]})
    ids, scores = col.search_batch(np.random.rand(10, 384).astype(np.float32), k=5)

Bad input raises ValueError, a missing collection KeyError; the GIL is released while the engine
works, so threads can search in parallel.
"""

from ._quarry import Collection, Database, Hit, Record, open  # noqa: F401

__all__ = ["open", "Database", "Collection", "Hit", "Record"]
__version__ = "0.1.0"
