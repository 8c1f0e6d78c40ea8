"""RASD: pruning rules, fusion with provenance, calibration from every candidate, lossless in the engine."""

import numpy as np
import pytest
import torch

from ragspec.decoding.sampling import SamplingParams
from ragspec.drafting.base import DraftContext
from ragspec.drafting.datastore import TokenDatastore
from ragspec.drafting.draft_lm import DraftLMConfig, DraftLMProposer
from ragspec.drafting.rasd import ChainStats, RASDConfig, RASDProposer, calibration_bin
from ragspec.drafting.registry import SpecOptions, draft_config, make_proposer, parse, rasd_config
from ragspec.engine import Engine, EngineConfig
from ragspec.spec.acceptance import Acceptance
from ragspec.spec.tree import TokenTree
from ragspec.spec.verifier import VerifyResult
from tiny import successor_lm, tiny_lm

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
        self.config, self.chain, self.chain_fed, self.capped = DraftLMConfig(), [], 0, False

    def begin(self, prompt_ids):
        pass

    def catch_up(self, ctx):
        logits = torch.full((32,), -30.0)
        logits[7], logits[11], logits[2] = np.log(0.6), np.log(0.3), np.log(0.1)
        return logits

    def draft(self, ctx, logits, max_len=None):
        self.capped = max_len == 1
        return TokenTree.chain([7, 1][: max_len or 2], "draft_lm")

    def idle(self):
        self.capped = True

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


def test_registry_passes_drafter_options_to_draft_and_rasd():
    drafter = successor_lm(swap=(84, 62))
    draft = make_proposer("draft:k=2,len=3,adaptive=0,conf=0.2", drafter=drafter)
    assert (draft.config.top_k, draft.config.max_len, draft.config.adaptive, draft.config.confidence) == (2, 3, False, 0.2)
    assert parse("draft:k=2") == ("draft",)
    rasd = make_proposer("rasd:tree=3,len=4,prune=topk,k=2", drafter=drafter)
    assert (rasd.drafter.config.top_k, rasd.drafter.config.max_len) == (3, 4)
    assert (rasd.config.prune, rasd.config.top_k) == ("topk", 2)  # RASD's own k is the pruning's
    assert draft_config("rasd") == draft_config("draft") == DraftLMConfig()
    with pytest.raises(ValueError, match="bad draft option"):
        parse("draft:tree=2")
    with pytest.raises(ValueError, match="min_len <= max_len"):
        make_proposer("draft:min=5,len=3", drafter=drafter)
    with pytest.raises(ValueError, match="bad rasd option"):
        rasd_config("rasd:conf=0.3")


def test_drafter_siblings_are_verified_and_stay_lossless():
    """draft:k=3 adds the drafter's second and third choices at every depth: 3 x 3 nodes per draft."""
    target, drafter = successor_lm(), successor_lm(swap=(84, 62))
    plain = Engine(target).generate(PROMPT, 40).token_ids
    proposer = make_proposer("draft:k=3,len=3,adaptive=0", drafter=drafter)
    proposer.begin(PROMPT)
    tree = proposer.propose(DraftContext(PROMPT, len(PROMPT), 32, 8, SamplingParams()))
    assert len(tree) == 9 and len(tree.kids(-1)) == 3 and tree.max_depth == 3
    gen = Engine(target, make_proposer("draft:k=3,len=3,adaptive=0", drafter=drafter), EngineConfig(gate=False)).generate(PROMPT, 40)
    assert gen.token_ids == plain
    assert gen.stats.num_draft_tokens > 3 * gen.stats.num_drafts  # siblings were verified, not only chains


@pytest.mark.parametrize("name", ["rasd", "rasd:prune=none", "rasd:prune=topk,k=2", "rasd:overlap=0", "rasd:tree=2"])
def test_rasd_is_lossless_in_the_engine(name):
    target, drafter = successor_lm(), successor_lm(swap=(84, 62))
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


def test_chain_is_skipped_only_when_retrieval_covers_the_step():
    """Expected chain gain (1 - r1) x chain_gain x step_s against the chain's time: with a strong
    retrieval candidate (r1 high) the chain is skipped and only the drafter's first token stays."""
    ctx = DraftContext(PROMPT, len(PROMPT), 32, 8, SamplingParams(), min_node_value=0.05, step_s=0.1)
    strong = FixedProposer("pld", [[7, 1, 4, 9]])
    rasd = RASDProposer(PeakedDrafter(), [strong], RASDConfig(overlap=False))
    rasd.propose(ctx)  # no chain time measured yet: never skip
    assert not rasd.drafter.capped
    rasd.chain_s, rasd.chain_gain = 0.05, 3.0  # (the stub drafts in no time; set the EMAs by hand)
    rasd.propose(ctx)  # r1 from the prior for q1 = 0.6 (0.6): (1 - 0.6) x 3 x 0.1 = 0.12 > 0.05
    assert not rasd.drafter.capped
    for _ in range(40):  # the target keeps following the retrieval branch: r1 for (pld, q1 = 0.6) -> ~1
        rasd.calibration.learn("pld", calibration_bin(0.6, 0), 4, 4)
    r1 = rasd.calibration.value("pld", calibration_bin(0.6, 0), 1)
    assert (1 - r1) * 3.0 * 0.1 < 0.05
    rasd.chain_s, rasd.chain_gain = 0.05, 3.0
    tree = rasd.propose(ctx)
    assert rasd.drafter.capped and rasd.timing["chain_skips"] == 1
    assert [tree.token_ids[i] for i in tree.paths()[0]] == [7, 1, 4, 9]  # the drafter's [7] fused with it
    # Without retrieval candidates the chain pays (3 tokens x 0.1 s > 0.05 s) and is drafted in full.
    rasd.retrieval = [FixedProposer("pld", [])]
    rasd.chain_s, rasd.chain_gain = 0.05, 3.0
    rasd.propose(ctx)
    assert not rasd.drafter.capped
    # skip=0 always drafts the chain.
    off = RASDProposer(PeakedDrafter(), [strong], RASDConfig(overlap=False, skip=False))
    off.chain_s, off.chain_gain = 0.05, 3.0
    off.calibration = rasd.calibration
    off.propose(ctx)
    assert not off.drafter.capped


def test_skipped_chains_are_probed_at_doubling_intervals_while_the_probes_confirm_them():
    """A skipped chain teaches nothing about chain gains, so a low gain estimate could freeze and skip
    every chain after it: a full chain is drafted after 4 skips in a row, then after 8, 16, 32 while the
    skips hold, and after 4 again once a probe's gain makes the chain pay."""
    ctx = DraftContext(PROMPT, len(PROMPT), 32, 8, SamplingParams(), min_node_value=0.05, step_s=0.1)
    rasd = RASDProposer(PeakedDrafter(), [FixedProposer("pld", [[7, 1, 4, 9]])], RASDConfig(overlap=False))
    rasd.chain_s, rasd.chain_gain = 0.05, 0.3  # a gain dragged down by rejected chains: 0.3 x 0.1 < 0.05
    full = []
    for step in range(80):
        rasd.propose(ctx)
        if not rasd.drafter.capped:
            full.append(step)
    assert full == [4, 13, 30, 63]  # after 4, 8, 16 and 32 skips
    rasd.chain_gain = 3.0  # the last probe found chains pay again: no skip, and the interval starts over
    rasd.propose(ctx)
    assert not rasd.drafter.capped and rasd.probe_after == 4
    rasd.chain_gain = 0.3
    caps = []
    for _ in range(5):
        rasd.propose(ctx)
        caps.append(rasd.drafter.capped)
    assert caps == [True] * 4 + [False]


class ConfidentDrafter(PeakedDrafter):
    """PeakedDrafter, but sure of its first token: q(7) = 0.95."""

    def catch_up(self, ctx):
        logits = torch.full((32,), -30.0)
        logits[7], logits[11] = np.log(0.95), np.log(0.05)
        return logits


def test_chain_time_and_gain_are_judged_at_the_drafter_s_confidence():
    """A hesitant drafter's chains gain little and a confident one's much: the skip rule uses the chain
    time and gain measured at this step's confidence bin, and all chains' averages where none is measured."""
    ctx = DraftContext(PROMPT, len(PROMPT), 32, 8, SamplingParams(), min_node_value=0.05, step_s=0.1)
    pld = FixedProposer("pld", [[7, 1, 4, 9]])
    by_conf = {1: (0.05, 0.5), 3: (0.05, 3.0)}  # q 0.4-0.7: 0.5 tokens a chain; q >= 0.9: 3 tokens
    hesitant, confident = (RASDProposer(d, [pld], RASDConfig(overlap=False))
                           for d in (PeakedDrafter(), ConfidentDrafter()))
    for rasd in (hesitant, confident):  # r1 = 0.6 (prior for q1 >= 0.4) for both: (1 - 0.6) x gain x 0.1
        rasd.chain_s, rasd.chain_gain, rasd.chain_by_conf = 0.05, 3.0, {k: ChainStats(*v) for k, v in by_conf.items()}
        rasd.propose(ctx)
    assert hesitant.drafter.capped and not confident.drafter.capped  # 0.02 < 0.05 < 0.12
    hesitant.chain_by_conf = {3: ChainStats(0.05, 3.0)}  # nothing measured at q 0.4-0.7: all chains' 3.0 tokens
    hesitant.propose(ctx)
    assert not hesitant.drafter.capped
    # A full chain's outcome is learned in its own bin: the target took [7] and rejected 1.
    tree = hesitant.propose(ctx)
    hesitant.observe(ctx, VerifyResult(tree, Acceptance((0,), 4, False), torch.tensor([4]), torch.zeros(3, 32)))
    assert hesitant.conf_bin == 1 and hesitant.chain_by_conf[1].gain == 1


def test_chain_gain_counts_steps_at_the_rate_retrieval_resumes_after_a_miss():
    """Without the chain's tokens the next step starts where this one stopped and retrieval emits its own
    tokens there: the gain in steps is the chain's tokens over the tokens retrieval alone emits a step
    outside a streak, learned in observe."""
    ctx = DraftContext(PROMPT, len(PROMPT), 32, 8, SamplingParams(), min_node_value=0.05, step_s=0.1)
    pld = FixedProposer("pld", [[7, 1, 4, 9]])
    rasd, per_token = (RASDProposer(PeakedDrafter(), [pld], RASDConfig(overlap=False, resume=r)) for r in (True, False))
    for p in (rasd, per_token):  # (1 - 0.6) x 3 tokens x 0.1 s = 0.12 s, against a 0.05 s chain
        p.chain_s, p.chain_gain = 0.05, 3.0
    rasd.propose(ctx)
    assert not rasd.drafter.capped  # no rate learned yet: one step a token
    # Outside a streak the target wrote retrieval's path and one more token: retrieval alone emits 5.
    tree = rasd.propose(ctx)
    rasd.observe(ctx, VerifyResult(tree, Acceptance(tuple(tree.paths()[0]), 5, False), torch.tensor([9]),
                                   torch.zeros(5, 32)))
    assert rasd.resume_rate == 5
    rasd.streak = {}  # (judge the chain alone, not the idle rule)
    rasd.chain_s, rasd.chain_gain, rasd.chain_by_conf = 0.05, 3.0, {}  # (the stub's chains take no time)
    rasd.propose(ctx)  # 0.12 s / 5 = 0.024 s < 0.05 s: skipped
    assert rasd.drafter.capped
    per_token.resume_rate = 5
    per_token.propose(ctx)  # resume=0 counts a step per token: drafted
    assert not per_token.drafter.capped
    # In a streak the rate is not learned (copying says nothing about resuming after a miss).
    rasd.streak = {"pld": True}
    tree = rasd.propose(ctx)
    rasd.observe(ctx, VerifyResult(tree, Acceptance((), 1, False), torch.tensor([9]), torch.zeros(5, 32)))
    assert rasd.resume_rate == 5


def test_skipping_the_chain_keeps_rasd_lossless_and_the_drafter_in_sync():
    """A fake clock makes every chain look expensive, so steps alternate between skipped and full chains;
    the drafter's cache must stay in step with the committed text through both."""
    # A drafter right on most of the target's 17-token cycle and wrong at two tokens: fed chains get rejected.
    target, drafter = successor_lm(), successor_lm(swap=(84, 62))
    plain = Engine(target).generate(PROMPT, 40).token_ids
    fixed = SpecOptions(draft=DraftLMConfig(adaptive=False, max_len=4))  # chains fed to the drafter, often rejected
    proposer = make_proposer("rasd:prune=none", drafter=drafter, options=fixed)
    real = proposer._skip_chain
    calls = []

    def every_other(ctx):
        calls.append(real(ctx))
        return len(calls) % 2 == 0
    proposer._skip_chain = every_other
    gen = Engine(target, proposer, EngineConfig(gate=False)).generate(PROMPT, 40)
    assert gen.token_ids == plain
    assert proposer.timing["chain_skips"] >= 3
    drafted = gen.stats.by_source["draft_lm"]
    assert drafted.accepted < drafted.drafted - 2  # rejected chain rows were fed to the drafter
    # In step: the drafter's kept rows are exactly those of the committed text, so reading the rest gives
    # the logits of a fresh read of the whole text.
    lm, cache, text = proposer.drafter.lm, proposer.drafter.cache, PROMPT + gen.token_ids
    assert cache.length <= len(text)
    kept = lm.forward(cache, torch.tensor(text[cache.length :]))[-1]
    fresh = lm.forward(lm.new_cache(len(text)), torch.tensor(text))[-1]
    torch.testing.assert_close(kept, fresh, rtol=1e-4, atol=1e-4)


def test_drafter_idles_only_in_a_streak_when_retrieval_covers_its_whole_step():
    """In a streak (a source matched all the last step emitted) RASD looks at retrieval first and, when
    (1 - r1) x chain_gain x step_s (r1 judged by rank and streak, without q1) is below the drafter's
    catch-up plus chain time, the drafter reads nothing and the tree is retrieval's alone."""
    ctx = DraftContext(PROMPT, len(PROMPT), 32, 8, SamplingParams(), min_node_value=0.05, step_s=0.1)
    rasd = RASDProposer(PeakedDrafter(), [FixedProposer("pld", [[7, 1, 4, 9]])], RASDConfig(overlap=False))
    calls = []
    rasd.drafter.catch_up = lambda c, real=rasd.drafter.catch_up: calls.append(1) or real(c)
    rasd.chain_s, rasd.chain_gain, rasd.catch_up_s = 0.03, 3.0, 0.02
    for _ in range(40):  # in a streak the first path is nearly always right: r1 for (pld, rank 0, streak) -> 1
        rasd.calibration.learn("pld", calibration_bin(None, 0, True), 4, 4)
    rasd.propose(ctx)  # no streak yet: the drafter reads as usual
    assert len(calls) == 1 and rasd.timing["idle_steps"] == 0
    tree = rasd.propose(ctx)
    # The target wrote the retrieval path: a streak for pld, so the next step judges retrieval first.
    rasd.observe(ctx, VerifyResult(tree, Acceptance(tuple(tree.paths()[0]), 5, False), torch.tensor([9]),
                                   torch.zeros(5, 32)))
    assert rasd.streak == {"pld": True}
    tree = rasd.propose(ctx)
    assert len(calls) == 2 and rasd.timing["idle_steps"] == 1
    assert tree.token_paths() == [[7, 1, 4, 9]] and tree.sources[0] == {"pld"}
    # A costlier expected gain (a slow target step) makes the drafter read again, streak or not.
    rasd.propose(DraftContext(PROMPT, len(PROMPT), 32, 8, SamplingParams(), min_node_value=0.05, step_s=100.0))
    assert len(calls) == 3 and rasd.timing["idle_steps"] == 1
    # Fixed pruning rules need q1: no idling there.
    fixed = RASDProposer(PeakedDrafter(), [FixedProposer("pld", [[7, 1, 4, 9]])],
                         RASDConfig(overlap=False, prune="topk"))
    fixed.chain_s, fixed.chain_gain, fixed.catch_up_s = 0.03, 3.0, 0.02
    fixed.calibration, fixed.streak = rasd.calibration, {"pld": True}
    fixed.propose(ctx)
    assert fixed.timing["idle_steps"] == 0


def test_idle_drafter_steps_keep_rasd_lossless_and_the_drafter_in_sync():
    """Steps where the drafter idles alternate with steps where it reads several tokens at once; the
    output stays greedy's and the drafter's cache holds exactly the committed text's rows."""
    target, drafter = successor_lm(), successor_lm(swap=(84, 62))
    plain = Engine(target).generate(PROMPT, 60).token_ids
    proposer = make_proposer("rasd", drafter=drafter)
    calls = []
    proposer._idle = lambda ctx: calls.append(1) or len(calls) % 2 == 1
    gen = Engine(target, proposer, EngineConfig(gate=False)).generate(PROMPT, 60)
    assert gen.token_ids == plain
    assert proposer.timing["idle_steps"] >= 3 and proposer.timing["steps"] > proposer.timing["idle_steps"]
    lm, cache, text = proposer.drafter.lm, proposer.drafter.cache, PROMPT + gen.token_ids
    assert cache.length <= len(text)
    kept = lm.forward(cache, torch.tensor(text[cache.length :]))[-1]
    fresh = lm.forward(lm.new_cache(len(text)), torch.tensor(text))[-1]
    torch.testing.assert_close(kept, fresh, rtol=1e-4, atol=1e-4)


def test_without_a_drafter_candidates_are_calibrated_by_rank():
    """Retrieval alone: a source's first path and its second are scored apart, so a second match that is
    never right does not drag down the first one, which keeps its whole length."""
    retrieval = FixedProposer("pld", [[7, 1, 4, 9, 3, 5], [11, 5, 6, 8]])
    rasd = RASDProposer(None, [retrieval], RASDConfig(overlap=False))
    ctx = DraftContext(PROMPT, len(PROMPT), 32, 8, SamplingParams(), min_node_value=0.2)
    for _ in range(30):  # the target always writes the first path
        tree = rasd.propose(ctx)
        rasd.observe(ctx, VerifyResult(tree, Acceptance((), 7, False), torch.tensor([9]), torch.zeros(1, 32)))
        rasd.calibration.learn("pld", calibration_bin(None, 0, True), 6, 6)
    tree = rasd.propose(ctx)
    assert tree.token_paths() == [[7, 1, 4, 9, 3, 5]]
    assert rasd.calibration.value("pld", calibration_bin(None, 1, True), 1) < 0.05  # (in a streak from step 2 on)
