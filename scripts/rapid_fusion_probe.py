"""RAPID fused with prompt lookup under RASD's options, on the first N prompts of the Qwen 8K set.

    .venv/bin/python scripts/rapid_fusion_probe.py 2

Each variant decodes 64 tokens (EOS ignored) from one shared target prefill per prompt; prints decode
tok/s (first step excluded), MAL and drafted/accepted tokens per source (docs/benchmarks.md, RAPID fused
with prompt lookup). Needs bench-out/longdoc-qwen-8000-fill (`scripts/benchmarks.sh rapid-pld-qwen`).
"""

import sys

from ragspec.bench.sets import load_set
from ragspec.decoding.sampling import SamplingParams
from ragspec.drafting.rasd import RASDConfig, RASDProposer
from ragspec.engine import prefill
from ragspec.methods.rapid import Rapid, RapidConfig
from ragspec.models.loader import load_causal_lm
from ragspec.rag.prompt import lc_prompt
from ragspec.retrieval.embedder import default_embedder

VARIANTS = {  # name -> (RapidConfig options, RASD options for the fused proposer)
    "rapid": ({}, None),
    "fused(default)": ({"pld": 1}, RASDConfig()),
    "fused(skip=0,idle=0)": ({"pld": 1}, RASDConfig(skip=False, idle=False)),
    "fused(skip=0,idle=0,prune=none)": ({"pld": 1}, RASDConfig(skip=False, idle=False, prune="none")),
}


def main(limit: int) -> None:
    target = load_causal_lm("qwen2.5-coder-1.5b")
    drafter = load_causal_lm("qwen2.5-coder-0.5b", quantize="int8")
    embedder = default_embedder()
    rapids = {k: Rapid(target, drafter, embedder, RapidConfig(eta=0.0, max_new_tokens=64, **kw))
              for k, (kw, _) in VARIANTS.items()}
    totals = {k: [0, 0.0] for k in VARIANTS}
    sampling = SamplingParams(ignore_eos=True)
    for p in load_set("longdoc:bench-out/longdoc-qwen-8000-fill")[:limit]:
        ids = lc_prompt(target.tokenizer, p.question, p.document, 30000).ids
        cache = target.new_cache(len(ids) + 64)
        prefill(target, cache, ids[:-1])
        for k, (_, rasd) in VARIANTS.items():
            rapid = rapids[k]
            engine = rapid.engine(rapid.prompts(p.question, p.document))
            if rasd is not None:  # the same parts, under other RASD options
                engine.proposer = RASDProposer(engine.proposer.drafter, engine.proposer.retrieval, rasd)
            gen = engine.generate(ids, 64, sampling, cache=cache.copy(64 + rapid.config.max_nodes + 2))
            s = gen.stats
            n, dec = len(gen.token_ids) - s.ttft_tokens, s.total_s - s.ttft_s
            totals[k][0] += n
            totals[k][1] += dec
            by_source = {a: (b.drafted, b.accepted) for a, b in s.by_source.items()}
            print(p.id, k, f"{n / dec:.2f} tok/s", f"MAL {s.mean_acceptance_length:.2f}", by_source, flush=True)
    for k, (n, dec) in totals.items():
        print("TOTAL", k, f"{n / dec:.2f} tok/s")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2)
