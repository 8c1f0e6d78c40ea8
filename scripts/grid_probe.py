"""Throughput of the grid kernel alone on Qwen 1.5B's weight shapes (docs/benchmarks.md, the verify curve).

python scripts/grid_probe.py: ms (median of 15) and G multiply-adds a second of `grid.GridLinear`'s
product at 1, 4, 8, 16 and 32 rows of x, for random weights on 4-bit grids of `gate_up`'s and `down`'s
shapes, `qkv`'s, and a quarter of the output layer on an 8-bit grid. A kernel variant is measured by
running this before and after rebuilding `grid.cpp` (the build is keyed by the source).
"""

import statistics
import time

import torch

from ragspec.models import grid


def on_grid(n: int, k: int, bits: int) -> torch.Tensor:
    """A float32 weight [n, k] on a 4-bit grid (code * scale + offset per 32) or an 8-bit one (per 16)."""
    g = torch.Generator().manual_seed(n + k)
    step = 32 if bits == 4 else 16
    d = (torch.rand(n, k // step, 1, generator=g) * 0.01 + 1e-3).half().float()
    if bits == 4:
        q = torch.randint(0, 16, (n, k // step, step), generator=g).float()
        return (d * q + (-8 * d).half().float()).reshape(n, k)
    return (d * torch.randint(-127, 128, (n, k // step, step), generator=g).float()).reshape(n, k)


def main() -> None:
    shapes = [("gate_up", 17920, 1536, 4), ("down", 1536, 8960, 4), ("qkv", 2048, 1536, 4),
              ("lm_head/4", 151936 // 4, 1536, 8)]
    for name, n, k, bits in shapes:
        weight = grid.pack(on_grid(n, k, bits))
        assert weight is not None and weight.bits == bits, name
        cells = []
        for rows in (1, 4, 8, 16, 32):
            x = torch.randn(rows, k)
            for _ in range(3):
                weight(x)
            times = []
            for _ in range(15):
                t = time.perf_counter()
                weight(x)
                times.append(time.perf_counter() - t)
            ms = 1000 * statistics.median(times)
            cells.append(f"{rows}: {ms:.2f} ms {rows * n * k / ms / 1e6:.0f} G/s")
        print(f"{name} ({n} x {k}, {bits}-bit) | " + " | ".join(cells), flush=True)


if __name__ == "__main__":
    main()
