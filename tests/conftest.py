"""Shared fixtures. Corpus/retrieval: a fake embedder and a word tokenizer, so store tests need no model."""

from __future__ import annotations

from pathlib import Path

import pytest

from ragspec.corpus.chunking import RegexTokenizer
from ragspec.retrieval.embedder import HashEmbedder, minilm_path


@pytest.fixture
def word_tokenizer() -> RegexTokenizer:
    return RegexTokenizer()


@pytest.fixture
def hash_embedder() -> HashEmbedder:
    return HashEmbedder(dim=64)


@pytest.fixture
def make_store(tmp_path: Path, word_tokenizer: RegexTokenizer, hash_embedder: HashEmbedder):
    """`make_store(name="store", **kw)`: a Store in tmp_path with the fake embedder and word tokenizer."""
    from ragspec.corpus.store import Store

    opened = []

    def factory(name: str = "store", **kwargs):
        kwargs.setdefault("embedder", hash_embedder)
        kwargs.setdefault("tokenizer", word_tokenizer)
        kwargs.setdefault("chunk_size", 40)
        kwargs.setdefault("chunk_overlap", 8)
        store = Store(tmp_path / name, **kwargs)
        opened.append(store)
        return store

    yield factory
    for store in opened:
        try:
            store.close()
        except Exception:
            pass


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    """The real all-MiniLM-L6-v2 folder, or skip (integration tests only)."""
    try:
        path = minilm_path()
    except Exception as exc:  # registry says not pulled
        pytest.skip(f"minilm-l6 not available: {exc}")
    if not (path / "model.safetensors").is_file():
        pytest.skip("minilm-l6 not pulled")
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The evaluation data folder: the bundled `data/`, else `shared/data` beside the checkout, or skip."""
    import os

    root = Path(__file__).resolve().parent.parent
    for candidate in (
        os.environ.get("RAGSPEC_DATA"),
        root / "data",
        root.parent / "shared" / "data",
        root / "shared" / "data",
    ):
        if candidate and (Path(candidate) / "squad" / "corpus.jsonl").is_file():
            return Path(candidate)
    pytest.skip("shared/data not found")
