"""The web service's read-only view of a store: DuckDB views that follow new commits.

The store is opened with ``PacketStore(root, read_only=True)`` (nothing created, cleaned up or
locked; it works on a read-only mount) and :func:`iotscope.store.query.connect` defines the views,
so the web layer shows exactly what ``iotscope sql`` shows.

A capture or an analysed hour committed while the server runs changes the *generation*; the next
request sees rebuilt views, and ``/api/live`` tells open pages.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import duckdb

from iotscope.store.datasets import view_snapshot
from iotscope.store.packets import PacketStore
from iotscope.store.query import connect
from iotscope.store.state import StoreError


@dataclass(frozen=True)
class Generation:
    """What identifies the committed content of a store: it changes whenever a capture or an
    analysed hour commits."""

    captures: int
    packets: int
    analysed_hours: int = 0
    analysis_fingerprint: str = ""


def _views(store: PacketStore) -> duckdb.DuckDBPyConnection:
    """The store's views (``iotscope.store.query.connect``), usable from every cursor.

    ``connect`` defines an empty store's ``packets``, and an analysis table with no files yet
    (``events`` before any analysis, ``attacks`` with no open attack), over registered empty Arrow
    tables, which only that connection sees, not its cursors. Each is replaced by an empty table of
    the same name and columns, so every view works from any thread.
    """
    con = connect(store)
    registered = [name for (name,) in con.execute(
        "SELECT view_name FROM duckdb_views() WHERE temporary AND NOT internal").fetchall()]
    for number, name in enumerate(registered):
        con.execute(f'CREATE TABLE "_empty_{number}" AS SELECT * FROM "{name}"')
        con.unregister(name)
        con.execute(f'ALTER TABLE "_empty_{number}" RENAME TO "{name}"')
    return con


class StoreReader:
    """Opens a store read-only and serves DuckDB cursors over its committed files.

    Thread-safe: handlers run on a thread pool; each gets its own cursor of the shared in-memory
    database, and the view is rebuilt (under a lock) only when the generation has changed.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise StoreError(f"{self.root}: no such store directory")
        if not (self.root / "state.sqlite").is_file():
            raise StoreError(f"{self.root}: not a store (no state.sqlite); ingest a capture into it first")
        self._lock = threading.Lock()
        self._connection: duckdb.DuckDBPyConnection | None = None
        self._generation: Generation | None = None
        self.cursor()  # fail now (another format, damaged files), at start-up, rather than on the first request

    def _open(self) -> PacketStore:
        return PacketStore(self.root, read_only=True)

    def generation(self) -> Generation:
        """The store's current generation: two small read-only SQLite queries, cheap to poll."""
        with self._open() as store:
            captures = store.state.all_ingested()
        hours = view_snapshot(self.root).hours
        latest = hours[max(hours)].fingerprint if hours else ""
        return Generation(len(captures), sum(c.packets for c in captures), len(hours), latest)

    def snapshot(self) -> tuple[Generation, duckdb.DuckDBPyConnection]:
        """The current generation and a cursor whose views cover exactly its committed captures."""
        current = self.generation()
        with self._lock:
            if self._connection is None or current != self._generation:
                # The old connection is not closed here: cursors handed out from it may still be
                # running a query on another thread; it goes when the last of them does.
                with self._open() as store:
                    fresh = _views(store)
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
