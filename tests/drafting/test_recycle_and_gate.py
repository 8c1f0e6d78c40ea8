"""Token recycling (drafts from the target's earlier predictions) and the speculation controller."""

import pytest
import torch

from ragspec.decoding.sampling import SamplingParams
from ragspec.drafting.base import DraftContext
from ragspec.drafting.recycle import RecycleConfig, RecycleProposer
from ragspec.engine import Engine, EngineConfig
from ragspec.spec.acceptance import Acceptance
from ragspec.spec.gate import GateMemory, SpeculationGate
from ragspec.spec.tree import TokenTree
from ragspec.spec.verifier import VerifyResult
from tiny import tiny_lm


def _ctx(tokens):
    return DraftContext(tokens, len(tokens), 8, 6, SamplingParams())


def test_recycle_seeds_from_prompt_bigrams_then_learns_from_logits():
    prop = RecycleProposer(20, RecycleConfig(k=2, max_nodes=4))
    prop.begin([3, 5, 7, 3])
    tree = prop.propose(_ctx([3, 5, 7, 3]))
    assert tree.token_paths() == [[5, 7, 3, 5]]  # 3 -> 5 -> 7 -> 3 -> 5 from the prompt's bigrams
    # The target predicted [9, 8] after 3 and [4, 2] after 9: the table now follows the target.
    logits = torch.full((2, 20), -9.0)
    logits[0, 9], logits[0, 8], logits[1, 4], logits[1, 2] = 5, 4, 5, 4
    prop.observe(_ctx([3, 5, 7, 3]), VerifyResult(TokenTree.empty(), Acceptance((), 9, True),
                                                   torch.tensor([3, 9]), logits))
    paths = prop.propose(_ctx([1, 3])).token_paths()
    assert any(p[:2] == [9, 4] for p in paths) and [8] in [p[:1] for p in paths]


def test_recycling_is_lossless_in_the_engine():
    target = tiny_lm("llama")
    prompt = [5, 9, 17, 3, 44, 8, 5, 9, 17, 3]
    plain = Engine(target).generate(prompt, 40).token_ids
    got = Engine(target, RecycleProposer(96), EngineConfig(gate=False)).generate(prompt, 40)
    assert got.token_ids == plain and got.stats.num_accepted_tokens > 0


def test_gate_shrinks_the_budget_when_nodes_do_not_pay_and_falls_back():
    gate = SpeculationGate(max_nodes=16)
    gate.record(0, 0, 0.030, 1)  # a plain step: 30 ms
    for _ in range(15):
        gate.record(16, 0, 0.060, 1)  # 16 nodes, nothing accepted: 30 ms wasted per step
    assert gate.node_budget() < 16
    for _ in range(8):
        gate.record(4, 0, 0.045, 1)
    assert not gate.should_draft()  # drafting costs more per token than plain steps: cool down


def test_gate_grows_the_budget_when_nodes_pay():
    gate = SpeculationGate(max_nodes=16)
    gate.budget = 4
    gate.record(0, 0, 0.030, 1)
    for _ in range(6):
        gate.record(4, 3, 0.034, 4)  # 3 of 4 nodes accepted for 4 ms extra
    assert gate.node_budget() > 4 and gate.should_draft()


def test_gate_break_even_uses_the_marginal_cost_of_a_node():
    """Steps cost 30 ms plus 10 ms for any draft plus 1 ms per node: one more node is worth drafting when
    its acceptance beats 1/30, not the average extra per node (at 8 nodes 18/8 ms, i.e. 0.075)."""
    gate = SpeculationGate(max_nodes=16)
    gate.record(0, 0, 0.030, 1)
    assert gate.min_node_value() == 0.05  # nothing measured yet: the default
    for n in [2, 4, 8, 16] * 6:
        gate.record(n, n // 2, 0.030 + 0.010 + 0.001 * n, 1 + n // 2)
    assert gate.min_node_value() == pytest.approx(0.001 / 0.030, rel=1e-6)
    same = SpeculationGate(max_nodes=16)  # every step the same size: no slope to fit, the average stands
    same.record(0, 0, 0.030, 1)
    for _ in range(24):
        same.record(8, 4, 0.048, 5)
    assert same.min_node_value() == pytest.approx(0.018 / 8 / 0.030)


def test_gate_judges_drafting_by_its_time_per_token_over_many_steps():
    """Two misses (45 ms, 1 token each) then a copied run (50 ms, 6 tokens): 140 ms for 8 tokens, well
    under a 35 ms plain step, so drafting pays and must go on. An average of per-step ratios (45, 45 and
    8 ms a token) calls it a loss and cools down."""
    gate = SpeculationGate(max_nodes=16)
    gate.record(0, 0, 0.035, 1)
    plain = 0
    for _ in range(30):
        for accepted, seconds in ((0, 0.045), (0, 0.045), (5, 0.050)):
            while not gate.should_draft():  # a probe every `probe_every` drafting steps, or a cool-down
                gate.record(0, 0, 0.035, 1)
                plain += 1
            gate.record(6, accepted, seconds, accepted + 1)
    assert plain <= 90 // gate.probe_every
    assert gate.spec_cost() == pytest.approx(0.0175, rel=0.3)
    loss = SpeculationGate(max_nodes=16)  # and it still stops drafting that does not pay
    loss.record(0, 0, 0.035, 1)
    for _ in range(8):
        loss.record(6, 0, 0.045, 1)
    assert not loss.should_draft()


def test_gate_calls_a_clear_loss_early_and_waits_on_a_close_one():
    """A source whose drafts are never accepted is stopped after `early_steps` drafting steps, not
    `min_spec_steps`; one that loses by less than the margin is judged on the full period (and stopped
    then), and one that pays is never stopped."""
    def steps_until_fallback(accepted: int, seconds: float, emitted: int) -> int:
        gate = SpeculationGate(max_nodes=16)
        gate.record(0, 0, 0.030, 1)  # a plain step: 30 ms
        for k in range(1, 40):
            gate.record(4, accepted, seconds, emitted)
            if gate.cooldown_left:  # a cool-down began (not a probe step)
                assert not gate.should_draft()
                return k
        return 0

    assert steps_until_fallback(0, 0.036, 1) == SpeculationGate.early_steps  # nothing ever accepted
    assert steps_until_fallback(1, 0.080, 2) == SpeculationGate.early_steps  # 40 ms a token: > 1.25 x 30
    assert steps_until_fallback(1, 0.066, 2) == SpeculationGate.min_spec_steps  # 33 ms a token: a close loss
    assert steps_until_fallback(2, 0.040, 3) == 0  # 13 ms a token: drafting pays


def test_an_engine_hands_what_its_gate_learned_to_the_next_generation():
    """An engine reused across requests (the RAG pipeline, the bench) resumes each gate from the last one: the
    budget, acceptance and cool-down carry over, the step times do not, and outputs stay greedy's."""
    target = tiny_lm("llama")
    engine = Engine(target, RecycleProposer(96), EngineConfig(max_nodes=16))
    plain = Engine(target)
    assert engine.gate_memory is None
    for prompt in ([5, 9, 17, 3, 44, 8, 5, 9, 17, 3], list(range(10, 40)), [7, 7, 8, 7, 7, 8, 7]):
        assert engine.generate(prompt, 30).token_ids == plain.generate(prompt, 30).token_ids
        assert isinstance(engine.gate_memory, GateMemory)
    assert plain.gate_memory is None  # no proposer, no gate to remember

    gate = SpeculationGate(max_nodes=16).resume(GateMemory(budget=3, node_accept=0.02, cooldown=64,
                                                           cooldown_left=5))
    assert gate.node_budget() == 3 and gate.node_accept == 0.02 and gate.plain_step is None
    assert [gate.should_draft() for _ in range(6)] == [False] * 5 + [True]  # the owed cool-down first
    gate.record(0, 0, 0.030, 1)
    for _ in range(SpeculationGate.early_steps):
        gate.record(3, 0, 0.040, 1)
    assert gate.cooldown_left == 64  # another loss: the carried cool-down, not the base 8
    assert SpeculationGate(max_nodes=16).resume(None).memory() == SpeculationGate(max_nodes=16).memory()
    owed = SpeculationGate(max_nodes=16).resume(GateMemory(budget=3, node_accept=0.02, cooldown=128,
                                                           cooldown_left=100))
    assert owed.cooldown_left == 2 * owed.base_cooldown and owed.cooldown == 128  # a new request tries sooner
