"""Breakdowns and source profiles over a store: what ``iotscope report`` and ``iotscope ip`` print.

Both are read-only DuckDB queries through the store's locked-down connection
(``iotscope.store.query.connect``); the CLI only parses arguments and prints.

``breakdown(by=...)`` counts packets and distinct source addresses per group in a time range
``[start, end)`` and each group's share of the packets of its population:

===========  =====================================  =============================================
``by``       groups                                 population (what ``share`` divides by)
===========  =====================================  =============================================
country      the source's country (``sources``)      every packet
asn          the source's AS number and name         every packet
port         protocol and destination port           scan packets with a port (TCP SYN, UDP probes)
category     target category (``packets.category``)  scan packets: NICTER's "IoT 64%" breakdown
tool         tool fingerprint, ``none`` if none      scan packets
===========  =====================================  =============================================
"""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from iotscope.errors import IotscopeError
from iotscope.store.packets import PacketStore
from iotscope.store.query import connect, guarded
from iotscope.store.summaries import source_key_sql

#: What ``report --by`` accepts.
BY = ("country", "asn", "port", "category", "tool")
_GROUPS = {
    "country": ("s.country", "true"),
    "asn": ("s.asn, s.as_name", "true"),
    "port": ("p.proto, p.dport AS port", "p.traffic_class = 'scan' AND p.dport IS NOT NULL"),
    "category": ("p.category", "p.category IS NOT NULL"),
    "tool": ("coalesce(CAST(p.tool AS VARCHAR), 'none') AS tool", "p.traffic_class = 'scan'"),
}


class ReportError(IotscopeError, ValueError):
    """A report asked for something impossible (unknown grouping, time range backwards, bad address)."""


def parse_time(text: str | None, option: str) -> datetime | None:
    """An ISO 8601 date or time (UTC when it names no zone); ``ReportError`` naming ``option`` if not."""
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ReportError(f"{option}: not an ISO 8601 date or time: {text!r} (e.g. 2016-09-01T12:00)") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def check_range(start: datetime | None, end: datetime | None) -> None:
    if start is not None and end is not None and start > end:
        raise ReportError(f"--from {start.isoformat()} is after --to {end.isoformat()}")


def breakdown(store: PacketStore, by: str, start: datetime | None = None, end: datetime | None = None,
              top: int = 20) -> pa.Table:
    """Top ``top`` groups by packets: the group's columns, ``packets``, ``sources``, ``share`` (0..1)."""
    if by not in _GROUPS:
        raise ReportError(f"--by: unknown grouping {by!r} (one of: {', '.join(BY)})")
    if top < 1:
        raise ReportError(f"--top must be at least 1, got {top}")
    check_range(start, end)
    group, population = _GROUPS[by]
    join = (f"LEFT JOIN sources s ON {source_key_sql('s')} = {source_key_sql('p')}"
            if by in ("country", "asn") else "")
    where = [population]
    params: list[Any] = []
    if start is not None:
        where.append("p.ts >= ?")
        params.append(start)
    if end is not None:
        where.append("p.ts < ?")
        params.append(end)
    sql = f"""
        SELECT {group}, count(*) AS packets,
               count(DISTINCT {source_key_sql('p')}) AS sources,
               count(*) / sum(count(*)) OVER () AS share
        FROM packets p {join}
        WHERE {' AND '.join(where)}
        GROUP BY ALL ORDER BY packets DESC, 1 LIMIT {int(top)}
    """
    con = connect(store)
    return guarded(store, lambda: con.sql(sql, params=params).to_arrow_table())


def canonical_address(text: str) -> str:
    """The address as the views spell ``src_ip`` (dotted quad, compressed IPv6); ``ReportError`` if none."""
    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        raise ReportError(f"not an IP address: {text!r}") from None


def source_profile(store: PacketStore, address: str) -> dict[str, Any]:
    """Everything the store knows of one address: its ``sources`` row (or None), events, attacks on it."""
    ip = canonical_address(address)
    con = connect(store)

    def rows(sql: str) -> list[dict[str, Any]]:
        table = guarded(store, lambda: con.sql(sql, params=[ip]).to_arrow_table())
        keep = [n for n, t in zip(table.column_names, table.schema.types, strict=True) if not pa.types.is_binary(t)]
        return table.select(keep).to_pylist()

    profile = rows("SELECT * FROM sources WHERE src_ip = ?")
    return {
        "address": ip,
        "profile": profile[0] if profile else None,
        "events": rows("SELECT * FROM events WHERE src_ip = ? ORDER BY first_ts, proto, dport"),
        "attacks": rows("SELECT * FROM attacks WHERE victim_ip = ? ORDER BY first_ts, proto"),
        "enrichment_sources": guarded(store, lambda: con.sql("FROM enrichment_sources").to_arrow_table().to_pylist()),
    }
