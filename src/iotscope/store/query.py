"""DuckDB over the store: views for ad-hoc SQL and the summary behind ``iotscope stats``.

Views read only committed files (see ``iotscope.store.packets``), so a query never sees a
half-written ingest. Columns ``date`` and ``hour`` come from the Hive partition path.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import duckdb
import pyarrow as pa

from iotscope.store.datasets import create_views
from iotscope.store.packets import PacketStore
from iotscope.store.schema import FLAG_CLASSES, PACKET_SCHEMA, TRAFFIC_CLASSES


def connect(store: PacketStore) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with the view ``packets`` over the store's committed files.

    The analysis views (``events``, ``attacks``, ``port_series``) come from ``iotscope.store.datasets``.
    """
    con = duckdb.connect()
    files = [str(p) for p in store.committed_files()]
    if files:
        listing = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
        con.execute(
            f"CREATE VIEW packets AS SELECT * FROM read_parquet([{listing}], hive_partitioning = true, "
            "hive_types = {'date': DATE, 'hour': INTEGER})")
    else:
        empty = PACKET_SCHEMA.empty_table().append_column("date", pa.array([], pa.date32()))
        empty = empty.append_column("hour", pa.array([], pa.int32()))
        con.register("_empty_packets", empty)
        con.execute("CREATE VIEW packets AS SELECT * FROM _empty_packets")
    create_views(con, store.root)
    return con


def store_stats(store: PacketStore, top_ports: int = 10) -> dict[str, Any]:
    """Totals, time range, distinct sources, counts by class and the top destination ports."""
    con = connect(store)
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
            {"dport": d, "proto": {6: "tcp", 17: "udp"}.get(p, str(p)), "packets": n, "sources": s}
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
