"""Acceptance rules: which drafted tokens the target keeps, as pure functions.

Glossary (the vLLM terms, arXiv 2211.17192):
- *accepted tokens*: drafted tokens the target keeps, a root-to-node path of the draft tree;
- *recovered token*: the token emitted where the walk stopped because every child of the last accepted
  node was rejected, drawn from the residual distribution left after those rejections;
- *bonus token*: the token emitted when the last accepted node has no children, drawn from the target;
- *output tokens* of one step = accepted + one recovered-or-bonus token (so a step always emits >= 1).

Rules, all going through one tree walk (a chain is a tree with one path):
- greedy: accept a child iff its token is the target's argmax at its parent;
- stochastic draft (token x sampled from q): accept with min(1, p(x)/q(x)), else p <- norm(max(0, p - q));
- deterministic draft (retrieval, top-k choice; q = delta_x): accept with p(x), else p <- p without x,
  renormalised (the same formula with q = delta_x);
- recursive rejection over a tree (SpecInfer): try the children of a node in order, each against the
  residual the previous rejections left; descend into the first accepted one.
The emitted law equals the target's for any tree whose candidates were chosen without looking at the
target's randomness (proved by exact enumeration in tests/spec/test_acceptance.py).

RAPID replaces the target p by p_hat and the residual by its own rule: `NodeRule` is that extension point.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol

import torch

from ragspec.spec.tree import ROOT, TokenTree

# A node rule maps (target p [V], draft q [V] or None, drafted token x) to (accept probability, residual [V]).
NodeRule = Callable[[torch.Tensor, "torch.Tensor | None", int], "tuple[float, torch.Tensor]"]
EPS = 1e-12


@dataclass(frozen=True)
class Acceptance:
    """The outcome of one verification step."""

    accepted: tuple[int, ...]  # node indices of the accepted path, root's child first
    next_token: int  # the recovered or bonus token
    bonus: bool  # True: next_token was drawn at a node without children

    def output_tokens(self, tree: TokenTree) -> list[int]:
        return [tree.token_ids[i] for i in self.accepted] + [self.next_token]


class Randomness(Protocol):
    """Where a sampling walk gets its randomness (a seeded generator, or an enumerator in tests)."""

    def accept(self, probability: float) -> bool: ...

    def draw(self, probs: torch.Tensor) -> int: ...


class TorchRandomness:
    """Randomness from a torch.Generator: u ~ U(0, 1) per test, multinomial per draw."""

    def __init__(self, generator: torch.Generator | None) -> None:
        self.generator = generator

    def accept(self, probability: float) -> bool:
        if probability >= 1.0:
            return True
        return float(torch.rand((), generator=self.generator)) < probability

    def draw(self, probs: torch.Tensor) -> int:
        return int(torch.multinomial(probs, 1, generator=self.generator))


def normalise(residual: torch.Tensor, fallback: torch.Tensor) -> torch.Tensor:
    total = float(residual.sum())
    # Zero mass happens only when acceptance was certain up to rounding; any draw is then fine.
    return residual / total if total > EPS else fallback


def standard_rule(p: torch.Tensor, q: torch.Tensor | None, x: int) -> tuple[float, torch.Tensor]:
    """Speculative sampling for one candidate: stochastic when q is given, deterministic otherwise."""
    px = float(p[x])
    if q is None:
        residual = p.clone()
        residual[x] = 0.0
        return px, normalise(residual, p)
    qx = float(q[x])
    accept = 1.0 if px >= qx else px / qx
    return accept, normalise(torch.clamp(p - q, min=0.0), p)


def greedy_walk(tree: TokenTree, target_logits: torch.Tensor) -> Acceptance:
    """Greedy verification. target_logits: [N+1, V] for [root, nodes...]."""
    argmax = target_logits.argmax(-1).tolist()  # one pass over the vocabulary for all nodes
    node, path = ROOT, []
    while True:
        want = argmax[node + 1]
        kids = tree.kids(node)
        match = next((c for c in kids if tree.token_ids[c] == want), None)
        if match is None:
            return Acceptance(tuple(path), want, bonus=not kids)
        path.append(match)
        node = match


def sampling_walk(tree: TokenTree, target_probs: torch.Tensor, rng: Randomness,
                  rule: NodeRule = standard_rule) -> Acceptance:
    """Recursive rejection over the tree. target_probs: [N+1, V], already transformed by the sampling params."""
    node, path = ROOT, []
    while True:
        p = target_probs[node + 1]
        kids = tree.kids(node)
        chosen = None
        for child in kids:
            accept, residual = rule(p, tree.draft_probs[child], tree.token_ids[child])
            if rng.accept(accept):
                chosen = child
                break
            p = residual
        if chosen is None:
            return Acceptance(tuple(path), rng.draw(p), bonus=not kids)
        path.append(chosen)
        node = chosen
