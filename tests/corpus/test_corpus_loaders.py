"""Loaders: text, Markdown, HTML, PDF and JSONL into documents; directory walking."""

from __future__ import annotations

import json

import pytest

from ragspec.corpus.errors import IngestError
from ragspec.corpus.loaders import (
    html_to_text,
    iter_utf8_blocks,
    load_html,
    load_jsonl,
    load_pdf,
    load_text,
    loader_for,
    walk,
)


def _text(doc) -> list[tuple[int | None, str]]:
    return [(page.number, "".join(page.blocks)) for page in doc.pages]


def test_text_is_streamed_in_blocks_and_keeps_bytes_exact(tmp_path):
    path = tmp_path / "notes.txt"
    body = "naïve café — ünïcode\r\n" * 5000
    path.write_text(body, encoding="utf-8", newline="")
    blocks = list(iter_utf8_blocks(path, block_bytes=1000))
    assert len(blocks) > 10 and "".join(blocks) == body  # multi-byte chars split across blocks survive
    [doc] = load_text(path)
    assert doc.doc_id == str(path) and doc.title == "notes"


def test_utf8_bom_is_dropped(tmp_path):
    path = tmp_path / "bom.txt"
    path.write_bytes(b"\xef\xbb\xbfhello")
    assert "".join(iter_utf8_blocks(path)) == "hello"


def test_markdown_title_is_first_heading(tmp_path):
    path = tmp_path / "guide.md"
    path.write_text("Intro line\n\n## Install Guide ##\n\ntext\n")
    [doc] = load_text(path)
    assert doc.title == "Install Guide"
    assert _text(doc) == [(None, "Intro line\n\n## Install Guide ##\n\ntext\n")]


def test_html_drops_script_and_style_and_keeps_paragraphs(tmp_path):
    markup = """<html><head><title> The  Page </title><style>p {color: red}</style></head>
    <body><script>var x = "hidden";</script><h1>Heading</h1><p>First &amp; one.</p>
    <p>Second<br>line</p><noscript>no</noscript><div>Tail <b>bold</b> text</div></body></html>"""
    text, title = html_to_text(markup)
    assert title == "The Page"
    assert text == "Heading\n\nFirst & one.\n\nSecond\nline\n\nTail bold text"
    path = tmp_path / "page.html"
    path.write_text(markup)
    [doc] = load_html(path)
    assert doc.title == "The Page" and "hidden" not in _text(doc)[0][1]


def test_pdf_pages_keep_their_numbers(tmp_path, make_pdf):
    path = tmp_path / "paper.pdf"
    path.write_bytes(make_pdf(["First page text.", "Second page (with parens).", ""]))
    [doc] = load_pdf(path)
    pages = _text(doc)
    assert [n for n, _ in pages] == [1, 2, 3]
    assert "First page text." in pages[0][1] and "Second page (with parens)." in pages[1][1]
    assert pages[2][1].strip() == ""


def test_jsonl_rows_are_documents(tmp_path):
    path = tmp_path / "corpus.jsonl"
    rows = [
        {"id": "a/0", "title": "A", "text": "alpha"},
        {"text": "no id or title"},
        {"id": 7, "text": "num id"},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    docs = list(load_jsonl(path))
    assert [(d.doc_id, d.title) for d in docs] == [("a/0", "A"), ("corpus:2", "corpus:2"), ("7", "7")]
    assert _text(docs[0]) == [(None, "alpha")]


@pytest.mark.parametrize(
    "line,reason",
    [
        ("{not json", "line 2: invalid JSON"),
        ('{"id": "x"}', 'line 2: expected an object with a "text" string'),
        ('{"id": "y", "text": "  "}', "line 2: empty text"),
        ('{"id": "a", "text": "dup"}', "line 2: duplicate id 'a'"),
    ],
)
def test_jsonl_bad_rows_name_the_line(tmp_path, line, reason):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"id": "a", "text": "ok"}\n' + line + "\n")
    with pytest.raises(IngestError) as info:
        list(load_jsonl(path))
    assert reason in str(info.value) and "\n" not in str(info.value)


def test_walk_recurses_sorted_and_skips_hidden_and_unsupported(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / ".git").mkdir()
    for name in ["z.txt", "a.md", "b/c.html", "b/d.pdf", "b/e.jsonl", "x.png", ".hidden.txt", ".git/f.txt"]:
        (tmp_path / name).write_text("x")
    found = [p.relative_to(tmp_path).as_posix() for p in walk([tmp_path])]
    assert found == ["a.md", "z.txt", "b/c.html", "b/d.pdf", "b/e.jsonl"]
    assert list(walk([tmp_path / "x.png"])) == [
        tmp_path / "x.png"
    ]  # named files are kept, and rejected later
    with pytest.raises(IngestError, match="unsupported file type '.png'"):
        loader_for(tmp_path / "x.png")
