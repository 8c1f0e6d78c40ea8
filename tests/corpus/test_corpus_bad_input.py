"""Bad input: each case gives one clear line naming the file, and leaves the store exactly as it was."""

from __future__ import annotations

import json
import os

import pytest

from ragspec.corpus.errors import IngestError
from ragspec.corpus.ingest import ingest
from ragspec.retrieval.base import QueryError
from ragspec.retrieval.hybrid import StoreRetriever


def snapshot(store) -> tuple:
    conn = store._conn
    return (
        store.generation,
        conn.execute("SELECT path, sha256 FROM sources ORDER BY id").fetchall(),
        conn.execute("SELECT COUNT(*), COALESCE(SUM(LENGTH(text)), 0) FROM chunks").fetchone(),
        conn.execute("SELECT COUNT(*) FROM doc_text").fetchone(),
        sorted(os.listdir(store.directory)),
    )


@pytest.fixture
def seeded(make_store, tmp_path):
    store = make_store()
    good = tmp_path / "good.txt"
    good.write_text("A good document about rivers and mountains.")
    ingest(store, [good])
    return store


def _write(tmp_path, name: str, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    return path


CASES = {
    "empty": ("empty.txt", b"", "empty file"),
    "blank": ("blank.md", b"  \n\n\t \n", "empty file (no text)"),
    "binary": (
        "image.txt",
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)),
        "binary file (NUL byte at byte 8)",
    ),
    "latin1": (
        "latin1.txt",
        b"Good start. " * 10 + "caf\xe9 au lait".encode("latin-1"),
        "not valid UTF-8 at byte 123",
    ),
    "truncated-utf8": ("cut.txt", b"fine text " + "é".encode()[:1], "not valid UTF-8 at byte 10"),
    "corrupt-pdf": (
        "broken.pdf",
        b"%PDF-1.4\n1 0 obj << /Type /Catalog >>\n" + os.urandom(300),
        "corrupt or unreadable PDF",
    ),
    "not-a-pdf": ("fake.pdf", b"just some text, no PDF header at all", "corrupt or unreadable PDF"),
    "unsupported": ("sheet.xlsx", b"PK\x03\x04", "unsupported file type '.xlsx'"),
    "bad-jsonl": ("rows.jsonl", b'{"id": "1", "text": "ok"}\n{oops\n', "line 2: invalid JSON"),
    "html-no-text": (
        "empty.html",
        b"<html><head><script>x()</script></head><body> </body></html>",
        "empty file (no text)",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_file_gives_one_line_and_changes_nothing(seeded, tmp_path, case):
    name, data, reason = CASES[case]
    path = _write(tmp_path, name, data)
    before = snapshot(seeded)
    with pytest.raises(IngestError) as info:
        seeded.add(path)
    message = str(info.value)
    assert reason in message and name in message and "\n" not in message
    assert snapshot(seeded) == before


def test_non_utf8_deep_in_a_large_file_rolls_back_everything(seeded, tmp_path):
    good = ("All good here. " * 70 + "\n\n").encode()
    data = good * 3000 + b"\xff tail"  # ~3 MB: many chunks were written before the bad byte
    path = _write(tmp_path, "late.txt", data)
    before = snapshot(seeded)
    with pytest.raises(IngestError, match=f"not valid UTF-8 at byte {len(good) * 3000} "):
        seeded.add(path)
    assert snapshot(seeded) == before


def test_missing_path(seeded, tmp_path):
    before = snapshot(seeded)
    with pytest.raises(IngestError, match="no such file"):
        seeded.add(tmp_path / "missing.txt")
    report = ingest(seeded, [tmp_path / "missing-dir", tmp_path / "good.txt"])
    assert [str(f) for f in report.failed] == [f"{tmp_path / 'missing-dir'}: no such file or directory"]
    assert len(report.unchanged) == 1
    assert snapshot(seeded) == before


def test_a_run_with_bad_files_still_commits_the_good_ones(make_store, tmp_path):
    store = make_store()
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.txt").write_text("Alpha document text.")
    (folder / "b.txt").write_bytes(b"\xff\xfe bad")
    (folder / "c.jsonl").write_text(json.dumps({"id": "c1", "text": "Gamma row."}))
    report = ingest(store, [folder])
    assert len(report.added) == 2 and len(report.failed) == 1
    assert str(report.failed[0]).endswith(
        "b.txt: not valid UTF-8 at byte 0 (bytes ff fe 20 62); convert the file to UTF-8"
    )
    assert store.info().documents == 2 and store.indexes().generation == store.generation


@pytest.mark.parametrize("query", ["", "   ", "\n\t"])
def test_empty_query_is_refused(seeded, query):
    retriever = StoreRetriever(seeded)
    with pytest.raises(QueryError, match="empty query"):
        retriever.search(query, 5)


def test_bad_mode_and_k_are_refused(seeded):
    retriever = StoreRetriever(seeded)
    with pytest.raises(QueryError, match="unknown retrieval mode 'sparse'"):
        retriever.search("rivers", 5, mode="sparse")
    with pytest.raises(QueryError, match="k must be a positive integer"):
        retriever.search("rivers", 0)
