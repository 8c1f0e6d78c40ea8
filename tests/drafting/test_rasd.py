"""RASD: pruning rules, fusion with provenance, calibration from every candidate, lossless in the engine."""

import numpy as np
import pytest
import torch

from ragspec.decoding.sampling import SamplingParams
from ragspec.drafting.base import DraftContext
from ragspec.drafting.datastore import TokenDatastore
from ragspec.drafting.draft_lm import DraftLMConfig, DraftLMProposer
from ragspec.drafting.rasd import RASDConfig, RASDProposer
from ragspec.drafting.registry import make_proposer, rasd_config
from ragspec.engine import Engine, EngineConfig
from ragspec.spec.acceptance import Acceptance
from ragspec.spec.tree import TokenTree
from ragspec.spec.verifier import VerifyResult
from tiny import tiny_lm

PROMPT = [5, 9, 17, 3, 44, 8, 5, 9, 17, 3, 44, 8, 5, 9]


class FixedProposer:
    """A retrieval stand-in that always offers the same paths."""

    def __init__(self, name, paths):
        self.name, self.paths = name, paths

    def begin(self, prompt_ids):
        pass

    def propose(self, ctx):
        tree = TokenTree.empty()
        from ragspec.spec.tree import TreeBuilder

        b = TreeBuilder()
        for p in self.paths:
            b.insert(p, self.name)
        return b.build()

    def observe(self, ctx, result):
        self.seen = result


class PeakedDrafter(DraftLMProposer):
    """A drafter whose root distribution is fixed: token 7 has q=0.6, token 11 q=0.3, token 2 q=0.1."""

    def __init__(self):
        self.config, self.chain, self.chain_fed = DraftLMConfig(), [], 0

    def begin(self, prompt_ids):
        pass

    def catch_up(self, ctx):
        logits = torch.full((32,), -30.0)
        logits[7], logits[11], logits[2] = np.log(0.6), np.log(0.3), np.log(0.1)
        return logits

    def draft(self, ctx, logits):
        return TokenTree.chain([7, 1], "draft_lm")

    def observe(self, ctx, result):
        pass


def _ctx():
    return DraftContext(PROMPT, len(PROMPT), 32, 8, SamplingParams(), min_node_value=0.05)


@pytest.mark.parametrize("rule,expected_firsts", [
    ("none", {7, 11, 2, 20}),
    ("topk", {7, 11}),  # k=2
    ("threshold", {7, 11}),  # q >= 0.2
])
def test_fixed_pruning_rules_keep_branches_by_drafter_probability(rule, expected_firsts):
    retrieval = FixedProposer("pld", [[7, 1, 4], [11, 5], [2, 6], [20, 21]])
    rasd = RASDProposer(PeakedDrafter(), [retrieval], RASDConfig(prune=rule, top_k=2, threshold=0.2, overlap=False))
    tree = rasd.propose(_ctx())
    firsts = {tree.token_ids[c] for c in tree.kids(-1)}
    assert firsts == expected_firsts
    # Fusion: [7, 1] from the drafter and [7, 1, 4] from retrieval share a branch tagged with both sources.
    node7 = next(c for c in tree.kids(-1) if tree.token_ids[c] == 7)
    assert tree.sources[node7] == {"draft_lm", "pld"}


def test_auto_pruning_learns_from_pruned_candidates_too():
    retrieval = FixedProposer("rest", [[7, 1, 4], [20, 21]])
    rasd = RASDProposer(PeakedDrafter(), [retrieval], RASDConfig(prune="auto", overlap=False))
    ctx = _ctx()
    for _ in range(30):  # the target always writes 20, 21: a branch with q1(20) ~ 0 that keeps winning
        tree = rasd.propose(ctx)
        acc = Acceptance((), 20, False)
        rasd.observe(ctx, VerifyResult(tree, acc, torch.tensor([9]), torch.zeros(1, 32)))
    # The calibration for q1 ~ 0 rose from its 0.5% prior, so the branch now passes the break-even value.
    tree = rasd.propose(ctx)
    assert 20 in {tree.token_ids[c] for c in tree.kids(-1)}


def test_registry_parses_rasd_options():
    cfg = rasd_config("rasd:prune=topk,k=3,overlap=0,nodes=6")
    assert (cfg.prune, cfg.top_k, cfg.overlap, cfg.max_retrieval_nodes) == ("topk", 3, False, 6)
    with pytest.raises(ValueError, match="bad rasd option"):
        rasd_config("rasd:depth=3")
    with pytest.raises(ValueError, match="prune rule"):
        rasd_config("rasd:prune=magic")


@pytest.mark.parametrize("name", ["rasd", "rasd:prune=none", "rasd:prune=topk,k=2", "rasd:overlap=0"])
def test_rasd_is_lossless_in_the_engine(name):
    target, drafter = tiny_lm("llama"), tiny_lm("llama", seed=7)
    ds = TokenDatastore.build([PROMPT[2:] + [1, 2, 3], list(range(10, 40))])
    plain = Engine(target).generate(PROMPT, 40).token_ids
    for sampling in (None,):
        gen = Engine(target, make_proposer(name, drafter=drafter, datastore=ds), EngineConfig(gate=False)).generate(PROMPT, 40)
        assert gen.token_ids == plain
        assert gen.stats.num_accepted_tokens > 0
        assert set(gen.stats.by_source) <= {"draft_lm", "pld", "rest"}


def test_rasd_without_a_drafter_uses_retrieval_alone():
    target = tiny_lm("llama")
    plain = Engine(target).generate(PROMPT, 30).token_ids
    gen = Engine(target, make_proposer("rasd", drafter=None), EngineConfig(gate=False)).generate(PROMPT, 30)
    assert gen.token_ids == plain
