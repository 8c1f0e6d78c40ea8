"""The answer pipeline and eval runner end to end on a tiny model, tiny tokenizer and a hash-embedder store."""

import json

import pytest

from ragspec.corpus.ingest import ingest
from ragspec.corpus.store import Store
from ragspec.eval.runner import run_eval
from ragspec.rag.answer import RagConfig, RagPipeline
from ragspec.rag.datastore import load_datastore
from ragspec.rag.prompt import Passage, PromptTooLong, lc_prompt, rag_prompt
from ragspec.retrieval.embedder import HashEmbedder
from ragspec.retrieval.hybrid import StoreRetriever
from tiny import tiny_chat_lm, tiny_tokenizer

ROWS = [
    {"id": "Cats/0", "title": "Cats", "text": "Cats purr when they are content. A cat sleeps sixteen hours a day."},
    {"id": "Cats/1", "title": "Cats", "text": "The domestic cat was first kept in the Near East."},
    {"id": "Rivers/0", "title": "Rivers", "text": "The Nile flows north into the Mediterranean Sea."},
]
QUESTIONS = [
    {"id": "q1", "question": "How long does a cat sleep?", "answers": ["sixteen hours"], "title": "Cats",
     "paragraph_id": "Cats/0"},
    {"id": "q2", "question": "Where does the Nile flow?", "answers": ["north"], "title": "Rivers",
     "paragraph_id": "Rivers/0"},
]


@pytest.fixture
def data_dir(tmp_path):
    d = tmp_path / "set"
    d.mkdir()
    (d / "corpus.jsonl").write_text("\n".join(json.dumps(r) for r in ROWS) + "\n")
    (d / "questions.jsonl").write_text("\n".join(json.dumps(q) for q in QUESTIONS) + "\n")
    return d


@pytest.fixture
def store(tmp_path, data_dir):
    s = Store.open(tmp_path / "store", embedder=HashEmbedder(64), tokenizer=tiny_tokenizer(), tokenizer_name="tiny",
                   chunk_size=64, chunk_overlap=8)
    assert ingest(s, [data_dir / "corpus.jsonl"]).ok
    yield s
    s.close()


def _pipeline(store, speculation="auto", max_new_tokens=12):
    target = tiny_chat_lm("llama")
    return RagPipeline(target, StoreRetriever(store, HashEmbedder(64)), datastore=load_datastore(store, target.tokenizer),
                       config=RagConfig(k=2, max_new_tokens=max_new_tokens, speculation=speculation))


def test_answer_has_sources_timings_and_is_lossless(store):
    plain = _pipeline(store, "none").answer("How long does a cat sleep?")
    fast = _pipeline(store, "pld+rest").answer("How long does a cat sleep?")
    assert fast.answer == plain.answer and fast.new_tokens == plain.new_tokens
    assert [s.number for s in fast.sources] == [1, 2] and fast.sources[0].doc_id.startswith("Cats")
    d = fast.to_dict()
    assert {"answer", "sources", "ttft_s", "tokens_per_s", "new_tokens"} <= set(d)
    assert {"id", "title", "score"} <= set(d["sources"][0])
    assert d["stats"]["num_steps"] >= 1


def test_prompt_fitting_drops_sources_then_refuses_an_oversized_question():
    tok = tiny_tokenizer()
    passages = [Passage("T", "x" * 300), Passage("U", "y" * 300)]
    full = rag_prompt(tok, "why?", passages, 10_000)
    assert full.num_passages == 2 and not full.truncated
    fitted = rag_prompt(tok, "why?", passages, len(full.ids) - 100)
    assert fitted.num_passages == 1 and fitted.truncated and len(fitted.ids) <= len(full.ids) - 100
    base = len(rag_prompt(tok, "why?", [], 100_000).ids)  # instructions and worked examples, no source
    cut = rag_prompt(tok, "why?", passages[:1], base + 150)
    assert cut.truncated and cut.num_passages == 1 and len(cut.ids) <= base + 150
    with pytest.raises(PromptTooLong, match="question needs"):
        rag_prompt(tok, "why " * 200, passages, base + 300)
    lc_base = len(lc_prompt(tok, "why?", "", 100_000).ids)
    doc = lc_prompt(tok, "why?", "abcdefghij" * 100, lc_base + 300)
    assert doc.truncated and len(doc.ids) <= lc_base + 300 and "[...]" in tok.decode(doc.ids)


def test_eval_writes_summary_and_rows(store, data_dir):
    result = run_eval(_pipeline(store), str(data_dir), "rag", limit=2)
    s = result["summary"]
    assert s["n"] == 2 and set(s) >= {"em", "f1", "retrieval_recall_at_5", "latency_s", "tokens_per_s"}
    assert s["retrieval_recall_at_5"] == 1.0  # each gold paragraph shares the question's words
    assert len(result["rows"]) == 2 and {"prediction", "em", "f1"} <= set(result["rows"][0])
    lc = run_eval(_pipeline(store), str(data_dir), "lc", limit=1)
    assert lc["summary"]["retrieval_recall_at_5"] is None


def test_empty_question_is_a_clear_error(store):
    with pytest.raises(ValueError, match="empty"):
        _pipeline(store).answer("   ")

