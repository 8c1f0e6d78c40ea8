"""Automatic fallback to plain decoding when speculation does not pay.

On a 2-core CPU a verification forward over many nodes costs real arithmetic, and more so at long
context, so drafting loses whenever acceptance is low. The gate compares seconds per emitted token of
the recent drafting steps with that of plain steps (steps where the proposer had nothing, or probes),
both as exponential moving averages. When drafting is slower it switches to plain decoding for a
cool-down that doubles each time drafting fails again, then tries drafting again. Whether a step drafts
never changes the output of a lossless mode, only its speed.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class SpeculationGate:
    enabled: bool = True
    alpha: float = 0.25  # EMA weight of the newest step
    min_spec_steps: int = 4  # drafting steps observed before judging
    probe_every: int = 32  # a plain step every N drafting steps keeps the plain estimate fresh
    base_cooldown: int = 16
    max_cooldown: int = 512

    def __post_init__(self) -> None:
        self.spec_cost: float | None = None  # seconds per emitted token while drafting
        self.plain_cost: float | None = None  # seconds per emitted token without a draft
        self.spec_steps = 0
        self.cooldown_left = 0
        self.cooldown = self.base_cooldown
        self.since_probe = 0

    def should_draft(self) -> bool:
        if not self.enabled:
            return True
        if self.cooldown_left > 0:
            self.cooldown_left -= 1
            return False
        if self.plain_cost is None and self.spec_steps >= self.min_spec_steps or self.since_probe >= self.probe_every:
            self.since_probe = 0
            return False  # a plain probe step
        return True

    def record(self, drafted: bool, seconds: float, emitted: int) -> None:
        if not self.enabled or emitted <= 0:
            return
        cost = seconds / emitted
        if not drafted:
            self.plain_cost = cost if self.plain_cost is None else (1 - self.alpha) * self.plain_cost + self.alpha * cost
            return
        self.spec_steps += 1
        self.since_probe += 1
        self.spec_cost = cost if self.spec_cost is None else (1 - self.alpha) * self.spec_cost + self.alpha * cost
        if self.plain_cost is None or self.spec_steps < self.min_spec_steps:
            return
        if self.spec_cost > self.plain_cost:
            self.cooldown_left = self.cooldown
            self.cooldown = min(self.cooldown * 2, self.max_cooldown)
            self.spec_cost = None  # judge the next drafting period on fresh evidence
            self.spec_steps = 0
        else:
            self.cooldown = self.base_cooldown
