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
directory opens it ``immutable=1`` (nobody can be writing it through that mount; see
:mod:`iotscope.store.sqlite`).
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from iotscope.errors import IotscopeError
from iotscope.store.layout import STORE_FORMAT
from iotscope.store.sqlite import connect_read_only


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

#: Added for compaction and retention (``iotscope.store.compaction``, ``iotscope.store.retention``);
#: created in any store that lacks them, so earlier stores of this format open unchanged.
#: The live files of ``packets/`` are those of ``ingested_files`` and ``compacted_files`` that are
#: not in ``retired_files``; a retired file stays on disk for a grace period (readers that listed
#: it before may still read it), then is deleted and ``deleted_at`` set.
_FILES_SCHEMA = """
CREATE TABLE IF NOT EXISTS compacted_files (
    path        TEXT PRIMARY KEY,  -- relative to the store root
    hour        TEXT NOT NULL,     -- partition, 'YYYY-MM-DD HH'
    rows        INTEGER NOT NULL,
    replaces    INTEGER NOT NULL,  -- how many files it replaced
    created_at  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS retired_files (
    path        TEXT PRIMARY KEY,
    reason      TEXT NOT NULL,     -- 'compacted' or 'retention'
    retired_at  TEXT NOT NULL,
    deleted_at  TEXT
);
CREATE TABLE IF NOT EXISTS retention_log (
    hour        TEXT NOT NULL,
    files       INTEGER NOT NULL,
    rows        INTEGER NOT NULL,
    keep        TEXT NOT NULL,     -- the retention asked for, e.g. '400d'
    removed_at  TEXT NOT NULL
);
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
            self._db.executescript(_FILES_SCHEMA)
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

    # -- compaction and retention (tables in _FILES_SCHEMA) -------------------------------------

    def live_files(self) -> list[str]:
        """Parquet files (relative paths) that make up ``packets/`` now: committed by an ingest or
        a compaction, and not retired since. Ingest order, then compaction order."""
        files = [f for entry in self.all_ingested() for f in entry.files]
        if not self._has_files_tables():
            return files  # a store opened read-only that no compaction-aware writer has opened yet
        retired = {r[0] for r in self._select("SELECT path FROM retired_files")}
        files += [r[0] for r in self._select("SELECT path FROM compacted_files ORDER BY created_at, path")]
        return [f for f in files if f not in retired]

    def retained_rows(self) -> int:
        """Rows that retention removed from ``packets/``: committed captures' rows minus these are
        the rows the live files hold (compaction moves rows, it never drops any)."""
        if not self._has_files_tables():
            return 0
        return int(self._select("SELECT coalesce(sum(rows), 0) FROM retention_log")[0][0])

    def _has_files_tables(self) -> bool:
        return bool(self._select("SELECT count(*) FROM sqlite_master WHERE name = 'retention_log'")[0][0])

    def record_compaction(self, path: str, hour: str, rows: int, replaced: list[str]) -> None:
        """In one transaction: ``path`` joins the dataset and the files it replaces leave it, so a
        reader sees either all the old files or the new one, never both or neither."""
        now = _now()
        with self._transaction():
            self._db.execute("INSERT INTO compacted_files VALUES (?, ?, ?, ?, ?)", (path, hour, rows, len(replaced), now))
            self._db.executemany(
                "INSERT INTO retired_files VALUES (?, 'compacted', ?, NULL)", [(f, now) for f in replaced])

    def record_retention(self, hour: str, files: list[str], rows: int, keep: str) -> None:
        """In one transaction: the files of partition ``hour`` leave the dataset, and the log says so."""
        now = _now()
        with self._transaction():
            self._db.executemany(
                "INSERT INTO retired_files VALUES (?, 'retention', ?, NULL)", [(f, now) for f in files])
            self._db.execute("INSERT INTO retention_log VALUES (?, ?, ?, ?, ?)", (hour, len(files), rows, keep, now))

    def retention_log(self) -> list[tuple[str, int, int, str, str]]:
        return self._db.execute("SELECT * FROM retention_log ORDER BY removed_at, hour").fetchall()

    def compacted_rows(self) -> dict[str, int]:
        """Rows of every file compaction wrote (retired or not), by relative path."""
        if not self._has_files_tables():
            return {}
        return {path: int(rows) for path, rows in self._select("SELECT path, rows FROM compacted_files")}

    def retired_paths(self, reason: str) -> set[str]:
        """Files retired for ``reason`` ('compacted' or 'retention'), deleted or not."""
        if not self._has_files_tables():
            return set()
        return {r[0] for r in self._select("SELECT path FROM retired_files WHERE reason = ?", (reason,))}

    def retired_not_deleted(self, retired_before: str | None = None) -> list[str]:
        """Retired files still on disk (waiting out their grace period): all of them, or those
        retired at or before the ISO time ``retired_before``."""
        if retired_before is None:
            rows = self._db.execute("SELECT path FROM retired_files WHERE deleted_at IS NULL")
        else:
            rows = self._db.execute(
                "SELECT path FROM retired_files WHERE deleted_at IS NULL AND retired_at <= ?", (retired_before,))
        return [r[0] for r in rows]

    def mark_deleted(self, paths: list[str]) -> None:
        now = _now()
        with self._transaction():
            self._db.executemany("UPDATE retired_files SET deleted_at = ? WHERE path = ?", [(now, p) for p in paths])

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")


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


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def open_read_only(path: Path) -> sqlite3.Connection:
    """Open ``path`` for reading only, never creating it (see :mod:`iotscope.store.sqlite`)."""
    if not path.is_file():
        raise StoreError(f"{path.parent}: not an iotscope store (no {path.name})")
    return connect_read_only(path)


def _row_to_file(row: tuple) -> IngestedFile:
    sha, source, size, packets, records, skipped, files, at = row
    return IngestedFile(sha, source, size, packets, records, json.loads(skipped), json.loads(files), at)
