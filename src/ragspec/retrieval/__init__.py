"""Hybrid retrieval over a corpus store: BM25 (bm25s), dense (MiniLM + faiss) and RRF fusion."""

from ragspec.retrieval.base import MODES, Chunk, Embedder, Hit, QueryError
from ragspec.retrieval.embedder import HashEmbedder, SentenceTransformerEmbedder, default_embedder
from ragspec.retrieval.hybrid import (
    StoreRetriever,
    order_by_position,
    rrf,
    unique_documents,
)

__all__ = [
    "MODES",
    "Chunk",
    "Embedder",
    "HashEmbedder",
    "Hit",
    "QueryError",
    "SentenceTransformerEmbedder",
    "StoreRetriever",
    "default_embedder",
    "order_by_position",
    "rrf",
    "unique_documents",
]
