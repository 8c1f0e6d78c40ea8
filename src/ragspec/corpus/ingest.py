"""Ingest many paths into a store: walk, add file by file, collect failures, then rebuild the indexes once.

A bad file never stops the run: it is reported in one line and the good files are still committed (each
file is its own transaction). The indexes are rebuilt once at the end rather than after every file,
because BM25 must be rebuilt whole and doing it per file would make a large ingest quadratic; a crash
before that point is repaired by the next `Store.open`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from ragspec.corpus.errors import IngestError
from ragspec.corpus.loaders import walk
from ragspec.corpus.store import AddResult, Store


class Progress(Protocol):
    """Receives progress in bytes so one bar can cover a run of many files of any size."""

    def begin(self, total_bytes: int, files: int) -> None: ...

    def file(self, path: Path) -> None: ...

    def advance(self, n_bytes: int) -> None: ...

    def phase(self, name: str) -> None: ...


@dataclass(frozen=True)
class Failure:
    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass(frozen=True)
class IngestReport:
    """The outcome of one ingest run; `ok` is False if any file failed."""

    added: tuple[AddResult, ...] = ()
    replaced: tuple[AddResult, ...] = ()
    unchanged: tuple[AddResult, ...] = ()
    failed: tuple[Failure, ...] = ()
    seconds: float = 0.0
    chunks: int = field(default=0)

    @property
    def ok(self) -> bool:
        return not self.failed

    def summary(self) -> str:
        return (
            f"{len(self.added)} added, {len(self.replaced)} replaced, {len(self.unchanged)} unchanged, "
            f"{len(self.failed)} failed; {self.chunks} chunks written in {self.seconds:.1f}s"
        )


def plan(paths: Iterable[str | Path]) -> tuple[list[Path], list[Failure]]:
    """The files a run will try, in a stable order, and the arguments that name nothing."""
    files: list[Path] = []
    failures: list[Failure] = []
    seen: set[Path] = set()
    for raw in paths:
        try:
            for path in walk([raw]):
                key = path.resolve()
                if key not in seen:
                    seen.add(key)
                    files.append(path)
        except IngestError as exc:
            failures.append(Failure(exc.path or str(raw), exc.reason))
    return files, failures


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def ingest(store: Store, paths: Iterable[str | Path], progress: Progress | None = None) -> IngestReport:
    """Add every file under `paths` to `store`, then bring the index files up to date."""
    started = time.perf_counter()
    files, failures = plan(paths)
    results: dict[str, list[AddResult]] = {"added": [], "replaced": [], "unchanged": []}
    if progress is not None:
        progress.begin(sum(_size(f) for f in files), len(files))
    for path in files:
        done = 0

        def advance(n: int) -> None:
            nonlocal done
            done += n
            if progress is not None:
                progress.advance(n)

        if progress is not None:
            progress.file(path)
        try:
            result = store.add(path, on_bytes=advance)
            results[result.status].append(result)
        except IngestError as exc:
            failures.append(Failure(exc.path or str(path), exc.reason))
        except OSError as exc:
            failures.append(Failure(str(path), exc.strerror or str(exc)))
        if progress is not None:
            progress.advance(max(0, _size(path) - done))
    if progress is not None:
        progress.phase("building indexes")
    store.refresh()
    chunks = sum(r.chunks for r in results["added"] + results["replaced"])
    return IngestReport(
        tuple(results["added"]),
        tuple(results["replaced"]),
        tuple(results["unchanged"]),
        tuple(failures),
        time.perf_counter() - started,
        chunks,
    )
