"""Every acceptance rule emits exactly the target's law: exact enumeration on a 4-token vocabulary."""

import itertools

import pytest
import torch

from enumerate import law
from ragspec.spec.acceptance import greedy_walk, sampling_walk
from ragspec.spec.tree import TokenTree, TreeBuilder

V = 4
L = 3  # compare the law of the first L emitted tokens


def _dist(prefix: tuple, salt: int) -> torch.Tensor:
    """A fixed, prefix-dependent distribution over V tokens (some zeros, to exercise the edge cases)."""
    g = torch.Generator().manual_seed(hash((prefix, salt)) % (2**31))
    w = torch.rand(V, generator=g, dtype=torch.float64) ** 2
    if (len(prefix) + salt) % 3 == 0:
        w[int(torch.randint(V, (), generator=g))] = 0.0
    return w / w.sum()


def target(prefix):
    return _dist(tuple(prefix), 0)


def drafter(prefix):
    return _dist(tuple(prefix), 1)


def chain_law():
    out = {}
    for seq in itertools.product(range(V), repeat=L):
        p = 1.0
        for i in range(L):
            p *= float(target(seq[:i])[seq[i]])
        if p > 0:
            out[seq] = p
    return out


def _complete(prefix, rng):
    """Finish the sequence to L tokens with plain target sampling."""
    seq = list(prefix)
    while len(seq) < L:
        seq.append(rng.draw(target(seq)))
    return tuple(seq[:L])


def _verify(tree, rng):
    rows = [target([])] + [target([tree.token_ids[j] for j in tree.path_to(i)]) for i in range(len(tree))]
    acc = sampling_walk(tree, torch.stack(rows), rng)
    return _complete(acc.output_tokens(tree), rng)


def _assert_same_law(got, want):
    assert set(got) == set(want)
    for k in want:
        assert got[k] == pytest.approx(want[k], abs=1e-12), k


def test_stochastic_chain_emits_target_law():
    """Standard speculative sampling: x1 ~ q, x2 ~ q(.|x1), accept min(1, p/q), residual max(0, p - q)."""
    def run(rng):
        x1 = rng.draw(drafter([]))
        x2 = rng.draw(drafter([x1]))
        tree = TokenTree.chain([x1, x2], "draft_lm", draft_probs=[drafter([]), drafter([x1])])
        return _verify(tree, rng)

    _assert_same_law(law(run), chain_law())


@pytest.mark.parametrize("tokens", [[3, 2], [1, 1, 3], [0, 2]])
def test_deterministic_chain_emits_target_law(tokens):
    """Retrieval drafts: accept with p(x), recover from p without x."""
    # Not vacuous: every drafted token has mass, so both accept and reject branches run.
    assert all(0 < float(target(tokens[:i])[t]) < 1 for i, t in enumerate(tokens))
    _assert_same_law(law(lambda rng: _verify(TokenTree.chain(tokens, "pld"), rng)), chain_law())


def test_tree_recursive_rejection_emits_target_law():
    """A fused tree: a sampled drafter chain plus deterministic retrieval branches sharing prefixes."""
    def run(rng):
        x1 = rng.draw(drafter([]))
        x2 = rng.draw(drafter([x1]))
        b = TreeBuilder()
        b.insert([x1, x2], "draft_lm", draft_probs=[drafter([]), drafter([x1])])
        b.insert([2, 1], "pld")  # may share its first token with the sampled chain
        b.insert([0, 3], "rest")
        b.insert([0, 2], "rest")
        b.insert([3], "pld")
        return _verify(b.build(), rng)

    _assert_same_law(law(run), chain_law())


def test_top_k_tree_with_deterministic_children_emits_target_law():
    def run(rng):
        b = TreeBuilder()
        for path in ([0, 1], [0, 2], [1, 3], [2, 2], [3, 0]):
            b.insert(path, "draft_lm")
        return _verify(b.build(), rng)

    _assert_same_law(law(run), chain_law())


def test_greedy_walk_follows_argmax_and_stops_at_first_mismatch():
    def logits_for(ids):
        out = torch.full((V,), -5.0)
        out[(sum(ids) + 1) % V] = 5.0  # the target always wants (sum + 1) mod V
        return out

    b = TreeBuilder()
    b.insert([1, 3, 0], "pld")  # root wants 1; then 1+1=2 != 3: stops after one token
    b.insert([1, 2, 2], "rest")  # 1 then 2 (sum 1 -> 2), then wants (3+1)%4=0 != 2
    tree = b.build()
    rows = [logits_for([])] + [logits_for([tree.token_ids[j] for j in tree.path_to(i)]) for i in range(len(tree))]
    acc = greedy_walk(tree, torch.stack(rows))
    assert acc.output_tokens(tree) == [1, 2, 0]
    assert not acc.bonus
    # Whole chain accepted: the next token is a bonus.
    chain = TokenTree.chain([1, 2, 0], "pld")
    rows = [logits_for([])] + [logits_for([1, 2, 0][: i + 1]) for i in range(3)]
    acc = greedy_walk(chain, torch.stack(rows))
    assert acc.output_tokens(chain) == [1, 2, 0, 0] and acc.bonus
    # Empty tree: plain greedy decoding.
    assert greedy_walk(TokenTree.empty(), logits_for([])[None]).output_tokens(TokenTree.empty()) == [1]
