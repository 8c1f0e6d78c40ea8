"""The engine: every lossless proposer reproduces plain greedy decoding token for token."""

import pytest
import torch

from ragspec.decoding.sampling import SamplingParams
from ragspec.drafting.draft_lm import DraftLMConfig, DraftLMProposer
from ragspec.drafting.pld import PLDConfig, PLDProposer
from ragspec.engine import Engine, EngineConfig
from tiny import tiny_hf, tiny_lm
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
