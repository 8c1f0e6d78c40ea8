"""Embedders: the real MiniLM sentence-transformer and a hashed bag-of-words stand-in for tests.

The real model is loaded once from a local folder (never from a hub) and kept in memory, because loading
costs seconds while a query must take milliseconds. Queries run on one thread: on a shared 2-core laptop a
second OpenMP thread that gets descheduled makes every single-query call wait for it (measured: ~15 ms
with one thread versus 90-470 ms with two under load).
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ragspec import paths

DEFAULT_EMBEDDER = "minilm-l6"
_WORD = re.compile(r"\w+")


def minilm_path(name: str = DEFAULT_EMBEDDER) -> Path:
    """The local folder of an embedding model: a pulled model by name, or any path the registry accepts.

    A pulled model (folder with its manifest) is found directly, because importing the registry imports
    the LM backends (torch, transformers: seconds), which a BM25 search or a chunking test does not need.
    """
    folder = paths.models_dir() / name
    if (folder / "ragspec-model.json").is_file():
        return folder
    try:
        from ragspec.models.registry import resolve_model
    except ImportError:  # registry not installed in this checkout: fall back to the conventional folder
        return folder
    return resolve_model(name).path


class HashEmbedder:
    """Deterministic hashed bag-of-words vectors: no model, no randomness, microseconds per text.

    Texts that share words get similar vectors, which is enough to exercise dense search, storage and
    fusion in unit tests. `delay` sleeps per call to simulate a slow model (used by the crash test).
    """

    def __init__(self, dim: int = 64, delay: float = 0.0) -> None:
        self.dim = dim
        self.delay = delay
        self.name = f"hash-bow-{dim}"
        self.tokenizer_name = "regex-words"  # chunk with the word tokenizer: no model files needed

    def _vector(self, text: str) -> np.ndarray:
        vec = np.zeros(self.dim, dtype=np.float32)
        for word in _WORD.findall(text.lower()):
            digest = hashlib.blake2b(word.encode("utf-8"), digest_size=8).digest()
            slot = int.from_bytes(digest[:4], "little") % self.dim
            vec[slot] += 1.0 if digest[4] & 1 else -1.0
        norm = float(np.linalg.norm(vec))
        if norm == 0.0:
            vec[0] = 1.0
            return vec
        return vec / norm

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if self.delay:
            time.sleep(self.delay)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([self._vector(t) for t in texts]).astype(np.float32)

    def embed_query(self, text: str) -> np.ndarray:
        return self._vector(text)


@contextmanager
def _torch_threads(n: int | None) -> Iterator[None]:
    import torch

    previous = torch.get_num_threads()
    if n is None or n == previous:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _quiet_load(load):
    """Load without transformers' per-weight progress bar, which would garble the CLI's own output."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        return load()
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


class SentenceTransformerEmbedder:
    """A sentence-transformers model from a local folder, e.g. all-MiniLM-L6-v2 (384-d, 256 word pieces).

    `query_prefix`/`doc_prefix` exist for models trained with instructions (e5, bge); MiniLM uses none.
    """

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        name: str | None = None,
        batch_size: int = 16,
        query_threads: int | None = 1,
        batch_threads: int | None = None,
        query_prefix: str = "",
        doc_prefix: str = "",
    ) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        folder = Path(path) if path is not None else minilm_path()
        if not (folder / "modules.json").is_file() and not (folder / "config.json").is_file():
            raise FileNotFoundError(
                f"no sentence-transformers model in {folder}; run: ragspec models pull minilm-l6"
            )
        self.model = _quiet_load(
            lambda: SentenceTransformer(str(folder), device="cpu", local_files_only=True)
        )
        self.name = name or folder.name
        self.tokenizer_name = self.name  # chunks are counted in this model's own word pieces
        self.dim = int(self.model.get_embedding_dimension())
        self.max_tokens = int(self.model.max_seq_length)
        self.batch_size = batch_size
        self.query_threads = query_threads
        self.batch_threads = batch_threads
        self.query_prefix = query_prefix
        self.doc_prefix = doc_prefix

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        batch = [self.doc_prefix + t for t in texts] if self.doc_prefix else list(texts)
        with _torch_threads(self.batch_threads):
            vecs = self.model.encode(
                batch,
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return np.ascontiguousarray(vecs, dtype=np.float32)

    def embed_query(self, text: str) -> np.ndarray:
        """One query through the model's modules directly: `encode` adds ~3 ms of bookkeeping per call."""
        import torch

        with _torch_threads(self.query_threads), torch.inference_mode():
            features = self.model.preprocess([self.query_prefix + text])
            vec = torch.nn.functional.normalize(self.model(features)["sentence_embedding"], dim=-1)[0]
        return np.ascontiguousarray(vec.numpy(), dtype=np.float32)


_LOADED: dict[str, SentenceTransformerEmbedder] = {}


def default_embedder(name: str = DEFAULT_EMBEDDER) -> SentenceTransformerEmbedder:
    """The process-wide MiniLM embedder, loaded on first use and then kept (loading takes seconds)."""
    if name not in _LOADED:
        _LOADED[name] = SentenceTransformerEmbedder(minilm_path(name), name=name)
    return _LOADED[name]


def embedder_for(name: str) -> HashEmbedder | SentenceTransformerEmbedder:
    """The embedder a store records by name: `hash-bow-N` (tests, no model) or a sentence-transformers
    model."""
    match = re.fullmatch(r"hash-bow-(\d+)", name)
    if match:
        return HashEmbedder(int(match.group(1)))
    return default_embedder(name)
