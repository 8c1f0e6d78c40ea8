"""Exact dense search with faiss: inner product over L2-normalised vectors, keyed by chunk id.

`IndexFlatIP` is exact and, at tens of thousands of chunks, still sub-millisecond per query, so there is
nothing to tune or train. It is wrapped in `IndexIDMap2` so results are store chunk ids and single chunks
can be removed. A search runs on one OpenMP thread: a single query gains nothing from more, and on a shared
2-core machine a second thread that gets descheduled stalls every search. The thread count is set around
each call and restored, never left at 1: faiss and torch share the OpenMP runtime, so a global
`faiss.omp_set_num_threads(1)` would also leave the language model on one thread.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np


def _faiss():
    import faiss

    return faiss


@contextmanager
def _one_thread() -> Iterator[None]:
    faiss = _faiss()
    previous = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(previous)


class DenseIndex:
    """A faiss `IndexIDMap2(IndexFlatIP)`; vectors must be float32 and L2-normalised."""

    def __init__(self, index, dim: int) -> None:
        self._index = index
        self.dim = dim

    @classmethod
    def empty(cls, dim: int) -> DenseIndex:
        faiss = _faiss()
        return cls(faiss.IndexIDMap2(faiss.IndexFlatIP(dim)), dim)

    @classmethod
    def build(cls, dim: int, batches: Iterable[tuple[np.ndarray, np.ndarray]]) -> DenseIndex:
        """Add `(ids, vectors)` batches, so the vectors never need to sit in memory twice."""
        index = cls.empty(dim)
        for ids, vectors in batches:
            index.add(ids, vectors)
        return index

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if len(ids) == 0:
            return
        vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(len(ids), self.dim)
        self._index.add_with_ids(vectors, np.ascontiguousarray(ids, dtype=np.int64))

    def save(self, path: Path) -> None:
        _faiss().write_index(self._index, str(path))

    @classmethod
    def load(cls, path: Path) -> DenseIndex:
        index = _faiss().read_index(str(path))
        return cls(index, int(index.d))

    def search(self, vector: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-`k` chunk ids and cosine similarities, best first."""
        if len(self) == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        query = np.ascontiguousarray(vector, dtype=np.float32).reshape(1, self.dim)
        with _one_thread():
            scores, ids = self._index.search(query, min(k, len(self)))
        keep = ids[0] >= 0
        return ids[0][keep].astype(np.int64), scores[0][keep].astype(np.float32)
