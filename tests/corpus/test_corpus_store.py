"""Store: incremental add, replace, delete, offsets, index consistency and rebuild of stale indexes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ragspec.corpus.errors import IngestError
from ragspec.corpus.indexes import MANIFEST
from ragspec.corpus.ingest import ingest
from ragspec.corpus.store import Store

LONG = " ".join(f"Sentence number {i} talks about topic{i % 7} and more words here." for i in range(60))


def test_add_is_incremental_by_content(make_store, tmp_path, check_consistent):
    store = make_store()
    path = tmp_path / "a.txt"
    path.write_text(LONG)
    first = store.add(path)
    assert first.status == "added" and first.documents == 1 and first.chunks > 3
    generation = store.generation
    assert store.add(path).status == "unchanged" and store.generation == generation
    path.write_text(LONG + " A brand new closing sentence.")
    again = store.add(path)
    assert again.status == "replaced"
    assert store.info().documents == 1 and store.info().chunks == again.chunks
    store.refresh()
    check_consistent(store)


def test_chunk_offsets_point_into_document_text(make_store, tmp_path, make_pdf):
    store = make_store()
    (tmp_path / "a.txt").write_text(LONG)
    (tmp_path / "b.pdf").write_bytes(make_pdf(["Page one words " * 30, "", "Page three words " * 30]))
    ingest(store, [tmp_path])
    for doc_id, _, _, n_chunks in store.documents():
        chunks = store.document_chunks(doc_id)
        assert [c.ordinal for c in chunks] == list(range(n_chunks))
        for chunk in chunks:
            assert store.document_text(doc_id, chunk.start, chunk.end) == chunk.text
    pdf_chunks = store.document_chunks(str((tmp_path / "b.pdf").resolve()))
    assert {c.page for c in pdf_chunks} == {1, 3}
    full = store.document_text(str((tmp_path / "b.pdf").resolve()))
    assert (
        full.startswith("Page one words") and "\n\n\n\nPage three" in full
    )  # empty page 2 between separators


def test_delete_by_source_and_by_doc_id(make_store, tmp_path, check_consistent):
    store = make_store()
    (tmp_path / "a.txt").write_text(LONG)
    rows = [{"id": f"r{i}", "title": "T", "text": f"row {i} text about things"} for i in range(3)]
    (tmp_path / "c.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    ingest(store, [tmp_path])
    assert store.delete(str(tmp_path / "a.txt")) == 1
    assert store.delete("r1") == 1
    assert [d[0] for d in store.documents()] == ["r0", "r2"]
    assert store.num_documents() == 2
    check_consistent(store)
    with pytest.raises(IngestError, match="no document or source 'nope'"):
        store.delete("nope")
    report = ingest(store, [tmp_path / "c.jsonl"])  # deleting one row forgot the hash: re-ingest restores it
    assert len(report.replaced) == 1 and [d[0] for d in store.documents()] == ["r0", "r1", "r2"]
    check_consistent(store)


def test_duplicate_doc_ids_across_files_are_refused(make_store, tmp_path):
    store = make_store()
    (tmp_path / "a.jsonl").write_text(json.dumps({"id": "same", "text": "one"}))
    (tmp_path / "b.jsonl").write_text(json.dumps({"id": "same", "text": "two"}))
    report = ingest(store, [tmp_path])
    assert len(report.added) == 1 and len(report.failed) == 1
    assert "document id 'same' is already in the store" in str(report.failed[0])


def test_stale_or_missing_index_files_are_rebuilt_on_open(
    make_store, tmp_path, hash_embedder, word_tokenizer, check_consistent
):
    store = make_store()
    (tmp_path / "a.txt").write_text(LONG)
    ingest(store, [tmp_path / "a.txt"])
    (tmp_path / "b.txt").write_text("A second document about zebras.")
    store.add(tmp_path / "b.txt")  # committed, but the index files were not rewritten (no refresh)
    directory = store.directory
    store.close()
    assert json.loads((directory / MANIFEST).read_text())["generation"] == 1
    reopened = Store.open(directory, embedder=hash_embedder, tokenizer=word_tokenizer)
    assert json.loads((directory / MANIFEST).read_text())["generation"] == 2
    check_consistent(reopened)
    reopened.close()
    (directory / MANIFEST).unlink()
    for leftover in directory.glob("dense-g*"):
        leftover.write_bytes(b"garbage")
    again = Store.open(directory)
    check_consistent(again)
    assert sorted(p.name for p in directory.iterdir() if p.name.startswith(("bm25", "dense"))) == [
        "bm25-g2",
        "dense-g2.faiss",
    ]


def test_embeddings_are_stored_as_float32(make_store, tmp_path, hash_embedder):
    store = make_store()
    (tmp_path / "a.txt").write_text("zebras and lions")
    store.add(tmp_path / "a.txt")
    blob = store._conn.execute("SELECT embedding FROM chunks").fetchone()[0]
    vector = np.frombuffer(blob, dtype="<f4")
    assert np.allclose(
        vector, hash_embedder.embed(["a\nzebras and lions"])[0]
    )  # the title line is embedded too


def test_settings_are_fixed_once_the_store_has_chunks(make_store, tmp_path, word_tokenizer):
    store = make_store(chunk_size=40, chunk_overlap=8)
    (tmp_path / "a.txt").write_text(LONG)
    store.add(tmp_path / "a.txt")
    store.close()
    with pytest.raises(IngestError, match="store uses chunk size 40, not 100"):
        Store(store.directory, tokenizer=word_tokenizer, chunk_size=100)
    from ragspec.retrieval.embedder import HashEmbedder

    other = Store(store.directory, embedder=HashEmbedder(32), tokenizer=word_tokenizer)
    (tmp_path / "b.txt").write_text("more")
    with pytest.raises(IngestError, match="embedded with hash-bow-64, not hash-bow-32"):
        other.add(tmp_path / "b.txt")
    other.close()
    reopened = Store(store.directory)
    assert (reopened.chunk_size, reopened.chunk_overlap) == (40, 8)
    reopened.close()


def test_empty_store_has_empty_indexes(make_store):
    store = make_store()
    indexes = store.indexes()
    assert len(indexes.bm25) == 0 and indexes.dense is None
    assert store.info().chunks == 0


def test_bad_settings_or_a_non_store_file_are_refused_without_damage(make_store, tmp_path, word_tokenizer):
    with pytest.raises(IngestError, match="bad chunk settings: size 10, overlap 20"):
        make_store("s1", chunk_size=10, chunk_overlap=20)
    store = Store(tmp_path / "s1", tokenizer=word_tokenizer)  # the refused settings were not recorded
    assert (store.chunk_size, store.chunk_overlap) == (200, 30)
    store.close()
    (tmp_path / "s2").mkdir()
    (tmp_path / "s2" / "store.sqlite").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(IngestError, match="not a usable ragspec store"):
        Store(tmp_path / "s2")
