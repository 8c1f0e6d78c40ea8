"""RRF fusion and the hit helpers (reading order, distinct documents)."""

from __future__ import annotations

import pytest

from ragspec.retrieval.base import Chunk, Hit
from ragspec.retrieval.hybrid import order_by_position, rrf, unique_documents


def test_rrf_sums_reciprocal_ranks():
    fused = rrf({"bm25": [1, 2, 3], "dense": [3, 1, 4]}, k=60)
    scores = {i: s for i, s, _ in fused}
    assert scores[1] == pytest.approx(1 / 61 + 1 / 62)
    assert scores[3] == pytest.approx(1 / 63 + 1 / 61)
    assert scores[4] == pytest.approx(1 / 63)
    assert [i for i, _, _ in fused] == [1, 3, 2, 4]
    assert dict((i, r) for i, _, r in fused)[3] == {"bm25": 3, "dense": 1}


def test_rrf_weights_and_k_change_the_order():
    lists = {"bm25": [1, 2], "dense": [2, 1]}
    assert [i for i, _, _ in rrf(lists, weights={"bm25": 2.0, "dense": 1.0})] == [1, 2]
    assert [i for i, _, _ in rrf(lists, weights={"bm25": 1.0, "dense": 2.0})] == [2, 1]
    assert [i for i, _, _ in rrf(lists)] == [1, 2]  # exact tie: lower id first, deterministically
    assert rrf({"a": []}) == []


def _hit(doc: str, start: int, end: int, rank: int) -> Hit:
    chunk = Chunk(rank, doc, doc.title(), f"/{doc}.txt", 0, start, end, 10, "x")
    return Hit(chunk, 1.0 / rank, rank, "hybrid")


def test_reading_order_and_distinct_documents():
    hits = [_hit("b", 100, 200, 1), _hit("a", 50, 90, 2), _hit("b", 0, 120, 3), _hit("a", 300, 400, 4)]
    assert [(h.doc_id, h.chunk.start) for h in order_by_position(hits)] == [
        ("a", 50),
        ("a", 300),
        ("b", 0),
        ("b", 100),
    ]
    assert unique_documents(hits) == ["b", "a"]
