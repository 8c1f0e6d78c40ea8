"""RAPID's acceptance: the emitted law of both residual modes by exact enumeration, eta = 0 lossless."""

import pytest
import torch

from enumerate import law
from ragspec.spec.acceptance import sampling_walk
from ragspec.spec.rapid import greedy_logits, p_hat, rapid_rule
from ragspec.spec.tree import TokenTree
from test_acceptance import V, _assert_same_law, _complete, chain_law, drafter, target

ETA, ALPHA = 3.0, 0.1


def _first_token_law(residual: str, eta: float, ctx: tuple = ()) -> dict:
    """Law of the first emitted token when one token x ~ q is drafted and verified with RAPID's rule."""
    rule = rapid_rule(eta, ALPHA, residual)

    def run(rng):
        x = rng.draw(drafter(ctx))
        tree = TokenTree.chain([x], "draft_lm", draft_probs=[drafter(ctx)])
        rows = torch.stack([target(ctx), target(ctx + (x,))])
        acc = sampling_walk(tree, rows, rng, rule)
        return acc.output_tokens(tree)[0]

    return law(run)


def test_p_hat_residual_emits_exactly_p_hat():
    got = _first_token_law("p_hat", ETA)
    want = p_hat(target([]), drafter([]), ETA, ALPHA)
    assert not torch.allclose(want, target([]))  # the transfer really moves the distribution
    for t in range(V):
        assert got.get(t, 0.0) == pytest.approx(float(want[t]), abs=1e-12)


def test_rapid_residual_emits_the_documented_mixture():
    distances = []
    for ctx in [(), (0,), (1,), (2, 3), (3, 1, 0)]:
        got = _first_token_law("rapid", 10.0, ctx)
        p, q = target(ctx), drafter(ctx)
        ph = p_hat(p, q, 10.0, ALPHA)
        accepted = torch.minimum(q, ph)
        rest = torch.clamp(torch.maximum(p - q, p - ph), min=0)
        want = accepted + (1 - accepted.sum()) * rest / rest.sum()
        for t in range(V):
            assert got.get(t, 0.0) == pytest.approx(float(want[t]), abs=1e-12)
        distances.append((float((want - p).abs().sum()), float((want - ph).abs().sum())))
    # ... which in general is neither p nor p_hat (it can coincide with p_hat on some contexts).
    assert any(dp > 1e-3 and dph > 1e-3 for dp, dph in distances)


def test_eta_zero_with_p_hat_is_lossless_over_a_chain():
    rule = rapid_rule(0.0, ALPHA, "p_hat")

    def run(rng):
        x1 = rng.draw(drafter([]))
        x2 = rng.draw(drafter([x1]))
        tree = TokenTree.chain([x1, x2], "draft_lm", draft_probs=[drafter([]), drafter([x1])])
        rows = torch.stack([target([]), target([x1]), target([x1, x2])])
        return _complete(sampling_walk(tree, rows, rng, rule).output_tokens(tree), rng)

    _assert_same_law(law(run), chain_law())


def test_greedy_transform_pulls_the_choice_toward_the_drafter():
    logits = torch.tensor([[2.0, 1.8, -3.0, -3.0], [0.0, 0.0, 0.0, 0.0]])
    q = torch.tensor([0.05, 0.9, 0.03, 0.02])
    tree = TokenTree.chain([1], "draft_lm", draft_probs=[q])
    assert int(greedy_logits(logits, tree, 0.0)[0].argmax()) == 0  # eta 0: the target's own argmax
    assert int(greedy_logits(logits, tree, 5.0)[0].argmax()) == 1  # eta 5: the drafter's token wins
