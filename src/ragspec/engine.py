"""The method-agnostic generation loop: draft, verify once, accept, commit, observe, record.

Plain decoding is the same loop with no proposer (every draft empty), so greedy, sampling and every
speculative method share one code path and one set of acceptance rules:

    1. propose a draft tree (or none when the gate says speculation does not pay right now)
    2. one target forward over [pending root, draft nodes]
    3. accept: greedy walk, or recursive rejection under the sampling transform
    4. commit the accepted path's KV rows; the recovered/bonus token becomes the pending root
    5. let the proposer observe the outcome
    6. record statistics; stop on EOS (unless `SamplingParams.ignore_eos`), a stop condition or the budget
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Iterator, Sequence

import torch

from ragspec.decoding.sampling import SamplingParams, transform
from ragspec.drafting.base import DraftContext, Proposer, reads_target_logits
from ragspec.metrics import SpecStats
from ragspec.models.base import CausalLM, KVCache
from ragspec.spec.acceptance import NodeRule, TorchRandomness, greedy_walk, sampling_walk, standard_rule
from ragspec.spec.gate import GateMemory, SpeculationGate
from ragspec.spec.tree import TokenTree, input_ids
from ragspec.spec.verifier import VerifyResult, commit, verify

# A stop condition sees all generated ids so far and returns how many to keep, or None to go on.
StopCondition = Callable[[list[int]], "int | None"]


@dataclass(frozen=True)
class EngineConfig:
    """Knobs of the generation loop (proposer knobs live with each proposer)."""

    max_nodes: int = 24  # draft tree budget per step
    max_depth: int = 8  # longest draft path
    prefill_chunk: int = 512  # prompt tokens per prefill forward (bounds activation memory)
    gate: bool = True  # fall back to plain decoding while speculation does not pay

    def __post_init__(self) -> None:
        if self.max_nodes < 0 or self.max_depth < 0 or self.prefill_chunk < 1:
            raise ValueError("max_nodes and max_depth must be >= 0 and prefill_chunk >= 1")


@dataclass
class Generation:
    """The result of one generation."""

    token_ids: list[int] = field(default_factory=list)
    finish_reason: str = "length"  # "eos" | "stop" | "length"
    stats: SpecStats = field(default_factory=SpecStats)
    num_prompt_tokens: int = 0


class GenerationStream:
    """Iterates over the new token ids of each step; `.result` holds the Generation once exhausted."""

    def __init__(self, steps: Iterator[list[int]], result: Generation) -> None:
        self._steps, self.result = steps, result

    def __iter__(self) -> Iterator[list[int]]:
        return self._steps


def prefill(lm: CausalLM, cache: KVCache, token_ids: Sequence[int], chunk: int = 512) -> None:
    """Append `token_ids` to the cache in chunks (bounds activation memory on long prompts)."""
    for s in range(0, len(token_ids), chunk):
        lm.forward(cache, torch.tensor(token_ids[s : s + chunk]), num_logits=1)


class Engine:
    """Generates with a target model and an optional proposer (see module docstring)."""

    def __init__(self, target: CausalLM, proposer: Proposer | None = None, config: EngineConfig | None = None,
                 rule: NodeRule = standard_rule,
                 greedy_transform: Callable[[torch.Tensor, TokenTree], torch.Tensor] | None = None) -> None:
        """rule: the per-node sampling rule; greedy_transform: applied to the verified logits before the
        greedy walk. Both default to standard (lossless) speculative decoding; RAPID replaces them."""
        self.target = target
        self.proposer = proposer
        self.config = config or EngineConfig()
        self.rule = rule
        self.greedy_transform = greedy_transform
        # What the last generation's gate learned, for the next one (ragspec.spec.gate.GateMemory).
        self.gate_memory: GateMemory | None = None

    def generate(self, prompt_ids: Sequence[int], max_new_tokens: int = 128,
                 sampling: SamplingParams | None = None, stop: StopCondition | None = None,
                 cache: KVCache | None = None) -> Generation:
        stream = self.stream(prompt_ids, max_new_tokens, sampling, stop, cache)
        for _ in stream:
            pass
        return stream.result

    def stream(self, prompt_ids: Sequence[int], max_new_tokens: int = 128,
               sampling: SamplingParams | None = None, stop: StopCondition | None = None,
               cache: KVCache | None = None) -> GenerationStream:
        """Generate after `prompt_ids`; `cache`, if given, already holds the prompt minus its last token
        (a prefix shared by several runs, as in benchmarks) and is used instead of a prefill."""
        if not len(prompt_ids):
            raise ValueError("the prompt is empty")
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
        limit = self.target.info.max_context
        if limit and len(prompt_ids) >= limit:
            raise ValueError(f"the prompt has {len(prompt_ids)} tokens; the model's context is {limit}")
        result = Generation(num_prompt_tokens=len(prompt_ids))
        if cache is not None and cache.length != len(prompt_ids) - 1:
            raise ValueError(f"a prefilled cache must hold {len(prompt_ids) - 1} rows, not {cache.length}")
        steps = self._run(list(prompt_ids), max_new_tokens, sampling or SamplingParams(), stop, result, cache)
        return GenerationStream(steps, result)

    def _run(self, tokens: list[int], max_new_tokens: int, sampling: SamplingParams,
             stop: StopCondition | None, result: Generation, cache: KVCache | None) -> Iterator[list[int]]:
        cfg, stats, target = self.config, result.stats, self.target
        start = time.perf_counter()
        num_prompt = len(tokens)
        limit = target.info.max_context or (num_prompt + max_new_tokens + cfg.max_nodes + 1)
        max_new_tokens = min(max_new_tokens, limit - num_prompt)
        if cache is None:
            cache = target.new_cache(min(limit, num_prompt + max_new_tokens + cfg.max_nodes + 1))
            prefill(target, cache, tokens[:-1], cfg.prefill_chunk)  # the last prompt token is the first root
        stats.prefill_s = time.perf_counter() - start
        generator = sampling.generator() if not sampling.greedy else None
        rng = TorchRandomness(generator)
        if self.proposer is not None:
            t = time.perf_counter()
            self.proposer.begin(tokens)
            stats.draft_s += time.perf_counter() - t
        # Greedy acceptance reads only argmaxes, unless a transform or a proposer reads the logits themselves.
        argmax_only = sampling.greedy and self.greedy_transform is None and not reads_target_logits(self.proposer)
        gate = SpeculationGate(enabled=cfg.gate and self.proposer is not None, max_nodes=cfg.max_nodes)
        gate.resume(self.gate_memory)
        generated: list[int] = []
        eos = set() if sampling.ignore_eos else set(target.info.eos_token_ids)
        while True:
            remaining = max_new_tokens - len(generated)
            room = limit - cache.length - 1  # rows left after the root
            ctx = DraftContext(tokens, num_prompt, max_nodes=min(gate.node_budget(), room),
                               max_depth=min(cfg.max_depth, remaining - 1, room), sampling=sampling,
                               generator=generator, min_node_value=gate.min_node_value(),
                               step_s=gate.plain_step or 0.0)
            # 1. Propose.
            t0 = time.perf_counter()
            tree = TokenTree.empty()
            if self.proposer is not None and ctx.max_depth > 0 and ctx.max_nodes > 0:
                if gate.should_draft():
                    tree = self.proposer.propose(ctx)
                else:
                    stats.num_plain_fallback_steps += 1
            t1 = time.perf_counter()
            # 2. Verify in one forward.
            base = cache.length
            logits = verify(target, cache, tokens[-1], tree, argmax_only)
            t2 = time.perf_counter()
            # 3. Accept.
            if sampling.greedy:
                scores = self.greedy_transform(logits, tree) if self.greedy_transform is not None else logits
                acceptance = greedy_walk(tree, scores)
            else:
                acceptance = sampling_walk(tree, transform(logits, sampling), rng, self.rule)
            # 4. Commit the accepted rows; the recovered/bonus token is the new pending root.
            commit(cache, base, acceptance)
            # 5. Observe.
            if self.proposer is not None:
                self.proposer.observe(ctx, VerifyResult(tree, acceptance, input_ids(tokens[-1], tree), logits))
            t3 = time.perf_counter()
            # 6. Record, emit, stop.
            new = acceptance.output_tokens(tree)[:remaining]
            stats.observe(tree, acceptance, len(new))
            stats.draft_s += (t1 - t0) + (t3 - t2)
            stats.verify_s += t2 - t1
            gate.record(len(tree), len(acceptance.accepted), t3 - t0, len(new))
            new, finish = self._finish(new, generated, eos, stop)
            tokens.extend(new)
            generated.extend(new)
            if generated and not stats.ttft_s:
                stats.ttft_s = time.perf_counter() - start
                stats.ttft_tokens = len(new)
            if new:
                yield new
            if finish or len(generated) >= max_new_tokens:
                result.finish_reason = finish or "length"
                break
        result.token_ids = generated
        if gate.enabled:
            self.gate_memory = gate.memory()
        stats.total_s = time.perf_counter() - start

    @staticmethod
    def _finish(new: list[int], generated: list[int], eos: set[int],
                stop: StopCondition | None) -> tuple[list[int], str | None]:
        """Trim the step's tokens at EOS or a stop condition."""
        for i, tok in enumerate(new):
            if tok in eos:
                return new[:i], "eos"
        if stop is not None:
            keep = stop(generated + new)
            if keep is not None:
                return (generated + new)[len(generated) : keep], "stop"
        return new, None
