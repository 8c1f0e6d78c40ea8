"""float32 weights that lie on 4-bit block grids, read as 4-bit codes: the same weights, a fifth of the bytes.

Why: the models ragspec pulls come from GGUF files (Q4_1, Q4_K_M) converted once to float32. Inside
each block of 32 inputs of a row, such a weight takes at most 16 values, evenly spaced:
W[n, k] = code * scale + offset with a 4-bit code, one scale and one offset per block. A decode step on
2 cores is bound by reading the weights (4 bytes each in float32), so storing the codes (half a byte)
and the two block constants (a quarter of a byte per weight) and rebuilding each weight in registers
reads about 5x fewer bytes for exactly the same float32 weights.

Exactness: `pack` keeps a layer only if the kernel's own dequantization (`grid.cpp`) returns every
weight bit for bit, with scales of at most 20 significant bits so that code * scale is exact and a
fused multiply-add gives the same weight as a multiply then an add. The products and sums then run in
float32, in another order than MKL's, as every kernel of the fast backend does (docs/design.md: the
same float32 model; logits agree to rounding). Layers whose weights are not on such a grid (float32
checkpoints, Q6_K tensors, the output layer) keep the float32 kernels.

The kernel is C++ (`models/kernels.py` builds it); where it cannot be built, or with RAGSPEC_GRID=0,
nothing changes but the speed.
"""

from __future__ import annotations

import torch

from ragspec.models import kernels

BLOCK = 32  # inputs per block (GGUF's Q4_0/Q4_1 blocks and Q4_K's sub-blocks)
SCALE_BITS = (11, 17, 20)  # fp16 scales (Q4_1), fp16 x 6-bit (Q4_K); 20 keeps code * scale exact
ROWS = 4  # rows of W per tile (grid.cpp)
MAX_ROWS = 32  # wider forwards (prefill chunks) run on the float32 weight; the grid still led at 32 rows


def kernel():
    """The compiled extension (matmul, dequantize), or None where it cannot be built or RAGSPEC_GRID=0."""
    return kernels.load("grid")


def _round_bits(x: torch.Tensor, bits: int) -> torch.Tensor:
    mantissa, exponent = torch.frexp(x.double())
    return torch.ldexp(torch.round(mantissa * 2.0**bits) / 2.0**bits, exponent).float()


def _fit(blocks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """Codes [n, B, 32] (uint8), scales and offsets [n, B] with codes * scale + offset == blocks, or None.

    The offset is the block's smallest value (code 0). The step is the span over 15 (blocks that use
    both end codes: every Q4_1 block, most Q4_K ones) or, for the rest, the smallest gap between two
    of its values, rounded to the bits a GGUF scale has; a block takes the first candidate that
    rebuilds it exactly. The gaps are sorted out only for the blocks the span did not fit."""
    shape = blocks.shape
    blocks = blocks.reshape(-1, BLOCK)
    sample = blocks[:: max(1, blocks.shape[0] // 4096)]
    if bool(((sample.sort(-1).values.diff(dim=-1) > 0).sum(-1) > 15).any()):
        return None  # more than 16 values in a block: not a 4-bit grid (float32, Q6_K, Q8_0 weights)
    low = blocks.amin(-1, keepdim=True)
    span = blocks.amax(-1, keepdim=True) - low
    codes = torch.zeros(blocks.shape, dtype=torch.uint8)
    scales = torch.ones_like(low)
    done = span[:, 0] == 0  # constant blocks keep code 0 and scale 1
    _try(blocks, low, span / 15, done, codes, scales)
    left = (~done).nonzero()[:, 0]
    if left.numel():
        sub = blocks[left]
        gaps = sub.sort(-1).values.diff(dim=-1)
        sub_done, sub_codes, sub_scales = done[left], codes[left], scales[left]
        _try(sub, low[left], torch.where(gaps > 0, gaps, torch.inf).amin(-1, keepdim=True), sub_done, sub_codes,
             sub_scales)
        done[left], codes[left], scales[left] = sub_done, sub_codes, sub_scales
    if not bool(done.all()):
        return None
    return codes.reshape(shape), scales.reshape(shape[:-1]), low.reshape(shape[:-1])


def _try(blocks: torch.Tensor, low: torch.Tensor, step: torch.Tensor, done: torch.Tensor, codes: torch.Tensor,
         scales: torch.Tensor) -> None:
    """Fill in, in place, the blocks [b, 32] not yet `done` [b] that `step` [b, 1] rebuilds once rounded to
    one of the GGUF scale widths (those that fit a sample of the blocks first; each later width sees
    only the blocks still open)."""
    sample = slice(0, 4096)

    def fitted(bits: int) -> int:
        return int(_fits(blocks[sample], low[sample], _round_bits(step[sample], bits))[1].sum())

    for bits in sorted(SCALE_BITS, key=fitted, reverse=True):
        rows = (~done).nonzero()[:, 0]
        if not rows.numel():
            return
        whole = rows.numel() == done.numel()  # the first pass reads the blocks in place
        sub, sub_low, sub_step = (blocks, low, step) if whole else (blocks[rows], low[rows], step[rows])
        scale = _round_bits(sub_step, bits)
        q, good = _fits(sub, sub_low, scale)
        hit = rows[good]
        codes[hit] = q[good].to(torch.uint8)
        scales[hit] = scale[good]
        done[hit] = True


def _fits(blocks: torch.Tensor, low: torch.Tensor, scale: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Codes (as floats, clamped to 0..15) and whether they rebuild each block exactly."""
    q = (blocks - low).div_(scale).round_().clamp_(0, 15)
    return q, (q * scale).add_(low).eq_(blocks).all(-1)


def on_grid(model: torch.nn.Module) -> bool:
    """Whether a decoder's weights lie on 4-bit grids and the kernel runs here: the first layer's MLP input
    weight, its first 64 rows, as the sample (GGUF files quantize a model's layers alike)."""
    layers = getattr(getattr(model, "model", None), "layers", None)
    mlp = getattr(layers[0], "mlp", None) if layers else None
    weight = getattr(getattr(mlp, "gate_proj", None), "weight", None)
    return weight is not None and pack(weight[:64]) is not None


class GridLinear:
    """x W^T for a float32 weight on 4-bit block grids, computed from its codes (see module docstring)."""

    def __init__(self, packed: torch.Tensor, shape: tuple[int, int]) -> None:
        self.packed, self.shape = packed, shape  # packed: grid.cpp's layout, uint8; shape: W's [N, K]
        self._ops = kernel()  # held once: __call__ runs ~120 times a decode step

    @property
    def nbytes(self) -> int:
        return self.packed.numel()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """x [M, K] float32 -> [M, N] float32."""
        return self._ops.matmul(x.contiguous(), self.packed, self.shape[0])

    def dequantize(self) -> torch.Tensor:
        return self._ops.dequantize(self.packed, *self.shape)


def _layout(codes: torch.Tensor, scales: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """grid.cpp's layout from codes [N, B, 32] and scales, offsets [N, B]: per tile of ROWS rows and
    block, the rows' 16 code bytes each, then their scales, then their offsets (one stream per tile)."""
    n, blocks, _ = codes.shape
    pad = -n % ROWS
    if pad:  # zero rows complete the last tile; their outputs are never written
        codes = torch.cat((codes, codes.new_zeros(pad, blocks, BLOCK)))
        scales = torch.cat((scales, scales.new_ones(pad, blocks)))
        offsets = torch.cat((offsets, offsets.new_zeros(pad, blocks)))
    tiles = (n + pad) // ROWS
    nibbles = (codes[..., :16] | (codes[..., 16:] << 4))  # [N', B, 16]

    def per_tile(t: torch.Tensor) -> torch.Tensor:  # [N', B, ...] -> [T, B, ROWS * ...] bytes
        return t.reshape(tiles, ROWS, blocks, -1).transpose(1, 2).reshape(tiles, blocks, -1)

    as_bytes = [per_tile(nibbles), per_tile(scales[..., None].contiguous().view(torch.uint8)),
                per_tile(offsets[..., None].contiguous().view(torch.uint8))]
    return torch.cat(as_bytes, -1).contiguous()  # [T, B, UNIT]


def pack(weight: torch.Tensor) -> GridLinear | None:
    """A GridLinear holding exactly `weight` [N, K] (float32), or None when the weight is not on 4-bit
    block grids or the kernel is unavailable (the kernel is built only once a weight fits)."""
    if weight.dim() != 2 or weight.dtype != torch.float32 or weight.shape[1] % BLOCK:
        return None
    w = weight.detach()
    n, k = w.shape
    fit = _fit(w.reshape(n, k // BLOCK, BLOCK))
    if fit is None or kernel() is None:
        return None
    grid = GridLinear(_layout(*fit), (n, k))
    if not torch.equal(grid.dequantize(), w):  # the kernel's own arithmetic, bit for bit
        return None
    return grid
