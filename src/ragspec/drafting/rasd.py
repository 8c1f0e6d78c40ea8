"""RASD: retrieval draft trees pruned by the drafter's distribution and fused with its tree (arXiv 2503.03434).

Each step:
1. retrieval candidates from PLD (the prompt and output) and REST (a datastore), run in a worker thread
   while the drafter computes (the paper ran them serially);
2. the drafter reads the new tokens; its next-token distribution q1 scores every retrieval branch by its
   first token; the drafter then drafts its own chain (plus siblings);
3. retrieval nodes are pruned (`prune`):
   - "none": keep everything within the budgets;
   - "topk": keep branches whose first token is among the drafter's top-k (the paper's rule);
   - "threshold": keep branches whose first token has q1 >= threshold;
   - "auto": keep nodes whose estimated acceptance probability exceeds the break-even value the engine
     measures (marginal cost of a node over a decode step), instead of a hand-set threshold. The
     estimate is P(first token accepted | q1 bin, source) x P(next accepted | previous accepted,
     source)^(depth-1) (without a drafter, the candidate's rank within its source replaces q1), both
     learned online from every candidate, kept or not: the emitted tokens say what the target chose,
     so pruned branches are scored too and the estimate is not biased by pruning;
4. the kept retrieval paths are inserted into the drafter's tree by longest prefix match (fusion), each
   node tagged with its sources, and the target verifies the fused tree in one pass.
Beyond the paper, the drafter works only where it pays (each rule measured in docs/benchmarks.md):
- skip: the drafter's chain is skipped (only its first token, free from the forward that read the new
  tokens, stays in the tree) when the best retrieval candidate's estimated first-token acceptance r1
  leaves the chain an expected gain, (1 - r1) x (steps its accepted tokens save) x (a target step's
  time), smaller than the chain's measured drafting time. While the text copies a source (code
  restating its prompt, a summary quoting its article) the drafter buys little that PLD does not offer;
- confidence: chain time and accepted tokens are averaged per bin of the drafter's top first-token
  probability (a confident drafter's chain goes much further than a hesitant one's: SmolLM2 on mt_bench,
  0.96 tokens below 0.4, 1.9-2.8 above), falling back to all chains' averages in an unmeasured bin;
- resume: accepted chain tokens do not each save a target step. Without them the next step starts where
  this one stopped and retrieval emits its own tokens there, so they count at the rate retrieval resumes
  after a miss: the tokens retrieval alone emits a step (1 + its best candidate's matched prefix) outside
  a streak. Near 1 in free text; several tokens in code that restates its prompt;
- probes: a skipped chain teaches nothing about what chains gain, so after `probe_after` skips in a row
  the chain is drafted anyway; the interval doubles (up to 32) while the probes confirm the skips and
  starts over once a chain pays. An estimate pulled down by rejected chains can no longer freeze;
- idle: during a copy (a source's candidate matched every token the last step emitted: a streak) RASD
  first waits for retrieval (a millisecond), and if r1, estimated without the drafter (by rank and
  streak), leaves the drafter's whole work - reading the new tokens plus its chain - more expensive than
  its expected gain, the drafter reads nothing this step. Its unread tokens wait for the next step it
  drafts, and reading several tokens in one forward costs little more than one (a step's weights are read
  once), so most of the catch-up is saved.
Without a drafter (a target too small for a smaller drafter to pay), steps 2-3 calibrate by rank instead.
Acceptance goes through the engine's tree rules: no RASD-specific acceptance code.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property
from typing import Sequence

import numpy as np
import torch

from ragspec.drafting.base import DraftContext, Proposer, reads_target_logits
from ragspec.drafting.composite import observe_parts, own_acceptance
from ragspec.drafting.draft_lm import DraftLMProposer
from ragspec.spec.gate import ema
from ragspec.spec.tree import TokenTree, TreeBuilder
from ragspec.spec.verifier import VerifyResult

PRUNE_RULES = ("none", "topk", "threshold", "auto")
_RETRIEVAL_POOL = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rasd-retrieval")  # one per process
Q_BINS = np.array([0.01, 0.05, 0.15, 0.4])  # edges of the drafter-probability bins used for calibration
RANK_BINS = 3  # without q1: bins by the candidate's rank within its source (0, 1, 2 or more), x streak or not
CONF_BINS = np.array([0.4, 0.7, 0.9])  # edges of the drafter-confidence bins of chain time and gain
PROBE_AFTER = (4, 32)  # a full chain after this many skipped ones in a row: first, and at most (doubling)


@dataclass(frozen=True)
class RASDConfig:
    prune: str = "auto"
    top_k: int = 4  # "topk" rule
    threshold: float = 0.05  # "threshold" rule
    max_retrieval_nodes: int = 16
    overlap: bool = True  # retrieval in a worker thread while the drafter runs
    skip: bool = True  # skip the drafter's chain when retrieval covers the step (module docstring)
    idle: bool = True  # in a streak, let the drafter read nothing when retrieval covers its whole step
    resume: bool = True  # a chain's tokens save steps at the rate retrieval resumes after a miss (docstring)

    def __post_init__(self) -> None:
        if self.prune not in PRUNE_RULES:
            raise ValueError(f"unknown prune rule {self.prune!r}; choose from {', '.join(PRUNE_RULES)}")
        if self.top_k < 1 or not 0 <= self.threshold <= 1 or self.max_retrieval_nodes < 0:
            raise ValueError("need top_k >= 1, 0 <= threshold <= 1, max_retrieval_nodes >= 0")


@dataclass(frozen=True)
class _Candidate:
    tokens: tuple[int, ...]
    source: str
    score: float  # the retrieval source's own weight (REST frequency share; 1 for PLD)
    rank: int  # its place among its source's paths (PLD: most recent match first; REST: most frequent)
    q1: float | None  # the drafter's probability of its first token (None when the drafter did not read)
    streak: bool = False  # its source's candidates matched every token the last step emitted

    @cached_property
    def bin(self) -> int:  # read at every depth of pruning, in the skip rule and in observe: computed once
        return calibration_bin(self.q1, self.rank, self.streak)

    @cached_property
    def rank_bin(self) -> int:  # the bin without the drafter's q1 (the idle rule; learned for every candidate)
        return calibration_bin(None, self.rank, self.streak)


def calibration_bin(q1: float | None, rank: int, streak: bool = False) -> int:
    """The bin a candidate is calibrated in: its first token's drafter probability q1 (bins 0-4), or
    without it its rank within its source and its source's streak (bins 5-10): a source's second match is
    right far less often than its first, and a source in the middle of a copy far more often than one
    that just missed; one rate for all cut the good paths short."""
    if q1 is None:
        return len(Q_BINS) + 1 + RANK_BINS * int(streak) + min(rank, RANK_BINS - 1)
    return int(np.searchsorted(Q_BINS, q1, side="right"))


@dataclass
class ChainStats:
    """EMAs of a full drafter chain: its drafting seconds and the tokens the target accepts from it."""
    s: float | None = None
    gain: float | None = None


class _Calibration:
    """Per source: P(first token accepted | bin) and P(next token accepted | previous accepted)."""

    def __init__(self) -> None:
        self.first: dict[str, np.ndarray] = {}  # source -> [bins, 2] (hits, tries) with a weak prior
        self.cont: dict[str, np.ndarray] = {}  # source -> [hits, tries]

    def _tables(self, source: str) -> tuple[np.ndarray, np.ndarray]:
        if source not in self.first:
            # q1 bins: roughly "q1 is calibrated"; rank bins: the first match is often right, more so
            # in a streak.
            prior = np.array([0.005, 0.03, 0.1, 0.25, 0.6, 0.3, 0.1, 0.05, 0.6, 0.2, 0.1])
            self.first[source] = np.stack([prior * 2, np.full(prior.size, 2.0)], axis=1)
            self.cont[source] = np.array([1.0, 2.0])
        return self.first[source], self.cont[source]

    def value(self, source: str, b: int, depth: int) -> float:
        """Estimated acceptance of the depth-th node of a candidate in bin b (`calibration_bin`)."""
        first, cont = self._tables(source)
        return float(first[b, 0] / first[b, 1] * (cont[0] / cont[1]) ** (depth - 1))

    def learn(self, source: str, b: int, matched: int, seen: int) -> None:
        """`matched` leading tokens of a candidate equal the emitted ones, of `seen` comparable positions."""
        if seen <= 0:
            return
        first, cont = self._tables(source)
        first[b] += (1.0 if matched >= 1 else 0.0, 1.0)
        if matched >= 1:  # continuation trials: positions 2..seen, while the previous one matched
            trials = min(seen, matched + 1) - 1
            cont += (min(matched, seen) - 1, trials)


class RASDProposer:
    name = "rasd"

    def __init__(self, drafter: DraftLMProposer | None, retrieval: Sequence[Proposer],
                 config: RASDConfig | None = None) -> None:
        if drafter is None and not retrieval:
            raise ValueError("RASD needs a drafter or at least one retrieval source")
        self.drafter, self.retrieval = drafter, list(retrieval)
        self.config = config or RASDConfig()
        self.calibration = _Calibration()
        # Overlap needs a drafter to overlap with: without one, a worker thread only adds a hand-off.
        self._pool = _RETRIEVAL_POOL if self.config.overlap and drafter is not None else None
        self.timing = {"retrieval_s": 0.0, "drafter_s": 0.0, "propose_s": 0.0, "steps": 0, "chain_skips": 0,
                       "idle_steps": 0}
        self.chain_s: float | None = None  # EMA: seconds of a full drafter chain
        self.chain_gain: float | None = None  # EMA: tokens the target accepts from a full chain
        self.chain_by_conf: dict[int, ChainStats] = {}  # drafter-confidence bin -> that bin's chains
        self.conf_bin = 0  # this step's bin of the drafter's top first-token probability
        self.resume_rate: float | None = None  # EMA: tokens retrieval alone emits a step outside a streak
        self.catch_up_s: float | None = None  # EMA: seconds of the drafter reading the new tokens
        self.streak: dict[str, bool] = {}  # source -> its candidates matched all the last step emitted
        self.skips_in_row, self.probe_after, self.probed = 0, PROBE_AFTER[0], False

    @property
    def reads_target_logits(self) -> bool:
        return any(reads_target_logits(p) for p in self._parts())

    def begin(self, prompt_ids: Sequence[int]) -> None:
        self.streak = {}
        for p in self._parts():
            p.begin(prompt_ids)

    def _parts(self) -> list[Proposer]:
        return ([self.drafter] if self.drafter is not None else []) + self.retrieval

    # ----- propose -----------------------------------------------------------------------------------
    def propose(self, ctx: DraftContext) -> TokenTree:
        start = time.perf_counter()
        future = self._pool.submit(self._retrieve, ctx) if self._pool is not None else None
        trees, idle = None, False
        c = self.config
        if self.drafter is not None and c.skip and c.idle and c.prune == "auto" and any(self.streak.values()):
            trees = future.result() if future is not None else self._retrieve(ctx)  # copying: look first
            self._collect(trees, None)
            idle = self._idle(ctx)
        q1, drafter_tree, logits = None, TokenTree.empty(), None
        if idle:
            self.drafter.idle()
            self.timing["idle_steps"] += 1
        elif self.drafter is not None:
            t = time.perf_counter()
            logits = self.drafter.catch_up(ctx)  # reads the new tokens while retrieval runs
            if logits is not None:
                q1 = torch.softmax(logits.float(), -1)
                self.conf_bin = int(np.searchsorted(CONF_BINS, float(q1.max()), side="right"))
            elapsed = time.perf_counter() - t
            self.catch_up_s = ema(self.catch_up_s, elapsed)
            self.timing["drafter_s"] += elapsed
        if trees is None:
            trees = future.result() if future is not None else self._retrieve(ctx)
            self._collect(trees, q1)
        elif q1 is not None:  # collected before the read to judge idling: now with q1
            self._collect(trees, q1)
        if logits is not None:
            t = time.perf_counter()
            skip = self._skip_chain(ctx)
            drafter_tree = self.drafter.draft(ctx, logits, max_len=1 if skip else None)
            elapsed = time.perf_counter() - t
            self.timing["drafter_s"] += elapsed
            self.timing["chain_skips"] += int(skip)
            if not self.drafter.capped:
                self.chain_s = ema(self.chain_s, elapsed)
                stats = self.chain_by_conf.setdefault(self.conf_bin, ChainStats())
                stats.s = ema(stats.s, elapsed)
        builder = TreeBuilder(ctx.max_nodes)
        builder.merge(drafter_tree)
        for tokens, source in self._prune(ctx, q1):
            builder.insert(list(tokens), source)
        self.drafter_tree = drafter_tree
        self.timing["propose_s"] += time.perf_counter() - start
        self.timing["steps"] += 1
        return builder.build()

    def _collect(self, trees: list[tuple[str, TokenTree]], q1: torch.Tensor | None) -> None:
        """The retrieval paths as candidates, each with its drafter probability q1 (when read) and streak."""
        self.retrieval_trees, self.candidates = trees, []
        for src, tree in trees:
            for rank, path in enumerate(tree.paths()):
                tokens = tuple(tree.token_ids[i] for i in path)
                q = float(q1[tokens[0]]) if q1 is not None else None
                self.candidates.append(_Candidate(tokens, src, tree.scores[path[-1]] or 1.0, rank, q,
                                                  self.streak.get(src, False)))

    def _worth_drafting(self, ctx: DraftContext, r1: float, cost: float | None, gain: float | None) -> bool:
        """Whether the chain's expected gain, (1 - r1) x `gain` x a target step's time, exceeds `cost`."""
        if cost is None or ctx.step_s <= 0 or gain is None:
            return True
        steps = gain / max(1.0, self.resume_rate or 1.0) if self.config.resume else gain
        return (1 - r1) * steps * ctx.step_s >= cost

    def _skip_chain(self, ctx: DraftContext) -> bool:
        """True when the chain's expected gain is worth less than its drafting time, except for a probe
        chain after `probe_after` skips in a row (module docstring)."""
        if not self.config.skip:
            return False
        r1 = max((self.calibration.value(c.source, c.bin, 1) for c in self.candidates), default=0.0)
        stats = self.chain_by_conf.get(self.conf_bin, ChainStats())
        if stats.s is None or stats.gain is None:  # no chain measured at this confidence yet: all chains'
            stats = ChainStats(self.chain_s, self.chain_gain)
        skip = not self._worth_drafting(ctx, r1, stats.s, stats.gain)
        if not skip:  # chains pay again: the next run of skips is probed early
            self.probe_after = PROBE_AFTER[0]
        elif self.probed:  # the last chain was a probe, and the skips still hold
            self.probe_after = min(2 * self.probe_after, PROBE_AFTER[1])
        self.probed = skip and self.skips_in_row >= self.probe_after
        self.skips_in_row = self.skips_in_row + 1 if skip and not self.probed else 0
        return skip and not self.probed

    def _idle(self, ctx: DraftContext) -> bool:
        """True when the drafter's whole step (reading the new tokens, then its chain) is worth less than
        its expected gain, judged without q1 (module docstring)."""
        if self.chain_s is None or self.catch_up_s is None:
            return False
        r1 = max((self.calibration.value(c.source, c.rank_bin, 1) for c in self.candidates), default=0.0)
        return not self._worth_drafting(ctx, r1, self.chain_s + self.catch_up_s, self.chain_gain)

    def _retrieve(self, ctx: DraftContext) -> list[tuple[str, TokenTree]]:
        t = time.perf_counter()
        out = [(p.name, p.propose(ctx)) for p in self.retrieval]
        self.timing["retrieval_s"] += time.perf_counter() - t
        return out

    def _prune(self, ctx: DraftContext, q1: torch.Tensor | None) -> list[tuple[tuple[int, ...], str]]:
        """Retrieval path prefixes to insert, best first, within the retrieval node budget."""
        c = self.config
        ranked: list[tuple[float, tuple[int, ...], str]] = []
        topk = set(torch.topk(q1, c.top_k).indices.tolist()) if q1 is not None and c.prune == "topk" else None
        for cand in self.candidates:
            q = cand.q1 if cand.q1 is not None else 0.5
            if c.prune == "topk" and topk is not None and cand.tokens[0] not in topk:
                continue
            if c.prune == "threshold" and q1 is not None and q < c.threshold:
                continue
            if c.prune == "auto":
                # Cut the path where a node's estimated acceptance drops below the break-even value.
                keep = 0
                for d in range(1, len(cand.tokens) + 1):
                    if self.calibration.value(cand.source, cand.bin, d) < ctx.min_node_value:
                        break
                    keep = d
                if not keep:
                    continue
                ranked.append((self.calibration.value(cand.source, cand.bin, 1), cand.tokens[:keep], cand.source))
            else:
                ranked.append((q * cand.score, cand.tokens, cand.source))
        ranked.sort(key=lambda r: -r[0])
        out, used = [], 0
        for _, tokens, source in ranked:
            if used + len(tokens) > c.max_retrieval_nodes:
                tokens = tokens[: max(0, c.max_retrieval_nodes - used)]
            if tokens:
                out.append((tokens, source))
                used += len(tokens)
        return out

    # ----- observe -----------------------------------------------------------------------------------
    def observe(self, ctx: DraftContext, result: VerifyResult) -> None:
        emitted = result.acceptance.output_tokens(result.tree)
        streak: dict[str, bool] = {}
        best = 0  # the longest prefix any retrieval candidate matched: retrieval alone emits best + 1
        for cand in self.candidates:  # learn from every candidate, pruned or kept
            matched = 0
            for a, b in zip(cand.tokens, emitted):
                if a != b:
                    break
                matched += 1
            best = max(best, matched)
            seen = min(len(cand.tokens), len(emitted))
            self.calibration.learn(cand.source, cand.bin, matched, seen)
            if cand.rank_bin != cand.bin:  # the idle rule's estimate, learned from the same trial
                self.calibration.learn(cand.source, cand.rank_bin, matched, seen)
            streak[cand.source] = streak.get(cand.source, False) or 0 < seen == matched
        if not any(self.streak.values()):  # outside a streak: how fast retrieval resumes after a miss
            self.resume_rate = ema(self.resume_rate, 1 + min(best, len(emitted) - 1))
        self.streak = streak
        if self.drafter is not None and len(self.drafter_tree) and not self.drafter.capped:
            accepted = [result.tree.token_ids[i] for i in result.acceptance.accepted]
            own = own_acceptance(self.drafter_tree, accepted, result.acceptance.next_token)
            self.chain_gain = ema(self.chain_gain, len(own.accepted))
            stats = self.chain_by_conf.setdefault(self.conf_bin, ChainStats())
            stats.gain = ema(stats.gain, len(own.accepted))
        parts = [(self.drafter, self.drafter_tree)] if self.drafter is not None else []
        parts += [(p, tree) for p, (_, tree) in zip(self.retrieval, self.retrieval_trees)]
        observe_parts(ctx, result, parts)
