"""PLD and REST proposers: pure lookups on small hand-built token arrays."""

import numpy as np
import pytest

from ragspec.decoding.sampling import SamplingParams
from ragspec.drafting.base import DraftContext
from ragspec.drafting.datastore import DatastoreUnion, TokenDatastore, suffix_array
from ragspec.drafting.pld import PLDProposer, find_continuations
from ragspec.drafting.rest import RESTConfig, RESTProposer, frequency_tree


def _ctx(tokens, max_nodes=16, max_depth=8):
    return DraftContext(tokens, len(tokens), max_nodes, max_depth, SamplingParams())


def test_pld_longest_ngram_most_recent_first():
    t = np.array([1, 2, 3, 9, 1, 2, 3, 7, 1, 2, 3])
    assert [c.tolist() for c in find_continuations(t, 1, 3, 2, 4)] == [[7, 1], [9, 1]]
    # Only a 1-gram recurs: falls back to it.
    t = np.array([5, 6, 8, 5])
    assert [c.tolist() for c in find_continuations(t, 1, 3, 3, 4)] == [[6, 8, 5]]
    # Nothing recurs.
    assert find_continuations(np.array([1, 2, 3, 4]), 1, 3, 3, 4) == []
    # min_ngram 2 refuses a 1-gram match.
    assert find_continuations(np.array([5, 6, 8, 5]), 2, 3, 3, 4) == []


def test_pld_proposer_returns_a_tree_of_matches():
    tree = PLDProposer().propose(_ctx([1, 2, 3, 9, 1, 2, 3, 7, 1, 2, 3]))
    # Draft length starts at 6 (expected 4 accepted + 2 slack); the newest match's continuation is shorter.
    assert sorted(tree.token_paths()) == [[7, 1, 2, 3], [9, 1, 2, 3, 7, 1]]
    assert all(s == {"pld"} for s in tree.sources)


def _naive_sa(tokens, depth):
    key = lambda i: [int(x) for x in tokens[i : i + depth]] + [-2] * max(0, i + depth - len(tokens))
    return sorted(range(len(tokens)), key=lambda i: (key(i), i))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_suffix_array_matches_a_naive_sort(seed):
    rng = np.random.default_rng(seed)
    tokens = rng.integers(-1, 4, size=300).astype(np.int32)  # tiny alphabet: many long repeats
    for depth in (1, 4, 16):  # prefix doubling sorts to a power-of-two depth
        assert suffix_array(tokens, depth).tolist() == _naive_sa(tokens, depth)


def test_datastore_find_and_continuations(tmp_path):
    docs = [[5, 6, 7, 8, 9], [1, 5, 6, 7, 3, 3], [5, 6, 2]]
    ds = TokenDatastore.build(docs)
    lo, hi = ds.find(np.array([5, 6]))
    assert hi - lo == 3
    span, conts = ds.continuations(np.array([0, 5, 6, 7]), length=3)
    assert span == 3 and sorted(c.tolist() for c in conts) == [[3, 3], [8, 9]]  # stops at document ends
    ds.save(tmp_path / "ds", {"tokenizer": "x"})
    again = TokenDatastore.load(tmp_path / "ds")
    assert again.continuations(np.array([0, 5, 6, 7]), length=3)[0] == 3
    assert ds.continuations(np.array([4, 4]))[1] == []


@pytest.mark.parametrize("seed", [0, 1])
def test_datastore_find_counts_every_occurrence(seed):
    """find's range holds exactly the positions where the pattern occurs (brute force), for patterns of
    1 to 6 tokens, including ones running into a document boundary or the corpus end."""
    rng = np.random.default_rng(seed)
    docs = [rng.integers(0, 5, size=int(rng.integers(1, 60))).tolist() for _ in range(12)]
    ds = TokenDatastore.build(docs)
    tokens = np.asarray(ds.tokens)
    for _ in range(300):
        pattern = rng.integers(0, 6, size=int(rng.integers(1, 7)))  # 5 never occurs
        want = sorted(i for i in range(len(tokens) - len(pattern) + 1)
                      if (tokens[i : i + len(pattern)] == pattern).all())
        lo, hi = ds.find(pattern)
        assert sorted(np.asarray(ds.sa[lo:hi]).tolist()) == want, pattern


def test_datastore_union_takes_the_longest_match_and_pools_equal_ones():
    store = TokenDatastore.build([[5, 6, 7, 8, 9]])
    named = TokenDatastore.build([[4, 5, 6, 7, 3], [6, 7, 1]])
    union = DatastoreUnion([store, named])
    assert len(union) == len(store) + len(named)
    span, conts = union.continuations(np.array([4, 5, 6, 7]), length=2)
    assert span == 4 and [c.tolist() for c in conts] == [[3]]  # only the named corpus matches 4 tokens
    span, conts = union.continuations(np.array([0, 5, 6, 7]), length=2)
    assert span == 3 and sorted(c.tolist() for c in conts) == [[3], [8, 9]]  # both match 3: pooled
    assert union.continuations(np.array([0, 6, 7]), length=2, max_matches=2)[1][0].tolist() == [8, 9]
    assert len(union.continuations(np.array([0, 6, 7]), length=2, max_matches=2)[1]) == 2
    assert union.continuations(np.array([2, 2]))[1] == []
    with pytest.raises(ValueError, match="at least one"):
        DatastoreUnion([])


def test_frequency_tree_keeps_the_most_supported_prefixes():
    conts = [np.array(c) for c in ([1, 2, 3], [1, 2, 4], [1, 2, 3], [7, 8], [1, 5])]
    tree = frequency_tree(conts, 4, "rest")
    assert sorted(tree.token_paths()) == [[1, 2, 3], [7]]  # counts 1:4, 12:3, 123:2; ties at 1 go to the shallowest
    assert tree.scores[0] == pytest.approx(0.8)


def test_rest_proposer_drafts_from_the_datastore():
    ds = TokenDatastore.build([[10, 11, 12, 13, 14, 15], [10, 11, 12, 13, 20]])
    prop = RESTProposer(ds, RESTConfig(max_len=4))
    tree = prop.propose(_ctx([99, 11, 12]))
    assert sorted(tree.token_paths()) == [[13, 14, 15], [13, 20]]
    assert tree.scores[0] == 1.0  # both occurrences continue with 13
    assert prop.last_span == 2
