"""Search a corpus store with BM25, dense vectors, or both fused by reciprocal rank fusion (RRF).

RRF fuses ranks, not scores: BM25 scores and cosines live on unrelated scales, and ranks need no
calibration per corpus. Each list contributes `weight / (rrf_k + rank)` for the chunks it ranks in its top
`depth`. Models and indexes stay loaded in the retriever, so a query costs one small embedding (~10 ms on
one CPU thread), one BM25 lookup and one exact faiss scan.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from ragspec.retrieval.base import Embedder, Hit, QueryError, check_mode, check_query

if TYPE_CHECKING:
    from ragspec.corpus.store import Store

DEFAULT_RRF_K = 10  # k=10 beat the customary 60 by ~1 point of recall@5 on SQuAD halves and HotpotQA (docs/benchmarks.md)
DEFAULT_DEPTH = 50


def rrf(
    rankings: Mapping[str, Sequence[int]], k: int = DEFAULT_RRF_K, weights: Mapping[str, float] | None = None
) -> list[tuple[int, float, dict[str, int]]]:
    """Fuse ranked id lists: `(id, score, {list name: 1-based rank})`, best first, ties broken by id."""
    scores: dict[int, float] = {}
    ranks: dict[int, dict[str, int]] = {}
    for name, ids in rankings.items():
        weight = 1.0 if weights is None else float(weights.get(name, 1.0))
        for rank, item in enumerate(ids, start=1):
            item = int(item)
            scores[item] = scores.get(item, 0.0) + weight / (k + rank)
            ranks.setdefault(item, {})[name] = rank
    order = sorted(scores, key=lambda i: (-scores[i], i))
    return [(i, scores[i], ranks[i]) for i in order]


class StoreRetriever:
    """`search(query, k)` over a `Store` in "hybrid", "bm25" or "dense" mode.

    The embedder must be the one the store was built with (checked by name); without one, the store's
    recorded embedder is loaded (once per process).
    """

    def __init__(
        self,
        store: Store,
        embedder: Embedder | None = None,
        *,
        mode: str = "hybrid",
        rrf_k: int = DEFAULT_RRF_K,
        weights: Mapping[str, float] | None = None,
        depth: int = DEFAULT_DEPTH,
    ) -> None:
        self.store = store
        self.mode = check_mode(mode)
        self.rrf_k = rrf_k
        self.weights = dict(weights or {"bm25": 1.0, "dense": 1.0})
        self.depth = depth
        self._embedder = embedder or store.embedder

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            from ragspec.retrieval.embedder import DEFAULT_EMBEDDER, embedder_for

            self._embedder = embedder_for(self.store.embedder_name or DEFAULT_EMBEDDER)
        stored = self.store.embedder_name
        if stored is not None and stored != self._embedder.name:
            raise QueryError(f"store was embedded with {stored}, not {self._embedder.name}")
        return self._embedder

    def warm_up(self) -> None:
        """Load the model and indexes now, so the first real query is not the slow one."""
        self.store.indexes()
        if self.mode != "bm25":
            self.embedder.embed_query("warm up")

    def bm25_ranking(self, query: str, n: int) -> tuple[np.ndarray, np.ndarray]:
        return self.store.indexes().bm25.search(query, n)

    def dense_ranking(self, query: str, n: int) -> tuple[np.ndarray, np.ndarray]:
        dense = self.store.indexes().dense
        if dense is None:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        return dense.search(self.embedder.embed_query(query), n)

    def search(self, query: str, k: int = 5, mode: str | None = None, by_position: bool = False) -> list[Hit]:
        """Top-`k` chunks; `by_position` returns them in document order (doc id, then offset) instead."""
        query = check_query(query, k)
        mode = check_mode(mode or self.mode)
        if mode == "hybrid":
            depth = max(self.depth, k)
            lists = {"bm25": self.bm25_ranking(query, depth)[0], "dense": self.dense_ranking(query, depth)[0]}
            fused = rrf(lists, self.rrf_k, self.weights)[:k]
            ids = [i for i, _, _ in fused]
            scores = [s for _, s, _ in fused]
            comps = [{f"{name}_rank": float(r) for name, r in ranks.items()} for _, _, ranks in fused]
        else:
            found, raw = self.bm25_ranking(query, k) if mode == "bm25" else self.dense_ranking(query, k)
            ids, scores, comps = found.tolist(), raw.tolist(), [{} for _ in found]
        hits = _hits(self.store, ids, scores, comps, mode)
        return order_by_position(hits) if by_position else hits


def _hits(store: Store, ids: list[int], scores: list[float], comps: list[dict], mode: str) -> list[Hit]:
    chunks = {c.chunk_id: c for c in store.chunks(ids)}
    hits, rank = [], 0
    for chunk_id, score, comp in zip(ids, scores, comps):
        chunk = chunks.get(int(chunk_id))
        if chunk is not None:
            rank += 1
            hits.append(Hit(chunk, float(score), rank, mode, comp))
    return hits


def order_by_position(hits: Sequence[Hit]) -> list[Hit]:
    """Hits in reading order (doc id, then character offset), for prompts that quote long documents."""
    return sorted(hits, key=lambda h: (h.chunk.doc_id, h.chunk.start, h.chunk.end))


def unique_documents(hits: Sequence[Hit]) -> list[str]:
    """Document ids in order of first appearance: what "a chunk hit counts for its document" means."""
    return list(dict.fromkeys(h.doc_id for h in sorted(hits, key=lambda h: h.rank)))
