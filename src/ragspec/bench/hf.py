"""Hugging Face's own generation as the baseline: greedy, prompt lookup, assisted generation.

Timed with a streamer, so TTFT and the decode rate after the first token are measured the same way as
ragspec's. A prefilled DynamicCache of the prompt (minus its last token) can be passed, as transformers
documents for prompt reuse, so long prompts are prefilled once per benchmark run. The benchmark passes it
to greedy only: with one, transformers 5.23's prompt lookup returns tokens that differ from greedy's
(without one it matches greedy), so prompt lookup and assisted generation prefill inside `generate`,
which only their first token pays for.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import torch
from transformers.generation.streamers import BaseStreamer

HF_METHODS = ("hf-greedy", "hf-pld", "hf-assisted")


class _Clock(BaseStreamer):
    """Records when generate() hands out its first new token and how many it hands out."""

    def __init__(self) -> None:
        self.seen_prompt = False
        self.first: float | None = None
        self.first_count = 0  # tokens of the first put: assisted generation can hand out several
        self.count = 0

    def put(self, value) -> None:
        if not self.seen_prompt:  # the first call carries the prompt
            self.seen_prompt = True
            return
        if self.first is None:
            self.first = time.perf_counter()
            self.first_count = int(value.numel())
        self.count += int(value.numel())

    def end(self) -> None:
        pass


@dataclass
class HFRun:
    token_ids: list[int]
    ttft_s: float
    total_s: float
    ttft_tokens: int = 1


def hf_generate(method: str, model, prompt_ids: list[int], max_new_tokens: int, eos_ids: tuple[int, ...],
                assistant=None, prefix_cache=None, ignore_eos: bool = False) -> HFRun:
    """One greedy generation with transformers' `generate` in the named mode. `ignore_eos`: no stop token
    (`eos_token_id=None`), so EOS is emitted and generation goes on, as in ragspec's `ignore_eos`."""
    kwargs: dict = {}
    if method == "hf-pld":
        kwargs["prompt_lookup_num_tokens"] = 10
    elif method == "hf-assisted":
        if assistant is None:
            raise ValueError("hf-assisted needs a drafter (--drafter NAME)")
        kwargs["assistant_model"] = assistant
    elif method != "hf-greedy":
        raise ValueError(f"unknown HF method {method!r}; choose from {', '.join(HF_METHODS)}")
    if prefix_cache is not None:
        kwargs["past_key_values"] = copy.deepcopy(prefix_cache)
    clock = _Clock()
    start = time.perf_counter()
    with torch.inference_mode():
        out = model.generate(torch.tensor([prompt_ids]), max_new_tokens=max_new_tokens, do_sample=False,
                             eos_token_id=None if ignore_eos else list(eos_ids), pad_token_id=eos_ids[0],
                             streamer=clock, temperature=None, top_p=None, top_k=None, **kwargs)
    total = time.perf_counter() - start
    new = out[0, len(prompt_ids) :].tolist()
    while new and new[-1] in eos_ids and not ignore_eos:  # ragspec does not return the EOS token either
        new.pop()
    return HFRun(new, (clock.first or time.perf_counter()) - start, total, min(clock.first_count, len(new)))
