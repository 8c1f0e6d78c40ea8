"""Hybrid retrieval over the chunks of one document held in memory (RAPID's drafter context).

The same pieces as the store's retriever (bm25s, MiniLM + faiss, reciprocal rank fusion), built per
document in well under a second: a long document of 8K tokens is a few dozen chunks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ragspec.corpus.chunking import chunk_text
from ragspec.retrieval.base import Embedder
from ragspec.retrieval.bm25 import BM25Index
from ragspec.retrieval.dense import DenseIndex
from ragspec.retrieval.hybrid import DEFAULT_RRF_K, rrf


@dataclass(frozen=True)
class DocChunk:
    index: int
    start: int
    end: int
    n_tokens: int
    text: str


class DocumentIndex:
    def __init__(self, text: str, tokenizer, chunk_size: int = 256, embedder: Embedder | None = None) -> None:
        """Chunk `text` into `chunk_size`-token pieces of `tokenizer` (no overlap) and index them."""
        spans = chunk_text(text, tokenizer, chunk_size, 0)
        self.chunks = [DocChunk(i, s.start, s.end, s.n_tokens, text[s.start : s.end]) for i, s in enumerate(spans)]
        self.bm25 = BM25Index.build((c.index, c.text) for c in self.chunks)
        self.embedder = embedder
        self.dense = None
        if embedder is not None and self.chunks:
            vectors = embedder.embed([c.text for c in self.chunks])
            self.dense = DenseIndex.build(embedder.dim, [(np.arange(len(self.chunks)), vectors)])

    @property
    def num_tokens(self) -> int:
        return sum(c.n_tokens for c in self.chunks)

    def search(self, query: str, k: int) -> list[int]:
        """Chunk indices, best first, by RRF of BM25 and dense rankings."""
        rankings = {"bm25": self.bm25.search(query, k)[0].tolist()}
        if self.dense is not None:
            rankings["dense"] = self.dense.search(self.embedder.embed_query(query), k)[0].tolist()
        return [i for i, _, _ in rrf(rankings, DEFAULT_RRF_K)][:k]

    def context(self, query: str, budget: int) -> tuple[str, list[int]]:
        """The best chunks up to `budget` tokens, back in document order, joined by blank lines."""
        chosen, used = [], 0
        for i in self.search(query, len(self.chunks)):
            if used + self.chunks[i].n_tokens > budget:
                continue
            chosen.append(i)
            used += self.chunks[i].n_tokens
        chosen.sort()
        return "\n\n".join(self.chunks[i].text for i in chosen), chosen
