"""Small operational state of a store, in SQLite: which capture files are committed, and how.

The Parquet files hold the packets; this table is what makes ingest idempotent and crash-safe:
a capture counts only once its row is committed here, keyed by the XXH3-128 hash of its content.

Readers (``stats``, ``sql``) open the file read-only (``mode=ro``): no schema set-up, no pragma
that writes, no file created, so they work on a store they cannot write (a read-only mount,
another user's store) and leave a writable one byte-for-byte as it was. That is why the journal is
a rollback journal, not WAL: a WAL reader must create a ``-shm`` file next to the database (and
cannot on a read-only directory); a rollback-journal reader only takes a shared lock. Commits are
one per capture, so WAL's concurrency buys nothing here. A store still in WAL mode (made by an
older iotscope) is switched by its next writer; until then a reader that cannot write the
directory opens it ``immutable=1`` (nobody can be writing it through that mount).
"""

from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import quote

from iotscope.errors import IotscopeError

#: Bumped whenever the layout of the store changes; a store of another version is refused, not guessed at.
STORE_FORMAT = 2  # 2: packets gained the ``tool`` column

#: How long a reader and a committing writer wait for each other's lock on ``state.sqlite``.
_BUSY_TIMEOUT_MS = 10_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS ingested_files (
    content_hash      TEXT PRIMARY KEY,
    source      TEXT NOT NULL,
    size        INTEGER NOT NULL,
    packets     INTEGER NOT NULL,
    records     INTEGER NOT NULL,
    skipped     TEXT NOT NULL,   -- JSON object: reason -> count
    files       TEXT NOT NULL,   -- JSON list of Parquet paths relative to the store root
    ingested_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS ingested_files_source ON ingested_files (source);
"""


@dataclass(frozen=True)
class IngestedFile:
    """One committed capture: where it came from and what it added to the store."""

    content_hash: str
    source: str
    size: int
    packets: int
    records: int
    skipped: dict[str, int]
    files: list[str]
    ingested_at: str


class StoreError(IotscopeError):
    """The store directory is unusable (not a directory, not writable, another format); one line."""


class StoreState:
    """The SQLite file ``state.sqlite`` at the root of a store."""

    def __init__(self, path: Path, *, read_only: bool = False) -> None:
        self.read_only = read_only
        try:
            self._db = open_read_only(path) if read_only else sqlite3.connect(path, isolation_level=None)
            self._db.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
            if not read_only:
                self._db.execute("PRAGMA journal_mode=DELETE")
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            tables = self._db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{path}: not a usable store state file ({exc})") from None
        if (tables or read_only) and version != STORE_FORMAT:
            self._db.close()
            raise StoreError(
                f"{path.parent}: store format {version}, this iotscope reads format {STORE_FORMAT}; "
                "ingest into a new store directory"
            )
        if read_only:
            return
        try:
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
            self._db.execute(f"PRAGMA user_version = {STORE_FORMAT}")
        except sqlite3.OperationalError as exc:
            self._db.close()
            raise StoreError(f"{path}: cannot write the store state ({exc})") from None

    def close(self) -> None:
        self._db.close()

    def ingested(self, content_hash: str) -> IngestedFile | None:
        rows = self._select("SELECT * FROM ingested_files WHERE content_hash = ?", (content_hash,))
        return _row_to_file(rows[0]) if rows else None

    def all_ingested(self) -> list[IngestedFile]:
        rows = self._select("SELECT * FROM ingested_files ORDER BY ingested_at, size")
        return [_row_to_file(r) for r in rows]

    def ingested_from(self, source: str) -> list[IngestedFile]:
        """The committed captures read from the path ``source``, smallest first."""
        rows = self._select("SELECT * FROM ingested_files WHERE source = ? ORDER BY size", (source,))
        return [_row_to_file(r) for r in rows]

    def forget(self, content_hashes: list[str]) -> None:
        """Drop captures from the catalog (``store check --repair``), so that they can be ingested again."""
        self._writable()
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany("DELETE FROM ingested_files WHERE content_hash = ?", [(h,) for h in content_hashes])

    def record_ingest(
        self, content_hash: str, source: str, size: int, packets: int, records: int,
        skipped: dict[str, int], files: list[str],
    ) -> None:
        """Commit one capture: from this statement on, its Parquet files are part of the store."""
        self._writable()
        now = datetime.now(timezone.utc).isoformat(timespec="seconds")
        self._db.execute(
            "INSERT INTO ingested_files VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (content_hash, source, size, packets, records, json.dumps(skipped), json.dumps(files), now),
        )


    def _select(self, sql: str, params: tuple = ()) -> list[tuple]:
        """Rows of a query; a state file that cannot be read is one line, not a traceback.

        A read-only connection cannot roll back the journal of a commit that a crash interrupted;
        the next writer (``ingest``, ``store check --repair``) does that when it opens the store.
        """
        try:
            return self._db.execute(sql, params).fetchall()
        except sqlite3.DatabaseError as exc:
            hint = "; an interrupted ingest must be recovered: run `iotscope ingest` again" if self.read_only else ""
            raise StoreError(f"cannot read the store state ({exc}){hint}") from None

    def _writable(self) -> None:
        if self.read_only:
            raise StoreError("the store was opened read-only; this operation writes")


def open_read_only(path: Path) -> sqlite3.Connection:
    """Open ``path`` for reading only, never creating it (see the module docstring for ``immutable``)."""
    if not path.is_file():
        raise StoreError(f"{path.parent}: not an iotscope store (no {path.name})")
    uri = "file:" + quote(str(path.resolve()))
    with open(path, "rb") as f:
        header = f.read(20)
    wal = len(header) == 20 and header[18] == 2  # the file format's read version: 2 means WAL
    if wal and not os.access(path.parent, os.W_OK):
        return sqlite3.connect(uri + "?immutable=1", uri=True, isolation_level=None)
    return sqlite3.connect(uri + "?mode=ro", uri=True, isolation_level=None)


def _row_to_file(row: tuple) -> IngestedFile:
    sha, source, size, packets, records, skipped, files, at = row
    return IngestedFile(sha, source, size, packets, records, json.loads(skipped), json.loads(files), at)
