"""RAPID: a RAG drafter on retrieved chunks speculates for a long-context target (arXiv 2502.20330).

The target reads the whole long document; the drafter (the same model, "self", or a larger one,
"upward") reads only the chunks of that document retrieved for the question, within a token budget and
in document order, and drafts up to gamma tokens per step. The target verifies them against p_hat, its
distribution nudged toward the drafter's (`ragspec.spec.rapid`): the drafter's better-grounded view
improves the answer, and its shorter context makes drafting cheap.

Defaults (docs/design.md): gamma 10 (the official code), alpha 0.1, eta by the pair, as the paper sets it:
10 when the drafter is the target's size or smaller (its self-speculation range is 5-20) and 40 when it
is larger (upward, 40-50; the Qwen pair's 200 questions: +32.6 F1 over LC at 40, +24.6 at 10), residual
"p_hat" (the output is exactly p_hat; "rapid" reproduces the official code's rule, whose output law is
neither p nor p_hat), chunks of 256 tokens (the paper's 512 are for 128K contexts) and a
drafter budget of max(L/8, 1024) tokens (the paper's max(L/32, 4096) scaled to 8K-32K documents).
The fallback gate (plain decoding while drafting does not pay) works only at eta 0: with eta > 0 a
skipped draft would change the output, not only the speed. At eta 0 it is on unless gate=0: a drafter
reading chunks the target disagrees with (Qwen 0.5B at 16K: acceptance 0.27) made lossless RAPID 0.43x
plain greedy without it.
Option pld=1 (eta 0 only) fuses prompt-lookup branches over the target's whole context into the drafter's
tree with RASD's proposer: the drafter reads only the chunks, while what the answer copies from elsewhere
in the document costs no drafter forward. Lossless (eta 0 only), so the gate may time plain steps.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, fields, replace
from typing import Sequence

from ragspec.decoding.sampling import SamplingParams
from ragspec.decoding.text import chat_ids
from ragspec.drafting.draft_lm import DraftLMConfig, DraftLMProposer
from ragspec.drafting.pld import PLDConfig, PLDProposer
from ragspec.drafting.rasd import RASDProposer
from ragspec.drafting.registry import method_options
from ragspec.engine import Engine, EngineConfig
from ragspec.models.base import CausalLM, KVCache
from ragspec.prefix import PrefixCache
from ragspec.rag.answer import Answer, answer_from
from ragspec.rag.prompt import lc_prompt
from ragspec.retrieval.document import DocumentIndex
from ragspec.spec.rapid import RESIDUALS, greedy_logits, rapid_rule

DRAFT_INSTRUCTION = "Read the following retrieved text chunks of a document and answer the question."
PLD_NODES = 14  # lookup nodes fused into a step's tree (rapid:pld=1): 24 in all at gamma 10, as RASD's budget
SELF_ETA, UPWARD_ETA = 10.0, 40.0  # the default eta for a drafter the target's size or smaller / a larger one
INDEXES_KEPT = 4  # documents whose chunk index a Rapid keeps: questions tend to come in runs on one document


@dataclass(frozen=True)
class RapidConfig:
    eta: float | None = None  # None: SELF_ETA or UPWARD_ETA by the pair's sizes (`default_eta`)
    alpha: float = 0.1
    gamma: int = 10
    residual: str = "p_hat"
    chunk_size: int = 256
    budget: int = 0  # drafter context in tokens; 0 = max(L / 8, 1024)
    confidence: float = 0.1  # drafter early stop below this confidence (the official eval's value)
    lookahead: int = 0  # prompt-lookup guesses the drafter checks per forward (DraftLMConfig.lookahead)
    pld: int = 0  # 1: fuse prompt lookup over the target's whole context into the drafter's tree (eta 0 only)
    gate: int = 1  # 1: fall back to plain decoding while drafting does not pay (eta 0 only; docstring)
    max_new_tokens: int = 32

    @property
    def lossless(self) -> bool:
        """eta 0 makes p_hat = p, so either residual emits exactly the target's law (docs/design.md)."""
        return self.eta == 0

    @property
    def max_nodes(self) -> int:
        """Draft nodes a step may verify: the drafter's chain, plus prompt-lookup branches when fused."""
        return self.gamma + (PLD_NODES if self.pld else 0)

    @property
    def prompt_key(self) -> tuple:
        """The settings that shape `Rapid.prompts` (chunks, drafter budget, room left to generate): runs
        that agree on them can share one chunking, embedding and retrieval of a document."""
        return (self.chunk_size, self.budget, self.max_nodes, self.max_new_tokens)

    def __post_init__(self) -> None:
        if self.residual not in RESIDUALS:
            raise ValueError(f"unknown residual {self.residual!r}; choose from {', '.join(RESIDUALS)}")
        if ((self.eta is not None and self.eta < 0) or self.gamma < 1 or self.chunk_size < 16 or self.budget < 0
                or self.lookahead < 0 or not 0 <= self.confidence <= 1):
            raise ValueError("need eta >= 0, gamma >= 1, chunk_size >= 16, budget >= 0, lookahead >= 0, "
                             "0 <= confidence <= 1")
        if self.pld not in (0, 1) or self.gate not in (0, 1):
            raise ValueError(f"rapid's pld and gate are 0 or 1, got pld={self.pld}, gate={self.gate}")
        if self.pld and self.eta != 0:
            raise ValueError("rapid's pld=1 needs eta=0: the transfer needs the drafter's q at every drafted "
                             "position, and prompt-lookup branches carry none")


def default_eta(target: CausalLM, drafter: CausalLM) -> float:
    """UPWARD_ETA when the drafter has more parameters than the target (upward speculation), else SELF_ETA."""
    upward = drafter.info.num_parameters > target.info.num_parameters
    return UPWARD_ETA if upward else SELF_ETA


def rapid_config(name: str, **base) -> RapidConfig:
    """RapidConfig from "rapid" or "rapid:eta=10,gamma=6,confidence=0.3" (any RapidConfig field but
    max_new_tokens), on top of `base`."""
    casts = {f.name: {"str": str, "float": float, "float | None": float}.get(str(f.type), int)
             for f in fields(RapidConfig) if f.name != "max_new_tokens"}
    return RapidConfig(**{**base, **method_options(name, casts)})


@dataclass
class RapidPrompts:
    target_ids: list[int]
    drafter_ids: list[int]
    rag_context: str
    chunks: list[int]
    target_truncated: bool
    document_tokens: int
    retrieval_s: float


class Rapid:
    def __init__(self, target: CausalLM, drafter: CausalLM, embedder=None, config: RapidConfig | None = None) -> None:
        if target.tokenizer is None or drafter.tokenizer is None:
            raise ValueError("RAPID needs tokenizers for the target and the drafter")
        if target.tokenizer.get_vocab() != drafter.tokenizer.get_vocab():
            raise ValueError("RAPID needs a drafter with the target's tokenizer (same vocabulary)")
        self.target, self.drafter, self.embedder = target, drafter, embedder
        config = config or RapidConfig()
        self.config = config if config.eta is not None else replace(config, eta=default_eta(target, drafter))
        # Questions on one document share its tokens: each model's next prefill reuses the common prefix.
        self._prefix = {"target": PrefixCache(target), "drafter": PrefixCache(drafter)}
        # The chunk index of the last few documents: a run of questions on one document builds it once.
        self._index = functools.lru_cache(maxsize=INDEXES_KEPT)(self._build_index)

    def _room(self, lm: CausalLM) -> int:
        return (lm.info.max_context or 1 << 20) - self.config.max_new_tokens - self.config.max_nodes - 2

    def prompts(self, question: str, document: str, messages: Sequence[dict] | None = None) -> RapidPrompts:
        """The target's whole-document prompt and the drafter's retrieved-chunks prompt. `messages`: the
        caller's own chat prompt over the document (a benchmark set's): the target reads it as is, the
        drafter with the document replaced by its chunks, so both models see one format."""
        start = time.perf_counter()
        index = self._index(document)
        doc_tokens = index.num_tokens
        budget = self.config.budget or max(doc_tokens // 8, 1024)
        rag_text, chunks = index.context(question, min(budget, self._room(self.drafter) - 200))
        retrieval_s = time.perf_counter() - start
        if messages is not None and any(document in m["content"] for m in messages):
            target_ids, truncated = chat_ids(self.target.tokenizer, list(messages)), False
            chunked = [{**m, "content": m["content"].replace(document, rag_text)} for m in messages]
            drafter_ids = chat_ids(self.drafter.tokenizer, chunked)
        elif messages is not None:
            raise ValueError("RAPID needs the document inside the caller's chat prompt to swap in its chunks")
        else:
            target = lc_prompt(self.target.tokenizer, question, document, self._room(self.target))
            target_ids, truncated = target.ids, target.truncated
            drafter_ids = lc_prompt(self.drafter.tokenizer, question, rag_text, self._room(self.drafter),
                                    instruction=DRAFT_INSTRUCTION).ids
        return RapidPrompts(target_ids, drafter_ids, rag_text, chunks, truncated, doc_tokens, retrieval_s)

    def _build_index(self, document: str) -> DocumentIndex:
        """Chunking, BM25 and embedding an 8K-token document take 1.6-2.4 s on 2 cores, which every later
        question on the same document would otherwise pay again before its first token (`_index`)."""
        return DocumentIndex(document, self.drafter.tokenizer, self.config.chunk_size, self.embedder)

    def engine(self, prompts: RapidPrompts, eta: float | None = None, drafter_cache: KVCache | None = None) -> Engine:
        cfg = self.config
        eta = cfg.eta if eta is None else eta
        draft_config = DraftLMConfig(max_len=cfg.gamma, adaptive=False, confidence=cfg.confidence, attach_probs=True,
                                     lookahead=cfg.lookahead)
        proposer = DraftLMProposer(self.drafter, draft_config, prompt_ids=prompts.drafter_ids,
                                   prompt_cache=drafter_cache)
        if cfg.pld:  # RASD's fusion: lookup in the whole document (which the drafter never reads), pruned by q.
            # Lossless (eta 0): RASD's skip and prune rules weigh the plain steps the gate times.
            proposer = RASDProposer(proposer, [PLDProposer(PLDConfig(max_len=cfg.gamma))])
        gate = bool(cfg.gate) and eta == 0  # at eta > 0 a skipped draft changes the output (module docstring)
        engine_config = EngineConfig(max_nodes=cfg.max_nodes, max_depth=cfg.gamma, gate=gate)
        return Engine(self.target, proposer, engine_config,
                      rule=rapid_rule(eta, cfg.alpha, cfg.residual),
                      # eta 0 leaves the logits as they are: no transform, so greedy steps read argmaxes only
                      greedy_transform=functools.partial(greedy_logits, eta=eta, alpha=cfg.alpha) if eta else None)

    def answer(self, question: str, document: str, sampling: SamplingParams | None = None,
               eta: float | None = None, prompts: RapidPrompts | None = None,
               target_cache: KVCache | None = None, drafter_cache: KVCache | None = None) -> Answer:
        """Answer with RAPID. `prompts` and prefilled caches (each prompt minus its last token) may be
        shared across calls, e.g. an eta sweep on one question."""
        start = time.perf_counter()
        prompts = prompts or self.prompts(question, document)
        cache = target_cache.copy(self.room_after()) if target_cache else None
        engine = self.engine(prompts, eta, drafter_cache)
        gen = engine.generate(prompts.target_ids, self.config.max_new_tokens, sampling, cache=cache)
        text = self.target.tokenizer.decode(gen.token_ids, skip_special_tokens=True)
        return answer_from(question, text, "rapid", self.target.info.name, f"rapid(eta={self.config.eta if eta is None else eta})",
                           [], len(prompts.target_ids), prompts.retrieval_s, gen, prompts.target_truncated, start)

    def prefill_target(self, prompts: RapidPrompts) -> KVCache:
        """The target's cache of its prompt minus the last token (shared: `answer` and `lc_answer` copy it)."""
        return self._prefix["target"].prefill(prompts.target_ids[:-1], self.room_after())

    def prefill_drafter(self, prompts: RapidPrompts) -> KVCache:
        return self._prefix["drafter"].prefill(prompts.drafter_ids[:-1], self.room_after())

    def room_after(self) -> int:
        """Rows a prefilled prompt cache needs past the prompt: the answer, one step's draft nodes, the root."""
        return self.config.max_new_tokens + self.config.max_nodes + 2

    def lc_answer(self, question: str, prompts: RapidPrompts, sampling: SamplingParams | None = None,
                  target_cache: KVCache | None = None) -> Answer:
        """The target alone on the whole document (the long-context baseline of the paper)."""
        return self._plain(self.target, "lc", question, prompts.target_ids, 0.0, sampling, target_cache,
                           prompts.target_truncated)

    def rag_answer(self, question: str, prompts: RapidPrompts, sampling: SamplingParams | None = None,
                   drafter_cache: KVCache | None = None) -> Answer:
        """The drafter alone on the retrieved chunks (the RAG baseline of the paper)."""
        return self._plain(self.drafter, "rag", question, prompts.drafter_ids, prompts.retrieval_s, sampling,
                           drafter_cache, False)

    def _plain(self, lm: CausalLM, method: str, question: str, ids: list[int], retrieval_s: float,
               sampling: SamplingParams | None, cache: KVCache | None, truncated: bool) -> Answer:
        start = time.perf_counter()
        cache = cache.copy(self.config.max_new_tokens + 2) if cache else None
        gen = Engine(lm).generate(ids, self.config.max_new_tokens, sampling, cache=cache)
        text = lm.tokenizer.decode(gen.token_ids, skip_special_tokens=True)
        return answer_from(question, text, method, lm.info.name, "none", [], len(ids), retrieval_s, gen, truncated,
                           start)
