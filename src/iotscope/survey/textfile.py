"""Reading the text files a user names (scope, blocklist, credentials, zmap/masscan output).

A missing or unreadable file is the user's mistake, not a bug: it must end as one line naming the
file and what it was meant to be, raised as the caller's own typed error (which the CLI maps to
exit 2), never as a traceback.
"""

from __future__ import annotations

from pathlib import Path


def read_text_file(path: Path, what: str, error: type[Exception], where: str | None = None) -> str:
    """The UTF-8 text of ``path``; else ``error("<where>: <what> not found")`` or "cannot read <what>".

    ``what`` names the file for the user ("scope file"); ``where`` (default: the path) is the
    place to point at, e.g. the scope file that names a missing blocklist.
    """
    where = str(path) if where is None else where
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(f"{where}: {what} not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"{where}: cannot read {what} ({exc})") from None
