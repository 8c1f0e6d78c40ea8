"""The output layer read through its grid codes against the int8 screen (docs/benchmarks.md, 8-bit grids).

python scripts/head_probe.py MODEL CONTEXT: ms per greedy decode step (argmax only) and per 8-token
verification, the output layer on its grid, then the same backend with the grid taken off the output
layer only (greedy steps then read the int8 screen, wider forwards the float32 weight). Median of 15.
"""

import sys
import time

import torch

from ragspec.models import fast
from ragspec.models.loader import load_hf


def main(name: str, context: int) -> None:
    lm = fast.FastLM(*load_hf(name))
    ids = torch.randint(100, 20000, (context,), generator=torch.Generator().manual_seed(0))
    cache = lm.new_cache(context + 64)
    for i in range(0, context, 512):
        lm.forward(cache, ids[i : i + 512], num_logits=1)

    def ms(tokens: torch.Tensor) -> float:
        times = []
        for _ in range(15):
            cache.crop(context)
            start = time.perf_counter()
            lm.forward(cache, tokens, argmax_only=True)
            times.append(time.perf_counter() - start)
        return 1000 * sorted(times)[len(times) // 2]

    grid = lm.lm_head.grid
    for label in ("grid", "screen"):
        lm.lm_head.grid = grid if label == "grid" else None
        print(f"{name} at {context}: output layer via {label}: decode {ms(torch.tensor([5])):.1f} ms, "
              f"8-token verify {ms(torch.arange(8) + 5):.1f} ms", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
