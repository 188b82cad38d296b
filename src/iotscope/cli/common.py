"""What every command shares: the error path and the console."""

from __future__ import annotations

from typing import NoReturn

import typer
from rich.console import Console

#: Human output (progress, tables) goes to stderr so that ``--json``/``--csv`` output on stdout stays clean.
console = Console(stderr=True)


def fail(message: str, code: int = 2) -> NoReturn:
    """Print a one-line error and exit with ``code`` (2: bad input, the convention of the CLI)."""
    console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)
