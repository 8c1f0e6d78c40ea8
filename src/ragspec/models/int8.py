"""int8 linear layers on PyTorch's quantized engine (fbgemm on x86): the drafters' int8 copies
(`fast._Linear`) and the output-layer screen of float32 targets (`screen.ScreenedHead`).

Per-output-channel symmetric weights (127 levels a side) and activations quantized per call
(`linear_dynamic`). One trap, found on an AMD EPYC with AVX2 only (2026-12-02): without VNNI, fbgemm adds
the products of each pair of uint8 activations and int8 weights in 16 bits, which saturates at 32,767
(2 x 255 x 127 does not fit). There the int8 SmolLM2 drafter matched float32's argmax on 26% of tokens
instead of 86-92%, and the screen's error bound, which assumes exact int32 sums, did not hold. With
activations on 7 bits (`reduce_range`) the pair sums fit (2 x 127 x 127). PyTorch's own
`quantize_dynamic` always reduces the range on x86; `saturates` asks the kernel once instead, so CPUs
with VNNI keep the eighth bit.
"""

from __future__ import annotations

import functools
import warnings

import torch


def quantize(weight: torch.Tensor) -> torch.Tensor:
    """weight [N, K] -> a per-channel qint8 tensor, scale max|w_i| / 127 for row i."""
    w = weight.detach().float()
    scale = (w.abs().amax(dim=1) / 127.0).clamp_min(1e-12).double()
    with warnings.catch_warnings():  # the quantized-tensor constructors carry a deprecation notice
        warnings.simplefilter("ignore")
        return torch.quantize_per_channel(w, scale, torch.zeros_like(scale, dtype=torch.long), 0, torch.qint8)


def prepack(q: torch.Tensor, bias: torch.Tensor | None = None):
    return torch.ops.quantized.linear_prepack(q, None if bias is None else bias.detach().float())


def linear(x: torch.Tensor, packed) -> torch.Tensor:
    """x [k, K] float32 -> [k, N]: x W^T on the int8 weight, activations quantized over this call's range
    (on 7 bits where the kernel would saturate on 8)."""
    return torch.ops.quantized.linear_dynamic(x, packed, saturates())


@functools.cache
def saturates() -> bool:
    """True when this CPU's int8 kernel overflows on full-range activations (see module docstring). The
    probe is the worst case: every activation and weight at its largest level, x . w = 64."""
    y = torch.ops.quantized.linear_dynamic(torch.ones(1, 64), prepack(quantize(torch.ones(16, 64))), False)
    return not torch.allclose(y, torch.full_like(y, 64.0), rtol=1e-2)
