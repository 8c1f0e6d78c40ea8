"""`ragspec bench verify`: milliseconds per target forward for q new tokens at a given context length.

The cost of a verification forward over q draft tokens relative to one decode step decides how long a
draft can be and still pay. Measured for the fast backend and the stock transformers path on the same
weights, with a causal tree mask (a chain; a tree of the same size costs the same). `argmax_ms` is the
same forward when greedy acceptance needs only each row's argmax (the fast backend's int8-screened output
layer, models/screen.py), timed in alternation with the full one.
"""

from __future__ import annotations

import statistics
import time

import torch

from ragspec.engine import prefill
from ragspec.models.base import CausalLM, causal_tree_mask


def _median_ms(fns, reps: int) -> list[float]:
    """Median milliseconds of each function, called in alternation (so drift hits them alike)."""
    for fn in fns:
        fn()  # warm-up
    times = [[] for _ in fns]
    for _ in range(reps):
        for fn, ts in zip(fns, times):
            t = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t)
    return [1000 * statistics.median(ts) for ts in times]


def verify_curve(lm: CausalLM, contexts: list[int], tokens: list[int], reps: int = 5, seed: int = 0) -> list[dict]:
    """Rows {backend, context, tokens, ms, ratio_to_decode} for every (context, tokens) pair."""
    gen = torch.Generator().manual_seed(seed)
    vocab = lm.info.vocab_size
    rows = []
    for ctx in contexts:
        if lm.info.max_context and ctx + max(tokens) > lm.info.max_context:
            raise ValueError(f"context {ctx} + {max(tokens)} tokens exceeds {lm.info.name}'s {lm.info.max_context}")
        cache = lm.new_cache(ctx + max(tokens) + 8)
        prefill(lm, cache, torch.randint(0, vocab, (ctx,), generator=gen).tolist())
        decode_ms = None
        for q in tokens:
            ids = torch.randint(0, vocab, (q,), generator=gen)
            mask = causal_tree_mask(q) if q > 1 else None

            def step(argmax_only: bool = False):
                lm.forward(cache, ids, tree_mask=mask, argmax_only=argmax_only)
                cache.crop(ctx)

            ms, argmax_ms = _median_ms([step, lambda: step(True)], reps)
            decode_ms = ms if q == 1 else decode_ms
            rows.append({"backend": lm.backend, "context": ctx, "tokens": q, "ms": round(ms, 2),
                         "ratio_to_decode": round(ms / decode_ms, 3) if decode_ms else None,
                         "argmax_ms": round(argmax_ms, 2)})
    return rows
