"""How faithful and how fast a drafter copy is: its argmax against the float32 model's on real text, and
its decode step, for each quantization.

    python scripts/drafter_fidelity.py MODEL [PREFIX] [TOKENS]

The text is the first two squad-longdoc prompts (SQuAD articles) in the model's chat format. Each copy
prefills the first PREFIX tokens (default 700), then reads the next TOKENS (default 800) one at a time, as a
drafter does; the figure is the share of those steps whose argmax equals the float32 model's at the same
position. `int8 (int8 prefill)` is the int8 copy with its prefill forced onto int8 too, as before
2026-12-02. Step times: one-token forwards at PREFIX tokens of context, copies alternated, medians.
"""

from __future__ import annotations

import statistics
import sys
import time

import torch

from ragspec.bench.sets import load_set
from ragspec.decoding.text import chat_ids
from ragspec.engine import prefill
from ragspec.models import fast
from ragspec.models.loader import load_hf, wrap


def main() -> None:
    name = sys.argv[1]
    start = int(sys.argv[2]) if len(sys.argv) > 2 else 700
    count = int(sys.argv[3]) if len(sys.argv) > 3 else 800
    model, tok, rname = load_hf(name)
    prompts = load_set("squad-longdoc")
    text = (chat_ids(tok, list(prompts[0].messages)) + chat_ids(tok, list(prompts[1].messages)))[: start + count]
    ref = wrap(model, tok, rname, "fast")
    copies = {"int8 (int8 prefill)": wrap(model, tok, rname, "fast", "int8"),
              "int8": wrap(model, tok, rname, "fast", "int8"),
              "int4": wrap(model, tok, rname, "fast", "int4")}
    wide = fast.WIDE_MIN_ROWS

    def prefilled(label, lm):
        cache = lm.new_cache(len(text) + 8)
        fast.WIDE_MIN_ROWS = 1 << 30 if label.endswith("(int8 prefill)") else wide
        prefill(lm, cache, text[:start])
        fast.WIDE_MIN_ROWS = wide
        return cache

    with torch.inference_mode():
        cache = ref.new_cache(len(text) + 8)
        prefill(ref, cache, text[:start])
        ref_top = [int(ref.forward(cache, torch.tensor([t]))[-1].argmax()) for t in text[start:]]
        caches = {"float32": cache}
        for label, lm in copies.items():
            caches[label] = c = prefilled(label, lm)
            top = [int(lm.forward(c, torch.tensor([t]))[-1].argmax()) for t in text[start:]]
            agree = sum(a == b for a, b in zip(top, ref_top)) / len(ref_top)
            print(f"{name} {label}: argmax equal to float32's on {agree:.3f} of {len(ref_top)} tokens")
        times = {label: [] for label in caches}
        for _ in range(12):
            for label, lm in (("float32", ref), *copies.items()):
                c = caches[label]
                t = time.perf_counter()
                for _ in range(5):
                    c.crop(start)
                    lm.forward(c, torch.tensor([text[start]]))
                times[label].append((time.perf_counter() - t) / 5 * 1000)
        for label, ts in times.items():
            print(f"{name} {label}: decode step at {start} tokens {statistics.median(ts):.2f} ms")


if __name__ == "__main__":
    main()
