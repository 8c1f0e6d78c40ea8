"""Prompt lookup decoding (PLD): copy what followed earlier occurrences of the latest n-gram.

Retrieved context is full of text the answer will repeat, so the continuation after an earlier occurrence
of the last n tokens is often exactly what the target is about to write. Unlike transformers' prompt
lookup (one match, one chain) this returns several matches as a tree, most recent first, so the one
verification forward tries them all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ragspec.drafting.adaptive import DraftLength
from ragspec.drafting.base import DraftContext
from ragspec.spec.verifier import VerifyResult
from ragspec.spec.tree import TokenTree, TreeBuilder


@dataclass(frozen=True)
class PLDConfig:
    # Defaults from replaying SmolLM2's greedy outputs on 8 sets against its measured verification costs:
    # 1-gram matches and wide trees add more verification cost than accepted tokens.
    min_ngram: int = 2
    max_ngram: int = 3
    max_matches: int = 2  # distinct continuations per step (tree breadth)
    min_len: int = 2
    max_len: int = 8

    def __post_init__(self) -> None:
        if not 1 <= self.min_ngram <= self.max_ngram:
            raise ValueError(f"need 1 <= min_ngram <= max_ngram, got {self.min_ngram}, {self.max_ngram}")
        if self.max_matches < 1:
            raise ValueError("max_matches must be >= 1")


def find_continuations(tokens: np.ndarray, min_ngram: int, max_ngram: int, length: int,
                       max_matches: int) -> list[np.ndarray]:
    """Continuations after earlier occurrences of the longest suffix n-gram that occurs earlier.

    Args:
        tokens: [L] int token ids; the suffix n-gram is tokens[-n:].
        length: tokens per continuation (shorter near the end of `tokens`).
        max_matches: keep at most this many, most recent occurrence first.
    Returns:
        Non-empty continuation arrays; [] when no n-gram with min_ngram <= n <= max_ngram recurs.

    Example: tokens = [1, 2, 3, 9, 1, 2, 3, 7, 1, 2, 3], max_ngram 3, length 2 -> [[7, 1], [9, 1]].
    """
    size = tokens.shape[0]
    for n in range(min(max_ngram, size - 1), min_ngram - 1, -1):
        pattern = tokens[size - n :]
        # Candidate starts: occurrences of the pattern's first token that leave room for a continuation.
        starts = np.flatnonzero(tokens[: size - n] == pattern[0])
        for j in range(1, n):
            starts = starts[tokens[starts + j] == pattern[j]]
        if starts.size:
            out = []
            for s in starts[::-1][:max_matches]:
                out.append(tokens[s + n : s + n + length])
            return out
    return []


class PLDProposer:
    """Draft trees from n-gram matches in the prompt and the text generated so far."""

    name = "pld"

    def __init__(self, config: PLDConfig | None = None) -> None:
        self.config = config or PLDConfig()
        self.length = DraftLength(self.config.min_len, self.config.max_len)

    def begin(self, prompt_ids: Sequence[int]) -> None:
        self.length = DraftLength(self.config.min_len, self.config.max_len)

    def propose(self, ctx: DraftContext) -> TokenTree:
        c = self.config
        k = self.length.next(ctx.max_depth)
        if k <= 0:
            return TokenTree.empty()
        tokens = np.asarray(ctx.tokens, dtype=np.int64)
        builder = TreeBuilder(ctx.max_nodes)
        for cont in find_continuations(tokens, c.min_ngram, c.max_ngram, k, c.max_matches):
            builder.insert(cont.tolist(), self.name)
        return builder.build()

    def observe(self, ctx: DraftContext, result: VerifyResult) -> None:
        if len(result.tree):
            self.length.observe(len(result.acceptance.accepted))
