"""BM25 over chunk texts with bm25s: English stopwords, Snowball stemming when PyStemmer is installed.

Documents are keyed by the store's chunk ids (int64), so a hit maps straight back to a SQLite row. The
corpus is tokenised as a stream into compact int32 arrays, because a 50 MB corpus as Python lists of
token ids would cost several hundred MB.
"""

from __future__ import annotations

import json
from array import array
from collections.abc import Iterable
from pathlib import Path

import numpy as np

PARAMS_FILE = "ragspec-bm25.json"
IDS_FILE = "chunk_ids.npy"


def english_stemmer():  # -> Stemmer.Stemmer | None
    """Snowball English stemmer if PyStemmer is installed (it ships wheels, no download at run time)."""
    try:
        import Stemmer
    except ImportError:
        return None
    return Stemmer.Stemmer("english")


def _tokenizer(stem: bool):  # -> bm25s.tokenization.Tokenizer
    from bm25s.tokenization import Tokenizer

    stemmer = english_stemmer() if stem else None
    if stem and stemmer is None:
        raise RuntimeError("this BM25 index was built with stemming; install PyStemmer to load it")
    return Tokenizer(lower=True, stopwords="en", stemmer=stemmer)


class BM25Index:
    """A bm25s index whose rows are chunk ids; search returns `(ids, scores)` best first."""

    def __init__(self, retriever, tokenizer, ids: np.ndarray, params: dict) -> None:
        self._retriever = retriever
        self._tokenizer = tokenizer
        self.ids = ids
        self.params = params

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    @classmethod
    def build(
        cls,
        rows: Iterable[tuple[int, str]],
        *,
        stem: bool | None = None,
        k1: float = 1.5,
        b: float = 0.75,
        method: str = "lucene",
    ) -> BM25Index:
        """Index `(chunk_id, text)` rows; `stem=None` stems when PyStemmer is available."""
        import bm25s

        stem = english_stemmer() is not None if stem is None else stem
        tokenizer = _tokenizer(stem)
        ids: list[int] = []
        token_ids: list[array] = []

        def texts() -> Iterable[str]:
            for chunk_id, text in rows:
                ids.append(chunk_id)
                yield text

        for doc in tokenizer.streaming_tokenize(texts(), update_vocab=True, allow_empty=True):
            token_ids.append(array("i", doc))
        params = {"stem": stem, "k1": k1, "b": b, "method": method}
        if not ids:
            return cls(None, tokenizer, np.zeros(0, dtype=np.int64), params)
        retriever = bm25s.BM25(k1=k1, b=b, method=method, csc_backend="auto")  # scipy: ~40% less peak memory
        retriever.index((token_ids, dict(tokenizer.get_vocab_dict())), show_progress=False)
        return cls(retriever, tokenizer, np.asarray(ids, dtype=np.int64), params)

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        if self._retriever is not None:
            self._retriever.save(str(directory), show_progress=False)
        self._tokenizer.save_vocab(str(directory))
        self._tokenizer.save_stopwords(str(directory))
        np.save(directory / IDS_FILE, self.ids)
        (directory / PARAMS_FILE).write_text(json.dumps(self.params))

    @classmethod
    def load(cls, directory: Path) -> BM25Index:
        import bm25s

        params = json.loads((directory / PARAMS_FILE).read_text())
        tokenizer = _tokenizer(bool(params["stem"]))
        tokenizer.load_vocab(str(directory))
        tokenizer.load_stopwords(str(directory))
        ids = np.load(directory / IDS_FILE)
        retriever = None
        if ids.shape[0]:
            retriever = bm25s.BM25.load(str(directory), show_progress=False, verbosity=0)
        return cls(retriever, tokenizer, ids, params)

    def query_ids(self, query: str) -> list[int]:
        """Query tokens as index ids; words never seen in the corpus are dropped."""
        doc = next(self._tokenizer.streaming_tokenize([query], update_vocab=False, allow_empty=False))
        return list(doc)

    def search(self, query: str, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-`k` chunk ids and BM25 scores; chunks sharing no term with the query are left out."""
        if self._retriever is None:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        tokens = self.query_ids(query)
        if not tokens:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        k = min(k, len(self))
        docs, scores = self._retriever.retrieve([tokens], k=k, show_progress=False, n_threads=0)
        docs, scores = docs[0], scores[0]
        keep = scores > 0
        return self.ids[docs[keep]], scores[keep].astype(np.float32)
