"""When to speculate and how big a draft tree to verify, from measured costs and observed acceptance.

On a 2-core CPU every verified node costs arithmetic: with SmolLM2 at 1K tokens of context, 4 tokens cost
1.33x a decode step and 16 tokens 1.9x; with Qwen2.5-1.5B, bandwidth-bound, 4 tokens cost 1.03x. So the
right budget depends on the model, the context length and how well the drafts are doing. The controller
keeps exponential moving averages of
- the time of a plain step (t1) and the average extra time per verified node (c), from the steps themselves;
- the acceptance rate per drafted node (a), from the outcomes;
and moves the node budget up while a node's expected saving (a * t1, one decode step avoided per accepted
token) clearly exceeds its cost c, and down while it does not. For proposers that prune node by node
(RASD) it also fits the marginal cost of one more node, which is below c (`marginal_node_cost`).

It also gates speculation as a whole: when drafting steps cost more per emitted token than plain steps,
it decodes plainly for a cool-down that doubles while drafting keeps losing, then tries again. The cost
per emitted token is a ratio of averages (recent seconds over recent tokens), not an average of per-step
ratios: copying alternates long accepted runs with misses, and averaging per-step ratios weighs a miss
(45 ms for 1 token) as much as a hit (50 ms for 5), so it called drafting a loss while it paid.

Judging needs `min_spec_steps` drafting steps, and the gate starts afresh with every generation, so a
source that never pays (REST on chat prompts, a drafter as big as the target) used to spend 8 steps of
every drafting period losing: 4-23% below plain greedy on answers of 64-128 tokens. A clear loss is now
called after `early_steps`: when none of those steps' drafted tokens was accepted (each then emitted one
token and cost at least a plain step: a certain loss), or when the period's seconds per token exceed a
plain step by `early_margin` (a sum over the period, not the EMA, so no single step decides).

An engine that serves many requests hands what its gate learned to the next request's gate
(`GateMemory`): the node budget, the acceptance per node and the cool-down, so a source that lost on the
last request does not start the next one with a full-size tree and a fresh 8-step trial (a cool-down still
under way carries over, capped at two base cool-downs, so a request where the source pays is not held
back long by the one before it). The step times are not carried: they depend on each prompt's length,
and the first plain step measures them anew. None of this changes the output of a lossless mode, only
its speed.
"""

from __future__ import annotations

from dataclasses import dataclass


def ema(old: float | None, new: float, alpha: float = 0.2) -> float:
    """Exponential moving average; the first observation stands alone."""
    return new if old is None else (1 - alpha) * old + alpha * new


@dataclass(frozen=True)
class GateMemory:
    """What one generation's gate hands the next one on the same engine (see module docstring)."""

    budget: int
    node_accept: float
    cooldown: int  # the next cool-down's length
    cooldown_left: int  # plain steps still owed by the last cool-down


@dataclass
class SpeculationGate:
    enabled: bool = True
    max_nodes: int = 24
    min_nodes: int = 2
    alpha: float = 0.2  # EMA weight of the newest observation
    min_spec_steps: int = 8  # drafting steps observed before judging drafting as a whole
    early_steps: int = 4  # ...or before calling a clear loss (see module docstring)
    early_margin: float = 1.25  # a clear loss: the period's seconds per token over this many plain steps
    probe_every: int = 32  # a plain step every N drafting steps keeps t1 fresh
    base_cooldown: int = 8
    max_cooldown: int = 128

    def __post_init__(self) -> None:
        self.plain_step: float | None = None  # t1: seconds of a step without a draft
        self.node_cost: float | None = None  # c: extra seconds per verified node, on average
        # Least squares of a step's extra seconds on its node count, with forgetting: weight, sums of
        # x, y, x^2, xy. Its slope is the marginal cost of one more node.
        self._fit = [0.0] * 5
        self.node_accept: float = 0.5  # a: accepted tokens per drafted node
        self.spec_s: float | None = None  # EMA: seconds of a drafting step
        self.spec_tokens: float | None = None  # EMA: tokens a drafting step emits
        self.budget = self.max_nodes
        self.spec_steps = 0
        self.period = [0.0, 0, 0]  # this drafting period so far: seconds, tokens emitted, tokens accepted
        self.cooldown_left = 0
        self.cooldown = self.base_cooldown
        self.since_probe = 0

    def memory(self) -> GateMemory:
        return GateMemory(self.budget, self.node_accept, self.cooldown, self.cooldown_left)

    def resume(self, memory: GateMemory | None) -> "SpeculationGate":
        """Start from what an earlier generation's gate learned (a no-op for None)."""
        if memory is not None and self.enabled:
            self.budget = max(self.min_nodes, min(self.max_nodes, memory.budget))
            self.node_accept = memory.node_accept
            self.cooldown = max(self.base_cooldown, min(self.max_cooldown, memory.cooldown))
            # A new request may differ (a copy-heavy one after chat): it owes at most a short cool-down
            # before a trial of its own; if that trial loses too, the carried (long) cool-down follows.
            self.cooldown_left = max(0, min(memory.cooldown_left, 2 * self.base_cooldown))
        return self

    def _ema(self, old: float | None, new: float) -> float:
        return ema(old, new, self.alpha)

    def should_draft(self) -> bool:
        if not self.enabled:
            return True
        if self.cooldown_left > 0:
            self.cooldown_left -= 1
            return False
        if (self.plain_step is None and self.spec_steps >= 2) or self.since_probe >= self.probe_every:
            self.since_probe = 0
            return False  # a plain probe step
        return True

    def node_budget(self) -> int:
        return self.budget if self.enabled else self.max_nodes

    def min_node_value(self, default: float = 0.05) -> float:
        """Break-even acceptance probability of one more node: its marginal cost over a plain step's time."""
        if self.node_cost is None or not self.plain_step:
            return default
        return min(1.0, self.marginal_node_cost() / self.plain_step)

    def marginal_node_cost(self) -> float:
        """Seconds one more node adds to a step. The first extra tokens of a forward cost the most (SmolLM2
        at 1K tokens: 1 -> 2 tokens +9%, 2 -> 4 +15%, 4 -> 8 +17%, i.e. 3.3, 2.8, then 1.8 ms a token), so
        the average extra per node overrates what one more node costs. The slope of extra time on node
        count, once the observed sizes spread enough to fit one; never above the average, never below 0."""
        w, sx, sy, sxx, sxy = self._fit
        assert self.node_cost is not None
        if w < self.min_spec_steps:
            return self.node_cost
        var = sxx / w - (sx / w) ** 2
        if var < 1.0:  # node counts too alike to tell the slope from the fixed part
            return self.node_cost
        slope = (sxy / w - sx / w * sy / w) / var
        return min(self.node_cost, max(0.0, slope))

    def record(self, nodes: int, accepted: int, seconds: float, emitted: int) -> None:
        """One step: `nodes` drafted (0 = plain step), `accepted` of them kept, `emitted` tokens out."""
        if not self.enabled or emitted <= 0:
            return
        if nodes == 0:
            self.plain_step = self._ema(self.plain_step, seconds)
            return
        self.spec_steps += 1
        self.since_probe += 1
        self.node_accept = self._ema(self.node_accept, accepted / nodes)
        if self.plain_step is not None:
            extra = max(0.0, seconds - self.plain_step)
            self.node_cost = self._ema(self.node_cost, extra / nodes)
            keep = 1 - self.alpha / 4  # a longer memory than the EMAs: the fit needs a spread of sizes
            self._fit = [keep * a + b for a, b in zip(self._fit, (1.0, nodes, extra, nodes * nodes, nodes * extra))]
            self._adapt_budget()
        self.spec_s = self._ema(self.spec_s, seconds)
        self.spec_tokens = self._ema(self.spec_tokens, emitted)
        self.period = [self.period[0] + seconds, self.period[1] + emitted, self.period[2] + accepted]
        if self.plain_step is None or self.spec_steps < self.early_steps:
            return
        if self.spec_steps < self.min_spec_steps:
            if self._clear_loss():
                self._cool_down()
            return
        if self.spec_cost() > self.plain_step:  # a plain step emits exactly one token
            self._cool_down()
        else:
            self.cooldown = self.base_cooldown

    def _clear_loss(self) -> bool:
        seconds, emitted, accepted = self.period
        return accepted == 0 or seconds / emitted > self.early_margin * self.plain_step

    def _cool_down(self) -> None:
        self.cooldown_left = self.cooldown
        self.cooldown = min(self.cooldown * 2, self.max_cooldown)
        self.spec_s = self.spec_tokens = None  # judge the next drafting period afresh
        self.spec_steps = 0
        self.period = [0.0, 0, 0]

    def spec_cost(self) -> float:
        """Recent seconds per emitted token while drafting (inf before any drafting step)."""
        if self.spec_s is None or not self.spec_tokens:
            return float("inf")
        return self.spec_s / self.spec_tokens

    def _adapt_budget(self) -> None:
        value = self.node_accept * self.plain_step  # seconds saved per drafted node, on average
        if value > 1.5 * self.node_cost:
            self.budget = min(self.max_nodes, self.budget + max(1, self.budget // 4))
        elif value < self.node_cost:
            self.budget = max(self.min_nodes, self.budget - max(1, self.budget // 4))
