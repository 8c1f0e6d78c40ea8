"""Streams loaded documents into SQLite: text blocks, chunks and their embeddings, in batches.

Runs inside the store's per-file transaction, so a failure at any point (bad byte at 40 MB, a crash, a
Ctrl-C) rolls the whole file back. Memory is bounded by one text buffer plus one embedding batch, however
large the file is.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ragspec.corpus.chunking import iter_spans
from ragspec.corpus.errors import IngestError
from ragspec.corpus.loaders import PAGE_SEPARATOR, LoadedDocument
from ragspec.retrieval.base import Embedder


@dataclass(frozen=True)
class ChunkSettings:
    """How a store chunks: recorded in its meta table so every file of a store is chunked alike."""

    tokenizer: Any
    size: int
    overlap: int
    titles: bool = True


def index_text(title: str, text: str, titles: bool = True) -> str:
    """What BM25 and the embedder see for a chunk: its document title on a first line, then the chunk.

    A paragraph rarely repeats its subject's name ("He was born in..."), while questions name it; the
    title line restores that context. The stored chunk text and its offsets stay the document's own.
    """
    return f"{title}\n{text}" if titles and title else text


class ChunkWriter:
    """Buffers chunk rows and writes them with their embeddings once a batch is full."""

    def __init__(
        self, conn: sqlite3.Connection, embedder: Embedder, batch: int = 64, titles: bool = True
    ) -> None:
        self.conn = conn
        self.embedder = embedder
        self.batch = batch
        self.titles = titles
        self.pending: list[tuple[int, int, int, int, int | None, int, str]] = []
        self.inputs: list[str] = []
        self.written = 0

    def add(
        self, doc: int, ordinal: int, span: tuple[int, int, int], page: int | None, text: str, title: str
    ) -> None:
        start, end, n_tokens = span
        self.pending.append((doc, ordinal, start, end, page, n_tokens, text))
        self.inputs.append(index_text(title, text, self.titles))
        if len(self.pending) >= self.batch:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        vectors = self.embedder.embed(self.inputs)
        if vectors.shape != (len(self.pending), self.embedder.dim):
            raise RuntimeError(f"embedder {self.embedder.name} returned shape {vectors.shape}")
        blobs = np.ascontiguousarray(vectors, dtype="<f4")
        self.conn.executemany(
            "INSERT INTO chunks(doc, ordinal, char_start, char_end, page, n_tokens, text, embedding)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [(*row, blobs[i].tobytes()) for i, row in enumerate(self.pending)],
        )
        self.written += len(self.pending)
        self.pending, self.inputs = [], []


class _Recorder:
    """Passes text blocks through while storing them, so the document text is kept without a second read."""

    def __init__(self, conn: sqlite3.Connection, doc: int) -> None:
        self.conn, self.doc, self.ordinal, self.offset = conn, doc, 0, 0

    def record(self, blocks: Iterable[str], page: int | None) -> Iterator[str]:
        for block in blocks:
            if not block:
                continue
            self.conn.execute(
                "INSERT INTO doc_text(doc, ordinal, char_start, page, text) VALUES (?, ?, ?, ?, ?)",
                (self.doc, self.ordinal, self.offset, page, block),
            )
            self.ordinal += 1
            self.offset += len(block)
            yield block


def _check_unique(conn: sqlite3.Connection, path: Path, doc_id: str) -> None:
    row = conn.execute(
        "SELECT s.path FROM documents d JOIN sources s ON s.id = d.source WHERE d.doc_id = ?", (doc_id,)
    ).fetchone()
    if row is not None:
        raise IngestError(path, f"document id {doc_id!r} is already in the store (from {row[0]})")


def write_document(
    conn: sqlite3.Connection,
    source: int,
    path: Path,
    doc: LoadedDocument,
    settings: ChunkSettings,
    writer: ChunkWriter,
) -> int:
    """Insert one document with its text and chunks; returns its number of chunks."""
    _check_unique(conn, path, doc.doc_id)
    rowid = conn.execute(
        "INSERT INTO documents(doc_id, source, title) VALUES (?, ?, ?)", (doc.doc_id, source, doc.title)
    ).lastrowid
    recorder, ordinal = _Recorder(conn, rowid), 0
    for index, page in enumerate(doc.pages):
        if index:
            list(recorder.record([PAGE_SEPARATOR], None))
        base = recorder.offset
        spans = iter_spans(
            recorder.record(page.blocks, page.number), settings.tokenizer, settings.size, settings.overlap
        )
        for span, text in spans:
            writer.add(
                rowid,
                ordinal,
                (base + span.start, base + span.end, span.n_tokens),
                page.number,
                text,
                doc.title,
            )
            ordinal += 1
    conn.execute(
        "UPDATE documents SET n_chars = ?, n_chunks = ? WHERE id = ?", (recorder.offset, ordinal, rowid)
    )
    return ordinal
