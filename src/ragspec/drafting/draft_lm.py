"""A small language model as the drafter.

The drafter keeps its own KV cache in step with the committed text. It drafts a chain one forward per
token (greedy, or sampled from the same transform the target uses, which makes the chain stochastic
nodes carrying q), stops early when its confidence falls below a threshold, and adds the next `top_k - 1`
most likely tokens at each depth as sibling leaves: they come from distributions it computed anyway, so
the tree costs no extra drafter forward, and the target checks them in the same verification pass.

Lookahead (`lookahead > 0`) lets the drafter speculate for itself: before each forward it looks up what
followed the latest n-gram earlier in its own context (prompt lookup) and feeds those guesses in the same
forward; every guess that equals the token the drafter then picks saves a forward. The chain is the one
the drafter would have drafted without lookahead (each token still comes from q at its true prefix); only
the number of drafter forwards changes. Off by default: on 2 CPU cores an 8-token forward of an int8
drafter costs 1.65x a 1-token one, which eats the saving even for RAPID's drafter, which copies from its
chunks (docs/benchmarks.md). It is meant for devices where a few more tokens per forward are nearly free.

The drafter may read a different prompt than the target (RAPID: only the retrieved chunks of a long
document): pass `prompt_ids` and it drafts the same continuation from its own context.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from ragspec.decoding.sampling import transform
from ragspec.drafting.adaptive import DraftLength
from ragspec.drafting.base import DraftContext
from ragspec.drafting.pld import find_continuations
from ragspec.models.base import CausalLM
from ragspec.spec.verifier import VerifyResult
from ragspec.spec.tree import ROOT, TokenTree, TreeBuilder


@dataclass(frozen=True)
class DraftLMConfig:
    max_len: int = 6  # longest chain
    min_len: int = 1
    top_k: int = 1  # 1 = a chain; k > 1 adds k - 1 sibling leaves per depth
    confidence: float = 0.0  # stop the chain after a token whose drafter probability is below this
    adaptive: bool = True  # adapt the chain length to observed acceptance
    attach_probs: bool = False  # attach q to greedy drafts too (RAPID's transfer needs it)
    lookahead: int = 0  # prompt-lookup guesses fed with each drafter forward (0 = one token per forward)
    prefill_chunk: int = 512

    def __post_init__(self) -> None:
        if not 1 <= self.min_len <= self.max_len or self.top_k < 1 or not 0 <= self.confidence <= 1:
            raise ValueError("need 1 <= min_len <= max_len, top_k >= 1 and 0 <= confidence <= 1")
        if self.lookahead < 0:
            raise ValueError("need lookahead >= 0")


class DraftLMProposer:
    """Drafts with a small causal LM (see module docstring)."""

    name = "draft_lm"

    def __init__(self, lm: CausalLM, config: DraftLMConfig | None = None,
                 prompt_ids: Sequence[int] | None = None, prompt_cache=None) -> None:
        """prompt_ids: the drafter's own prompt (default: the target's); prompt_cache: a cache already
        holding that prompt minus its last token, copied instead of prefilling (shared across runs)."""
        self.lm = lm
        self.config = config or DraftLMConfig()
        self.own_prompt = list(prompt_ids) if prompt_ids is not None else None
        self.prompt_cache = prompt_cache
        self.length = DraftLength(self.config.min_len, self.config.max_len)
        self.cache = None
        self.prompt: list[int] = []
        self.chain: list[int] = []  # the last drafted chain
        self.chain_fed = 0  # how many of its tokens have KV rows after the committed ones
        self.forwards = 0  # drafter forwards while drafting (catch-up excluded)
        self.capped = False  # the last chain was cut short by the caller

    def begin(self, prompt_ids: Sequence[int]) -> None:
        self.prompt = list(self.own_prompt if self.own_prompt is not None else prompt_ids)
        limit = self.lm.info.max_context
        if limit and len(self.prompt) >= limit:
            raise ValueError(f"the drafter prompt has {len(self.prompt)} tokens; its context is {limit}")
        if self.prompt_cache is not None and self.prompt_cache.length == len(self.prompt) - 1:
            self.cache = self.prompt_cache.copy(256)
        else:
            self.cache = self.lm.new_cache(len(self.prompt) + 256)
            chunk = self.config.prefill_chunk
            for s in range(0, len(self.prompt) - 1, chunk):
                self.lm.forward(self.cache, torch.tensor(self.prompt[s : min(s + chunk, len(self.prompt) - 1)]),
                                num_logits=1)
        self.length = DraftLength(self.config.min_len, self.config.max_len)
        self.chain, self.chain_fed, self.forwards, self.capped = [], 0, 0, False

    def propose(self, ctx: DraftContext) -> TokenTree:
        logits = self.catch_up(ctx)
        return self.draft(ctx, logits) if logits is not None else TokenTree.empty()

    def draft_length(self, ctx: DraftContext) -> int:
        k = self.length.next(ctx.max_depth) if self.config.adaptive else min(self.config.max_len, ctx.max_depth)
        limit = self.lm.info.max_context
        if limit:
            k = min(k, limit - (len(self.prompt) + len(ctx.tokens) - ctx.num_prompt_tokens))
        return k

    def catch_up(self, ctx: DraftContext) -> torch.Tensor | None:
        """Feed the committed tokens the drafter has not read; its logits [V] for the next token (the
        root's child), or None when no draft fits."""
        self.chain, self.chain_fed = [], 0
        if self.draft_length(ctx) <= 0:
            return None
        seq = self.prompt + list(ctx.tokens[ctx.num_prompt_tokens :])  # the drafter's view; ends with the root
        return self.lm.forward(self.cache, torch.tensor(seq[self.cache.length :]), num_logits=1)[-1]

    def idle(self) -> None:
        """Draft nothing this step and read nothing: the committed tokens wait for the next catch-up,
        which reads them in one forward. Like a capped chain, the step teaches nothing."""
        self.chain, self.chain_fed, self.capped = [], 0, True

    def draft(self, ctx: DraftContext, logits: torch.Tensor, max_len: int | None = None) -> TokenTree:
        """Draft the chain (plus siblings) starting from the root's logits; `max_len` caps it for this
        step (a caller that expects little from the chain: 1 = the root's child alone, no forward).
        A capped step does not teach the adaptive length: it says nothing about how far the chain goes."""
        cfg = self.config
        k = self.draft_length(ctx)
        self.capped = max_len is not None and max_len < k
        k = min(k, max_len) if max_len is not None else k
        base = self.cache.length  # the drafter's rows up to and including the root
        builder = TreeBuilder(ctx.max_nodes)
        parent, chain = ROOT, []
        guesses: list[tuple[int, torch.Tensor]] = []  # lookahead tokens fed after the chain, each with its logits
        for depth in range(k):
            q = transform(logits, ctx.sampling)
            if ctx.sampling.greedy:
                token = int(logits.argmax())
                q_node = torch.softmax(logits.float(), -1) if cfg.attach_probs else None
            else:
                token, q_node = int(torch.multinomial(q, 1, generator=ctx.generator)), q
            conf = float(torch.softmax(logits.float(), -1)[token]) if cfg.confidence else 1.0
            node = builder.insert([token], self.name, draft_probs=[q_node], scores=[conf], parent=parent)
            if not node:
                break
            self._add_siblings(builder, q if not ctx.sampling.greedy else torch.softmax(logits.float(), -1),
                               token, parent)
            chain.append(token)
            parent = node[0]
            if conf < cfg.confidence or depth == k - 1:
                break
            if guesses and guesses[0][0] == token:  # the drafter already read this token
                logits = guesses.pop(0)[1]
                continue
            if guesses:  # the drafter chose otherwise: drop the rows of the remaining guesses
                self.cache.crop(base + len(chain) - 1)
            guess = self._lookahead(ctx, chain, min(cfg.lookahead, k - depth - 2))
            out = self.lm.forward(self.cache, torch.tensor([token] + guess), num_logits=1 + len(guess))
            self.forwards += 1
            logits, guesses = out[0], list(zip(guess, out[1:]))
        self.cache.crop(min(self.cache.length, base + max(len(chain) - 1, 0)))
        self.chain = chain
        self.chain_fed = len(chain) - 1  # every chain token but the last was fed to the drafter
        return builder.build()

    def _lookahead(self, ctx: DraftContext, chain: list[int], n: int) -> list[int]:
        """Up to n tokens that followed the latest 2-3-gram of the drafter's view earlier in that view."""
        if n <= 0:
            return []
        view = np.asarray(self.prompt + list(ctx.tokens[ctx.num_prompt_tokens :]) + chain, dtype=np.int64)
        found = find_continuations(view, 2, 3, n, 1)
        return found[0].tolist() if found else []

    def _add_siblings(self, builder: TreeBuilder, probs: torch.Tensor, token: int, parent: int) -> None:
        if self.config.top_k <= 1:
            return
        for alt in torch.topk(probs, self.config.top_k).indices.tolist():
            if alt != token and len(builder) < builder.max_nodes:
                builder.insert([alt], self.name, scores=[float(probs[alt])], parent=parent)

    def observe(self, ctx: DraftContext, result: VerifyResult) -> None:
        tree, acceptance = result.tree, result.acceptance
        # The drafter's rows after the committed text hold chain tokens; keep those the target accepted
        # (compared by token, so this holds when the chain was fused into a larger tree).
        committed = len(self.prompt) + len(ctx.tokens) - ctx.num_prompt_tokens
        good = 0
        for node, token in zip(acceptance.accepted, self.chain[: self.chain_fed]):
            if tree.token_ids[node] != token:
                break
            good += 1
        self.cache.crop(min(self.cache.length, committed + good))
        if len(tree) and not self.capped:
            self.length.observe(len(acceptance.accepted))
