"""The engine: every lossless proposer reproduces plain greedy decoding token for token."""

import pytest
import torch

from ragspec.bench.speed import MethodResult
from ragspec.decoding.sampling import SamplingParams
from ragspec.drafting.draft_lm import DraftLMConfig, DraftLMProposer
from ragspec.drafting.pld import PLDConfig, PLDProposer
from ragspec.engine import Engine, EngineConfig
from tiny import successor_lm, tiny_hf, tiny_lm
from ragspec.models.loader import wrap

PROMPTS = [
    [5, 9, 17, 3, 44, 8, 5, 9, 17, 3, 44, 8, 5, 9],
    [2, 30, 31, 32, 33, 34, 35, 30, 31, 32, 33, 70, 71, 30, 31],
    list(range(10, 60)),
]


def _hf_greedy(hf, prompt, n):
    out = hf.generate(torch.tensor([prompt]), max_new_tokens=n, do_sample=False, eos_token_id=None,
                      pad_token_id=0, min_new_tokens=n)
    return out[0, len(prompt):].tolist()


def _proposers(arch):
    drafter = tiny_lm(arch, seed=7)  # a different random model: partial agreement with the target
    return {
        "pld": PLDProposer(PLDConfig(max_matches=3)),
        "draft": DraftLMProposer(drafter, DraftLMConfig(max_len=4)),
        "draft_tree": DraftLMProposer(tiny_lm(arch, seed=7), DraftLMConfig(max_len=3, top_k=3)),
        "self_draft": DraftLMProposer(tiny_lm(arch, seed=0), DraftLMConfig(max_len=5)),
        "draft_lookahead": DraftLMProposer(tiny_lm(arch, seed=7), DraftLMConfig(max_len=6, lookahead=4)),
    }


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_greedy_is_identical_for_every_proposer(arch):
    hf = tiny_hf(arch)
    target = wrap(hf, backend="fast")
    plain = Engine(target, None, EngineConfig(gate=False))
    for name, proposer in _proposers(arch).items():
        engine = Engine(target, proposer, EngineConfig(gate=False, max_nodes=16))
        accepted = 0
        for prompt in PROMPTS:
            want = plain.generate(prompt, 40).token_ids
            got = engine.generate(prompt, 40)
            assert got.token_ids == want, name
            accepted += got.stats.num_accepted_tokens
        assert accepted > 0, f"{name} never had a draft accepted: the test would be vacuous"
    # ragspec's own greedy equals transformers' greedy on the same model.
    for prompt in PROMPTS:
        assert plain.generate(prompt, 40).token_ids == _hf_greedy(hf, prompt, 40)


def test_self_drafting_accepts_everything():
    """A drafter identical to the target is always right: every drafted token is accepted."""
    target = tiny_lm("llama")
    engine = Engine(target, DraftLMProposer(tiny_lm("llama"), DraftLMConfig(max_len=4, adaptive=False)),
                    EngineConfig(gate=False))
    gen = engine.generate(PROMPTS[2], 30)
    assert gen.stats.acceptance_rate == 1.0
    assert gen.stats.mean_acceptance_length == pytest.approx(5.0, abs=0.01)
    # The first step returned a whole accepted draft: the decode rate leaves those 5 tokens out with the
    # step's time, or a method whose answer fits in one draft would look infinitely fast.
    assert gen.stats.ttft_tokens == 5
    assert Engine(target, None, EngineConfig(gate=False)).generate(PROMPTS[2], 30).stats.ttft_tokens == 1
    gen.stats.ttft_s, gen.stats.total_s = 1.0, 6.0
    assert gen.stats.decode_tokens(30) == 25 and gen.stats.decode_rate(30) == pytest.approx(25 / 5.0)
    assert gen.stats.decode_rate(5) == 0.0
    r = MethodResult("self")
    r.add(gen.token_ids, 1.0, 6.0, gen.stats.ttft_tokens)
    assert (r.decode_tokens, r.decode_s) == (25, 5.0)


class _Recorder(DraftLMProposer):
    """A drafter that keeps every tree it proposed."""

    def propose(self, ctx):
        tree = super().propose(ctx)
        probs = [q for q in tree.draft_probs if q is not None]
        self.trees.append((tree.token_ids, tree.parents, torch.stack(probs) if probs else None))
        return tree


@pytest.mark.parametrize("sampling,max_ratio", [(None, 0.8), (SamplingParams(temperature=4.0, seed=3), 1.0)])
def test_drafter_lookahead_drafts_the_same_chains_with_fewer_forwards(sampling, max_ratio):
    """Lookahead only saves drafter forwards: the chains (and so the output) are those drafted one token
    per forward, greedy or sampled; wrong guesses (the swapped successors) are dropped from its cache."""
    target = successor_lm()
    runs = {}
    for lookahead in (0, 6):
        drafter = _Recorder(successor_lm(swap=(84, 62)),
                            DraftLMConfig(max_len=8, adaptive=False, lookahead=lookahead, attach_probs=True))
        drafter.trees = []
        gen = Engine(target, drafter, EngineConfig(gate=False, max_nodes=8)).generate(PROMPTS[0], 40, sampling)
        runs[lookahead] = (gen.token_ids, drafter.trees, drafter.forwards, gen.stats.acceptance_rate)
    assert runs[6][0] == runs[0][0]
    for (ids, parents, q), (ids0, parents0, q0) in zip(runs[6][1], runs[0][1], strict=True):
        assert (ids, parents) == (ids0, parents0)
        # q too: the drafter read the same tokens (no wrong guess left in its cache)
        assert (q is None) == (q0 is None) and (q is None or torch.allclose(q.log(), q0.log(), atol=1e-3))
    assert 0 < runs[0][3] < 1, "the drafter must be partly right for the test to cover rejected guesses"
    assert runs[6][2] < max_ratio * runs[0][2], "lookahead saved too few drafter forwards"


def test_sampling_is_reproducible_with_a_seed_and_stays_in_the_top_k():
    target = tiny_lm("qwen2")
    params = SamplingParams(temperature=0.8, top_k=5, seed=11)
    engine = Engine(target, PLDProposer(), EngineConfig(gate=False))
    a = engine.generate(PROMPTS[0], 30, params).token_ids
    b = engine.generate(PROMPTS[0], 30, params).token_ids
    assert a == b and len(a) == 30


def test_eos_and_stop_condition_end_generation():
    target = tiny_lm("llama")
    plain = Engine(target)
    tokens = plain.generate(PROMPTS[1], 20).token_ids
    stop_at = tokens[5]
    gen = plain.generate(PROMPTS[1], 20, stop=lambda ids: ids.index(stop_at) if stop_at in ids else None)
    assert gen.finish_reason == "stop" and gen.token_ids == tokens[: tokens.index(stop_at)]


def test_eos_ends_generation_unless_ignored():
    """EOS ends a generation and is not returned; with `ignore_eos` every proposer goes on past it to the
    budget, emitting exactly the tokens plain greedy emits when no token ends it."""
    from dataclasses import replace

    target = tiny_lm("llama")
    full = Engine(target).generate(PROMPTS[1], 24, SamplingParams(ignore_eos=True)).token_ids
    assert len(full) == 24  # the model's own EOS, should greedy emit it, does not cut the reference short
    eos = full[6]
    target.info = replace(target.info, eos_token_ids=(eos,))
    cut = Engine(target).generate(PROMPTS[1], 24)
    assert cut.finish_reason == "eos" and cut.token_ids == full[: full.index(eos)]
    for proposer in (None, PLDProposer(), DraftLMProposer(tiny_lm("llama", seed=7), DraftLMConfig(max_len=4))):
        gen = Engine(target, proposer, EngineConfig(gate=False)).generate(
            PROMPTS[1], 24, SamplingParams(ignore_eos=True))
        assert gen.token_ids == full and gen.finish_reason == "length", proposer


def test_bad_requests_are_clear_errors():
    engine = Engine(tiny_lm("llama", max_pos=32))
    with pytest.raises(ValueError, match="empty"):
        engine.generate([], 5)
    with pytest.raises(ValueError, match="context"):
        engine.generate(list(range(2, 40)), 5)
    gen = engine.generate(list(range(2, 28)), 50)  # the budget shrinks to the room left in the context
    assert len(gen.token_ids) == 32 - 26 and gen.finish_reason == "length"


def test_stop_strings_end_generation_on_the_token_that_completes_them():
    from ragspec.decoding.text import stop_condition, trim_at_stop

    class Letters:  # token id -> one letter
        def decode(self, ids, skip_special_tokens=True):
            return "".join(chr(97 + i % 26) for i in ids)

    target = tiny_lm("llama")
    tokens = Engine(target).generate(PROMPTS[1], 20).token_ids
    text = Letters().decode(tokens)
    stop = text[6:8]
    first = text.find(stop)
    gen = Engine(target, PLDProposer()).generate(PROMPTS[1], 20, stop=stop_condition(Letters(), [stop]))
    assert gen.token_ids == tokens[: first + 2] and gen.finish_reason == "stop"
    assert trim_at_stop(Letters().decode(gen.token_ids), [stop]) == text[:first]
