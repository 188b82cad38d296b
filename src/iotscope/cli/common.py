"""What every command shares: the error path, the consoles, and how user text is shown on them."""

from __future__ import annotations

import re
from pathlib import Path
from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape

#: Human output (progress, tables) goes to stderr so that ``--json``/``--csv`` output on stdout stays clean.
#: ``emoji=False``: a ``:smile:`` in a file name or an owner is text, not a picture.
console = Console(stderr=True, emoji=False)
#: Tables a command prints as its result (``sql``), on stdout.
stdout_console = Console(emoji=False)

#: C0 and C1 control characters, DEL, and the Unicode format characters that move or reorder text
#: (line/paragraph separators, bidirectional overrides and isolates): what lets a file name clear
#: the screen, retitle the terminal, or display as something else.
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]")


def printable(text: object) -> str:
    """``text`` (a path, an owner, a message quoting them) as the console shows it literally.

    Anything a user or a remote party controls goes through here before it reaches a console
    call that interprets markup: Rich markup is escaped (``[[authorized]]`` is shown as written,
    ``[/]`` in a path cannot raise ``MarkupError``) and control characters become visible escapes
    (``\\x1b``), so a file name cannot send escape sequences to the terminal or break a one-line
    message in two.
    """
    shown = _UNPRINTABLE.sub(lambda match: ascii(match.group())[1:-1], str(text))
    return escape(shown)


def fail(message: object, code: int = 2) -> NoReturn:
    """Print a one-line error and exit with ``code`` (2: bad input, the convention of the CLI).

    ``message`` is shown as written (see :func:`printable`): messages quote paths and file content.
    """
    console.print(f"[bold red]error:[/] {printable(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def require_store(store: Path) -> None:
    """Refuse (one line, exit 2) a ``--store`` that is not a store, before anything opens or creates it."""
    if not (store / "state.sqlite").is_file():
        fail(f"{store}: not an iotscope store (run `iotscope ingest ... --store {store}` first)")


def warn(message: object) -> None:
    """Print a one-line warning, ``message`` shown as written."""
    console.print(f"[yellow]warning:[/] {printable(message)}", highlight=False, soft_wrap=True)
