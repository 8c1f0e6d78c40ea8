"""The proposer interface: propose a draft tree, then observe what the target accepted.

Every proposer takes the same `DraftContext`, so the engine never needs to know which one it drives.
A proposer with nothing to offer returns `TokenTree.empty()` (never None); the step is then a plain
decoding step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence

import torch

from ragspec.decoding.sampling import SamplingParams
from ragspec.spec.tree import TokenTree
from ragspec.spec.verifier import VerifyResult


@dataclass(frozen=True)
class DraftContext:
    """What a proposer may look at for one step."""

    tokens: Sequence[int]  # prompt + generated so far; the last one is the pending root (read-only)
    num_prompt_tokens: int
    max_nodes: int  # node budget of the tree
    max_depth: int  # no path longer than this (the engine caps it by the tokens left to generate)
    sampling: SamplingParams
    generator: torch.Generator | None = None
    # The acceptance probability at which one more verified node pays for itself (its measured cost over
    # a plain step's time); proposers that can estimate acceptance may prune below it.
    min_node_value: float = 0.05
    # The measured time of a plain target step in seconds (0 = not measured yet): what a proposer's own
    # work per step (a drafter's forwards) is weighed against.
    step_s: float = 0.0


class Proposer(Protocol):
    name: str

    def begin(self, prompt_ids: Sequence[int]) -> None:
        """Start a new sequence (reset per-sequence state, prefill a drafter)."""
        ...

    def propose(self, ctx: DraftContext) -> TokenTree: ...

    def observe(self, ctx: DraftContext, result: VerifyResult) -> None:
        """Feedback after verification (result.tree is the tree that was verified, which may be a fusion of
        several proposers' trees); ctx.tokens does not include the step's output yet."""
        ...


def reads_target_logits(proposer: Proposer | None) -> bool:
    """True when the proposer learns from the target's whole logits rows in `observe` (token recycling's
    top-k), not just from what was accepted; then greedy verification must compute them in full."""
    return bool(getattr(proposer, "reads_target_logits", False))
