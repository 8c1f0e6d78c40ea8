"""Retrieval benchmark: recall, MRR and latency of BM25, dense and hybrid search on a QA data set.

A data set folder holds `corpus.jsonl` (`{"id", "title", "text"}`) and `questions.jsonl`. SQuAD-style
questions name one gold paragraph (`paragraph_id`); HotpotQA-style questions name two gold paragraphs by
title (`supporting_titles`; the corpus is keyed by title). Chunk hits count for their document, so
metrics are over the ranked list of distinct documents. Latency is the wall time of one
`StoreRetriever.search` call (embedding, index lookups, fusion and fetching chunks from SQLite).
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ragspec.eval import data as eval_data
from ragspec.eval.data import QAItem
from ragspec.retrieval.base import MODES, Embedder
from ragspec.retrieval.hybrid import DEFAULT_RRF_K, StoreRetriever, unique_documents

CUTOFFS = (1, 5, 10)
SEARCH_CHUNKS = 20


def load_questions(data_dir: Path, limit: int | None = None) -> list[QAItem]:
    """The set's questions (the first `limit`); each must name its gold documents."""
    questions = eval_data.load_questions(data_dir)[:limit]
    missing = next((q.id for q in questions if not q.gold_doc_ids), None)
    if missing is not None:
        raise ValueError(f"{data_dir}: question {missing} has neither paragraph_id nor supporting_titles")
    return questions


def _percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def score_ranking(docs: Sequence[str], gold: Sequence[str]) -> dict[str, float]:
    """Per-question metrics of a ranked document list against its gold documents.

    recall@k is the fraction of gold documents in the top k (0 or 1 for SQuAD); `all@10` (multi-gold
    only) is 1 when every gold document is in the top 10, HotpotQA's "both supporting paragraphs".
    """
    found = {g: docs.index(g) + 1 for g in gold if g in docs}
    first = min(found.values()) if found else None
    out = {f"recall@{k}": sum(1 for r in found.values() if r <= k) / len(gold) for k in CUTOFFS}
    out["mrr@10"] = 1.0 / first if first is not None and first <= 10 else 0.0
    if len(gold) > 1:
        out["all@10"] = 1.0 if len(found) == len(gold) and max(found.values()) <= 10 else 0.0
    return out


def evaluate(retriever: StoreRetriever, questions: Iterable[QAItem], mode: str) -> dict[str, float]:
    """Average metrics and latency percentiles of one mode over all questions."""
    totals: dict[str, float] = {}
    latencies: list[float] = []
    count = 0
    for question in questions:
        started = time.perf_counter()
        hits = retriever.search(question.question, SEARCH_CHUNKS, mode=mode)
        latencies.append((time.perf_counter() - started) * 1000.0)
        for name, value in score_ranking(unique_documents(hits)[:10], question.gold_doc_ids).items():
            totals[name] = totals.get(name, 0.0) + value
        count += 1
    result = {name: value / max(1, count) for name, value in totals.items()}
    result.update(
        questions=count,
        p50_ms=statistics.median(latencies) if latencies else float("nan"),
        p95_ms=_percentile(latencies, 0.95),
    )
    return result


def run(
    data_dir: str | Path,
    *,
    modes: Sequence[str] = MODES,
    embedder: Embedder | None = None,
    store_dir: str | Path | None = None,
    chunk_size: int | None = None,
    chunk_overlap: int | None = None,
    rrf_k: int = DEFAULT_RRF_K,
    weights: dict[str, float] | None = None,
    depth: int = 50,
    limit: int | None = None,
) -> dict[str, Any]:
    """Ingest `data_dir/corpus.jsonl` into a store (temporary unless `store_dir`) and score every mode."""
    from ragspec.corpus.ingest import ingest
    from ragspec.corpus.store import Store
    from ragspec.retrieval.embedder import default_embedder

    data_dir = Path(data_dir)
    questions = load_questions(data_dir, limit)
    embedder = embedder or default_embedder()
    with tempfile.TemporaryDirectory(prefix="ragspec-bench-") as tmp:
        store = Store(store_dir or tmp, embedder=embedder, chunk_size=chunk_size, chunk_overlap=chunk_overlap)
        report = ingest(store, [data_dir / "corpus.jsonl"])
        if not report.ok:
            raise ValueError("; ".join(str(f) for f in report.failed))
        info = store.info()
        retriever = StoreRetriever(store, embedder, rrf_k=rrf_k, weights=weights, depth=depth)
        retriever.warm_up()
        for question in questions[:5]:
            retriever.search(question.question, SEARCH_CHUNKS)
        results = {mode: evaluate(retriever, questions, mode) for mode in modes}
        store.close()
    return {
        "dataset": data_dir.name,
        "questions": len(questions),
        "documents": info.documents,
        "chunks": info.chunks,
        "ingest_seconds": round(report.seconds, 2),
        "settings": {
            "embedder": embedder.name,
            "chunk_size": info.chunk_size,
            "chunk_overlap": info.chunk_overlap,
            "rrf_k": rrf_k,
            "weights": retriever.weights,
            "depth": depth,
            "search_chunks": SEARCH_CHUNKS,
        },
        "modes": results,
    }


def datasets(data_dir: Path) -> list[Path]:
    """`data_dir` itself if it holds a data set, else its sub-folders that do."""
    if (data_dir / "corpus.jsonl").is_file() and (data_dir / "questions.jsonl").is_file():
        return [data_dir]
    found = sorted(
        p for p in data_dir.iterdir() if (p / "corpus.jsonl").is_file() and (p / "questions.jsonl").is_file()
    )
    if not found:
        raise FileNotFoundError(f"{data_dir}: no corpus.jsonl + questions.jsonl here or in its sub-folders")
    return found


def render(result: dict[str, Any]) -> Any:
    """A rich table of one data set's results."""
    from rich.table import Table

    modes = result["modes"]
    extra = ["all@10"] if any("all@10" in m for m in modes.values()) else []
    columns = [f"recall@{k}" for k in CUTOFFS] + ["mrr@10"] + extra + ["p50_ms", "p95_ms"]
    table = Table(
        title=f"{result['dataset']}: {result['questions']} questions, "
        f"{result['documents']} docs, {result['chunks']} chunks"
    )
    table.add_column("mode")
    for column in columns:
        table.add_column(column, justify="right")
    for mode, metrics in modes.items():
        table.add_row(mode, *(f"{metrics[c]:.3f}" if "ms" not in c else f"{metrics[c]:.1f}" for c in columns))
    return table


def bench_retrieval(
    data_dir: Path,
    json_out: Path | None = None,
    mode: list[str] | None = None,
    chunk_size: int | None = None,
    chunk_overlap: int | None = None,
    rrf_k: int = DEFAULT_RRF_K,
    bm25_weight: float = 1.0,
    dense_weight: float = 1.0,
    limit: int | None = None,
    store: Path | None = None,
) -> list[dict[str, Any]]:
    """Body of `ragspec bench retrieval DATA_DIR [--json OUT]`.

    The typer command that wraps it is `ragspec.corpus.cli.bench_retrieval_command`.
    """
    from rich.console import Console

    console = Console(stderr=True)
    results = []
    for folder in datasets(Path(data_dir)):
        console.print(f"[bold]{folder.name}[/]: ingesting and searching...")
        result = run(
            folder,
            modes=mode or MODES,
            chunk_size=chunk_size,
            chunk_overlap=chunk_overlap,
            rrf_k=rrf_k,
            weights={"bm25": bm25_weight, "dense": dense_weight},
            limit=limit,
            store_dir=(Path(store) / folder.name) if store else None,
        )
        results.append(result)
        Console().print(render(result))
    if json_out is not None:
        json_out.write_text(json.dumps(results if len(results) > 1 else results[0], indent=2))
    return results
