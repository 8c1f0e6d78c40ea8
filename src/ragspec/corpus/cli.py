"""Command-line pieces for the corpus: `ingest`, `search`, `store-info`, `delete` (and `bench-retrieval`).

The lead's `ragspec` app mounts these functions; `python -m ragspec.corpus.cli ...` runs them stand-alone.
User mistakes print one line on stderr, never a traceback: exit code 1 for an unusable command, 2 when
an ingest run had failed files (the good files are still committed).
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from ragspec.corpus.errors import IngestError
from ragspec.corpus.ingest import ingest
from ragspec.corpus.store import Store
from ragspec.retrieval.base import QueryError
from ragspec.retrieval.hybrid import DEFAULT_RRF_K

DEFAULT_STORE = Path(".ragspec/store")
app = typer.Typer(
    help="Ingest documents into a ragspec store and search them.", no_args_is_help=True, add_completion=False
)
out = Console()
err = Console(stderr=True)

StoreOption = Annotated[Path, typer.Option("--store", "-s", help="Store folder (created on first ingest).")]


def _fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


class _RichProgress:
    """One byte-based bar for the whole run, naming the file being read."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.task = progress.add_task("ingest", total=None)

    def begin(self, total_bytes: int, files: int) -> None:
        self.progress.update(self.task, total=max(1, total_bytes), description=f"{files} file(s)")

    def file(self, path: Path) -> None:
        self.progress.update(self.task, description=path.name[:40])

    def advance(self, n_bytes: int) -> None:
        self.progress.advance(self.task, n_bytes)

    def phase(self, name: str) -> None:
        self.progress.update(self.task, description=name)


def _open_store(store: Path, **kwargs) -> Store:
    try:
        return Store.open(store, **kwargs)
    except IngestError as exc:
        raise _fail(str(exc)) from None


@app.command("ingest")
def ingest_command(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders (.txt .md .html .pdf .jsonl).")],
    store: StoreOption = DEFAULT_STORE,
    chunk_size: Annotated[
        int | None, typer.Option("--chunk-size", help="Tokens per chunk (default 200).")
    ] = None,
    chunk_overlap: Annotated[
        int | None, typer.Option("--chunk-overlap", help="Overlap in tokens (default 30).")
    ] = None,
    embedder: Annotated[
        str, typer.Option("--embedder", help="Embedding model name or folder.")
    ] = "minilm-l6",
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Add files to a store; unchanged files are skipped, changed ones replaced."""
    from ragspec.retrieval.embedder import embedder_for

    try:
        model = embedder_for(embedder)
    except (ValueError, OSError) as exc:
        raise _fail(f"cannot load embedder {embedder!r}: {exc}") from None
    db = _open_store(store, embedder=model, chunk_size=chunk_size, chunk_overlap=chunk_overlap)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err, disable=quiet, transient=True) as bar:
        report = ingest(db, paths, _RichProgress(bar))
    db.close()
    for failure in report.failed:
        err.print(f"[red]failed:[/] {failure}", highlight=False, soft_wrap=True)
    out.print(report.summary(), highlight=False)
    if not report.ok:
        raise typer.Exit(2)


@app.command("search")
def search_command(
    query: Annotated[str, typer.Argument(help="Question or keywords.")],
    store: StoreOption = DEFAULT_STORE,
    k: Annotated[int, typer.Option("-k", "--top-k", help="Number of chunks.")] = 5,
    mode: Annotated[str, typer.Option("--mode", "-m", help="hybrid, bm25 or dense.")] = "hybrid",
    by_position: Annotated[
        bool, typer.Option("--by-position", help="Order hits by document position.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print hits as JSON.")] = False,
) -> None:
    """Search a store and print the top chunks with their scores and provenance."""
    from ragspec.retrieval.hybrid import StoreRetriever

    if not (store / "store.sqlite").is_file():
        raise _fail(f"{store}: no store here; run ingest first")
    db = _open_store(store)
    try:
        hits = StoreRetriever(db).search(query, k, mode=mode, by_position=by_position)
    except (QueryError, ValueError, OSError) as exc:
        raise _fail(str(exc)) from None
    finally:
        db.close()
    if as_json:
        sys.stdout.write(json.dumps([h.to_dict() for h in hits], ensure_ascii=False, indent=2) + "\n")
        return
    if not hits:
        out.print("no matching chunks")
    for hit in hits:
        c = hit.chunk
        where = f"p.{c.page} " if c.page is not None else ""
        out.print(
            f"[bold]{hit.rank}. {c.title}[/] "
            f"[dim]{where}{c.doc_id} [{c.start}:{c.end}] score={hit.score:.4f}[/]",
            highlight=False,
        )
        out.print(c.text if len(c.text) <= 400 else c.text[:400] + "…", highlight=False, markup=False)


@app.command("store-info")
def store_info_command(
    store: StoreOption = DEFAULT_STORE,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """Counts, settings and disk use of a store."""
    if not (store / "store.sqlite").is_file():
        raise _fail(f"{store}: no store here; run ingest first")
    db = _open_store(store)
    info = asdict(db.info())
    db.close()
    if as_json:
        sys.stdout.write(json.dumps(info, indent=2) + "\n")
        return
    for key, value in info.items():
        out.print(f"{key:>17}: {value}", highlight=False)


@app.command("delete")
def delete_command(
    key: Annotated[str, typer.Argument(help="A source file path or a document id.")],
    store: StoreOption = DEFAULT_STORE,
) -> None:
    """Remove a source file's documents, or one document, from a store."""
    if not (store / "store.sqlite").is_file():
        raise _fail(f"{store}: no store here")
    db = _open_store(store)
    try:
        removed = db.delete(key)
    except IngestError as exc:
        raise _fail(str(exc)) from None
    finally:
        db.close()
    out.print(f"deleted {removed} document(s)")


@app.command("bench-retrieval")
def bench_retrieval_command(
    data_dir: Annotated[
        Path, typer.Argument(help="Folder with corpus.jsonl + questions.jsonl (or folders of them).")
    ],
    json_out: Annotated[Path | None, typer.Option("--json", help="Write results as JSON here.")] = None,
    mode: Annotated[list[str] | None, typer.Option("--mode", help="Modes to run (default: all).")] = None,
    chunk_size: Annotated[int | None, typer.Option("--chunk-size")] = None,
    chunk_overlap: Annotated[int | None, typer.Option("--chunk-overlap")] = None,
    rrf_k: Annotated[int, typer.Option("--rrf-k", help="RRF constant.")] = DEFAULT_RRF_K,
    bm25_weight: Annotated[float, typer.Option("--bm25-weight")] = 1.0,
    dense_weight: Annotated[float, typer.Option("--dense-weight")] = 1.0,
    limit: Annotated[int | None, typer.Option("--limit", help="Only the first N questions.")] = None,
    store: Annotated[
        Path | None, typer.Option("--store", help="Keep the stores here (reused if unchanged).")
    ] = None,
) -> None:
    """Recall@1/5/10, MRR and p50/p95 latency of BM25, dense and hybrid search."""
    from ragspec.retrieval.bench import bench_retrieval

    try:
        bench_retrieval(
            data_dir,
            json_out,
            mode,
            chunk_size,
            chunk_overlap,
            rrf_k,
            bm25_weight,
            dense_weight,
            limit,
            store,
        )
    except (ValueError, OSError) as exc:
        raise _fail(str(exc)) from None


def main() -> None:
    app()


if __name__ == "__main__":
    main()
