"""A token datastore for REST: the corpus tokenised with one tokenizer, plus a suffix array.

REST (arXiv 2311.08252) drafts the continuations that followed the longest matching suffix of the
context anywhere in a corpus. The corpus is one int32 array of token ids with -1 between documents; the
suffix array orders every position by the next `DEPTH` tokens (REST never matches more than 16), built
by prefix doubling with numpy in O(n log n) per round and log2(DEPTH) rounds. Lookups find the range of
the pattern's first two tokens by binary search on a sorted key of each suffix's first two tokens (built
on load), then narrow it one pattern token at a time with binary search on that token's column: no
Python loop over the corpus, and no gather over the huge range of a frequent first token.

Files (plain numpy, inspectable): tokens.npy, sa.npy, meta.json.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable

import numpy as np

DEPTH = 16  # longest match REST tries (token_spans 16 -> 2)
SEPARATOR = -1


def suffix_array(tokens: np.ndarray, depth: int = DEPTH) -> np.ndarray:
    """Positions of `tokens` sorted by their next `depth` tokens (ties kept in position order).

    Past the end the array reads as -2, below every token id and the separator.
    """
    n = tokens.shape[0]
    rank = tokens.astype(np.int64)
    sa = np.argsort(rank, kind="stable")
    k = 1
    while k < depth:
        nxt = np.full(n, -2, dtype=np.int64)
        nxt[: n - k] = rank[k:]
        sa = np.lexsort((nxt, rank))  # sort by (rank, next rank); stable, so ties stay in position order
        r, s = rank[sa], nxt[sa]
        new = np.empty(n, dtype=np.int64)
        new[sa] = np.concatenate([[0], np.cumsum((r[1:] != r[:-1]) | (s[1:] != s[:-1]))])
        rank = new
        if rank.max() == n - 1:
            break
        k *= 2
    return sa.astype(np.int64)


class TokenDatastore:
    """A tokenised corpus with a suffix array (see module docstring)."""

    def __init__(self, tokens: np.ndarray, sa: np.ndarray) -> None:
        self.tokens = tokens
        self.sa = sa
        # The first two tokens of each suffix as one sorted int64 key (past the end reads -2).
        n = tokens.shape[0]
        self._base = int(tokens.max(initial=0)) + 3
        second = np.where(sa + 1 < n, tokens[np.minimum(sa + 1, n - 1)], -2)
        self._first2 = (tokens[sa].astype(np.int64) + 2) * self._base + (second.astype(np.int64) + 2)

    def __len__(self) -> int:
        return int(self.tokens.shape[0])

    @staticmethod
    def build(documents: Iterable[Iterable[int]]) -> "TokenDatastore":
        parts: list[np.ndarray] = []
        for doc in documents:
            arr = np.asarray(list(doc), dtype=np.int32)
            if arr.size:
                parts.append(arr)
                parts.append(np.array([SEPARATOR], dtype=np.int32))
        tokens = np.concatenate(parts) if parts else np.array([SEPARATOR], dtype=np.int32)
        return TokenDatastore(tokens, suffix_array(tokens))

    def save(self, path: str | Path, meta: dict | None = None) -> None:
        """Write atomically: a reader sees the old files or the new ones, never a mix."""
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        tmp.mkdir(parents=True, exist_ok=True)
        np.save(tmp / "tokens.npy", self.tokens)
        np.save(tmp / "sa.npy", self.sa)
        (tmp / "meta.json").write_text(json.dumps({"num_tokens": len(self), **(meta or {})}))
        if path.exists():
            old = path.with_name(path.name + ".old")
            os.replace(path, old)
            os.replace(tmp, path)
            for f in old.iterdir():
                f.unlink()
            old.rmdir()
        else:
            os.replace(tmp, path)

    @staticmethod
    def load(path: str | Path) -> "TokenDatastore":
        path = Path(path)
        return TokenDatastore(np.load(path / "tokens.npy", mmap_mode="r"), np.load(path / "sa.npy", mmap_mode="r"))

    def find(self, pattern: np.ndarray) -> tuple[int, int]:
        """[lo, hi) range of the suffix array whose suffixes start with `pattern` (len <= DEPTH)."""
        if pattern[0] + 2 >= self._base or (len(pattern) > 1 and pattern[1] + 2 >= self._base):
            return 0, 0  # a token the corpus never contains
        if len(pattern) == 1:
            keys = (int(pattern[0]) + 2) * self._base + np.array([0, self._base])
            lo, hi = (int(i) for i in np.searchsorted(self._first2, keys, "left"))
            return lo, hi
        key = (int(pattern[0]) + 2) * self._base + int(pattern[1]) + 2
        lo, hi = int(np.searchsorted(self._first2, key, "left")), int(np.searchsorted(self._first2, key, "right"))
        n = len(self)
        for j in range(2, len(pattern)):
            if lo >= hi:
                break
            pos = self.sa[lo:hi] + j
            column = np.where(pos < n, self.tokens[np.minimum(pos, n - 1)], -2)  # sorted within the range
            lo, hi = lo + int(np.searchsorted(column, pattern[j], "left")), lo + int(np.searchsorted(column, pattern[j], "right"))
        return lo, hi

    def continuations(self, context: np.ndarray, max_span: int = DEPTH, min_span: int = 2, length: int = 10,
                      max_matches: int = 256) -> tuple[int, list[np.ndarray]]:
        """Continuations after the longest suffix of `context` (max_span down to min_span) found in the corpus.

        Returns:
            (matched span, continuations); (0, []) when no span matches. Continuations stop at a document
            boundary and are empty-free.
        """
        n = len(self)
        for span in range(min(max_span, DEPTH, len(context)), min_span - 1, -1):
            lo, hi = self.find(np.asarray(context[-span:], dtype=np.int64))
            if lo >= hi:
                continue
            starts = np.asarray(self.sa[lo : min(hi, lo + max_matches)]) + span
            idx = starts[:, None] + np.arange(length)  # [matches, length]
            block = np.where(idx < n, self.tokens[np.minimum(idx, n - 1)], SEPARATOR)
            sizes = np.cumprod(block != SEPARATOR, axis=1).sum(axis=1)  # tokens before a document boundary
            out = [block[i, :size] for i, size in enumerate(sizes.tolist()) if size]
            if out:
                return span, out
        return 0, []


class DatastoreUnion:
    """Several token datastores searched as one: REST over the store's documents plus the corpora a user
    names (`ragspec ask --datastore STORE`). The longest suffix match wins, as within one datastore, and
    the continuations of every datastore that matches at that span are pooled, so REST's frequency-weighted
    trie counts them together. Each datastore keeps its own files: nothing is re-indexed to combine them."""

    def __init__(self, parts: Iterable[TokenDatastore]) -> None:
        self.parts = list(parts)
        if not self.parts:
            raise ValueError("a datastore union needs at least one datastore")

    def __len__(self) -> int:
        return sum(len(p) for p in self.parts)

    def continuations(self, context: np.ndarray, max_span: int = DEPTH, min_span: int = 2, length: int = 10,
                      max_matches: int = 256) -> tuple[int, list[np.ndarray]]:
        """As `TokenDatastore.continuations`, over every part (at most `max_matches` in all)."""
        best, pooled = 0, []
        for part in self.parts:
            span, conts = part.continuations(context, max_span, max(min_span, best), length, max_matches)
            if span > best:
                best, pooled = span, list(conts)
            elif span and span == best:
                pooled.extend(conts)
        return best, pooled[:max_matches]
