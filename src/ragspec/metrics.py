"""Speculative-decoding statistics with vLLM's definitions, split by draft source.

- acceptance_rate = accepted draft tokens / drafted tokens (for trees, drafted = nodes verified);
- mean_acceptance_length = 1 + accepted / num_drafts (conventionally it includes the bonus token);
- per-position acceptance rate = drafts that accepted at least i tokens / num_drafts.
A node proposed by several sources (after fusion) counts for each of them.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from ragspec.spec.acceptance import Acceptance
from ragspec.spec.tree import TokenTree


@dataclass
class SourceStats:
    drafted: int = 0
    accepted: int = 0

    @property
    def acceptance_rate(self) -> float:
        return self.accepted / self.drafted if self.drafted else 0.0


@dataclass
class SpecStats:
    """Counters for one generation (or a sum of generations: see `add`)."""

    num_steps: int = 0  # target forwards after prefill
    num_drafts: int = 0  # steps that verified a non-empty draft
    num_draft_tokens: int = 0
    num_accepted_tokens: int = 0
    num_emitted_tokens: int = 0
    accepted_per_pos: list[int] = field(default_factory=list)
    by_source: dict[str, SourceStats] = field(default_factory=lambda: defaultdict(SourceStats))
    prefill_s: float = 0.0
    draft_s: float = 0.0
    verify_s: float = 0.0
    total_s: float = 0.0
    ttft_s: float = 0.0
    ttft_tokens: int = 0  # tokens returned by the step that returned the first one (may be a whole draft)
    num_plain_fallback_steps: int = 0  # steps where the controller chose not to draft

    def observe(self, tree: TokenTree, acceptance: Acceptance, emitted: int) -> None:
        self.num_steps += 1
        self.num_emitted_tokens += emitted
        if not len(tree):
            return
        self.num_drafts += 1
        self.num_draft_tokens += len(tree)
        accepted = len(acceptance.accepted)
        self.num_accepted_tokens += accepted
        while len(self.accepted_per_pos) < accepted:
            self.accepted_per_pos.append(0)
        for i in range(accepted):
            self.accepted_per_pos[i] += 1
        for node, sources in enumerate(tree.sources):
            for s in sources:
                self.by_source[s].drafted += 1
        for node in acceptance.accepted:
            for s in tree.sources[node]:
                self.by_source[s].accepted += 1

    def add(self, other: "SpecStats") -> None:
        """Accumulate another generation's counters (for dataset-level figures)."""
        for name in ("num_steps", "num_drafts", "num_draft_tokens", "num_accepted_tokens", "num_emitted_tokens",
                     "prefill_s", "draft_s", "verify_s", "total_s", "ttft_s", "ttft_tokens",
                     "num_plain_fallback_steps"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for i, n in enumerate(other.accepted_per_pos):
            if i >= len(self.accepted_per_pos):
                self.accepted_per_pos.append(0)
            self.accepted_per_pos[i] += n
        for s, st in other.by_source.items():
            self.by_source[s].drafted += st.drafted
            self.by_source[s].accepted += st.accepted

    @property
    def acceptance_rate(self) -> float:
        return self.num_accepted_tokens / self.num_draft_tokens if self.num_draft_tokens else 0.0

    @property
    def mean_acceptance_length(self) -> float:
        return 1.0 + self.num_accepted_tokens / self.num_drafts if self.num_drafts else 1.0

    def decode_tokens(self, new_tokens: int) -> int:
        """Of a generation's `new_tokens` (as returned, after stop trimming), those after the first step:
        the ones `total_s - ttft_s` paid for. Counting the first step's others too (`new - 1`) would credit
        a method whose first draft is accepted whole with tokens whose time is not in the denominator."""
        return max(0, new_tokens - self.ttft_tokens)

    def decode_rate(self, new_tokens: int) -> float:
        """Tokens per second after the first step (see `decode_tokens`)."""
        decode_s = self.total_s - self.ttft_s
        tokens = self.decode_tokens(new_tokens)
        return tokens / decode_s if tokens and decode_s > 0 else 0.0

    @property
    def tokens_per_step(self) -> float:
        return self.num_emitted_tokens / self.num_steps if self.num_steps else 0.0

    def to_dict(self) -> dict:
        drafts = max(self.num_drafts, 1)
        return {
            "num_steps": self.num_steps,
            "num_drafts": self.num_drafts,
            "num_draft_tokens": self.num_draft_tokens,
            "num_accepted_tokens": self.num_accepted_tokens,
            "num_emitted_tokens": self.num_emitted_tokens,
            "acceptance_rate": round(self.acceptance_rate, 4),
            "mean_acceptance_length": round(self.mean_acceptance_length, 4),
            "tokens_per_step": round(self.tokens_per_step, 4),
            "per_position_acceptance_rate": [round(n / drafts, 4) for n in self.accepted_per_pos],
            "by_source": {s: {"drafted": st.drafted, "accepted": st.accepted,
                              "acceptance_rate": round(st.acceptance_rate, 4)}
                          for s, st in sorted(self.by_source.items())},
            "num_plain_fallback_steps": self.num_plain_fallback_steps,
            "prefill_s": round(self.prefill_s, 4),
            "draft_s": round(self.draft_s, 4),
            "verify_s": round(self.verify_s, 4),
            "ttft_s": round(self.ttft_s, 4),
            "ttft_tokens": self.ttft_tokens,
            "total_s": round(self.total_s, 4),
        }
