"""Milliseconds per REST lookup on the benchmark's wiki datastore (SmolLM2's tokenizer).

Contexts are every 17th 16-token window of the first five Spec-Bench `rag` prompts; each lookup is
`TokenDatastore.continuations` (16 down to 2 tokens, up to 256 matches, 8 tokens each) followed by the
frequency tree, as `RESTProposer.propose` does. Usage: .venv/bin/python scripts/rest_lookup.py
"""

import time

import numpy as np

from ragspec.bench.datastores import bench_datastore
from ragspec.bench.sets import load_set
from ragspec.decoding.text import chat_ids
from ragspec.drafting.rest import frequency_tree
from ragspec.models.loader import load_tokenizer

tok = load_tokenizer("smollm2-135m")
corpus, ds = bench_datastore("rag", tok)
ids = [i for p in list(load_set("rag"))[:5] for i in chat_ids(tok, list(p.messages))]
lookup_s = tree_s = 0.0
spans = []
for end in range(50, len(ids), 17):
    context = np.asarray(ids[end - 16 : end], dtype=np.int64)
    t0 = time.perf_counter()
    span, conts = ds.continuations(context, 16, 2, 8, 256)
    t1 = time.perf_counter()
    if conts:
        frequency_tree(conts, 16, "rest")
    tree_s += time.perf_counter() - t1
    lookup_s += t1 - t0
    spans.append(span)
n = len(spans)
print(f"{corpus} datastore, {len(ds)} tokens, {n} lookups: {1000 * lookup_s / n:.2f} ms lookup + "
      f"{1000 * tree_s / n:.2f} ms tree per lookup; matched {np.mean([s > 0 for s in spans]):.0%}, "
      f"mean span {np.mean(spans):.1f}")
