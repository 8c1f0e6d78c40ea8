"""StoreRetriever over a small store with the fake embedder: modes, k, ordering, persistence."""

from __future__ import annotations

import json

import pytest

from ragspec.corpus.ingest import ingest
from ragspec.corpus.store import Store
from ragspec.retrieval.base import QueryError
from ragspec.retrieval.embedder import HashEmbedder
from ragspec.retrieval.hybrid import StoreRetriever

ROWS = [
    ("rivers", "Rivers", "The Amazon river carries more water than any other river on Earth."),
    ("volcano", "Volcanoes", "Mount Etna is an active volcano on the east coast of Sicily."),
    ("chess", "Chess", "Magnus Carlsen became the world chess champion in 2013."),
    ("bread", "Bread", "Sourdough bread rises thanks to wild yeast and lactic acid bacteria."),
    ("orbit", "Orbits", "The International Space Station orbits Earth every ninety minutes."),
]


@pytest.fixture
def store(make_store, tmp_path):
    path = tmp_path / "corpus.jsonl"
    path.write_text("\n".join(json.dumps({"id": i, "title": t, "text": x}) for i, t, x in ROWS))
    s = make_store()
    assert ingest(s, [path]).ok
    return s


@pytest.mark.parametrize("mode", ["bm25", "dense", "hybrid"])
def test_each_mode_finds_the_matching_document(store, mode):
    hits = StoreRetriever(store).search("Which volcano is active in Sicily?", k=3, mode=mode)
    assert hits[0].doc_id == "volcano"
    assert [h.rank for h in hits] == list(range(1, len(hits) + 1))
    assert all(a.score >= b.score for a, b in zip(hits, hits[1:]))
    assert hits[0].chunk.title == "Volcanoes" and hits[0].chunk.source.endswith("corpus.jsonl")


def test_hybrid_reports_component_ranks(store):
    [top] = StoreRetriever(store).search("sourdough yeast", k=1)
    assert top.doc_id == "bread" and top.components["bm25_rank"] == 1.0 and "dense_rank" in top.components
    assert top.to_dict()["doc_id"] == "bread"


def test_k_larger_than_corpus_and_unknown_words(store):
    retriever = StoreRetriever(store)
    assert len(retriever.search("river water earth", k=50, mode="dense")) == 5
    assert retriever.search("zzzqqq unknownword", k=3, mode="bm25") == []


def test_by_position_orders_by_doc_then_offset(store):
    hits = StoreRetriever(store).search("Earth river station", k=4, by_position=True)
    keys = [(h.doc_id, h.chunk.start) for h in hits]
    assert keys == sorted(keys)


def test_search_survives_reopen_and_refuses_a_different_embedder(store):
    directory = store.directory
    store.close()
    reopened = Store.open(directory)
    hits = StoreRetriever(reopened).search("chess champion", k=1)  # embedder loaded from the store's record
    assert hits[0].doc_id == "chess"
    with pytest.raises(QueryError, match="embedded with hash-bow-64, not hash-bow-32"):
        StoreRetriever(reopened, HashEmbedder(32)).search("chess", 1, mode="dense")
    reopened.close()


def test_empty_store_returns_nothing(make_store):
    retriever = StoreRetriever(make_store())
    for mode in ("bm25", "dense", "hybrid"):
        assert retriever.search("anything", 5, mode=mode) == []


def test_deleted_documents_disappear_from_results(store):
    retriever = StoreRetriever(store)
    assert retriever.search("Carlsen chess", 1, mode="bm25")[0].doc_id == "chess"
    store.delete("chess")
    assert all(h.doc_id != "chess" for h in retriever.search("Carlsen chess", 5))
