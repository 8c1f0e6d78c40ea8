"""Question sets in the shared format: a folder with corpus.jsonl and questions.jsonl.

corpus rows: {"id", "title", "text"}; question rows: {"id", "question", "answers", ...} with the gold
paragraph in "paragraph_id" (SQuAD) or "supporting_titles" (HotpotQA, whose corpus is keyed by title).
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class QAItem:
    id: str
    question: str
    answers: tuple[str, ...]
    title: str  # the article (SQuAD) the question is about; "" when unknown
    gold_doc_ids: tuple[str, ...]  # corpus ids of the paragraphs that hold the answer


def _read_jsonl(path: Path) -> list[dict]:
    if not path.exists():
        raise ValueError(f"{path} not found: a data folder needs corpus.jsonl and questions.jsonl")
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def load_corpus(data_dir: str | Path) -> list[dict]:
    return _read_jsonl(Path(data_dir) / "corpus.jsonl")


def gold_ids(row: dict) -> tuple[str, ...]:
    """The corpus ids of a question's gold paragraphs: SQuAD's `paragraph_id`, else HotpotQA's
    `supporting_titles` (its `paragraph_ids` are all ten candidates, distractors included)."""
    if row.get("paragraph_id"):
        return (str(row["paragraph_id"]),)
    return tuple(dict.fromkeys(str(t) for t in row.get("supporting_titles") or ()))


def load_questions(data_dir: str | Path) -> list[QAItem]:
    return [QAItem(str(row["id"]), row["question"], tuple(row.get("answers") or ()), row.get("title", ""),
                   gold_ids(row)) for row in _read_jsonl(Path(data_dir) / "questions.jsonl")]


def sample(items: list[QAItem], limit: int | None, seed: int = 0) -> list[QAItem]:
    """A seeded shuffle, so `--limit 100` covers every article rather than the first two."""
    items = list(items)
    random.Random(seed).shuffle(items)
    return items[:limit] if limit else items


def _order(doc_id: str) -> tuple:
    m = re.search(r"(\d+)$", doc_id)
    return (doc_id[: m.start()] if m else doc_id, int(m.group(1)) if m else 0)


def articles(corpus: list[dict]) -> dict[str, str]:
    """Title -> the article: its paragraphs joined in id order (SQuAD ids are "Title/N")."""
    by_title: dict[str, list[dict]] = {}
    for row in corpus:
        by_title.setdefault(row["title"], []).append(row)
    return {t: "\n\n".join(r["text"] for r in sorted(rows, key=lambda r: _order(str(r["id"]))))
            for t, rows in by_title.items()}
