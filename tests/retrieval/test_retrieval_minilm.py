"""Integration: the real all-MiniLM-L6-v2 embedder, offline, on the demo data set."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def minilm(minilm_dir):
    from ragspec.retrieval.embedder import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder(minilm_dir, name="minilm-l6")


def test_embeddings_are_normalised_float32_and_queries_match_batches(minilm):
    texts = ["The Normans came from Normandy.", "Steam engines use pressure.", ""]
    vectors = minilm.embed(texts)
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.allclose(minilm.embed_query(texts[0]), vectors[0], atol=1e-5)
    assert float(vectors[0] @ minilm.embed_query("Where did the Normans come from?")) > 0.5


def test_demo_hybrid_recall_and_latency(minilm, shared_data, tmp_path):
    from ragspec.retrieval.bench import run

    result = run(shared_data / "demo", embedder=minilm, store_dir=tmp_path / "store")
    modes = result["modes"]
    assert result["documents"] == 174
    assert modes["hybrid"]["recall@5"] >= 0.9
    assert modes["hybrid"]["recall@5"] >= max(modes["bm25"]["recall@5"], modes["dense"]["recall@5"]) - 0.04
    assert modes["bm25"]["p50_ms"] < 20
