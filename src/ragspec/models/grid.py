"""float32 weights that lie on 4- or 8-bit block grids, read as codes: the same weights, a fifth (4-bit)
or a third (8-bit) of the bytes.

Why: the models ragspec pulls come from GGUF files (Q4_1, Q4_K_M, which also holds Q5_0, Q6_K and Q8_0
tensors) converted once to float32. Inside each block of 32 inputs of a row, such a weight takes at most
16 evenly spaced values (Q4: W = code * scale + offset, one scale and one offset per block), or it is a
signed code of up to 8 bits times one scale per 16 inputs (Q5_0, Q6_K, Q8_0). A decode step on 2 cores
is bound by reading the weights (4 bytes each in float32), so storing the codes (half a byte or one)
and the block constants (a quarter of a byte per weight) and rebuilding each weight in registers reads
5x (4-bit) or 3.2x (8-bit) fewer bytes for exactly the same float32 weights.

Exactness: `pack` keeps a layer only if the kernel's own dequantization (`grid.cpp`) returns every
weight bit for bit. 4-bit: with scales of at most 20 significant bits, code * scale is exact, so a fused
multiply-add gives the same weight as a multiply then an add. 8-bit: the weight is one float32 product,
rounded once, as GGUF's dequantization rounded it. The products and sums with the activations then run
in float32, in another order than MKL's, as every kernel of the fast backend does (docs/design.md: the
same float32 model; logits agree to rounding). Weights on neither grid (float32 checkpoints, Q5_1,
other GGUF types) keep the float32 kernels.

The kernel is C++ (`models/kernels.py` builds it); where it cannot be built, or with RAGSPEC_GRID=0,
nothing changes but the speed.
"""

from __future__ import annotations

from functools import partial

import torch

from ragspec.models import kernels

BLOCK = 32  # inputs per block (GGUF's Q4_0/Q4_1 blocks and Q4_K's sub-blocks)
SCALE_BITS = (11, 17, 20)  # 4-bit scales: fp16 (Q4_1), fp16 x 6-bit (Q4_K); 20 keeps code * scale exact
CHUNK = 1 << 16  # blocks solved at a time (see _fit)
HALF = 16  # inputs per 8-bit scale (Q6_K's sub-blocks; Q8_0 and Q5_0 blocks are two halves alike)
# Codes a Q6_K half's largest magnitude may take, in the order tried (see _solve8).
HALF_EXTREMES = (*range(32, 0, -1), *range(33, 129))
ROWS = 4  # rows of W per tile (grid.cpp)
MAX_ROWS = 32  # wider forwards (prefill chunks) run on the float32 weight; the grid still led at 32 rows


def kernel():
    """The compiled extension (matmul, dequantize), or None where it cannot be built or RAGSPEC_GRID=0."""
    return kernels.load("grid")


def _round_bits(x: torch.Tensor, bits: int) -> torch.Tensor:
    mantissa, exponent = torch.frexp(x.double())
    return torch.ldexp(torch.round(mantissa * 2.0**bits) / 2.0**bits, exponent).float()


def _fit(blocks: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """The codes [n, B, 32] (bytes) and two floats per block [n, B] each that rebuild `blocks` exactly,
    or None: for 4-bit codes the scales and offsets, for 8-bit ones the scales of each half. A sample of
    the blocks goes first, so that weights off such grids fail fast; then CHUNK blocks at a time, so that
    the temporaries stay small (an output layer holds up to 7M blocks)."""
    shape = blocks.shape
    blocks = blocks.reshape(-1, BLOCK)
    sample = blocks[:: max(1, blocks.shape[0] // 4096)]
    if bits == 4 and bool(((sample.sort(-1).values.diff(dim=-1) > 0).sum(-1) > 15).any()):
        return None  # more than 16 values in a block: not a 4-bit grid
    solve = _solve4 if bits == 4 else partial(_solve8, order=_order8(sample))
    if solve(sample) is None:
        return None
    parts = [solve(chunk) for chunk in blocks.split(CHUNK)]
    if any(part is None for part in parts):
        return None
    codes, a, b = (torch.cat(column) for column in zip(*parts))
    return codes.reshape(shape), a.reshape(shape[:-1]), b.reshape(shape[:-1])


def _solve4(blocks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """4-bit codes [b, 32] (uint8), scales [b] and offsets [b] for blocks [b, 32], or None.

    The offset is the block's smallest value (code 0). The step is the span over 15 (blocks that use
    both end codes: every Q4_1 block, most Q4_K ones) or, for the rest, the smallest gap between two
    of its values over 1, 2, ... 15 (a block of three values may have no two adjacent codes), rounded
    to the bits a GGUF scale has; a block takes the first candidate that rebuilds it exactly. The gaps
    are sorted out only for the blocks the span did not fit."""
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
        gap = torch.where(gaps > 0, gaps, torch.inf).amin(-1, keepdim=True)
        sub_done, sub_codes, sub_scales = done[left], codes[left], scales[left]
        for steps in range(1, 16):  # the smallest gap spans 1, then more steps (blocks of few values)
            if bool(sub_done.all()):
                break
            _try(sub, low[left], gap / steps, sub_done, sub_codes, sub_scales)
        done[left], codes[left], scales[left] = sub_done, sub_codes, sub_scales
    if not bool(done.all()):
        return None
    return codes, scales[:, 0], low[:, 0]


def _order8(blocks: torch.Tensor) -> list[tuple[int, bool]]:
    """The candidate scales of `_solve8`, (extreme code, over the whole block?), those that rebuild most
    halves of the sample `blocks` [b, 32] first (the order is stable: ties keep GGUF's likely order)."""
    halves = blocks.reshape(-1, HALF)
    magnitude = halves.abs().amax(-1, keepdim=True)
    per_block = _per_block(magnitude)

    def fitted(candidate: tuple[int, bool]) -> int:
        scale = _round_bits((per_block if candidate[1] else magnitude) / candidate[0], 18)
        return int(_fits8(halves, scale)[1].sum())

    return sorted([(127, True), (16, True), *((e, False) for e in HALF_EXTREMES)], key=fitted, reverse=True)


def _per_block(magnitude: torch.Tensor) -> torch.Tensor:
    """[h, 1] largest magnitude of each half -> [h, 1] that of its block of 32."""
    return magnitude.reshape(-1, BLOCK // HALF).amax(-1, keepdim=True).expand(-1, BLOCK // HALF).reshape(-1, 1)


def _solve8(blocks: torch.Tensor,
            order: list[tuple[int, bool]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """8-bit codes [b, 32] (int8 as uint8) and the scales [b] of each half for blocks [b, 32], or None:
    each half of 16 is fl(code * scale), one float32 rounding, which is how GGUF's Q8_0 (d * q), Q5_0
    (d * (q - 16)) and Q6_K (d * sc * (q - 32), a scale per 16) dequantize.

    The scale is the largest magnitude over its code, tried for the codes GGUF's quantizers give their
    extreme value: the whole block's over 127 (Q8_0) or 16 (Q5_0), the half's over about 32 (Q6_K), and
    every other code, in `order` (`_order8`); rounded to 18 significant bits (a float16 scale times an
    8-bit one has at most 18), which removes the rounding of the product. A half takes the first that
    rebuilds it exactly; each pass sees only the halves still open."""
    halves = blocks.reshape(-1, HALF)
    magnitude = halves.abs().amax(-1, keepdim=True)  # [h, 1]
    per_block = _per_block(magnitude)  # Q8_0 and Q5_0 scale whole blocks
    codes = torch.zeros(halves.shape, dtype=torch.int8)
    scales = torch.ones_like(magnitude)
    done = magnitude[:, 0] == 0  # zero halves keep code 0 and scale 1
    for extreme, whole_block in order:
        rows, (sub, over) = _open(done, halves, per_block if whole_block else magnitude)
        if not rows.numel():
            break
        scale = _round_bits(over / extreme, 18)
        _record(rows, *_fits8(sub, scale), scale, done, codes, scales)
    if not bool(done.all()):
        return None
    scales = scales.reshape(-1, BLOCK // HALF)
    return codes.reshape(-1, BLOCK).view(torch.uint8), scales[:, 0].contiguous(), scales[:, 1].contiguous()


def _try(blocks: torch.Tensor, low: torch.Tensor, step: torch.Tensor, done: torch.Tensor, codes: torch.Tensor,
         scales: torch.Tensor) -> None:
    """Fill in, in place, the blocks [b, 32] not yet `done` [b] that `step` [b, 1] rebuilds once rounded to
    one of the GGUF scale widths (those that fit a sample of the blocks first; each later width sees
    only the blocks still open)."""
    sample = slice(0, 4096)

    def fitted(width: int) -> int:
        return int(_fits(blocks[sample], low[sample], _round_bits(step[sample], width))[1].sum())

    for width in sorted(SCALE_BITS, key=fitted, reverse=True):
        rows, (sub, sub_low, sub_step) = _open(done, blocks, low, step)
        if not rows.numel():
            return
        scale = _round_bits(sub_step, width)
        _record(rows, *_fits(sub, sub_low, scale), scale, done, codes, scales)


def _fits(blocks: torch.Tensor, low: torch.Tensor, scale: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Codes (as floats, clamped to 0..15) and whether they rebuild each block exactly."""
    q = (blocks - low).div_(scale).round_().clamp_(0, 15)
    return q, (q * scale).add_(low).eq_(blocks).all(-1)


def _fits8(halves: torch.Tensor, scale: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Signed codes (as floats) and whether fl(code * scale) rebuilds each half exactly."""
    q = (halves / scale).round_().clamp_(-128, 127)
    return q, (q * scale).eq_(halves).all(-1)


def _open(done: torch.Tensor, *tensors: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The rows not yet `done` and those rows of each tensor (the tensors themselves while none is done)."""
    rows = (~done).nonzero()[:, 0]
    return rows, [t if rows.numel() == done.numel() else t[rows] for t in tensors]


def _record(rows: torch.Tensor, q: torch.Tensor, good: torch.Tensor, scale: torch.Tensor, done: torch.Tensor,
            codes: torch.Tensor, scales: torch.Tensor) -> None:
    """Keep, in place, the codes and scales of the `rows` that fit (`good`) and mark them done."""
    hit = rows[good]
    codes[hit] = q[good].to(codes.dtype)
    scales[hit] = scale[good]
    done[hit] = True


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
    """grid.cpp's layout from codes [N, B, 32] and two floats per block [N, B] each (`_fit`): per tile of
    ROWS rows and block, the rows' code bytes (16 of nibbles or 32) each, then their first floats, then
    their second (one stream per tile)."""
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


class GridStack:
    """x W^T for a fused weight whose row blocks lie on different grids, one GridLinear each, outputs
    side by side. The fast backend fuses q, k and v (and gate and up) into one weight, while a GGUF
    Q4_K_M file keeps some layers' v_proj in Q6_K next to Q4_K q and k: no single grid holds such a
    fusion, but each part does (Qwen 1.5B: half its layers)."""

    def __init__(self, parts: list[GridLinear]) -> None:
        self.parts = parts
        self.shape = (sum(p.shape[0] for p in parts), parts[0].shape[1])
        self.bits = tuple(p.bits for p in parts)

    @property
    def nbytes(self) -> int:
        return sum(p.nbytes for p in self.parts)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """x [M, K] float32 -> [M, N] float32."""
        x = x.contiguous()
        return torch.cat([p(x) for p in self.parts], dim=-1)

    def dequantize(self) -> torch.Tensor:
        return torch.cat([p.dequantize() for p in self.parts])


def pack(weight: torch.Tensor, parts: tuple[int, ...] | None = None) -> GridLinear | GridStack | None:
    """A GridLinear holding exactly `weight` [N, K] (float32): 4-bit codes where its blocks take at most 16
    values, else 8-bit ones; None when it lies on neither grid or the kernel is unavailable (the kernel
    is built only once a weight fits). `parts`: the row counts of a fused weight's pieces; when the whole
    does not fit one grid but every piece fits its own, a GridStack of them."""
    if parts is not None and sum(parts) != weight.shape[0]:
        raise ValueError(f"parts {parts} do not add up to the weight's {weight.shape[0]} rows")
    whole = _pack(weight)
    if whole is not None or not parts or len(parts) < 2:
        return whole
    pieces = [_pack(piece) for piece in weight.split(list(parts))]
    return GridStack(pieces) if all(p is not None for p in pieces) else None


def _pack(weight: torch.Tensor) -> GridLinear | None:
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
