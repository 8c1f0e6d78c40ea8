"""Hybrid retrieval over a corpus store: BM25 (bm25s), dense (MiniLM + faiss) and RRF fusion."""

from ragspec.retrieval.base import MODES, Chunk, Embedder, Hit, QueryError, Retriever
from ragspec.retrieval.embedder import HashEmbedder, SentenceTransformerEmbedder, default_embedder
from ragspec.retrieval.hybrid import (
    DocumentHits,
    StoreRetriever,
    group_by_document,
    merged_ranges,
    open_retriever,
    order_by_position,
    rrf,
    unique_documents,
)

__all__ = [
    "MODES",
    "Chunk",
    "DocumentHits",
    "Embedder",
    "HashEmbedder",
    "Hit",
    "QueryError",
    "Retriever",
    "SentenceTransformerEmbedder",
    "StoreRetriever",
    "default_embedder",
    "group_by_document",
    "merged_ranges",
    "open_retriever",
    "order_by_position",
    "rrf",
    "unique_documents",
]
