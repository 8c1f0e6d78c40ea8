"""REST: draft trees from a corpus datastore (arXiv 2311.08252).

Each step looks up the longest suffix of the context (16 tokens down to 2) in the datastore's suffix
array, takes the continuations that followed it, and keeps the most frequent prefixes as a tree: a
continuation shared by many occurrences is a better bet than a rare one. Nodes carry their frequency as
score, so RASD can rank retrieval branches by drafter probability x frequency.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ragspec.drafting.adaptive import DraftLength
from ragspec.drafting.base import DraftContext
from ragspec.drafting.datastore import TokenDatastore
from ragspec.spec.verifier import VerifyResult
from ragspec.spec.tree import ROOT, TokenTree, TreeBuilder


@dataclass(frozen=True)
class RESTConfig:
    max_span: int = 16
    min_span: int = 2
    max_matches: int = 256  # occurrences read per lookup (REST reads up to 5000 on a GPU server)
    min_len: int = 2
    max_len: int = 8
    max_nodes: int = 16  # tree budget of this source (also capped by the engine's)

    def __post_init__(self) -> None:
        if not 1 <= self.min_span <= self.max_span:
            raise ValueError(f"need 1 <= min_span <= max_span, got {self.min_span}, {self.max_span}")


def frequency_tree(continuations: list[np.ndarray], max_nodes: int, source: str) -> TokenTree:
    """The `max_nodes` most frequent prefixes of the continuations, as a tree (score = frequency share)."""
    counts: dict[tuple[int, ...], int] = {}
    for cont in continuations:
        prefix: tuple[int, ...] = ()
        for tok in cont.tolist():
            prefix = prefix + (int(tok),)
            counts[prefix] = counts.get(prefix, 0) + 1
    total = len(continuations)
    # Best-first from the root: a prefix can only be taken after its parent, so the result is a tree.
    heap = [(-c, 1, p) for p, c in counts.items() if len(p) == 1]  # ties: shallower first
    heapq.heapify(heap)
    builder, nodes = TreeBuilder(max_nodes), {(): ROOT}
    while heap and len(builder) < max_nodes:
        neg, _, prefix = heapq.heappop(heap)
        node = builder.insert([prefix[-1]], source, scores=[-neg / total], parent=nodes[prefix[:-1]])
        if not node:
            break
        nodes[prefix] = node[0]
        for nxt_tok in _children(counts, prefix):
            child = prefix + (nxt_tok,)
            heapq.heappush(heap, (-counts[child], len(child), child))
    return builder.build()


def _children(counts: dict, prefix: tuple[int, ...]) -> list[int]:
    # Small dictionaries (<= max_matches * length entries): a scan is cheaper than an index.
    return [p[-1] for p in counts if len(p) == len(prefix) + 1 and p[:-1] == prefix]


class RESTProposer:
    """Draft trees from a `TokenDatastore`."""

    name = "rest"

    def __init__(self, datastore: TokenDatastore, config: RESTConfig | None = None) -> None:
        self.datastore = datastore
        self.config = config or RESTConfig()
        self.length = DraftLength(self.config.min_len, self.config.max_len)
        self.last_span = 0

    def begin(self, prompt_ids: Sequence[int]) -> None:
        self.length = DraftLength(self.config.min_len, self.config.max_len)

    def propose(self, ctx: DraftContext) -> TokenTree:
        c = self.config
        k = self.length.next(ctx.max_depth)
        if k <= 0:
            return TokenTree.empty()
        context = np.asarray(ctx.tokens[-c.max_span :], dtype=np.int64)
        self.last_span, conts = self.datastore.continuations(context, c.max_span, c.min_span, k, c.max_matches)
        if not conts:
            return TokenTree.empty()
        return frequency_tree(conts, min(c.max_nodes, ctx.max_nodes), self.name)

    def observe(self, ctx: DraftContext, result: VerifyResult) -> None:
        if len(result.tree):
            self.length.observe(len(result.acceptance.accepted))
