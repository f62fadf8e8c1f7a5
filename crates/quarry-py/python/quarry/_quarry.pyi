"""Type stubs of quarry's native module."""

from os import PathLike
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import numpy.typing as npt

PointId = Union[int, str]
Filter = Dict[str, Any]
VectorLike = Union[npt.NDArray[np.floating], Sequence[float]]
MatrixLike = Union[npt.NDArray[np.floating], Sequence[Sequence[float]]]

class Hit:
    """One search hit."""
    @property
    def id(self) -> PointId: ...
    @property
    def score(self) -> float: ...
    @property
    def payload(self) -> Dict[str, Any]: ...
    @property
    def explain(self) -> Optional[List[Dict[str, Any]]]: ...
    @property
    def relevance(self) -> Optional[float]: ...
    @property
    def collection(self) -> Optional[str]: ...

class Record:
    """A stored point."""
    @property
    def id(self) -> PointId: ...
    @property
    def vector(self) -> Union[npt.NDArray[np.float32], Dict[str, npt.NDArray[np.float32]], None]: ...
    @property
    def payload(self) -> Dict[str, Any]: ...

class Collection:
    """A collection of an open database."""
    @property
    def name(self) -> str: ...
    @property
    def dim(self) -> Optional[int]: ...
    @property
    def schema(self) -> Dict[str, Any]: ...
    def upsert(
        self,
        ids: Union[Sequence[PointId], npt.NDArray[np.integer]],
        vectors: Optional[Union[MatrixLike, Sequence[MatrixLike]]] = None,
        payloads: Optional[Sequence[Optional[Dict[str, Any]]]] = None,
        texts: Optional[Sequence[str]] = None,
    ) -> int:
        """Multi-vector collections take one 2-D array (vectors, dim) per point, or an
        (n, vectors, dim) array."""
        ...
    def search(
        self,
        query: Union[VectorLike, MatrixLike],
        k: int = 10,
        filter: Optional[Filter] = None,
        params: Optional[Dict[str, Union[int, bool]]] = None,  # ef, rescore, candidates
        with_payload: bool = True,
    ) -> List[Hit]: ...
    def search_batch(
        self,
        queries: Union[MatrixLike, Sequence[MatrixLike]],
        k: int = 10,
        filter: Optional[Filter] = None,
        params: Optional[Dict[str, Union[int, bool]]] = None,
    ) -> Tuple[npt.NDArray[Any], npt.NDArray[np.float32]]: ...
    def search_text(
        self,
        query: Union[str, Sequence[str]],
        k: int = 10,
        mode: Optional[str] = None,
        filter: Optional[Filter] = None,
        explain: bool = False,
        fusion: Optional[str] = None,
        min_relevance: Optional[Union[float, str]] = None,
        hubness: bool = False,
        query_model: Optional[str] = None,
        rerank: Optional[str] = None,
        rerank_depth: int = 20,
        rerank_blend: float = 0.5,
    ) -> List[Hit]: ...
    def context(
        self,
        query: Union[str, Sequence[str]],
        budget_tokens: int = 1500,
        k: int = 20,
        mode: Optional[str] = None,
        filter: Optional[Filter] = None,
        qid: Optional[str] = None,
        near_distance: int = 3,
        min_relevance: Optional[Union[float, str]] = None,
        hubness: bool = False,
        rerank: Optional[str] = None,
        rerank_depth: int = 20,
        rerank_blend: float = 0.5,
        as_text: bool = False,
    ) -> Union[Dict[str, Any], str]: ...
    def ingest_files(
        self,
        paths: Union[str, PathLike[str], Sequence[Union[str, PathLike[str]]]],
        prune: bool = False,
        drop_duplicates: bool = False,
        near_distance: int = 3,
    ) -> Dict[str, Any]: ...
    def calibrate(
        self,
        queries: Optional[Sequence[str]] = None,
        relevant: Optional[Sequence[Sequence[PointId]]] = None,
        mode: str = "dense",
        depth: int = 100,
        keep: float = 0.99,
        training_free: bool = False,
        z: float = 3.0,
    ) -> Dict[str, Any]: ...
    def fit_hubness(
        self, bank: Sequence[str], method: str = "qb", strength: float = 0.2, beta: Optional[float] = None, dynamic: bool = False
    ) -> Dict[str, Any]: ...
    def hubness(self, queries: Sequence[str], k: int = 10, corrected: bool = False) -> float: ...
    def align(self, model: str, pairs: int = 1000, plain: bool = False, query_prefix: str = "") -> Dict[str, Any]: ...
    def delete(self, ids: Union[Sequence[PointId], npt.NDArray[np.integer]]) -> int: ...
    def get(self, id: PointId, with_vector: bool = True) -> Optional[Record]: ...
    def count(self, filter: Optional[Filter] = None) -> int: ...
    def scroll(
        self,
        limit: int = 100,
        offset: Optional[PointId] = None,
        filter: Optional[Filter] = None,
        with_vectors: bool = False,
    ) -> Tuple[List[Record], Optional[PointId]]: ...
    def snapshot(self, path: Union[str, PathLike]) -> int: ...
    def optimize(self) -> None: ...
    def create_payload_index(self, key: str) -> bool: ...
    def __len__(self) -> int: ...

class Database:
    """An open database folder."""
    @property
    def path(self) -> str: ...
    def create_collection(
        self,
        name: str,
        dim: int,
        metric: str = "cosine",
        index: str = "hnsw",
        fsync: bool = True,
        payload_indexes: Optional[Sequence[str]] = None,
        on_disk: bool = False,
        multivector: Optional[Union[bool, Dict[str, Any]]] = None,
    ) -> Collection: ...
    def get_or_create_collection(
        self,
        name: str,
        dim: Optional[int] = None,
        metric: str = "cosine",
        index: str = "hnsw",
        fsync: bool = True,
        payload_indexes: Optional[Sequence[str]] = None,
        on_disk: bool = False,
        multivector: Optional[Union[bool, Dict[str, Any]]] = None,
    ) -> Collection: ...
    def get_or_create_text_collection(
        self, name: str, model: Optional[str] = None, index: str = "hnsw", k1: float = 1.2, b: float = 0.75
    ) -> Collection: ...
    def create_text_collection(
        self, name: str, model: Optional[str] = None, index: str = "hnsw", k1: float = 1.2, b: float = 0.75
    ) -> Collection: ...
    def restore_snapshot(self, path: Union[str, PathLike], name: str) -> Collection: ...
    def collection(self, name: str) -> Collection: ...
    def collections(self) -> List[str]: ...
    def delete_collection(self, name: str) -> bool: ...
    def create_group(
        self,
        name: str,
        members: List[str],
        router_model: str = "all-MiniLM-L6-v2",
        rule: str = "mean",
        fuse_top: int = 1,
        same_documents: bool = False,
    ) -> None: ...
    def fit_group(
        self,
        name: str,
        queries: List[str],
        relevant: List[List[Any]],
        labels: Optional[List[str]] = None,
        k: int = 1,
    ) -> Dict[str, Any]: ...
    def search_group(
        self, name: str, query: str, k: int = 10, fuse_top: Optional[int] = None, rule: Optional[str] = None
    ) -> Tuple[List[Hit], List[Dict[str, Any]]]: ...
    def groups(self) -> List[str]: ...
    def delete_group(self, name: str) -> bool: ...

def open(path: Union[str, PathLike[str]]) -> Database: ...
