"""The web service's read-only view of a store: DuckDB views that follow new commits.

Why its own reader: ``PacketStore(root)`` creates directories and cleans up a killed ingest's
remains when it opens, which a reader that is always running (and may run as a user who cannot
write the store) must never do. Until the store offers a read-only open, this module opens
``state.sqlite`` itself with SQLite's ``mode=ro`` (nothing created, nothing written) and hands
the committed file list to :func:`iotscope.store.query.connect`, which defines the views; the
web layer therefore shows exactly what ``iotscope sql`` shows.

A capture committed while the server runs changes the *generation* (number of committed captures
and their packets); the next request sees a rebuilt view, and ``/api/live`` tells open pages.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

import duckdb

from iotscope.store.query import connect
from iotscope.store.state import STORE_FORMAT, StoreError


@dataclass(frozen=True)
class Generation:
    """What identifies the committed content of a store: it changes whenever a capture commits."""

    captures: int
    packets: int


class _CommittedFiles:
    """The one method of a store that :func:`iotscope.store.query.connect` uses, read-only."""

    def __init__(self, files: list[Path]) -> None:
        self._files = files

    def committed_files(self) -> list[Path]:
        return self._files


def _views(files: list[Path]) -> duckdb.DuckDBPyConnection:
    """The store's views (``iotscope.store.query.connect``), usable from every cursor.

    ``connect`` defines an empty store's ``packets`` over a registered Arrow table, which only that
    connection sees, not its cursors; copied into a table, the empty view works from any thread.
    """
    con = connect(_CommittedFiles(files))  # type: ignore[arg-type]
    if not files:
        con.execute("CREATE TABLE _no_packets AS SELECT * FROM packets")
        con.execute("CREATE OR REPLACE VIEW packets AS SELECT * FROM _no_packets")
    return con


class StoreReader:
    """Opens a store read-only and serves DuckDB cursors over its committed files.

    Thread-safe: handlers run on a thread pool; each gets its own cursor of the shared in-memory
    database, and the view is rebuilt (under a lock) only when the generation has changed.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        state = self.root / "state.sqlite"
        if not self.root.is_dir():
            raise StoreError(f"{self.root}: no such store directory")
        if not state.is_file():
            raise StoreError(f"{self.root}: not a store (no state.sqlite); ingest a capture into it first")
        self._state_uri = f"{state.resolve().as_uri()}?mode=ro"
        self._lock = threading.Lock()
        self._connection: duckdb.DuckDBPyConnection | None = None
        self._generation: Generation | None = None
        with self._state() as db:
            version = db.execute("PRAGMA user_version").fetchone()[0]
        if version != STORE_FORMAT:
            raise StoreError(f"{self.root}: store format {version}, this iotscope reads format {STORE_FORMAT}")
        self.cursor()  # fail now, at start-up, rather than on the first request

    def _state(self) -> sqlite3.Connection:
        try:
            return sqlite3.connect(self._state_uri, uri=True, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise StoreError(f"{self.root}: cannot read state.sqlite ({exc})") from None

    def generation(self) -> Generation:
        """The store's current generation: one small read-only SQLite query, cheap to poll."""
        db = self._state()
        try:
            captures, packets = db.execute("SELECT count(*), coalesce(sum(packets), 0) FROM ingested_files").fetchone()
        except sqlite3.Error as exc:
            raise StoreError(f"{self.root}: cannot read state.sqlite ({exc})") from None
        finally:
            db.close()
        return Generation(int(captures), int(packets))

    def _committed_files(self) -> list[Path]:
        db = self._state()
        try:
            rows = db.execute("SELECT files FROM ingested_files ORDER BY ingested_at").fetchall()
        finally:
            db.close()
        return [self.root / name for (files,) in rows for name in json.loads(files)]

    def snapshot(self) -> tuple[Generation, duckdb.DuckDBPyConnection]:
        """The current generation and a cursor whose views cover exactly its committed captures."""
        current = self.generation()
        with self._lock:
            if self._connection is None or current != self._generation:
                # The old connection is not closed here: cursors handed out from it may still be
                # running a query on another thread; it goes when the last of them does.
                fresh = _views(self._committed_files())
                self._connection, self._generation = fresh, current
            return current, self._connection.cursor()

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A cursor whose ``packets`` view covers every capture committed by now."""
        return self.snapshot()[1]

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None
