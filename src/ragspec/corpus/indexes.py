"""The store's index files: derived from SQLite, written atomically, and rebuilt when stale.

SQLite is the truth; the BM25 folder and the faiss file are caches that can always be rebuilt from it
(chunk texts and float32 embedding blobs), so a crash can cost time but never data. Each build is written
under names carrying the store's `generation` (bumped by every committed change), and a small manifest is
`os.replace`d last: the manifest is the commit point, and a manifest whose generation differs from the
database's says the files are stale.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ragspec.corpus.writer import index_text
from ragspec.retrieval.bm25 import BM25Index
from ragspec.retrieval.dense import DenseIndex

MANIFEST = "indexes.json"
_FETCH = 2048


@dataclass(frozen=True)
class Indexes:
    """The loaded indexes of one generation; `dense` is None while the store has no embeddings."""

    generation: int
    bm25: BM25Index
    dense: DenseIndex | None


def read_manifest(directory: Path) -> dict | None:
    try:
        manifest = json.loads((directory / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("generation"), int):
        return None
    return manifest


def _texts(conn: sqlite3.Connection, titles: bool) -> Iterator[tuple[int, str]]:
    cursor = conn.execute(
        "SELECT c.id, d.title, c.text FROM chunks c JOIN documents d ON d.id = c.doc ORDER BY c.id"
    )
    while rows := cursor.fetchmany(_FETCH):
        for chunk_id, title, text in rows:
            yield chunk_id, index_text(title, text, titles)


def _vectors(conn: sqlite3.Connection, dim: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    cursor = conn.execute("SELECT id, embedding FROM chunks ORDER BY id")
    while rows := cursor.fetchmany(_FETCH):
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        vectors = np.frombuffer(b"".join(r[1] for r in rows), dtype="<f4").reshape(len(rows), dim)
        yield ids, vectors


def build(conn: sqlite3.Connection, generation: int, dim: int | None, titles: bool = True) -> Indexes:
    """Build both indexes from the database, streaming rows so memory is the indexes' own size."""
    bm25 = BM25Index.build(_texts(conn, titles))
    dense = DenseIndex.build(dim, _vectors(conn, dim)) if dim else None
    return Indexes(generation, bm25, dense)


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write(directory: Path, indexes: Indexes) -> None:
    """Write under temporary names, rename into generation-stamped names, then commit the manifest."""
    gen = indexes.generation
    bm25_name, dense_name = f"bm25-g{gen}", f"dense-g{gen}.faiss"
    tmp_dir = directory / f".{bm25_name}.tmp"
    shutil.rmtree(tmp_dir, ignore_errors=True)
    indexes.bm25.save(tmp_dir)
    shutil.rmtree(directory / bm25_name, ignore_errors=True)
    os.replace(tmp_dir, directory / bm25_name)
    manifest = {"generation": gen, "bm25": bm25_name, "dense": None, "n_chunks": len(indexes.bm25)}
    if indexes.dense is not None:
        tmp_file = directory / f".{dense_name}.tmp"
        indexes.dense.save(tmp_file)
        os.replace(tmp_file, directory / dense_name)
        manifest["dense"] = dense_name
    tmp_manifest = directory / f".{MANIFEST}.tmp"
    with open(tmp_manifest, "w") as fh:
        json.dump(manifest, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp_manifest, directory / MANIFEST)
    _fsync_dir(directory)
    remove_unreferenced(directory, manifest)


def load(directory: Path, manifest: dict) -> Indexes:
    bm25 = BM25Index.load(directory / manifest["bm25"])
    dense = DenseIndex.load(directory / manifest["dense"]) if manifest.get("dense") else None
    if dense is not None and len(dense) != len(bm25):
        raise ValueError("index files disagree on the number of chunks")
    return Indexes(int(manifest["generation"]), bm25, dense)


def remove_unreferenced(directory: Path, manifest: dict | None) -> None:
    """Delete index files of other generations and temp files left by an interrupted write."""
    keep = {MANIFEST}
    if manifest:
        keep.update(name for name in (manifest.get("bm25"), manifest.get("dense")) if name)
    for entry in directory.iterdir():
        name = entry.name
        derived = name.startswith(("bm25-g", "dense-g", ".bm25-g", ".dense-g", f".{MANIFEST}"))
        if derived and name not in keep:
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
