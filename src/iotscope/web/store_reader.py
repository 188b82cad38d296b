"""The web service's read-only view of a store: DuckDB views that follow new commits.

The store is opened with ``PacketStore(root, read_only=True)`` (nothing created, cleaned up or
locked; it works on a read-only mount) and :func:`iotscope.store.query.connect` defines the views,
so the web layer shows exactly what ``iotscope sql`` shows.

A capture or an analysed hour committed while the server runs changes the *generation*; the next
request sees rebuilt views, and ``/api/live`` tells open pages.

Two definitions are added to the store's views: the per-hour table of
:mod:`iotscope.web.coverage`, and the macro ``target_category(proto, dport,
traffic_class)``, the expression behind ``packets.category`` (from the same committed category
table), so that ``iotscope.web.queries`` can categorise ``source_hours`` rows exactly as packets.
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
from iotscope.store.summaries import category_sql
from iotscope.web.coverage import record_hours

#: The macro giving ``packets.category`` of any (proto, dport, traffic_class); see the module docstring.
CATEGORY_MACRO = "target_category"


@dataclass(frozen=True)
class Generation:
    """What identifies the committed content of a store: it changes whenever a capture or an
    analysed hour commits."""

    captures: int
    packets: int
    analysed_hours: int = 0
    analysis_fingerprint: str = ""


def _connect(store: PacketStore) -> duckdb.DuckDBPyConnection:
    """:func:`connect`, plus the category macro built from the category table its views use and
    the per-hour table of :func:`iotscope.web.coverage.record_hours`.

    The table's file is named by the catalog, looked up once by ``connect`` and once here; an
    analysis committing in between could make the two differ (each commit writes a new file), so
    the connection is made again until the file named before and after it is the same.
    """
    while True:
        before = view_snapshot(store.root)
        con = connect(store)
        if view_snapshot(store.root).summary_file("categories") == before.summary_file("categories"):
            con.execute(f"CREATE MACRO {CATEGORY_MACRO}(proto, dport, traffic_class) AS {category_sql(before)}")
            record_hours(con)
            return con
        con.close()


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
                    fresh = _connect(store)
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
