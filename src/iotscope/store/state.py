"""Small operational state of a store, in SQLite: which capture files are committed, and how.

The Parquet files hold the packets; this table is what makes ingest idempotent and crash-safe:
a capture counts only once its row is committed here, keyed by the XXH3-128 hash of its content.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from iotscope.errors import IotscopeError

#: Bumped whenever the layout of the store changes; a store of another version is refused, not guessed at.
STORE_FORMAT = 2  # 2: packets gained the ``tool`` column

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

    def __init__(self, path: Path) -> None:
        try:
            self._db = sqlite3.connect(path, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            tables = self._db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{path}: not a usable store state file ({exc})") from None
        if tables and version != STORE_FORMAT:
            self._db.close()
            raise StoreError(
                f"{path.parent}: store format {version}, this iotscope reads format {STORE_FORMAT}; "
                "ingest into a new store directory"
            )
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        self._db.execute(f"PRAGMA user_version = {STORE_FORMAT}")

    def close(self) -> None:
        self._db.close()

    def ingested(self, content_hash: str) -> IngestedFile | None:
        row = self._db.execute("SELECT * FROM ingested_files WHERE content_hash = ?", (content_hash,)).fetchone()
        return _row_to_file(row) if row else None

    def all_ingested(self) -> list[IngestedFile]:
        rows = self._db.execute("SELECT * FROM ingested_files ORDER BY ingested_at").fetchall()
        return [_row_to_file(r) for r in rows]

    def record_ingest(
        self, content_hash: str, source: str, size: int, packets: int, records: int,
        skipped: dict[str, int], files: list[str],
    ) -> None:
        """Commit one capture: from this statement on, its Parquet files are part of the store."""
        now = datetime.now(timezone.utc).isoformat(timespec="seconds")
        self._db.execute(
            "INSERT INTO ingested_files VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (content_hash, source, size, packets, records, json.dumps(skipped), json.dumps(files), now),
        )


def _row_to_file(row: tuple) -> IngestedFile:
    sha, source, size, packets, records, skipped, files, at = row
    return IngestedFile(sha, source, size, packets, records, json.loads(skipped), json.loads(files), at)
