"""float32 weights that lie on 4- or 8-bit block grids, read as codes: the same weights, a fifth (4-bit)
or a third (8-bit) of the bytes.

Why: the models ragspec pulls come from GGUF files (Q4_1, Q4_K_M, whose small models also hold Q5_0 and
Q8_0 tensors) converted once to float32. Inside each block of 32 inputs of a row, such a weight takes at
most 16 (Q4) or 256 (Q5, Q8) evenly spaced values: W[n, k] = code * scale + offset with one scale and
one offset per block. A decode step on 2 cores is bound by reading the weights (4 bytes each in
float32), so storing the codes (half a byte or one) and the two block constants (a quarter of a byte
per weight) and rebuilding each weight in registers reads 5x (4-bit) or 3.2x (8-bit) fewer bytes for
exactly the same float32 weights.

Exactness: `pack` keeps a layer only if the kernel's own dequantization (`grid.cpp`) returns every
weight bit for bit, with scales of at most 20 (4-bit) or 16 (8-bit) significant bits so that
code * scale is exact and a fused multiply-add gives the same weight as a multiply then an add. The
products and sums then run in float32, in another order than MKL's, as every kernel of the fast backend
does (docs/design.md: the same float32 model; logits agree to rounding). Weights on neither grid
(float32 checkpoints, Q6_K tensors, whose 16-input blocks each have their own scale) keep the float32
kernels.

The kernel is C++ (`models/kernels.py` builds it); where it cannot be built, or with RAGSPEC_GRID=0,
nothing changes but the speed.
"""

from __future__ import annotations

import torch

from ragspec.models import kernels

BLOCK = 32  # inputs per block (GGUF's Q4_0/Q4_1 blocks and Q4_K's sub-blocks)
# Scale widths tried, by code width: fp16 scales (Q4_1, Q5_0, Q5_1, Q8_0), fp16 x 6-bit (Q4_K); 20 bits
# (16 for 8-bit codes) keep code * scale exact.
SCALE_BITS = {4: (11, 17, 20), 8: (11, 16)}
ROWS = 4  # rows of W per tile (grid.cpp)
MAX_ROWS = 32  # wider forwards (prefill chunks) run on the float32 weight; the grid still led at 32 rows


def kernel():
    """The compiled extension (matmul, dequantize), or None where it cannot be built or RAGSPEC_GRID=0."""
    return kernels.load("grid")


def _round_bits(x: torch.Tensor, bits: int) -> torch.Tensor:
    mantissa, exponent = torch.frexp(x.double())
    return torch.ldexp(torch.round(mantissa * 2.0**bits) / 2.0**bits, exponent).float()


def _fit(blocks: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """Codes [n, B, 32] (uint8, `bits` wide), scales and offsets [n, B] with codes * scale + offset ==
    blocks, or None. A sample of the blocks goes first, so that weights off such grids fail fast."""
    shape = blocks.shape
    blocks = blocks.reshape(-1, BLOCK)
    if _solve(blocks[:: max(1, blocks.shape[0] // 4096)], bits) is None:
        return None
    fit = _solve(blocks, bits)
    if fit is None:
        return None
    codes, scales, low = fit
    return codes.reshape(shape), scales.reshape(shape[:-1]), low.reshape(shape[:-1])


def _solve(blocks: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """`_fit` on blocks [b, 32]: codes [b, 32], scales [b], offsets [b], or None.

    The offset is the block's smallest value (code 0). The step is the first of the candidates that
    rebuilds the block exactly once rounded to the bits a GGUF scale has: for 4-bit codes the span over
    15 (blocks that use both end codes: every Q4_1 block, most Q4_K ones); for 8-bit codes the largest
    magnitude over 127 (Q8_0) or 16 (Q5_0, whose extreme value takes code -16), the span over 31 (Q5_1)
    or 255; then, for the blocks left, the smallest gap between two of the block's values."""
    if bits == 4 and bool(((blocks.sort(-1).values.diff(dim=-1) > 0).sum(-1) > 15).any()):
        return None  # more than 16 values in a block: not a 4-bit grid
    low = blocks.amin(-1, keepdim=True)
    high = blocks.amax(-1, keepdim=True)
    span = high - low
    magnitude = torch.maximum(high, -low)
    codes = torch.zeros(blocks.shape, dtype=torch.uint8)
    scales = torch.ones_like(low)
    done = span[:, 0] == 0  # constant blocks keep code 0 and scale 1
    steps = [span / 15] if bits == 4 else [magnitude / 127, magnitude / 16, span / 31, span / 255]
    for step in steps:
        _try(blocks, low, step, done, codes, scales, bits)
    left = (~done).nonzero()[:, 0]
    if left.numel():
        sub = blocks[left]
        gaps = sub.sort(-1).values.diff(dim=-1)
        sub_done, sub_codes, sub_scales = done[left], codes[left], scales[left]
        _try(sub, low[left], torch.where(gaps > 0, gaps, torch.inf).amin(-1, keepdim=True), sub_done, sub_codes,
             sub_scales, bits)
        done[left], codes[left], scales[left] = sub_done, sub_codes, sub_scales
    if not bool(done.all()):
        return None
    return codes, scales[:, 0], low[:, 0]


def _try(blocks: torch.Tensor, low: torch.Tensor, step: torch.Tensor, done: torch.Tensor, codes: torch.Tensor,
         scales: torch.Tensor, bits: int) -> None:
    """Fill in, in place, the blocks [b, 32] not yet `done` [b] that `step` [b, 1] rebuilds once rounded to
    one of the GGUF scale widths (those that fit a sample of the blocks first; each later width sees
    only the blocks still open)."""
    if bool(done.all()):
        return
    top = 2**bits - 1
    sample = slice(0, 4096)

    def fitted(width: int) -> int:
        return int(_fits(blocks[sample], low[sample], _round_bits(step[sample], width), top)[1].sum())

    for width in sorted(SCALE_BITS[bits], key=fitted, reverse=True):
        rows = (~done).nonzero()[:, 0]
        if not rows.numel():
            return
        whole = rows.numel() == done.numel()  # the first pass reads the blocks in place
        sub, sub_low, sub_step = (blocks, low, step) if whole else (blocks[rows], low[rows], step[rows])
        scale = _round_bits(sub_step, width)
        q, good = _fits(sub, sub_low, scale, top)
        hit = rows[good]
        codes[hit] = q[good].to(torch.uint8)
        scales[hit] = scale[good]
        done[hit] = True


def _fits(blocks: torch.Tensor, low: torch.Tensor, scale: torch.Tensor, top: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Codes (as floats, clamped to 0..top) and whether they rebuild each block exactly."""
    q = (blocks - low).div_(scale).round_().clamp_(0, top)
    return q, (q * scale).add_(low).eq_(blocks).all(-1)


def on_grid(model: torch.nn.Module) -> bool:
    """Whether a decoder's weights lie on 4- or 8-bit grids and the kernel runs here: the first layer's MLP input
    weight, its first 64 rows, as the sample (GGUF files quantize a model's layers alike)."""
    layers = getattr(getattr(model, "model", None), "layers", None)
    mlp = getattr(layers[0], "mlp", None) if layers else None
    weight = getattr(getattr(mlp, "gate_proj", None), "weight", None)
    return weight is not None and pack(weight[:64]) is not None


class GridLinear:
    """x W^T for a float32 weight on 4- or 8-bit block grids, computed from its codes (module docstring)."""

    def __init__(self, packed: torch.Tensor, shape: tuple[int, int], bits: int) -> None:
        self.packed, self.shape, self.bits = packed, shape, bits  # packed: grid.cpp's layout, uint8; W: [N, K]
        self._ops = kernel()  # held once: __call__ runs ~120 times a decode step

    @property
    def nbytes(self) -> int:
        return self.packed.numel()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """x [M, K] float32 -> [M, N] float32."""
        return self._ops.matmul(x.contiguous(), self.packed, self.shape[0], self.bits)

    def dequantize(self) -> torch.Tensor:
        return self._ops.dequantize(self.packed, *self.shape, self.bits)


def _layout(codes: torch.Tensor, scales: torch.Tensor, offsets: torch.Tensor, bits: int) -> torch.Tensor:
    """grid.cpp's layout from codes [N, B, 32] and scales, offsets [N, B]: per tile of ROWS rows and
    block, the rows' code bytes (16 of nibbles or 32) each, then their scales, then their offsets (one
    stream per tile)."""
    n, blocks, _ = codes.shape
    pad = -n % ROWS
    if pad:  # zero rows complete the last tile; their outputs are never written
        codes = torch.cat((codes, codes.new_zeros(pad, blocks, BLOCK)))
        scales = torch.cat((scales, scales.new_ones(pad, blocks)))
        offsets = torch.cat((offsets, offsets.new_zeros(pad, blocks)))
    tiles = (n + pad) // ROWS
    if bits == 4:
        codes = codes[..., :16] | (codes[..., 16:] << 4)  # [N', B, 16]

    def per_tile(t: torch.Tensor) -> torch.Tensor:  # [N', B, ...] -> [T, B, ROWS * ...] bytes
        return t.reshape(tiles, ROWS, blocks, -1).transpose(1, 2).reshape(tiles, blocks, -1)

    as_bytes = [per_tile(codes), per_tile(scales[..., None].contiguous().view(torch.uint8)),
                per_tile(offsets[..., None].contiguous().view(torch.uint8))]
    return torch.cat(as_bytes, -1).contiguous()  # [T, B, UNIT]


def pack(weight: torch.Tensor) -> GridLinear | None:
    """A GridLinear holding exactly `weight` [N, K] (float32): 4-bit codes where its blocks take at most 16
    values, else 8-bit ones; None when it lies on neither grid or the kernel is unavailable (the kernel
    is built only once a weight fits)."""
    if weight.dim() != 2 or weight.dtype != torch.float32 or weight.shape[1] % BLOCK:
        return None
    w = weight.detach()
    n, k = w.shape
    for bits in (4, 8):
        fit = _fit(w.reshape(n, k // BLOCK, BLOCK), bits)
        if fit is not None:
            break
    if fit is None or kernel() is None:
        return None
    grid = GridLinear(_layout(*fit, bits), (n, k), bits)
    if not torch.equal(grid.dequantize(), w):  # the kernel's own arithmetic, bit for bit
        return None
    return grid
