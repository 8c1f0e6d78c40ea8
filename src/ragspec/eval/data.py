"""Question sets in the shared format: a folder with corpus.jsonl and questions.jsonl.

corpus rows: {"id", "title", "text"}; question rows: {"id", "question", "answers", ...} with the gold
paragraph(s) in "paragraph_id" (SQuAD) or "paragraph_ids" / "supporting_titles" (HotpotQA).
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


def load_questions(data_dir: str | Path) -> list[QAItem]:
    out = []
    for row in _read_jsonl(Path(data_dir) / "questions.jsonl"):
        gold = row.get("paragraph_ids") or ([row["paragraph_id"]] if row.get("paragraph_id") else [])
        if not gold and row.get("supporting_titles"):
            gold = row["supporting_titles"]
        out.append(QAItem(str(row["id"]), row["question"], tuple(row.get("answers") or ()),
                          row.get("title", ""), tuple(str(g) for g in gold)))
    return out


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
