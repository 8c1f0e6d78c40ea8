"""One red line instead of a traceback for the errors a user can fix (bad input, missing files)."""

from __future__ import annotations

import functools
from typing import Callable

import typer
from rich.console import Console

err = Console(stderr=True)


def user_errors(fn: Callable) -> Callable:
    """Turn the package's user-facing errors into one red line and exit code 2."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (ValueError, FileNotFoundError, OSError) as exc:  # ModelError, IngestError, QueryError are ValueErrors
            err.print(f"[red]error:[/] {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
                      highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
    return wrapper
