"""Corpus test helpers: minimal valid PDFs built in the test, so no binary fixtures are checked in."""

from __future__ import annotations

import json
import sqlite3

import pytest

from ragspec.corpus.indexes import MANIFEST


def pdf_bytes(pages: list[str]) -> bytes:
    """A minimal PDF with one Helvetica text line per input line, one page per string."""
    n = len(pages)
    objects = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        "<< /Type /Pages /Kids [{}] /Count {} >>".format(" ".join(f"{4 + 2 * i} 0 R" for i in range(n)), n),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    for i, text in enumerate(pages):
        lines = [
            line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") for line in text.split("\n")
        ]
        content = "BT /F1 12 Tf 72 720 Td " + " ".join(f"({line}) Tj 0 -14 Td" for line in lines) + " ET"
        objects.append(
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            f"/Resources << /Font << /F1 3 0 R >> >> /Contents {5 + 2 * i} 0 R >>"
        )
        objects.append(f"<< /Length {len(content)} >>\nstream\n{content}\nendstream")
    out = b"%PDF-1.4\n"
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n{body}\nendobj\n".encode("latin-1")
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{offset:010d} 00000 n \n".encode() for offset in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return out


@pytest.fixture
def make_pdf():
    return pdf_bytes


def _check_consistent(store) -> None:
    """No orphan rows, and both indexes hold exactly the database's chunk ids at its generation."""
    conn = sqlite3.connect(store.directory / "store.sqlite")
    try:
        orphans = conn.execute(
            "SELECT COUNT(*) FROM chunks WHERE doc NOT IN (SELECT id FROM documents)"
        ).fetchone()[0]
        empty_docs = conn.execute(
            "SELECT COUNT(*) FROM documents WHERE id NOT IN (SELECT doc FROM chunks)"
        ).fetchone()[0]
        orphan_docs = conn.execute(
            "SELECT COUNT(*) FROM documents WHERE source NOT IN (SELECT id FROM sources)"
        ).fetchone()[0]
        ids = sorted(r[0] for r in conn.execute("SELECT id FROM chunks"))
    finally:
        conn.close()
    assert (orphans, empty_docs, orphan_docs) == (0, 0, 0)
    indexes = store.indexes()
    assert indexes.generation == store.generation
    assert sorted(indexes.bm25.ids.tolist()) == ids
    assert (len(indexes.dense) if indexes.dense is not None else 0) == len(ids)
    manifest = json.loads((store.directory / MANIFEST).read_text())
    assert manifest["generation"] == store.generation


@pytest.fixture
def check_consistent():
    return _check_consistent
