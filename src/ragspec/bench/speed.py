"""`ragspec bench speed`: ragspec's decoding methods against Hugging Face's, same models, prompts, process.

Each prompt is prefilled once per model (ragspec's cache and a transformers DynamicCache), and every
method decodes from a copy, so the run measures decoding. Reported per method:
- tokens_per_s: decode rate, (new tokens - those of the first step) / (time from the first new tokens to the
  end), summed over prompts; the first step carries prefill-like work (a drafter's own prefill, RAPID's
  retrieval) and is excluded with the tokens it returned, which may be a whole accepted draft;
- e2e_tokens_per_s: new tokens / time from the call to the end (the prompt prefill excluded for all);
- speedup_vs_hf_greedy: tokens_per_s / hf-greedy's;
- mean_acceptance_length, acceptance_rate, per-source counts (vLLM definitions, ragspec.metrics);
- identical_to_greedy: share of prompts whose tokens equal ragspec greedy's; identical_to_hf_greedy: the
  same against transformers' greedy.
"""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass, field
from typing import Callable

import torch

from ragspec.bench.hf import HF_METHODS, hf_generate
from ragspec.bench.sets import load_set
from ragspec.decoding.sampling import SamplingParams
from ragspec.decoding.text import chat_ids
from ragspec.rag.prompt import lc_prompt
from ragspec.drafting.registry import SpecOptions, is_speculation, make_proposer
from ragspec.engine import Engine, EngineConfig, prefill
from ragspec.metrics import SpecStats

DEFAULT_METHODS = ("hf-greedy", "hf-pld", "hf-assisted", "greedy", "pld", "rest", "draft", "pld+rest",
                   "pld+draft", "pld+rest+draft")


def is_ragspec(method: str) -> bool:
    """ragspec methods: "greedy", any speculation name of `ragspec.drafting.registry` (all lossless), or
    "rapid[:eta=X,gamma=N,...]" on long-document sets (lossless only at eta 0)."""
    return method == "greedy" or is_speculation(method) or is_rapid(method)


def is_rapid(method: str) -> bool:
    return method == "rapid" or method.startswith("rapid:")


def is_lossless_speculation(method: str) -> bool:
    """Speculation that emits exactly the target's tokens: every registry method, and RAPID at eta 0."""
    if is_rapid(method):
        from ragspec.methods.rapid import rapid_config

        return rapid_config(method).lossless
    return is_speculation(method)


def _rapid(models: "BenchModels", method: str, max_new_tokens: int):
    from ragspec.methods.rapid import Rapid, rapid_config
    from ragspec.retrieval.embedder import default_embedder

    if models.drafter is None:
        raise ValueError("rapid needs a drafter (--drafter NAME; the target itself for self-speculation)")
    config = rapid_config(method, max_new_tokens=max_new_tokens)
    return Rapid(models.target, models.drafter, models.embedder or default_embedder(), config)


@dataclass
class MethodResult:
    method: str
    new_tokens: int = 0
    decode_tokens: int = 0
    decode_s: float = 0.0
    e2e_s: float = 0.0
    outputs: list[list[int]] = field(default_factory=list)
    stats: SpecStats = field(default_factory=SpecStats)
    timing: dict = field(default_factory=dict)  # a proposer's own timing counters (RASD: retrieval vs drafter)

    def add(self, tokens: list[int], ttft_s: float, total_s: float, ttft_tokens: int) -> None:
        """One prompt's output; `ttft_tokens` came with the first step, whose time is in `ttft_s`."""
        self.outputs.append(tokens)
        self.new_tokens += len(tokens)
        if len(tokens) > ttft_tokens:
            self.decode_tokens += len(tokens) - ttft_tokens
            self.decode_s += total_s - ttft_s
        self.e2e_s += total_s


@dataclass
class BenchModels:
    """The loaded models of a run: HF objects for the baselines, ragspec wrappers over the same weights."""

    target_hf: object
    target: object
    drafter_hf: object | None
    drafter: object | None
    datastore: object | None
    datastore_name: str
    embedder: object | None = None  # RAPID's chunk retrieval (None: the default MiniLM)


def load_models(model: str, drafter: str | None, set_name: str, datastore: str, backend: str,
                random_weights: bool, drafter_quant: str = "auto") -> BenchModels:
    """The run's models: the target (and drafter) as HF objects for the baselines and ragspec wrappers over the
    same weights; the set's datastore (`auto`), none, or a store folder's."""
    from ragspec.bench.datastores import bench_datastore
    from ragspec.models.loader import load_hf, random_hf, wrap

    def load(name):
        return random_hf(name) if random_weights else load_hf(name)

    target_hf, tok, tname = load(model)
    target = wrap(target_hf, tok, tname, backend)
    drafter_hf = draft = None
    if drafter:
        if drafter == model:  # self-drafting: one HF model (hf-assisted); ragspec drafts on a `drafter_quant` copy
            drafter_hf, dtok, dname = target_hf, tok, tname
        else:
            drafter_hf, dtok, dname = load(drafter)
        same = drafter == model and drafter_quant == "none"  # reuse the target: no second copy of the weights
        draft = target if same else wrap(drafter_hf, dtok, dname, backend, drafter_quant)
    if datastore == "none":
        ds, ds_name = None, None
    elif datastore == "auto":
        ds_name, ds = bench_datastore(set_name, tok)
    else:
        from ragspec.corpus.store import Store
        from ragspec.rag.datastore import load_datastore

        with Store.open(datastore) as db:
            ds, ds_name = load_datastore(db, tok), datastore
    return BenchModels(target_hf, target, drafter_hf, draft, ds, ds_name)


def run_speed(models: BenchModels, set_name: str, methods: list[str], limit: int, max_new_tokens: int,
              engine_config: EngineConfig | None = None, options: SpecOptions | None = None,
              on_prompt: Callable[[int, str, dict, list[int]], None] | None = None, ignore_eos: bool = False,
              skip: int = 0) -> dict:
    """Run every method on the first `limit` prompts of the set that fit the context, after leaving out the
    first `skip` of those (another sample of a set than an earlier run's); return the JSON object.
    `on_prompt(i, prompt id, {method: new token ids}, prompt ids)` is called after each prompt.
    `ignore_eos`: every method goes on past EOS to `max_new_tokens` (vLLM's benchmarks' `--ignore-eos`), so
    all of them are timed on the same number of tokens, however long each one's answer would have been."""
    for m in methods:
        if not is_ragspec(m) and m not in HF_METHODS:
            raise ValueError(f"unknown method {m!r}; choose from {', '.join(DEFAULT_METHODS)} or other '+' joins")
    options, engine_config = options or SpecOptions(), engine_config or EngineConfig()
    target, tok = models.target, models.target.tokenizer
    room = (target.info.max_context or 1 << 20) - max_new_tokens - engine_config.max_nodes - 2
    if skip < 0:
        raise ValueError(f"--skip must be >= 0, not {skip}")
    prompts, skipped, passed = [], 0, 0
    rapids = {m: _rapid(models, m, max_new_tokens) for m in methods if is_rapid(m)}
    for p in load_set(set_name):
        if p.messages:
            ids = chat_ids(tok, list(p.messages))
        else:  # long-document QA: every method gets the whole-document prompt
            built = lc_prompt(tok, p.question, p.document, room)
            if built.truncated:
                skipped += 1
                continue
            ids = built.ids
        if len(ids) > room:
            skipped += 1
            continue
        if passed < skip:
            passed += 1
            continue
        prompts.append((p, ids))
        if len(prompts) == limit:
            break
    if not prompts:
        after = f" after the first {skip}" if skip else ""
        raise ValueError(f"no prompt of {set_name!r} fits the context of {target.info.name}{after}")
    if rapids and not all(p.document for p, _ in prompts):
        raise ValueError(f"rapid needs a question and a document per prompt (longdoc:DIR or squad-longdoc), "
                         f"not {set_name!r}")
    results = {m: MethodResult(m) for m in methods}
    eos = target.info.eos_token_ids
    sampling = SamplingParams(ignore_eos=ignore_eos)  # greedy
    prefill_s = {"ragspec": 0.0, "hf": 0.0}
    engines: dict[str, Engine] = {}
    for i, (p, ids) in enumerate(prompts):
        fast_cache, hf_cache = _prefill(models, ids, prefill_s, "hf-greedy" in methods)
        rapid_prompts = {}  # RapidConfig.prompt_key -> RapidPrompts: one retrieval per prompt and shape
        for m in methods:
            r = results[m]
            if m in HF_METHODS:
                # Only greedy reuses the prefilled prompt cache: transformers 5.23's prompt lookup emits
                # different tokens from greedy when given one (docs/benchmarks.md); the others prefill
                # inside generate, which only their first token (excluded from the decode rate) pays for.
                cache = hf_cache if m == "hf-greedy" else None
                run = hf_generate(m, models.target_hf, ids, max_new_tokens, eos, models.drafter_hf, cache, ignore_eos)
                r.add(run.token_ids, run.ttft_s, run.total_s, run.ttft_tokens)
            elif is_rapid(m):
                cfg = rapids[m].config
                key = cfg.prompt_key
                if key not in rapid_prompts:  # the target reads the prompt every method reads
                    rapid_prompts[key] = rapids[m].prompts(p.question, p.document, messages=p.messages or None)
                    if rapid_prompts[key].target_ids != ids:  # e.g. a gamma so large that RAPID cut the document
                        raise ValueError(f"{m}: RAPID's target prompt differs from the other methods' on {p.id}")
                gen = rapids[m].engine(rapid_prompts[key]).generate(
                    ids, max_new_tokens, sampling, cache=fast_cache.copy(rapids[m].room_after()))
                r.add(gen.token_ids, gen.stats.ttft_s, gen.stats.total_s, gen.stats.ttft_tokens)
                r.stats.add(gen.stats)
            else:
                if m not in engines:  # one engine per method for the whole run, as a server keeps one
                    proposer = None if m == "greedy" else make_proposer(
                        m, drafter=models.drafter, datastore=models.datastore, options=options,
                        vocab_size=target.info.vocab_size)
                    engines[m] = Engine(target, proposer, engine_config)
                engine = engines[m]
                gen = engine.generate(ids, max_new_tokens, sampling,
                                      cache=fast_cache.copy(max_new_tokens + engine_config.max_nodes + 2))
                r.add(gen.token_ids, gen.stats.ttft_s, gen.stats.total_s, gen.stats.ttft_tokens)
                r.stats.add(gen.stats)
                r.timing = dict(getattr(engine.proposer, "timing", {}))  # the proposer's totals over the run so far
        if on_prompt is not None:
            on_prompt(i, p.id, {m: results[m].outputs[-1] for m in methods}, ids)
    report = _report(models, set_name, methods, results, prompts, skipped, max_new_tokens, prefill_s)
    return {**report, "ignore_eos": ignore_eos, "skip": skip}


def _prefill(models: BenchModels, ids: list[int], prefill_s: dict, need_hf: bool):
    from transformers import DynamicCache

    target = models.target
    t = time.perf_counter()
    fast_cache = target.new_cache(len(ids) + 64)
    prefill(target, fast_cache, ids[:-1])
    prefill_s["ragspec"] += time.perf_counter() - t
    hf_cache = None
    if need_hf:
        t = time.perf_counter()
        hf_cache = DynamicCache(config=models.target_hf.config)
        with torch.inference_mode():
            for s in range(0, len(ids) - 1, 512):  # chunked like ragspec's, to bound activation memory
                chunk = torch.tensor([ids[s : min(s + 512, len(ids) - 1)]])
                models.target_hf(input_ids=chunk, past_key_values=hf_cache, use_cache=True, logits_to_keep=1)
        prefill_s["hf"] += time.perf_counter() - t
    return fast_cache, hf_cache


def _report(models, set_name, methods, results, prompts, skipped, max_new_tokens, prefill_s) -> dict:
    ref = results.get("greedy")
    hf_ref = results.get("hf-greedy")
    base = hf_ref.decode_tokens / hf_ref.decode_s if hf_ref and hf_ref.decode_s else None
    rows = []
    for m in methods:
        r = results[m]
        tps = r.decode_tokens / r.decode_s if r.decode_s else 0.0
        row = {
            "method": m,
            "tokens_per_s": round(tps, 3),
            "e2e_tokens_per_s": round(r.new_tokens / r.e2e_s, 3) if r.e2e_s else 0.0,
            "speedup_vs_hf_greedy": round(tps / base, 3) if base else None,
            "new_tokens": r.new_tokens,
            "identical_to_greedy": _identical(r, ref),
            "identical_to_hf_greedy": _identical(r, hf_ref),
        }
        if is_ragspec(m):
            st = r.stats.to_dict()
            row.update({k: st[k] for k in ("mean_acceptance_length", "acceptance_rate", "tokens_per_step",
                                           "per_position_acceptance_rate", "by_source", "num_plain_fallback_steps",
                                           "draft_s", "verify_s")})
            row["fallback_share"] = round(r.stats.num_plain_fallback_steps / max(1, r.stats.num_steps), 4)
            if r.timing:
                row["proposer_timing"] = {k: round(v, 4) for k, v in r.timing.items()}
        else:
            row.update({"mean_acceptance_length": None, "acceptance_rate": None, "draft_s": None, "verify_s": None})
        rows.append(row)
    spec_rows = [r for r in rows if is_lossless_speculation(r["method"])]
    best = max(spec_rows, key=lambda r: r["tokens_per_s"], default=None)
    lengths = [len(ids) for _, ids in prompts]
    return {
        "set": set_name, "model": models.target.info.name, "backend": models.target.backend,
        "drafter": models.drafter.info.name if models.drafter else None, "datastore": models.datastore_name,
        "machine": _machine(), "num_prompts": len(prompts), "skipped_too_long": skipped,
        "prompt_tokens_mean": round(sum(lengths) / len(lengths), 1), "prompt_tokens_max": max(lengths),
        "max_new_tokens": max_new_tokens,
        "prefill_tokens_per_s": {k: round(sum(lengths) / v, 1) for k, v in prefill_s.items() if v},
        "best": best["method"] if best else None, "rows": rows,
    }


def _identical(r: MethodResult, ref: MethodResult | None) -> float | None:
    if ref is None or not r.outputs:
        return None
    same = sum(a == b for a, b in zip(r.outputs, ref.outputs))
    return round(same / len(r.outputs), 4)


def _machine() -> str:
    """What the speeds depend on: CPU model, threads, the vector ISA torch dispatches to, and torch."""
    return (f"{platform.machine()} {_cpu_model()}, {torch.get_num_threads()} threads, "
            f"{torch.backends.cpu.get_cpu_capability()}, torch {torch.__version__}")


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"
