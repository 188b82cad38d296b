"""The hand-written TOML files a user gives (scope, credentials, organizations), validated the one way.

Each of them is a few tables of string keys that a typo must not silently weaken: an unknown key
is an error (a misspelt ``special_purpose`` would otherwise widen nothing and say nothing), and
every problem is one line naming the file, the entry and the key, raised as the caller's own typed
error (which the CLI maps to exit 2). What the files mean stays with their modules; how they are
read and what their messages say is here, so that every file answers the same way.
"""

from __future__ import annotations

import tomllib
from collections.abc import Collection
from pathlib import Path
from typing import Any

from iotscope.textfile import read_text_file


def load_toml(path: Path, what: str, error: type[Exception], top_level_keys: Collection[str]) -> dict[str, Any]:
    """The document in the file ``path`` (a regular file of at most 1 MiB, see
    :mod:`iotscope.textfile`), its top-level keys limited to ``top_level_keys``."""
    origin = str(path)
    document = parse_toml(read_text_file(path, what, error), origin, error)
    unknown = set(document) - set(top_level_keys)
    if unknown:
        raise error(f"{origin}: unknown top-level key(s) {', '.join(sorted(unknown))}")
    return document


def parse_toml(text: str, origin: str, error: type[Exception]) -> dict[str, Any]:
    """``text`` as a TOML document, or ``error("<origin>: not valid TOML (...)")``."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{origin}: not valid TOML ({exc})") from None


def array_of_tables(document: dict[str, Any], key: str, origin: str, error: type[Exception]) -> list[Any]:
    """The ``[[key]]`` entries of ``document``: at least one, or the file is refused."""
    entries = document.get(key)
    if not isinstance(entries, list) or not entries:
        raise error(f"{origin}: expected one or more [[{key}]] tables")
    return entries


def entry_table(entry: object, where: str, keys: Collection[str], error: type[Exception]) -> dict[str, Any]:
    """``entry`` as a table whose keys are all among ``keys``; ``where`` names it in messages."""
    if not isinstance(entry, dict):
        raise error(f"{where}: expected a table")
    unknown = set(entry) - set(keys)
    if unknown:
        raise error(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    return entry


def required_string(table: dict[str, Any], key: str, where: str, error: type[Exception]) -> str:
    """``table[key]``, a string with something besides white space, stripped."""
    if key not in table:
        raise error(f"{where}: missing {key!r}")
    value = table[key]
    if not isinstance(value, str) or not value.strip():
        raise error(f"{where}: {key!r} must be a non-empty string")
    return value.strip()
