"""RAPID's retrieval-augmented target distribution and acceptance rule (arXiv 2502.20330, official code).

At each drafted position the target's distribution p is nudged toward the RAG drafter's q:

    p_hat = softmax(z + eta * m * (q - p)),   m = [q >= alpha * max q]

(z the target's processed logits; one gradient step on KL(q || p) w.r.t. z, only on tokens the drafter
finds plausible). A drafted token x ~ q is accepted with min(1, p_hat(x) / q(x)). On rejection the token
comes from a residual:
- "rapid": norm(max(p - q, p - p_hat, 0)), the official code's rule. Its output law is
  min(q, p_hat) + (1 - sum min(q, p_hat)) * residual, which is neither p nor p_hat
  (docs/design.md has the derivation and tests/spec/test_rapid.py checks it by exact enumeration);
- "p_hat" (ragspec's default): norm(max(p_hat - q, 0)), standard speculative sampling against p_hat,
  so the output is distributed exactly as p_hat, and eta = 0 is exactly lossless.
The bonus token (no drafted child) comes from the original p, as in the official code.

In greedy mode the target's choice at a drafted position is argmax(p_hat) computed at temperature 1:
`greedy_logits` applies the same nudge to the logits rows before the ordinary greedy walk.
"""

from __future__ import annotations

import torch

from ragspec.spec.acceptance import NodeRule, normalise, standard_rule
from ragspec.spec.tree import ROOT, TokenTree

RESIDUALS = ("rapid", "p_hat")


def nudge(z: torch.Tensor, p: torch.Tensor, q: torch.Tensor, eta: float, alpha: float) -> torch.Tensor:
    """z + eta * m * (q - p), m = [q >= alpha max q]: the logits [V] of p_hat, up to a constant."""
    mask = (q >= alpha * q.max()).to(p.dtype)
    return z + eta * mask * (q - p)


def p_hat(p: torch.Tensor, q: torch.Tensor, eta: float, alpha: float) -> torch.Tensor:
    """The retrieval-augmented target distribution [V] from the target p [V] and drafter q [V]."""
    if eta == 0:
        return p
    # log p + const = z; tokens with p = 0 (filtered by top-k/top-p) stay at 0.
    return torch.softmax(nudge(torch.log(p), p, q, eta, alpha), dim=-1)


def rapid_rule(eta: float, alpha: float = 0.1, residual: str = "p_hat") -> NodeRule:
    """A node rule for `ragspec.spec.acceptance.sampling_walk` implementing RAPID's acceptance."""
    if residual not in RESIDUALS:
        raise ValueError(f"unknown residual {residual!r}; choose from {', '.join(RESIDUALS)}")

    def rule(p: torch.Tensor, q: torch.Tensor | None, x: int) -> tuple[float, torch.Tensor]:
        if q is None:  # a deterministic node: RAPID needs the drafter's q, so no transfer there
            return standard_rule(p, None, x)
        ph = p_hat(p, q, eta, alpha)
        accept = min(1.0, float(ph[x]) / max(float(q[x]), 1e-30))
        if residual == "rapid":
            rest = torch.clamp(torch.maximum(p - q, p - ph), min=0.0)
            return accept, normalise(rest, p)
        return accept, normalise(torch.clamp(ph - q, min=0.0), ph)

    return rule


def greedy_logits(logits: torch.Tensor, tree: TokenTree, eta: float, alpha: float = 0.1) -> torch.Tensor:
    """Logits [N+1, V] of [root, nodes...] nudged toward the drafter wherever a node has a drafted child
    carrying q; the greedy walk over them picks argmax(p_hat). eta = 0 returns the logits unchanged."""
    if eta == 0:
        return logits
    out = logits.clone()
    for node in (ROOT, *range(len(tree))):
        kids = tree.kids(node)
        q = tree.draft_probs[kids[0]] if kids else None
        if q is None:
            continue
        row = logits[node + 1].float()
        out[node + 1] = nudge(row, torch.softmax(row, -1), q, eta, alpha)
    return out
