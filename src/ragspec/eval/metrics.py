"""SQuAD answer scoring: normalised exact match and token F1, the max over gold answers."""

from __future__ import annotations

import re
import string
from collections import Counter
from typing import Sequence

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_CITATIONS = re.compile(r"\s*\[\d+(?:\s*,\s*\d+)*\]")


def answer_span(text: str) -> str:
    """The answer to score: the first line, without citation markers like [1] or [2, 3] (they cite sources,
    they are not part of the answer)."""
    first = text.strip().split("\n", 1)[0] if text.strip() else ""
    return _CITATIONS.sub("", first).strip()
_PUNCT = set(string.punctuation)


def normalize_answer(text: str) -> str:
    """Lower-case, strip punctuation and articles, squeeze whitespace (the official SQuAD v1.1 script's rule)."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCT)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str, golds: Sequence[str]) -> float:
    pred = normalize_answer(answer_span(prediction))
    return float(any(pred == normalize_answer(g) for g in golds))


def f1_score(prediction: str, golds: Sequence[str]) -> float:
    pred = normalize_answer(answer_span(prediction)).split()
    best = 0.0
    for gold in golds:
        ref = normalize_answer(gold).split()
        common = sum((Counter(pred) & Counter(ref)).values())
        if not pred or not ref:
            best = max(best, float(pred == ref))
            continue
        if common:
            precision, recall = common / len(pred), common / len(ref)
            best = max(best, 2 * precision * recall / (precision + recall))
    return best
