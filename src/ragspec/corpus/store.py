"""The persistent corpus store: SQLite (WAL) for sources, documents, text, chunks and embeddings, plus
derived BM25 and faiss index files in the same folder.

Every file is ingested in one SQLite transaction, so after a crash a file is either fully in the store or
not at all. Index files are caches of the database (see `indexes`): `Store.open` rebuilds them when their
generation does not match, so a store is always consistent after a crash and costs no re-embedding.
Re-adding an unchanged file is a no-op (sha256); a changed file replaces its old version atomically.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ragspec.corpus import indexes as idx
from ragspec.corpus.chunking import (
    DEFAULT_CHUNK_OVERLAP,
    DEFAULT_CHUNK_SIZE,
    RegexTokenizer,
    default_tokenizer,
)
from ragspec.corpus.errors import IngestError
from ragspec.corpus.loaders import loader_for
from ragspec.corpus.writer import ChunkSettings, ChunkWriter, write_document
from ragspec.retrieval.base import Chunk, Embedder

DB_FILE = "store.sqlite"
SCHEMA_VERSION = "1"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sources (
    id INTEGER PRIMARY KEY AUTOINCREMENT, path TEXT UNIQUE NOT NULL, sha256 TEXT NOT NULL,
    size INTEGER NOT NULL, added_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS documents (
    id INTEGER PRIMARY KEY AUTOINCREMENT, doc_id TEXT UNIQUE NOT NULL,
    source INTEGER NOT NULL REFERENCES sources(id) ON DELETE CASCADE, title TEXT NOT NULL,
    n_chars INTEGER NOT NULL DEFAULT 0, n_chunks INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS documents_source ON documents(source);
CREATE TABLE IF NOT EXISTS doc_text (
    doc INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE, ordinal INTEGER NOT NULL,
    char_start INTEGER NOT NULL, page INTEGER, text TEXT NOT NULL, PRIMARY KEY (doc, ordinal));
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY AUTOINCREMENT, doc INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    ordinal INTEGER NOT NULL, char_start INTEGER NOT NULL, char_end INTEGER NOT NULL, page INTEGER,
    n_tokens INTEGER NOT NULL, text TEXT NOT NULL, embedding BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS chunks_doc ON chunks(doc, ordinal);
"""
_CHUNK_SELECT = (
    "SELECT c.id, d.doc_id, d.title, s.path, c.ordinal, c.char_start, c.char_end, c.n_tokens, c.text, c.page"
    " FROM chunks c JOIN documents d ON d.id = c.doc JOIN sources s ON s.id = d.source"
)


@dataclass(frozen=True)
class AddResult:
    """What `Store.add` did with one file: "added", "replaced" or "unchanged"."""

    path: str
    status: str
    documents: int = 0
    chunks: int = 0
    seconds: float = 0.0


@dataclass(frozen=True)
class StoreInfo:
    directory: str
    sources: int
    documents: int
    chunks: int
    generation: int
    index_generation: int | None
    embedder: str | None
    dim: int | None
    tokenizer: str
    chunk_size: int
    chunk_overlap: int
    index_titles: bool
    disk_bytes: int


def _flag(value: bool | None) -> str | None:
    return None if value is None else ("1" if value else "0")


def file_sha256(path: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


class Store:
    """A corpus folder. Open it, `add` files, `delete` documents, and search its `indexes()`.

    `embedder` is needed to add files; `tokenizer` (default: the embedder's own) measures chunks. Chunk
    settings and the embedder's name are fixed by the first file added, and re-checked on every later open.
    """

    def __init__(
        self,
        directory: str | Path,
        *,
        embedder: Embedder | None = None,
        tokenizer: Any = None,
        tokenizer_name: str | None = None,
        chunk_size: int | None = None,
        chunk_overlap: int | None = None,
        index_titles: bool | None = None,
        embed_batch: int = 64,
    ) -> None:
        self.directory = Path(directory).expanduser().resolve()
        if self.directory.exists() and not self.directory.is_dir():
            raise IngestError(self.directory, "store path exists and is not a directory")
        self.directory.mkdir(parents=True, exist_ok=True)
        self.embedder = embedder
        self.embed_batch = embed_batch
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(self.directory / DB_FILE, isolation_level=None, check_same_thread=False)
        try:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute("PRAGMA foreign_keys=ON")
            self._conn.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            self._conn.close()
            raise IngestError(self.directory / DB_FILE, f"not a usable ragspec store ({exc})") from None
        self._settle_settings(tokenizer, tokenizer_name, chunk_size, chunk_overlap, index_titles)
        self._indexes: idx.Indexes | None = None
        self.refresh()

    @classmethod
    def open(cls, directory: str | Path, **kwargs: Any) -> Store:
        """Open (or create) a store; stale index files left by a crash are rebuilt here."""
        return cls(directory, **kwargs)

    # ----- settings -------------------------------------------------------------------------------
    def _meta(self, key: str) -> str | None:
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def _set_meta(self, key: str, value: Any) -> None:
        self._conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, str(value)))

    def _count(self, table: str) -> int:
        return int(self._conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])

    def _settle_settings(
        self, tokenizer: Any, name: str | None, size: int | None, overlap: int | None, titles: bool | None
    ) -> None:
        """Use the store's recorded chunking unless it is empty; refuse to mix settings in one store."""
        if name is None and tokenizer is not None:
            name = (
                getattr(tokenizer, "name", None)
                or getattr(tokenizer, "name_or_path", None)
                or type(tokenizer).__name__
            )
        # By default chunks are measured in the embedding model's own tokens: that is what it truncates.
        default_name = getattr(self.embedder, "tokenizer_name", None) or "minilm-l6"
        wanted = {
            "tokenizer": name,
            "chunk_size": size,
            "chunk_overlap": overlap,
            "index_titles": _flag(titles),
        }
        defaults = {
            "tokenizer": default_name,
            "chunk_size": DEFAULT_CHUNK_SIZE,
            "chunk_overlap": DEFAULT_CHUNK_OVERLAP,
            "index_titles": "1",
        }
        empty = self._count("chunks") == 0
        if empty and name is None and self.embedder is not None:
            wanted["tokenizer"] = default_name
        effective: dict[str, str] = {}
        for key, value in wanted.items():
            stored = self._meta(key)
            if not empty and value is not None and stored is not None and stored != str(value):
                raise IngestError(self.directory, f"store uses {key.replace('_', ' ')} {stored}, not {value}")
            keep_stored = stored is not None and (not empty or value is None)
            effective[key] = stored if keep_stored else str(value if value is not None else defaults[key])
        size, overlap = int(effective["chunk_size"]), int(effective["chunk_overlap"])
        if size < 1 or not 0 <= overlap < size:
            raise IngestError(
                self.directory,
                f"bad chunk settings: size {size}, overlap {overlap} (need 0 <= overlap < size)",
            )
        with self._transaction():
            self._set_meta("schema_version", SCHEMA_VERSION)
            if self._meta("generation") is None:
                self._set_meta("generation", 0)
            for key, value in effective.items():
                self._set_meta(key, value)
        self._tokenizer = tokenizer
        self.tokenizer_name = effective["tokenizer"]
        self.chunk_size, self.chunk_overlap = size, overlap
        self.index_titles = effective["index_titles"] != "0"

    def _chunk_tokenizer(self) -> Any:
        """The tokenizer given at open, else the one the store records (loaded by name)."""
        if self._tokenizer is None:
            if self.tokenizer_name == RegexTokenizer.name:
                self._tokenizer = RegexTokenizer()
            else:
                self._tokenizer = default_tokenizer(self.tokenizer_name)
        return self._tokenizer

    def _check_embedder(self) -> Embedder:
        if self.embedder is None:
            raise IngestError(self.directory, "this store needs an embedder to add files")
        stored = self._meta("embedder")
        if stored is not None and stored != self.embedder.name and self._count("chunks"):
            raise IngestError(self.directory, f"store was embedded with {stored}, not {self.embedder.name}")
        return self.embedder

    @property
    def generation(self) -> int:
        return int(self._meta("generation") or 0)

    @property
    def dim(self) -> int | None:
        value = self._meta("dim")
        return int(value) if value else None

    @property
    def embedder_name(self) -> str | None:
        return self._meta("embedder")

    # ----- transactions ---------------------------------------------------------------------------
    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def _bump(self) -> None:
        self._set_meta("generation", self.generation + 1)

    # ----- writes -----------------------------------------------------------------------------------
    def add(self, path: str | Path, on_bytes: Callable[[int], None] | None = None) -> AddResult:
        """Ingest one file in one transaction; raises `IngestError` (store unchanged) on bad input.

        Index files are not rewritten here; call `refresh()` after a batch of adds (`ingest` does).
        """
        started = time.perf_counter()
        path = Path(path).expanduser()
        if not path.exists():
            raise IngestError(path, "no such file")
        if not path.is_file():
            raise IngestError(path, "not a regular file")
        path = path.resolve()
        loader = loader_for(path)
        sha, size = file_sha256(path)
        if size == 0:
            raise IngestError(path, "empty file")
        old = self._conn.execute("SELECT id, sha256 FROM sources WHERE path = ?", (str(path),)).fetchone()
        if old is not None and old[1] == sha:
            return AddResult(str(path), "unchanged", seconds=time.perf_counter() - started)
        embedder = self._check_embedder()
        settings = ChunkSettings(
            self._chunk_tokenizer(), self.chunk_size, self.chunk_overlap, self.index_titles
        )
        with self._transaction() as conn:
            if old is not None:
                conn.execute("DELETE FROM sources WHERE id = ?", (old[0],))
            source = conn.execute(
                "INSERT INTO sources(path, sha256, size, added_at) VALUES (?, ?, ?, ?)",
                (str(path), sha, size, time.time()),
            ).lastrowid
            writer = ChunkWriter(conn, embedder, self.embed_batch, self.index_titles)
            docs = 0
            for doc in loader(path, on_bytes or (lambda n: None)):
                if write_document(conn, source, path, doc, settings, writer) == 0:
                    what = (
                        "empty file (no text)"
                        if doc.doc_id == str(path)
                        else f"document {doc.doc_id!r} has no text"
                    )
                    raise IngestError(path, what)
                docs += 1
            writer.flush()
            if docs == 0:
                raise IngestError(path, "empty file (no documents)")
            self._set_meta("embedder", embedder.name)
            self._set_meta("dim", embedder.dim)
            self._bump()
        status = "replaced" if old is not None else "added"
        return AddResult(str(path), status, docs, writer.written, time.perf_counter() - started)

    def delete(self, key: str | Path) -> int:
        """Delete a source file (by path) or one document (by doc id); returns documents removed.

        Deleting one document of a multi-document file forgets the file's hash, so re-ingesting the file
        brings it back.
        """
        with self._transaction() as conn:
            candidates = [str(key), str(Path(str(key)).expanduser().resolve())]
            for path in candidates:
                row = conn.execute("SELECT id FROM sources WHERE path = ?", (path,)).fetchone()
                if row is not None:
                    removed = conn.execute(
                        "SELECT COUNT(*) FROM documents WHERE source = ?", (row[0],)
                    ).fetchone()[0]
                    conn.execute("DELETE FROM sources WHERE id = ?", (row[0],))
                    self._bump()
                    break
            else:
                row = conn.execute(
                    "SELECT id, source FROM documents WHERE doc_id = ?", (str(key),)
                ).fetchone()
                if row is None:
                    raise IngestError(None, f"no document or source {str(key)!r} in {self.directory}")
                conn.execute("DELETE FROM documents WHERE id = ?", (row[0],))
                conn.execute("UPDATE sources SET sha256 = '' WHERE id = ?", (row[1],))
                conn.execute(
                    "DELETE FROM sources WHERE id = ?"
                    " AND NOT EXISTS (SELECT 1 FROM documents WHERE source = ?)",
                    (row[1], row[1]),
                )
                removed = 1
                self._bump()
        self.refresh()
        return int(removed)

    # ----- indexes ----------------------------------------------------------------------------------
    def refresh(self) -> bool:
        """Make the index files and the loaded indexes match the database; True if anything was rebuilt."""
        with self._lock:
            generation = self.generation
            if self._indexes is not None and self._indexes.generation == generation:
                return False
            manifest = idx.read_manifest(self.directory)
            if manifest is not None and manifest["generation"] == generation:
                try:
                    self._indexes = idx.load(self.directory, manifest)
                    return False
                except Exception:  # unreadable files are just stale caches: rebuild below
                    pass
            built = idx.build(self._conn, generation, self.dim, self.index_titles)
            idx.write(self.directory, built)
            self._indexes = built
            return True

    def indexes(self) -> idx.Indexes:
        """The current BM25 and dense indexes, rebuilt first if this process changed the store."""
        if self._indexes is None or self._indexes.generation != self.generation:
            self.refresh()
        assert self._indexes is not None
        return self._indexes

    # ----- reads ------------------------------------------------------------------------------------
    def chunks(self, ids: Sequence[int]) -> list[Chunk]:
        """Chunks by id, in the order asked (ids not in the store are skipped)."""
        if not len(ids):
            return []
        marks = ",".join("?" * len(ids))
        with self._lock:
            rows = self._conn.execute(
                f"{_CHUNK_SELECT} WHERE c.id IN ({marks})", [int(i) for i in ids]
            ).fetchall()
        by_id = {row[0]: Chunk(*row) for row in rows}
        return [by_id[int(i)] for i in ids if int(i) in by_id]

    def document_chunks(self, doc_id: str) -> list[Chunk]:
        with self._lock:
            rows = self._conn.execute(
                f"{_CHUNK_SELECT} WHERE d.doc_id = ? ORDER BY c.ordinal", (doc_id,)
            ).fetchall()
        return [Chunk(*row) for row in rows]

    def document_text(self, doc_id: str, start: int = 0, end: int | None = None) -> str:
        """The document's text (or the `[start, end)` slice of it) that chunk offsets point into."""
        with self._lock:
            row = self._conn.execute(
                "SELECT id, n_chars FROM documents WHERE doc_id = ?", (doc_id,)
            ).fetchone()
            if row is None:
                raise KeyError(doc_id)
            end = row[1] if end is None else min(end, row[1])
            blocks = self._conn.execute(
                "SELECT char_start, text FROM doc_text"
                " WHERE doc = ? AND char_start < ? AND char_start + LENGTH(text) > ?"
                " ORDER BY ordinal",
                (row[0], end, start),
            ).fetchall()
        return "".join(text[max(0, start - s) : max(0, end - s)] for s, text in blocks)

    def documents(self) -> list[tuple[str, str, str, int]]:
        """`(doc_id, title, source, n_chunks)` for every document, in insertion order."""
        with self._lock:
            return self._conn.execute(
                "SELECT d.doc_id, d.title, s.path, d.n_chunks"
                " FROM documents d JOIN sources s ON s.id = d.source ORDER BY d.id"
            ).fetchall()

    def num_documents(self) -> int:
        with self._lock:
            return self._count("documents")

    def info(self) -> StoreInfo:
        with self._lock:
            counts = [self._count(t) for t in ("sources", "documents", "chunks")]
            manifest = idx.read_manifest(self.directory)
            disk = sum(p.stat().st_size for p in self.directory.rglob("*") if p.is_file())
            return StoreInfo(
                str(self.directory),
                *counts,
                self.generation,
                manifest["generation"] if manifest else None,
                self.embedder_name,
                self.dim,
                self._meta("tokenizer") or "",
                self.chunk_size,
                self.chunk_overlap,
                self.index_titles,
                disk,
            )

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
