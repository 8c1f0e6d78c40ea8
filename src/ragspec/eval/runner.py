"""`ragspec eval`: answer a question set with a method and score it.

Output: {"summary": {...}, "rows": [...]}, one row per question. Summary fields: em and f1 (SQuAD
normalisation, max over gold answers, in %), retrieval_recall_at_5 (share of gold paragraphs among the
top-5 retrieved documents; methods without retrieval report null), latency_s (mean seconds per
question, retrieval included), tokens_per_s (answer tokens after the first step over the seconds after
it, summed over questions), ttft_s, and the speculative statistics summed over the run.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import Callable

from ragspec.eval.data import QAItem, articles, load_corpus, load_questions, sample
from ragspec.eval.metrics import exact_match, f1_score
from ragspec.metrics import SpecStats
from ragspec.rag.answer import Answer, RagPipeline

# method name -> (pipeline, item, article text) -> Answer. Later methods register here.
EvalMethod = Callable[[RagPipeline, QAItem, str], Answer]
METHODS: dict[str, EvalMethod] = {
    "rag": lambda pipe, item, doc: pipe.answer(item.question, "rag"),
    "lc": lambda pipe, item, doc: pipe.answer(item.question, "lc", document=doc),
}
NEEDS_STORE = {"rag"}


@dataclass
class EvalRun:
    method: str
    rows: list[dict] = field(default_factory=list)
    stats: SpecStats = field(default_factory=SpecStats)


def recall_at(sources_doc_ids: list[str], gold: tuple[str, ...], k: int = 5) -> float | None:
    if not gold:
        return None
    top = set(sources_doc_ids[:k])
    return sum(g in top for g in gold) / len(gold)


def score_row(item: QAItem, ans: Answer) -> dict:
    doc_ids = [s.doc_id for s in ans.sources]
    return {
        "id": item.id, "question": item.question, "answers": list(item.answers), "prediction": ans.answer,
        "em": exact_match(ans.answer, item.answers), "f1": f1_score(ans.answer, item.answers),
        "retrieved": doc_ids, "recall_at_5": recall_at(doc_ids, item.gold_doc_ids) if doc_ids else None,
        "latency_s": round(ans.latency_s, 4), "ttft_s": round(ans.ttft_s, 4), "new_tokens": ans.new_tokens,
        "decode_tokens": ans.stats.decode_tokens(ans.new_tokens), "prompt_tokens": ans.prompt_tokens,
        "tokens_per_s": round(ans.tokens_per_s, 3),
        "truncated": ans.truncated, "finish_reason": ans.finish_reason,
        "mean_acceptance_length": round(ans.stats.mean_acceptance_length, 3),
    }


def summarize(run: EvalRun, extra: dict) -> dict:
    rows = run.rows
    recalls = [r["recall_at_5"] for r in rows if r["recall_at_5"] is not None]
    decode_tokens = sum(r["decode_tokens"] for r in rows)
    decode_s = run.stats.total_s - run.stats.ttft_s
    mean = lambda xs: statistics.fmean(xs) if xs else 0.0  # noqa: E731
    return {
        "method": run.method, "n": len(rows),
        "em": round(100 * mean([r["em"] for r in rows]), 2), "f1": round(100 * mean([r["f1"] for r in rows]), 2),
        "retrieval_recall_at_5": round(mean(recalls), 4) if recalls else None,
        "latency_s": round(mean([r["latency_s"] for r in rows]), 4),
        "ttft_s": round(mean([r["ttft_s"] for r in rows]), 4),
        "tokens_per_s": round(decode_tokens / decode_s, 3) if decode_s > 0 else 0.0,
        "truncated": sum(bool(r["truncated"]) for r in rows),
        "spec": run.stats.to_dict(),
        **extra,
    }


def run_eval(pipeline: RagPipeline, data_dir: str, method: str, limit: int | None, seed: int = 0,
             on_row: Callable[[dict], None] | None = None, extra: dict | None = None) -> dict:
    """Answer and score `limit` questions of `data_dir` (a seeded sample) with `method`."""
    if method not in METHODS:
        raise ValueError(f"unknown eval method {method!r}; choose from {', '.join(METHODS)}")
    items = sample(load_questions(data_dir), limit, seed)
    docs = articles(load_corpus(data_dir)) if method not in NEEDS_STORE else {}
    run = EvalRun(method)
    start = time.perf_counter()
    for item in items:
        ans = METHODS[method](pipeline, item, docs.get(item.title, ""))
        row = score_row(item, ans)
        run.rows.append(row)
        run.stats.add(ans.stats)
        if on_row is not None:
            on_row(row)
    summary = summarize(run, {"wall_s": round(time.perf_counter() - start, 2), **(extra or {})})
    return {"summary": summary, "rows": run.rows}
