"""DuckDB over the store: views for ad-hoc SQL and the summary behind ``iotscope stats``.

Views read only committed files (see ``iotscope.store.packets``), so a query never sees a
half-written ingest. Columns ``date`` and ``hour`` come from the Hive partition path.

A query must never change the store or anything else on the host, whatever SQL a user types:
the connection is in memory, may read exactly the store's committed files (``allowed_paths``)
and no other file, URL or extension (``enable_external_access = false``, no extension
autoloading or autoinstalling), and its configuration is locked so SQL cannot undo that.
``allowed_paths`` lets a ``COPY ... TO`` overwrite a committed file, so :func:`run_query` also
accepts only reading statements (SELECT, WITH, FROM, VALUES, DESCRIBE, SHOW, SUMMARIZE, EXPLAIN)
and refuses everything else with one line before anything runs.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any, TypeVar

import duckdb
import pyarrow as pa

from iotscope.errors import IotscopeError
from iotscope.ip_protocols import PROTOCOL_NAMES
from iotscope.store.check import find_damage, missing_files
from iotscope.store.datasets import create_views, empty_relation, view_snapshot
from iotscope.store.packets import PacketStore
from iotscope.store.schema import FLAG_CLASSES, PACKET_SCHEMA, TRAFFIC_CLASSES
from iotscope.store.state import StoreError
from iotscope.store.summaries import category_sql, create_summary_views

#: What ``iotscope sql`` runs: statements that only read. DESCRIBE, SHOW and SUMMARIZE parse as SELECT.
READING_STATEMENTS = frozenset({duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN})


_T = TypeVar("_T")


class QueryError(IotscopeError):
    """A query that DuckDB rejected, or one that would write; the message is DuckDB's first line."""


def connect(store: PacketStore) -> duckdb.DuckDBPyConnection:
    """An in-memory, locked-down DuckDB connection with the view ``packets`` over the committed files
    and the analysis views (``events``, ``attacks``, ``port_series``, ``source_hours``, see
    ``iotscope.store.datasets``; ``alerts``, ``sources``, ``enrichment_sources`` and ``packets.category``,
    see ``iotscope.store.summaries``).

    Raises ``StoreError`` naming a committed file that is missing (see ``iotscope store check``).
    """
    captures = store.state.all_ingested()  # one snapshot: an ingest may commit meanwhile
    live = store.state.live_files()  # the captures' files, or what compaction made of them
    expected_rows = sum(c.packets for c in captures) - store.state.retained_rows()
    missing = missing_files(store, live)
    if missing:
        raise _damage_error(store, f"{missing[0]}: committed file missing")
    con = duckdb.connect(config={
        "autoinstall_known_extensions": False, "autoload_known_extensions": False,
        "allow_community_extensions": False,
    })
    files = [str((store.root / name).resolve()) for name in live]
    analysis = view_snapshot(store.root)
    allowed = files + analysis.files()
    if allowed:
        con.execute("SET allowed_paths = ?", [allowed])
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")
    category = guarded(store, lambda: category_sql(analysis))
    if files:
        listing = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
        guarded(store, lambda: con.execute(  # binding the view reads the files' footers
            f"CREATE VIEW packets AS SELECT *, {category} AS category FROM read_parquet([{listing}], "
            "hive_partitioning = true, hive_types = {'date': DATE, 'hour': INTEGER})"))
        _check_row_count(store, con, listing, expected_rows)
    else:
        empty = PACKET_SCHEMA.append(pa.field("date", pa.date32())).append(pa.field("hour", pa.int32()))
        con.execute(f"CREATE VIEW packets AS SELECT *, {category} AS category FROM {empty_relation(con, empty)}")
    guarded(store, lambda: create_summary_views(con, analysis, create_views(con, analysis)))
    return con


def run_query(store: PacketStore, sql: str) -> pa.Table:
    """The result of the user's ``sql`` (its last statement), read-only; ``QueryError`` for anything else."""
    con = connect(store)
    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as exc:
        raise QueryError(f"SQL: {_first_line(exc)}") from None
    for statement in statements:
        if statement.type not in READING_STATEMENTS:
            kind = statement.type.name
            raise QueryError(
                f"SQL: {kind} statements are refused: `iotscope sql` only reads (SELECT, WITH, DESCRIBE, "
                "SUMMARIZE, EXPLAIN); export a result with --csv or --json")
    if not statements:
        raise QueryError("SQL: no statement given")
    return guarded(store, lambda: con.sql(sql).to_arrow_table())


def guarded(store: PacketStore, work: Callable[[], _T]) -> _T:
    """Run ``work()``; a DuckDB error becomes one line, naming a damaged committed file when there is one.

    A damaged file shows up as many kinds of error (an I/O error, "no magic bytes", a column
    missing when a file was replaced), so after any error but a syntax error the footers of the
    committed files are checked; that costs a read of each footer, and only when a query failed.
    """
    try:
        return work()
    except duckdb.PermissionException as exc:
        raise QueryError(f"SQL: {_first_line(exc)} (`iotscope sql` reads the store's packets only)") from None
    except duckdb.ParserException as exc:
        raise QueryError(f"SQL: {_first_line(exc)}") from None
    except duckdb.Error as exc:
        damaged = find_damage(store, thorough=False)
        if damaged:
            raise _damage_error(store, damaged[0].problems[0]) from None
        raise QueryError(f"SQL: {_first_line(exc)}") from None


def _check_row_count(store: PacketStore, con: duckdb.DuckDBPyConnection, listing: str, expected: int) -> None:
    """Compare the rows the files' footers declare with the catalog: a replaced file must not go unnoticed.

    A committed file overwritten by another Parquet file reads without error and silently changes
    every answer; DuckDB reads the footers in parallel (milliseconds for thousands of files).
    """
    declared = guarded(store, lambda: con.execute(
        f"SELECT coalesce(sum(num_rows), 0) FROM parquet_file_metadata([{listing}])").fetchall()[0][0])
    if declared != expected:
        damaged = find_damage(store, thorough=False)
        problem = damaged[0].problems[0] if damaged else f"{store.root}: the files' rows differ from the catalog"
        raise _damage_error(store, problem)


def _damage_error(store: PacketStore, problem: str) -> StoreError:
    return StoreError(f"{problem}; run `iotscope store check --store {store.root} --repair`")


def _first_line(exc: Exception) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0]


def store_stats(store: PacketStore, top_ports: int = 10) -> dict[str, Any]:
    """Totals, time range, distinct sources, counts by class and the top destination ports."""
    return guarded(store, lambda: _stats(connect(store), store, top_ports))


def _stats(con: duckdb.DuckDBPyConnection, store: PacketStore, top_ports: int) -> dict[str, Any]:
    total, ip_bytes, first, last, sources4, sources6 = con.execute(
        "SELECT count(*), coalesce(sum(ip_len), 0), epoch_us(min(ts)), epoch_us(max(ts)), "
        "count(DISTINCT src), count(DISTINCT src6) FROM packets"
    ).fetchone()
    by_flag = dict(con.execute("SELECT flag_class, count(*) FROM packets GROUP BY 1").fetchall())
    by_traffic = dict(con.execute("SELECT traffic_class, count(*) FROM packets GROUP BY 1").fetchall())
    ports = con.execute(
        "SELECT dport, proto, count(*) AS packets, count(DISTINCT coalesce(CAST(src AS VARCHAR), hex(src6))) "
        "AS sources FROM packets WHERE dport IS NOT NULL GROUP BY 1, 2 ORDER BY packets DESC, dport LIMIT ?",
        [top_ports],
    ).fetchall()
    files = store.state.all_ingested()
    return {
        "packets": total,
        "ip_bytes": int(ip_bytes),
        "first_ts": _iso(first),
        "last_ts": _iso(last),
        "distinct_sources": sources4 + sources6,
        "flag_class": {name: by_flag.get(name, 0) for name in FLAG_CLASSES},
        "traffic_class": {name: by_traffic.get(name, 0) for name in TRAFFIC_CLASSES},
        "top_dports": [
            {"dport": d, "proto": PROTOCOL_NAMES.get(p, str(p)), "packets": n, "sources": s}
            for d, p, n, s in ports
        ],
        "captures": len(files),
        "skipped": _sum_counts(f.skipped for f in files),
    }


def _sum_counts(counts: Any) -> dict[str, int]:
    total: dict[str, int] = {}
    for c in counts:
        for reason, n in c.items():
            total[reason] = total.get(reason, 0) + n
    return total


def _iso(epoch_us: int | None) -> str | None:
    """ISO 8601 UTC text of a µs timestamp (fetched as an integer: no time-zone library needed)."""
    if epoch_us is None:
        return None
    return datetime.fromtimestamp(epoch_us / 1e6, tz=timezone.utc).isoformat()
