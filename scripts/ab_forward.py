"""A/B one decode or verification forward of two versions of the fast backend, interleaved in one process.

The machines here are shared and their speed drifts by 10-20% between runs, so two versions of
`ragspec/models/fast.py` are compared step by step, alternating, on the same weights and prompt:

    git show f49cff1:src/ragspec/models/fast.py > /tmp/fast_old.py
    .venv/bin/python scripts/ab_forward.py --old /tmp/fast_old.py --model smollm2-135m --context 800 --quantize int8

It prints the median and first quartile of each version's step time and the largest logit difference.
"""

from __future__ import annotations

import argparse
import importlib.util
import time

import torch

from ragspec.models import fast
from ragspec.models.loader import load_hf


def _load_module(path: str):
    spec = importlib.util.spec_from_file_location("fast_old", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--old", required=True, help="path to the other version of ragspec/models/fast.py")
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--context", type=int, default=800)
    ap.add_argument("--tokens", type=int, default=1, help="tokens per forward (1 = a decode step)")
    ap.add_argument("--quantize", default="none", choices=["none", "int8"])
    ap.add_argument("--reps", type=int, default=300)
    args = ap.parse_args()
    model, tokenizer, name = load_hf(args.model)
    quantize = None if args.quantize == "none" else args.quantize
    lms = {"old": _load_module(args.old).FastLM(model, tokenizer, name, quantize=quantize),
           "new": fast.FastLM(model, tokenizer, name, quantize=quantize)}
    torch.manual_seed(0)
    prompt = torch.randint(100, 20000, (args.context,))
    step_ids = torch.randint(100, 20000, (args.tokens,))
    caches, times, logits = {}, {k: [] for k in lms}, {}
    for k, lm in lms.items():
        caches[k] = lm.new_cache(args.context + args.tokens + 16)
        lm.forward(caches[k], prompt, num_logits=1)
    for r in range(args.reps):
        for k in ("old", "new") if r % 2 else ("new", "old"):
            caches[k].crop(args.context)
            t = time.perf_counter()
            logits[k] = lms[k].forward(caches[k], step_ids)
            times[k].append(time.perf_counter() - t)
    for k, ts in times.items():
        ts = sorted(ts[20:])  # the first steps warm the caches and allocator
        print(f"{k}: {args.model} {args.quantize} context {args.context}, {args.tokens} token(s): "
              f"median {1000 * ts[len(ts) // 2]:.2f} ms, p25 {1000 * ts[len(ts) // 4]:.2f} ms")
    print(f"max |logit difference|: {(logits['old'] - logits['new']).abs().max().item():.3g}")


if __name__ == "__main__":
    main()
