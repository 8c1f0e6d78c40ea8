"""Adaptive draft length from observed acceptance.

Each proposer keeps an exponential moving average of how many of its drafted tokens the target accepted
per step and drafts a little past it: long drafts while it copies well, short ones when it does not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass
class DraftLength:
    min_len: int = 2
    max_len: int = 8
    alpha: float = 0.3  # EMA weight of the newest step
    slack: int = 2  # tokens drafted beyond the expected accepted length

    def __post_init__(self) -> None:
        if not 1 <= self.min_len <= self.max_len:
            raise ValueError(f"need 1 <= min_len <= max_len, got {self.min_len}, {self.max_len}")
        self.mean_accepted = float(self.max_len) / 2

    def next(self, cap: int) -> int:
        """Draft length for the next step, at most `cap`."""
        want = math.ceil(self.mean_accepted) + self.slack
        return max(0, min(cap, self.max_len, max(self.min_len, want)))

    def observe(self, accepted: int) -> None:
        self.mean_accepted = (1 - self.alpha) * self.mean_accepted + self.alpha * accepted
