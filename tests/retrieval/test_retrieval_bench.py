"""The retrieval benchmark on tiny synthetic SQuAD-style and HotpotQA-style data sets (fake embedder)."""

from __future__ import annotations

import json

import pytest

from ragspec.retrieval.bench import datasets, load_questions, run, score_ranking
from ragspec.retrieval.embedder import HashEmbedder

TOPICS = [
    "apple orchard harvest",
    "submarine sonar depth",
    "violin concerto bow",
    "glacier ice melt",
    "desert camel caravan",
    "satellite launch rocket",
    "coral reef fish",
    "medieval castle siege",
    "jazz saxophone solo",
    "volcanic lava eruption",
    "tennis grand slam",
    "honey bee hive",
]


def _write(folder, questions):
    folder.mkdir()
    rows = [
        {"id": f"T{i}/0", "title": f"T{i}", "text": f"This paragraph is about {t}. " * 3}
        for i, t in enumerate(TOPICS)
    ]
    (folder / "corpus.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    (folder / "questions.jsonl").write_text("\n".join(json.dumps(q) for q in questions))
    return folder


def test_score_ranking():
    assert score_ranking(["a", "b", "c"], ["b"]) == {
        "recall@1": 0.0,
        "recall@5": 1.0,
        "recall@10": 1.0,
        "mrr@10": 0.5,
    }
    both = score_ranking(["x", "a", "y", "b"], ["a", "b"])
    assert both["all@10"] == 1.0 and both["recall@1"] == 0.0 and both["mrr@10"] == 0.5
    assert score_ranking(["a"], ["a", "b"])["all@10"] == 0.0


def test_squad_style_run(tmp_path):
    questions = [
        {"id": str(i), "question": f"What about {t.split()[1]}?", "answers": ["x"], "paragraph_id": f"T{i}/0"}
        for i, t in enumerate(TOPICS)
    ]
    folder = _write(tmp_path / "squadish", questions)
    result = run(folder, embedder=HashEmbedder(64))
    assert result["documents"] == 12 and result["questions"] == 12
    for mode in ("bm25", "dense", "hybrid"):
        metrics = result["modes"][mode]
        assert 0.0 <= metrics["recall@1"] <= metrics["recall@5"] <= metrics["recall@10"] <= 1.0
        assert metrics["p50_ms"] > 0 and metrics["p95_ms"] >= metrics["p50_ms"]
    assert result["modes"]["bm25"]["recall@1"] == 1.0


def test_hotpot_style_run_reports_both_in_top_10(tmp_path):
    questions = [
        {"id": "q", "question": "sonar and saxophone", "answers": ["x"], "supporting_titles": ["T1", "T8"],
         "paragraph_ids": [f"T{i}" for i in range(10)]}  # HotpotQA lists every candidate here, distractors too
    ]
    folder = _write(tmp_path / "hotpotish", [{**questions[0]}])
    rows = [json.loads(line) for line in (folder / "corpus.jsonl").read_text().splitlines()]
    (folder / "corpus.jsonl").write_text("\n".join(json.dumps({**r, "id": r["title"]}) for r in rows))
    result = run(folder, embedder=HashEmbedder(64), modes=["bm25"])
    assert result["modes"]["bm25"]["all@10"] == 1.0
    assert load_questions(folder)[0].gold_doc_ids == ("T1", "T8")


def test_datasets_finds_sub_folders(tmp_path):
    _write(tmp_path / "one", [])
    _write(tmp_path / "two", [])
    assert [p.name for p in datasets(tmp_path)] == ["one", "two"]
    assert datasets(tmp_path / "one") == [tmp_path / "one"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no corpus.jsonl"):
        datasets(tmp_path / "empty")
