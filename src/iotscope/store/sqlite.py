"""Open a store's SQLite file for reading only, creating nothing, whoever wrote it and in what mode.

Readers (``stats``, ``sql``, reports, the catalog) must leave a store byte-for-byte as it was and
work where they cannot write. SQLite's ``mode=ro`` alone does not promise that for a database in
WAL mode: the reader still creates the ``-wal``/``-shm`` files beside it, and fails where it cannot.
So a WAL database is opened ``immutable=1`` (read as plain bytes, no lock, no side file) when no
``-wal`` file exists (no writer is running and none was interrupted: everything is in the main
file) or when the directory is not writable (nothing can be written through that mount anyway).
Every other case is plain ``mode=ro``: a rollback-journal database (``state.sqlite``) only takes a
shared lock, and a WAL database with a ``-wal`` file must be read through it to see its commits.

One function for every such file (``state.sqlite``, ``survey_state.sqlite``, ``notify.sqlite``);
callers check that the file exists and turn :class:`sqlite3.Error` into their own one-line error.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from urllib.parse import quote


def connect_read_only(path: Path) -> sqlite3.Connection:
    """A connection that can only read ``path`` (an existing file) and never creates one beside it."""
    uri = "file:" + quote(str(path.resolve()))
    if is_wal(path) and (not path.with_name(path.name + "-wal").exists() or not os.access(path.parent, os.W_OK)):
        return sqlite3.connect(uri + "?mode=ro&immutable=1", uri=True, isolation_level=None)
    return sqlite3.connect(uri + "?mode=ro", uri=True, isolation_level=None)


def is_wal(path: Path) -> bool:
    """Whether the database file is in WAL mode (its header's read version is 2)."""
    with open(path, "rb") as f:
        header = f.read(20)
    return len(header) == 20 and header[18] == 2
