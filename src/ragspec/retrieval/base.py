"""The shared vocabulary of retrieval: chunks, hits, and the two interfaces everything plugs into.

Kept free of heavy imports (no torch, faiss or bm25s) so that any module, including the corpus store,
can depend on it without pulling a model or an index library into memory.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

Mode = Literal["hybrid", "bm25", "dense"]
MODES: tuple[str, ...] = ("hybrid", "bm25", "dense")


class QueryError(ValueError):
    """A query that cannot be answered (empty, unknown mode, bad k); the message is one line."""


@dataclass(frozen=True)
class Chunk:
    """One retrievable piece of a document, with enough provenance to cite and re-order it.

    `start`/`end` are character offsets into the document text (`Store.document_text`), so hits can be put
    back in reading order and neighbouring text can be fetched for long-context prompts.
    """

    chunk_id: int
    doc_id: str
    title: str
    source: str
    ordinal: int
    start: int
    end: int
    n_tokens: int
    text: str
    page: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "chunk_id": self.chunk_id,
            "doc_id": self.doc_id,
            "title": self.title,
            "source": self.source,
            "page": self.page,
            "ordinal": self.ordinal,
            "start": self.start,
            "end": self.end,
            "n_tokens": self.n_tokens,
            "text": self.text,
        }


@dataclass(frozen=True)
class Hit:
    """A chunk returned for a query; `score` is the mode's own score (BM25, cosine, or fused RRF)."""

    chunk: Chunk
    score: float
    rank: int
    mode: str
    components: dict[str, float] = field(default_factory=dict)

    @property
    def doc_id(self) -> str:
        return self.chunk.doc_id

    @property
    def text(self) -> str:
        return self.chunk.text

    def to_dict(self) -> dict[str, Any]:
        return {
            "rank": self.rank,
            "score": self.score,
            "mode": self.mode,
            "components": dict(self.components),
            **self.chunk.to_dict(),
        }


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into L2-normalised float32 vectors so inner product equals cosine similarity.

    `name` and `dim` are recorded in the store, so embeddings made by one model are never searched with
    another model's query vectors.
    """

    name: str
    dim: int

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...

    def embed_query(self, text: str) -> np.ndarray: ...


def check_query(query: str, k: int) -> str:
    """Reject queries that would silently return noise; returns the stripped query."""
    if not isinstance(query, str) or not query.strip():
        raise QueryError("empty query: give a question or some keywords")
    if not isinstance(k, int) or k < 1:
        raise QueryError(f"k must be a positive integer, got {k!r}")
    return query.strip()


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise QueryError(f"unknown retrieval mode {mode!r}; choose one of {', '.join(MODES)}")
    return mode
