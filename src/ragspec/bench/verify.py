"""`ragspec bench verify`: milliseconds per target forward for q new tokens at a given context length.

The cost of a verification forward over q draft tokens relative to one decode step decides how long a
draft can be and still pay. Measured for the fast backend and the stock transformers path on the same
weights, with a causal tree mask (a chain; a tree of the same size costs the same).
"""

from __future__ import annotations

import statistics
import time

import torch

from ragspec.engine import prefill
from ragspec.models.base import CausalLM, causal_tree_mask


def _median_ms(fn, reps: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


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

            def step():
                lm.forward(cache, ids, tree_mask=mask)
                cache.crop(ctx)

            ms = _median_ms(step, reps)
            decode_ms = ms if q == 1 else decode_ms
            rows.append({"backend": lm.backend, "context": ctx, "tokens": q, "ms": round(ms, 2),
                         "ratio_to_decode": round(ms / decode_ms, 3) if decode_ms else None})
    return rows
