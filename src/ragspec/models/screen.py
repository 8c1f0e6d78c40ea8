"""Exact greedy argmax that reads a quarter of the output layer: an int8 screen, then float32 for the few.

Why: a float32 decode step reads every weight once, and the output layer (vocabulary x hidden) is 15% of
Qwen2.5-1.5B's bytes and 21% of SmolLM2-135M's. Greedy decoding and greedy verification only need the
argmax of each row. An int8 copy of the layer (per-row scales, fbgemm's dynamic linear, a quarter of the
bytes) gives every logit to within a bound that follows from the two roundings; only the tokens whose
upper bound reaches the best lower bound can hold the maximum, and those few are recomputed in float32
from the original rows. So the argmax is the float32 logits' argmax; every other entry is -inf, and the
result is for taking the argmax only. (The recomputed rows go through a smaller matmul than the full
layer's, which may round a dot product differently in the last bit: that can only matter for two logits
tied to float32 rounding, the same caveat as between any two backends.) Memory: an int8 copy of the layer
(V x C bytes: 233 MB for Qwen2.5-1.5B) next to the float32 one.

The bound, for logit i of a row x (w_i the float32 row, w^_i its int8 rounding, x^ the activation's):
  |w_i . x - w^_i . x^| <= |w^_i . (x - x^)| + |(w_i - w^_i) . x|
                        <= (step_x / 2) * ||w^_i||_1 + (step_w_i / 2) * ||x||_1,
step_w_i = max|w_i| / 127 (the weight rounding) and step_x = (max(x, 0) - min(x, 0)) / 127: fbgemm
quantizes a call's activations over that range onto 256 or, with `reduce_range`, 128 levels (128 is the
coarser). The int8 products are summed exactly in int32: on CPUs whose kernel would saturate 16-bit
pair sums, `int8.linear` quantizes activations to 7 bits so they fit (models/int8.py). The float32
reference (the full layer's own dot products) differs from the real-number logit by at most about
hidden * 2^-24 * sum_j |w_ij x_j|, which is covered by widening the second term (the factor `_float`).

Final hidden states carry a few huge channels (Qwen2.5-1.5B: 113 where most are under 3), and with one
quantization range per call they would make step_x, and so the bound, useless (every token a candidate).
So the channels that were largest in the first call (`OUTLIERS` of them, which recur: massive
activations sit in fixed channels) are taken out of the int8 product and added back exactly in float32
from a small [V, OUTLIERS] copy. A later call whose large channels fall elsewhere stays exact, with a
looser bound and more candidates.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from ragspec.models import int8

LEVELS = 127  # the coarsest grid fbgemm puts activations on (reduce_range: 7 bits)
OUTLIERS = 32  # channels added exactly in float32 instead of through the int8 product
# Past this share of the vocabulary in candidates (flat rows: the model is unsure, or fed noise), copying
# their float32 rows costs more than the full layer: fall back to it.
MAX_CANDIDATE_SHARE = 1 / 16
# One row only: its passes over [rows, V] and the union of the rows' candidates grow with the rows while
# the bytes it saves do not. Measured on real text (scripts/screen_probe.py, docs/benchmarks.md): a decode
# step gains 3-14%, an 8-token forward gains or loses up to 9% by model and context.
MAX_ROWS = 1


class ScreenedHead:
    """y = x W^T for argmax only (see module docstring). weight: [V, C] float32, kept for the recompute;
    `full`: the float32 layer to use instead when the screen rules out too little (default F.linear)."""

    def __init__(self, weight: torch.Tensor, full: Callable[[torch.Tensor], torch.Tensor] | None = None) -> None:
        q = int8.quantize(weight)
        step = q.q_per_channel_scales().float()  # [V] max|w_i| / 127
        self.weight = weight
        self.full = full or (lambda x: F.linear(x, weight))
        self.packed = int8.prepack(q)
        hidden = weight.shape[1]
        self._float = 1 + 2 * hidden * 2.0**-24 * 254  # float32 rounding, relative to the weight term
        self.half_step = step / 2 * self._float  # [V]
        self.l1 = q.dequantize().abs().sum(dim=1)  # [V] ||w^_i||_1
        self.outliers: torch.Tensor | None = None  # [OUTLIERS] channel ids, chosen on the first call
        self.outlier_w: torch.Tensor | None = None  # [V, OUTLIERS] float32 columns of the weight

    def bounds(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x: [k, C] float32 -> (approx, slack), each [k, V]: every float32 logit lies in approx +- slack."""
        if self.outliers is None:
            self.outliers = x.abs().amax(dim=0).topk(min(OUTLIERS, x.shape[1])).indices.sort().values
            self.outlier_w = self.weight.detach()[:, self.outliers].float().contiguous()
        rest = x.clone()
        rest[:, self.outliers] = 0
        approx = int8.linear(rest, self.packed)  # [k, V]; exact int32 sums (int8.saturates)
        approx.addmm_(x[:, self.outliers], self.outlier_w.T)
        step_x = (rest.max().clamp_min(0) - rest.min().clamp_max(0)) / LEVELS
        slack = torch.outer(x.abs().sum(dim=1), self.half_step)  # [k, V]
        slack.add_(self.l1, alpha=float(step_x) / 2)
        return approx, slack

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """x: [k, C] float32 -> [k, V]: the float32 logits where a row's maximum may be, -inf elsewhere."""
        if x.shape[0] > MAX_ROWS:
            return self.full(x)
        approx, slack = self.bounds(x)
        best_low = (approx - slack).amax(dim=1, keepdim=True)  # [k, 1]
        candidates = torch.nonzero((approx + slack >= best_low).any(dim=0)).squeeze(1)  # [m]
        if candidates.numel() > MAX_CANDIDATE_SHARE * approx.shape[1]:
            return self.full(x)
        out = torch.full_like(approx, float("-inf"))
        out[:, candidates] = F.linear(x, self.weight[candidates])
        return out
