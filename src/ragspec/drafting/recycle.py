"""Token recycling: draft from the target's own earlier predictions (after arXiv 2408.08696).

Every verification forward computes the target's distribution at each verified token anyway. Keeping,
for each token id, the top-k tokens the target predicted after it the last time it was seen gives a
successor table that is cheap to update (one top-k over the verified rows) and to read. Drafting is a
best-first expansion of that table from the pending root: a child of rank r is worth the learned
acceptance rate of rank-r children, and the most valuable nodes fill the budget. The table starts with
the prompt's bigrams (the token that followed each token in the prompt), so drafts exist from step one,
and it persists across requests of the same model, which is where "recycling" pays most.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from ragspec.drafting.base import DraftContext
from ragspec.spec.tree import ROOT, TokenTree, TreeBuilder
from ragspec.spec.verifier import VerifyResult


@dataclass(frozen=True)
class RecycleConfig:
    k: int = 4  # successors kept per token
    max_nodes: int = 8  # tree budget of this source
    max_depth: int = 6
    min_value: float = 0.05  # do not draft nodes whose estimated acceptance is below this

    def __post_init__(self) -> None:
        if self.k < 1 or self.max_nodes < 1 or self.max_depth < 1:
            raise ValueError("k, max_nodes and max_depth must be >= 1")


class RecycleProposer:
    name = "recycle"
    reads_target_logits = True  # its table keeps the target's top-k successors of each verified token

    def __init__(self, vocab_size: int, config: RecycleConfig | None = None) -> None:
        self.config = config or RecycleConfig()
        self.table = np.full((vocab_size, self.config.k), -1, dtype=np.int64)
        # Acceptance rate of a child by its rank among its parent's successors (a prior, then learned).
        self.rank_hits = np.array([0.5 / (r + 1) for r in range(self.config.k)]) * 4
        self.rank_tries = np.full(self.config.k, 4.0)

    def begin(self, prompt_ids: Sequence[int]) -> None:
        ids = np.asarray(prompt_ids, dtype=np.int64)
        if ids.size > 1:  # seed empty rows with the prompt's bigrams (later occurrences win)
            prev, nxt = ids[:-1], ids[1:]
            empty = self.table[prev, 0] < 0
            self.table[prev[empty], 0] = nxt[empty]

    def propose(self, ctx: DraftContext) -> TokenTree:
        c = self.config
        rate = self.rank_hits / self.rank_tries
        builder = TreeBuilder(min(c.max_nodes, ctx.max_nodes))
        heap: list[tuple[float, int, int, int]] = []  # (-value, depth, token, parent node)
        self._push(heap, int(ctx.tokens[-1]), ROOT, 1.0, 1, rate)
        while heap and len(builder) < builder.max_nodes:
            neg, depth, token, parent = heapq.heappop(heap)
            if -neg < c.min_value or depth > min(c.max_depth, ctx.max_depth):
                continue
            node = builder.insert([token], self.name, scores=[-neg], parent=parent)
            if node:
                self._push(heap, token, node[0], -neg, depth + 1, rate)
        return builder.build()

    def _push(self, heap, token: int, node: int, value: float, depth: int, rate: np.ndarray) -> None:
        for r, nxt in enumerate(self.table[token].tolist()):
            if nxt >= 0:
                heapq.heappush(heap, (-value * rate[r], depth, nxt, node))

    def observe(self, ctx: DraftContext, result: VerifyResult) -> None:
        # 1. Learn per-rank acceptance: at the root and at each accepted node, every offered rank was tried
        #    and the rank of the token the target took next (if offered) was a hit.
        tokens = [int(ctx.tokens[-1])] + [result.tree.token_ids[n] for n in result.acceptance.accepted]
        taken = tokens[1:] + [result.acceptance.next_token]
        for parent_tok, next_tok in zip(tokens, taken):
            row = self.table[parent_tok]
            self.rank_tries += row >= 0
            hit = np.flatnonzero(row == next_tok)
            if hit.size:
                self.rank_hits[hit[0]] += 1
        # 2. Refresh the table with the target's top-k after every verified token.
        top = torch.topk(result.logits, self.config.k, dim=-1).indices.numpy()
        self.table[result.input_ids.numpy()] = top
