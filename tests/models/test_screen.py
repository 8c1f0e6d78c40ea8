"""The int8-screened output layer: exact argmax, the bound it rests on, and where the engine uses it."""

from __future__ import annotations

import torch

from ragspec.decoding.sampling import SamplingParams
from ragspec.drafting.base import reads_target_logits
from ragspec.drafting.composite import CompositeProposer
from ragspec.drafting.pld import PLDProposer
from ragspec.drafting.recycle import RecycleProposer
from ragspec.engine import Engine
from ragspec.models.screen import ScreenedHead
from tests.tiny import tiny_lm


def _near_ties(seed: int, vocab: int = 4000, hidden: int = 256, rows: int = 1):
    """A head whose top logits sit within int8's error of each other: rows 0-15 are one row plus noise
    far below int8's weight step, so the screen alone cannot order them."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(vocab, hidden, generator=g) * 0.05
    w[:16] = w[0] + torch.randn(16, hidden, generator=g) * 1e-4
    x = torch.randn(rows, hidden, generator=g)
    x[:, :] += w[0] * 40  # every row points at the near-tied block
    return w, x


def test_screen_bound_holds_on_every_logit():
    w, x = _near_ties(0)
    x[:, 7] = 60.0  # a huge channel, as final hidden states have
    head = ScreenedHead(w)
    head(x[:1] * 0 + torch.eye(1, x.shape[1])[0] * 5)  # the first call picks channels that are not the huge one
    for rows in (x, x * 3):
        approx, slack = head.bounds(rows)
        assert ((approx - rows @ w.T).abs() <= slack).all()
    assert (head.bounds(x)[1] > ScreenedHead(w).bounds(x)[1]).all()  # outlier channels kept out tighten it


def test_screened_argmax_equals_float32_argmax_where_int8_alone_gets_it_wrong():
    wrong = 0
    for seed in range(20):
        w, x = _near_ties(seed)
        exact = torch.nn.functional.linear(x, w)
        out = ScreenedHead(w)(x)
        assert torch.equal(out.argmax(-1), exact.argmax(-1))
        finite = torch.isfinite(out)
        assert torch.equal(out[finite], exact[finite])  # the recomputed entries are the float32 logits
        assert finite.sum(1).max() < w.shape[0] // 10  # and few: the screen did its job
        assert torch.isfinite(ScreenedHead(w)(x.repeat(2, 1))).all()  # more rows than it pays for: the full layer
        approx = torch.ops.quantized.linear_dynamic(x, ScreenedHead(w).packed)
        wrong += int((approx.argmax(-1) != exact.argmax(-1)).sum())
    assert wrong > 0  # the int8 logits alone would have picked other tokens: the recompute matters


def test_greedy_generation_with_the_screen_equals_full_logits_greedy():
    lm = tiny_lm("qwen2", vocab=96, seed=3)
    assert lm.screen is None  # built on the first greedy one-row step
    lm.forward(lm.new_cache(4), torch.tensor([5]), argmax_only=True)
    screen, screened_steps = lm.screen, []

    def spy(x):
        out = screen(x)
        screened_steps.append(bool(torch.isinf(out).any()))
        return out

    lm.screen = spy
    prompt = [5, 17, 33, 5, 17, 40, 2, 9]
    screened = Engine(lm).generate(prompt, 40, SamplingParams(ignore_eos=True)).token_ids
    assert len(screened_steps) == 40 and sum(screened_steps) >= 20  # the engine asked; most steps screened
    cache = lm.new_cache(64)
    out, ids = [], list(prompt)
    for _ in range(40):  # plain greedy on the full float32 output layer
        logits = lm.forward(cache, torch.tensor(ids[cache.length :]))
        ids.append(int(logits[-1].argmax()))
        out.append(ids[-1])
    assert screened == out


def test_proposers_that_read_the_target_logits_turn_the_screen_off():
    assert not reads_target_logits(PLDProposer())
    assert reads_target_logits(RecycleProposer(96))
    assert reads_target_logits(CompositeProposer([PLDProposer(), RecycleProposer(96)]))
    assert not reads_target_logits(CompositeProposer([PLDProposer()]))
    assert not reads_target_logits(None)


def test_flat_rows_fall_back_to_the_full_layer():
    g = torch.Generator().manual_seed(1)
    w = torch.randn(1, 256, generator=g) * 0.05 + torch.randn(4000, 256, generator=g) * 1e-5
    x = torch.randn(1, 256, generator=g)  # one row (more would fall back anyway), near-equal logits: nothing ruled out
    calls = []
    head = ScreenedHead(w, full=lambda rows: calls.append(rows) or torch.nn.functional.linear(rows, w))
    out = head(x)
    assert len(calls) == 1 and torch.isfinite(out).all()
    assert torch.equal(out.argmax(-1), (x @ w.T).argmax(-1))


def test_screen_stays_exact_where_an_int8_kernel_would_saturate():
    """Full-range activations against full-range weights overflow 16-bit pair sums on CPUs without VNNI
    (models/int8.py). Row 1's weights are all at their top level, so its int8 logit would come out about
    halved, below row 2's, which has a zero in every pair; the true argmax is row 1 and the bound must
    still hold for it."""
    hidden = 256
    w = torch.zeros(64, hidden)
    w[1] = 0.5  # x . w = 128
    w[2, ::2] = 0.95  # x . w = 121.6
    x = torch.ones(1, hidden)
    head = ScreenedHead(w)
    approx, slack = head.bounds(x)
    assert ((approx - x @ w.T).abs() <= slack).all()
    assert int(head(x).argmax()) == 1
