"""The int8-screened output layer on real text: a decode step and an 8-token forward, full logits against
argmax only, timed in alternation, with how many tokens the screen left to recompute.

    python scripts/screen_probe.py MODEL [CONTEXT] [STEPS]

The context is the first CONTEXT tokens of the first squad-longdoc prompt (a SQuAD article); the model
then decodes STEPS tokens greedily, and each step is timed both ways on copies of the same cache: a
one-token decode, and an 8-token forward over the next 8 greedy tokens (a draft the target accepts whole).
`bench verify` feeds random tokens, where logits are flat and the screen falls back to the full layer;
this probe shows the regime greedy decoding of real text is in.
"""

from __future__ import annotations

import statistics
import sys
import time

import torch

from ragspec.bench.sets import load_set
from ragspec.decoding.text import chat_ids
from ragspec.engine import prefill
from ragspec.models.loader import load_causal_lm


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> None:
    name = sys.argv[1]
    context = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    steps = int(sys.argv[3]) if len(sys.argv) > 3 else 40
    lm = load_causal_lm(name)
    ids = chat_ids(lm.tokenizer, list(load_set("squad-longdoc")[0].messages))[:context]
    cache = lm.new_cache(len(ids) + steps + 16)
    prefill(lm, cache, ids[:-1])
    decode = {False: [], True: []}
    verify = {False: [], True: []}
    candidates, agree, token = [], 0, ids[-1]
    with torch.inference_mode():
        ahead = cache.copy(steps + 16)  # the greedy continuation, so the 8-token forward verifies a right draft
        greedy = [ids[-1]]
        for _ in range(steps + 8):
            greedy.append(int(lm.forward(ahead, torch.tensor([greedy[-1]]))[-1].argmax()))
        for t in range(steps):
            argmax = {}
            for only in (False, True):
                c = cache.copy(16)
                out = None

                def step():
                    nonlocal out
                    out = lm.forward(c, torch.tensor([token]), argmax_only=only)

                decode[only].append(_timed(step))
                argmax[only] = int(out.argmax())
                if only:
                    candidates.append(int(torch.isfinite(out).sum()))
                c = cache.copy(16)
                chain = torch.tensor(greedy[t : t + 8])
                verify[only].append(_timed(lambda: lm.forward(c, chain, argmax_only=only)))
            agree += argmax[False] == argmax[True]
            lm.forward(cache, torch.tensor([token]))
            token = argmax[False]
    ms = lambda v: 1000 * statistics.median(v)  # noqa: E731
    print(f"{name}, {len(ids)} tokens of context, {steps} steps: decode {ms(decode[False]):.1f} ms full, "
          f"{ms(decode[True]):.1f} ms argmax-only; 8 tokens {ms(verify[False]):.1f} / {ms(verify[True]):.1f} ms; "
          f"tokens recomputed median {statistics.median(candidates):.0f}, max {max(candidates)} "
          f"(of {lm.info.vocab_size}); same argmax {agree}/{steps}")


if __name__ == "__main__":
    main()
