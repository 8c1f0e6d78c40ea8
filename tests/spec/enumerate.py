"""Exact enumeration of a randomised procedure: run it once per branch of every random choice.

`law(run)` calls `run(rng)` repeatedly; each call follows a scripted prefix of choices and, when the script
runs out, reports the options of the next choice so every extension gets explored. The result maps each
outcome to its exact probability (a product of branch probabilities), with no Monte Carlo error.
"""

from __future__ import annotations

from collections import defaultdict

import torch


class _Branch(Exception):
    def __init__(self, options):
        self.options = options


class Scripted:
    """A `Randomness` that replays a script of (value, probability) choices."""

    def __init__(self, script):
        self.script, self.i, self.weight = script, 0, 1.0

    def accept(self, probability: float) -> bool:
        return self._choose([(True, probability), (False, 1.0 - probability)])

    def draw(self, probs: torch.Tensor) -> int:
        return self._choose([(t, float(p)) for t, p in enumerate(probs.tolist()) if p > 0])

    def _choose(self, options):
        if self.i < len(self.script):
            value, w = self.script[self.i]
            self.i += 1
            self.weight *= w
            return value
        raise _Branch([o for o in options if o[1] > 0])


def law(run) -> dict:
    out: dict = defaultdict(float)
    stack = [[]]
    while stack:
        script = stack.pop()
        rng = Scripted(script)
        try:
            result = run(rng)
        except _Branch as branch:
            stack.extend(script + [opt] for opt in branch.options)
            continue
        out[result] += rng.weight
    return dict(out)
