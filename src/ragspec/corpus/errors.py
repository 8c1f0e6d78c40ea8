"""The one error type of ingestion: a file that cannot be ingested, said in one line that names it.

It subclasses `ValueError` so callers that already catch bad input keep working, and carries the path
separately so a summary can list failures per file.
"""

from __future__ import annotations

from pathlib import Path


class IngestError(ValueError):
    """A file (or store) that cannot be ingested; `str()` is a single line like `notes.txt: empty file`."""

    def __init__(self, path: str | Path | None, reason: str) -> None:
        self.path = str(path) if path is not None else None
        self.reason = " ".join(reason.split())  # one line, whatever the underlying library said
        super().__init__(f"{self.path}: {self.reason}" if self.path else self.reason)
