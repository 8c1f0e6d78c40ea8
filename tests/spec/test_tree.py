"""Token trees: trie insertion, fusion with provenance, budgets, masks, positions, pruning."""

import torch

from ragspec.spec.tree import ROOT, TokenTree, TreeBuilder, attention_mask, input_ids, position_offsets


def _tree():
    b = TreeBuilder()
    b.insert([10, 11, 12], "draft_lm")
    b.insert([10, 11, 13], "pld")  # shares 10, 11: only 13 is new
    b.insert([20, 21], "rest")
    return b.build()


def test_longest_prefix_insertion_and_provenance():
    t = _tree()
    assert t.token_ids == (10, 11, 12, 13, 20, 21)
    assert t.parents == (ROOT, 0, 1, 1, ROOT, 4)
    assert t.depths == (1, 2, 3, 3, 1, 2)
    assert t.sources[0] == {"draft_lm", "pld"} and t.sources[2] == {"draft_lm"} and t.sources[3] == {"pld"}
    assert sorted(t.token_paths()) == [[10, 11, 12], [10, 11, 13], [20, 21]]
    assert t.kids(ROOT) == (0, 4) and t.kids(1) == (2, 3)


def test_mask_and_positions_follow_ancestry():
    t = _tree()
    m = attention_mask(t)
    assert m.shape == (7, 7)
    # Row of node 3 (token 13): root, 10, 11, itself; not its sibling 12 or the other branch.
    assert m[4].tolist() == [True, True, True, False, True, False, False]
    assert m[6].tolist() == [True, False, False, False, False, True, True]
    assert torch.equal(m, m & torch.ones(7, 7, dtype=torch.bool).tril())  # ancestors come first
    assert position_offsets(t).tolist() == [0, 1, 2, 3, 3, 1, 2]
    assert input_ids(99, t).tolist() == [99, 10, 11, 12, 13, 20, 21]


def test_budget_cuts_paths_but_keeps_a_tree():
    b = TreeBuilder(max_nodes=4)
    b.insert([1, 2, 3], "pld")
    nodes = b.insert([1, 5, 6, 7], "rest")
    assert nodes == [0, 3]  # 1 shared, 5 added, then the budget is full
    t = b.build()
    assert len(t) == 4 and t.token_paths() == [[1, 2, 3], [1, 5]]


def test_fusion_merges_a_tree_into_another():
    lm = TreeBuilder()
    lm.insert([7, 8], "draft_lm")
    lm.insert([7, 9], "draft_lm")
    retrieval = TokenTree.chain([7, 8, 4, 4], "rest")
    lm.merge(retrieval)
    t = lm.build()
    assert sorted(t.token_paths()) == [[7, 8, 4, 4], [7, 9]]
    assert t.sources[0] == {"draft_lm", "rest"} and t.sources[t.token_ids.index(4)] == {"rest"}


def test_stochastic_child_is_visited_first_and_unique():
    q = torch.full((30,), 1 / 30)
    b = TreeBuilder()
    b.insert([3], "pld")
    b.insert([5, 6], "draft_lm", draft_probs=[q, q])
    b.insert([4], "draft_lm", draft_probs=[q])  # a second sampled child is kept as deterministic
    t = b.build()
    assert [t.token_ids[c] for c in t.kids(ROOT)] == [5, 3, 4]
    assert t.draft_probs[t.token_ids.index(4)] is None
    assert not t.is_deterministic


def test_subtree_keeps_ancestors_and_metadata():
    t = _tree()
    s = t.subtree([0, 1, 3, 4])
    assert sorted(s.token_paths()) == [[10, 11, 13], [20]]
    assert s.sources[0] == {"draft_lm", "pld"}


def test_empty_tree():
    t = TokenTree.empty()
    assert len(t) == 0 and t.paths() == [] and attention_mask(t).tolist() == [[True]]
