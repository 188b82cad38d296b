"""The questions the dashboard asks, as plain functions over a DuckDB cursor of the store.

Every web handler is a thin shell over one function here (or in :mod:`iotscope.web.listings`, the
paged rows, and :mod:`iotscope.web.profile_query`, one address's profile), and the tests call these
functions directly, so the numbers the page shows are the numbers a query of the store gives. All
work is SQL over the ``packets`` view; Python touches only result rows (buckets, top-N rows, map
points), never packets.

Aggregates over a time range (summary, series, top, categories) read the analysis datasets
(``source_hours``, ``port_series``) for the hours an up-to-date analysis covers and ``packets`` for
the rest (:mod:`iotscope.web.coverage`): the same numbers, without a scan of every packet.
"""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb
import numpy as np

from iotscope.errors import IotscopeError
from iotscope.ip_protocols import PROTO_ICMP, PROTO_TCP, PROTO_UDP, PROTOCOL_NAMES
from iotscope.store.schema import FLAG_CLASSES, TOOLS, TRAFFIC_CLASSES
from iotscope.web.access import EVERYTHING, AddressScope
from iotscope.web.coverage import Coverage, coverage, source_rows
from iotscope.web.store_reader import CATEGORY_MACRO
from iotscope.web.time_range import (
    US,
    US_PER_HOUR,
    TimeRange,
    epoch_us,
    iso,
    packets_in,
)

#: Protocol names the API accepts, and their IP protocol numbers.
PROTOCOLS: dict[str, int] = {PROTOCOL_NAMES[number]: number for number in (PROTO_TCP, PROTO_UDP, PROTO_ICMP)}
#: The window of data an endpoint covers when the request names no ``from``/``to``.
DEFAULT_WINDOW = timedelta(hours=24)
#: More buckets than this in one series is a mistake (or an attempt to exhaust memory), not a chart.
MAX_BUCKETS = 20_000
#: What ``/api/top/{by}`` ranks; ``country`` and ``asn`` come from the ``sources`` view (IPv4 sources it locates).
TOP_DIMENSIONS: tuple[str, ...] = ("port", "tool", "country", "asn")

_TOOL_NAMES = "[" + ", ".join(f"'{t}'" for t in TOOLS) + "]"
#: The earliest time a range may start: 24 h before ``to=0001-01-01`` would be year 0, which Python's dates lack.
_EARLIESTUS = -62_135_596_800 * US  # 0001-01-01T00:00:00Z
_SOURCES = "count(DISTINCT src) + count(DISTINCT src6)"  # IPv4 and IPv6 sources live in two columns


class ApiParameterError(IotscopeError, ValueError):
    """A request parameter is invalid; the web layer answers 422 naming ``parameter``."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(f"{parameter}: {message}")
        self.parameter = parameter


def address_text(src: int | None, src6: bytes | None) -> str:
    """The text form of a source from its two columns (IPv4 as an integer, IPv6 as 16 bytes)."""
    if src is not None:
        return str(ipaddress.IPv4Address(src))
    return str(ipaddress.IPv6Address(bytes(src6 or b"")))


def data_extent(con: duckdb.DuckDBPyConnection) -> tuple[int, int] | None:
    """First and last packet time in the store (µs), or None for an empty store.

    Two steps because it is asked by nearly every request: the first and last hour partitions come
    from the Hive path columns (no data read), then only those two hours' ``ts`` are scanned
    (measured on 10M packets: ~0.1 s instead of ~0.45 s for ``min(ts), max(ts)`` over everything).
    """
    hour = "date + hour * INTERVAL 1 HOUR"
    low, high = con.execute(f"SELECT min({hour}), max({hour}) FROM packets").fetchone()
    if high is None:
        return None
    in_hour = "FROM packets WHERE date = ? AND hour = ?"
    (first,) = con.execute(f"SELECT epoch_us(min(ts)) {in_hour}", [low.date(), low.hour]).fetchone()
    (last,) = con.execute(f"SELECT epoch_us(max(ts)) {in_hour}", [high.date(), high.hour]).fetchone()
    return int(first), int(last)


def resolve_range(con: duckdb.DuckDBPyConnection, start: datetime | None, end: datetime | None,
                  default: timedelta = DEFAULT_WINDOW) -> TimeRange:
    """The range a request covers: as given, else the last ``default`` of the data present.

    A missing ``to`` is just after the last packet; a missing ``from`` is ``default`` before ``to``
    but not before the first packet (a store of three hours charts three hours, not a day).
    Raises :class:`ApiParameterError` when ``from`` is not before ``to``.
    """
    start_us = None if start is None else epoch_us(start)
    end_us = None if end is None else epoch_us(end)
    if start_us is not None and end_us is not None and start_us >= end_us:
        raise ApiParameterError("from", "must be before 'to'")
    extent = data_extent(con) if start_us is None or end_us is None else None
    if end_us is None:
        end_us = (extent[1] + 1) if extent else epoch_us(datetime.now(UTC))
        if start_us is not None and start_us >= end_us:
            end_us = start_us + 1  # a range after the data: empty, not an error
    if start_us is None:
        start_us = max(end_us - int(default.total_seconds() * US), _EARLIESTUS)
        if extent and extent[0] < end_us:
            start_us = max(start_us, extent[0])
        if start_us >= end_us:
            end_us = start_us + 1  # a range before the calendar: empty, not an error
    return TimeRange(start_us, end_us)


def summary(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    """Totals over the whole store: NICTER's headline numbers (packets a year) and the class mix.

    Packets by flag class come from ``packets`` (a dictionary column: ~45 ms on 10M packets; no
    analysis keeps it), by year from the partition's UTC date (no timestamp read: 0.7 s -> 15 ms);
    distinct sources and the traffic class and tool counts from ``source_hours`` where the analysis
    is current (:mod:`iotscope.web.coverage`).
    """
    extent = data_extent(con)
    by_flag = dict(con.execute("SELECT flag_class, count(*) FROM packets GROUP BY 1").fetchall())
    by_year = dict(con.execute("SELECT year(date) AS y, count(*) FROM packets GROUP BY y").fetchall())
    by_traffic: dict[str, int] = {}
    by_tool: dict[str, int] = {}
    sources, analysed_hours = 0, 0
    if extent is not None:
        cover = coverage(con, TimeRange(extent[0], extent[1] + 1))
        analysed_hours = _hours(cover)
        tools = ", ".join(TOOLS)
        rows, params = source_rows(
            cover, f"traffic_class, packets, {tools}",
            "traffic_class, count(*) AS packets, "
            + ", ".join(f"count(*) FILTER (WHERE tool = '{t}') AS {t}" for t in TOOLS))
        sums = ", ".join(f"sum({t})" for t in TOOLS)
        for traffic, total, n, *per_tool in con.execute(
                f"SELECT traffic_class, grouping(traffic_class) AS total, sum(packets), {sums}, {_SOURCES} "
                f"FROM ({rows}) GROUP BY GROUPING SETS ((traffic_class), ())", params).fetchall():
            if total:
                sources = int(per_tool[-1])
                by_tool = {t: int(v or 0) for t, v in zip(TOOLS, per_tool[:-1], strict=True)}
            else:
                by_traffic[traffic] = int(n)
    return {
        "packets": sum(by_flag.values()),
        "sources": sources,
        "first": iso(extent[0]) if extent else None,
        "last": iso(extent[1]) if extent else None,
        "flag_class": {name: int(by_flag.get(name, 0)) for name in FLAG_CLASSES},
        "traffic_class": {name: int(by_traffic.get(name, 0)) for name in TRAFFIC_CLASSES},
        "tool": {name: int(by_tool.get(name, 0)) for name in TOOLS},
        "per_year": [{"year": int(y), "packets": int(by_year[y])} for y in sorted(by_year)],
        "analysed_hours": analysed_hours,
    }


def _hours(cover: Coverage) -> int:
    """How many hours of an answer were read from the analysis datasets (reported, so tests and users can tell)."""
    return sum(end - first for first, end in cover.analysed)


def _protocol_filter(proto: str, port: int | None) -> tuple[str, list[int]]:
    if proto not in PROTOCOLS:
        raise ApiParameterError("proto", f"unknown protocol {proto!r}; one of {', '.join(PROTOCOLS)}")
    if port is not None and proto == "icmp":
        raise ApiParameterError("port", "icmp has no ports")
    if port is not None and not 0 <= port <= 65535:
        raise ApiParameterError("port", f"{port} is not a port (0..65535)")
    if port is None:
        return "proto = ?", [PROTOCOLS[proto]]
    return "proto = ? AND dport = ?", [PROTOCOLS[proto], port]


def series(con: duckdb.DuckDBPyConnection, proto: str, port: int | None, bucket: int,
           start: datetime | None = None, end: datetime | None = None) -> dict[str, Any]:
    """Packets and distinct sources per ``bucket`` seconds for one protocol (and port).

    Buckets are aligned to the epoch and every bucket of the range is present (zeros where no
    packet fell), so a chart shows a silence as a silence. Columns, for uPlot: ``t`` (bucket start,
    epoch seconds), ``packets``, ``sources``.

    Where the analysis is current, a bucket is read from ``port_series`` when it is that dataset's
    bucket (a port's scans), from ``source_hours`` when it is whole hours (the hours' source sets
    unite exactly); any other bucket is counted from ``packets``: distinct sources of a bucket cannot
    be put together from smaller buckets' distinct counts.
    """
    where, params = _protocol_filter(proto, port)
    if bucket < 1:
        raise ApiParameterError("bucket", "must be at least 1 second")
    window = resolve_range(con, start, end)
    bucket_us = bucket * US
    first_bucket, last_bucket = window.start_us // bucket_us, (window.end_us - 1) // bucket_us
    count = last_bucket - first_bucket + 1
    if count > MAX_BUCKETS:
        raise ApiParameterError("bucket", f"{count} buckets of {bucket} s from 'from' to 'to'; at most {MAX_BUCKETS} (use a larger bucket)")
    if port is not None:
        where += " AND traffic_class = 'scan'"  # a port's chart is its scans, as in ``port_series``
    cover = coverage(con, window)
    from_port_series = port is not None and bool(cover.analysed) and _analysed_bucket(con, cover) == bucket
    if not from_port_series and bucket % 3600:
        cover = cover.packets_only()  # sub-hour buckets other than port_series'
    if from_port_series:
        hours_sql, hours_params = cover.analysed_sql("bucket")
        rest_sql, rest_params = cover.rest_sql()
        rows = con.execute(
            "SELECT epoch_us(bucket) // ? AS b, packets, sources FROM port_series WHERE proto = ? AND port = ? "
            f"AND {hours_sql} UNION ALL "
            f"SELECT epoch_us(ts) // ? AS b, count(*), {_SOURCES} FROM packets WHERE {where} AND {rest_sql} GROUP BY b",
            [bucket_us, *params, *hours_params, bucket_us, *params, *rest_params]).fetchnumpy()
    else:
        rows_sql, rows_params = source_rows(
            cover, f"epoch_us(first_ts) // {bucket_us} AS b, packets", f"epoch_us(ts) // {bucket_us} AS b, count(*) AS packets",
            analysed_where=where, packets_where=where, params=(params, params))
        rows = con.execute(f"SELECT b, sum(packets), {_SOURCES} FROM ({rows_sql}) GROUP BY b", rows_params).fetchnumpy()
    packets = np.zeros(count, dtype=np.int64)
    sources = np.zeros(count, dtype=np.int64)
    index = np.asarray(rows["b"], dtype=np.int64) - first_bucket
    columns = list(rows)
    packets[index] = rows[columns[1]]
    sources[index] = rows[columns[2]]
    t = (np.arange(first_bucket, last_bucket + 1, dtype=np.int64) * bucket).tolist()
    return {"proto": proto, "port": port, "bucket": bucket, **window.as_json(), "from_port_series": from_port_series,
            "analysed_hours": _hours(cover), "t": t, "packets": packets.tolist(), "sources": sources.tolist()}


def _analysed_bucket(con: duckdb.DuckDBPyConnection, cover: Coverage) -> int | None:
    """``port_series``' bucket width in the analysed hours of ``cover`` (one width, or None)."""
    hours_sql, hours_params = cover.analysed_sql("bucket")
    low, high = con.execute(f"SELECT min(bucket_s), max(bucket_s) FROM port_series WHERE {hours_sql}",
                            hours_params).fetchone()
    return int(low) if low is not None and low == high else None


def top(con: duckdb.DuckDBPyConnection, by: str, limit: int,
        start: datetime | None = None, end: datetime | None = None) -> dict[str, Any]:
    """The ``limit`` largest groups by destination port (with protocol), scanning tool, or the source's
    country or AS (from ``sources``; IPv6 and unlocated sources are in no country or AS)."""
    if by not in TOP_DIMENSIONS:
        raise ApiParameterError("by", f"cannot rank by {by!r}; one of {', '.join(TOP_DIMENSIONS)}")
    if limit < 1:
        raise ApiParameterError("limit", "must be at least 1")
    window = resolve_range(con, start, end)
    cover = coverage(con, window)
    if by == "port":
        rows_sql, params = source_rows(cover, "dport, proto, packets", "dport, proto, count(*) AS packets",
                                       analysed_where="dport IS NOT NULL", packets_where="dport IS NOT NULL")
        if cover.analysed:
            # ``source_hours`` keeps no port for backscatter (it is the spoofed client's, one row a
            # packet); the analysed hours' backscatter ports are counted from their packets
            hours = Coverage(window, (), tuple(TimeRange(a * US_PER_HOUR, b * US_PER_HOUR) for a, b in cover.analysed))
            hours_sql, hours_params = hours.rest_sql()
            rows_sql += (" UNION ALL SELECT src, src6, dport, proto, 1 AS packets FROM packets "
                         f"WHERE {hours_sql} AND traffic_class = 'backscatter' AND dport IS NOT NULL")
            params += hours_params
        # ranked by packets first, distinct sources then counted for the top ports only (backscatter
        # spreads over ~64k ports: counting every port's sources costs more than the ranking)
        result = con.execute(
            f"WITH r AS MATERIALIZED ({rows_sql}), "
            "top AS (SELECT dport, proto, sum(packets) AS n FROM r GROUP BY ALL ORDER BY n DESC, dport, proto LIMIT ?) "
            f"SELECT top.dport, top.proto, any_value(top.n) AS n, {_SOURCES.replace('src', 'r.src')} "
            "FROM top JOIN r USING (dport, proto) GROUP BY ALL ORDER BY n DESC, dport, proto",
            [*params, limit]).fetchall()
        rows = [{"port": int(d), "proto": PROTOCOL_NAMES.get(p, str(p)), "packets": int(n), "sources": int(s)}
                for d, p, n, s in result]
    elif by == "tool":
        rows_sql, params = source_rows(
            cover, f"unnest({_TOOL_NAMES}) AS tool, unnest([{', '.join(TOOLS)}]) AS packets",
            "tool, count(*) AS packets", packets_where="tool IS NOT NULL")
        result = con.execute(
            f"SELECT tool, sum(packets) AS n, {_SOURCES} FROM ({rows_sql}) WHERE packets > 0 "
            "GROUP BY tool ORDER BY n DESC, tool LIMIT ?", [*params, limit]).fetchall()
        rows = [{"tool": t, "packets": int(n), "sources": int(s)} for t, n, s in result]
    else:
        # per source first (one row per address), then joined to its location/AS: the join is over
        # sources, not packets
        rows_sql, params = source_rows(cover, "packets", "count(*) AS packets",
                                       analysed_where="src IS NOT NULL", packets_where="src IS NOT NULL")
        keys = "s.country" if by == "country" else "s.asn, any_value(s.as_name)"
        result = con.execute(
            f"WITH p AS (SELECT src, sum(packets) AS n FROM ({rows_sql}) GROUP BY src) "
            f"SELECT {keys}, sum(p.n) AS n, count(*) FROM p JOIN sources s ON s.src = p.src "
            f"WHERE s.{by} IS NOT NULL GROUP BY s.{by} ORDER BY n DESC, s.{by} LIMIT ?",
            [*params, limit]).fetchall()
        if by == "country":
            rows = [{"country": c, "packets": int(n), "sources": int(k)} for c, n, k in result]
        else:
            rows = [{"asn": int(a), "as_name": name, "packets": int(n), "sources": int(k)} for a, name, n, k in result]
    return {"by": by, **window.as_json(), "analysed_hours": _hours(cover), "rows": rows}


def categories(con: duckdb.DuckDBPyConnection, start: datetime | None = None,
               end: datetime | None = None) -> dict[str, Any]:
    """Scan packets and distinct sources per target category (``packets.category``) and each
    category's share of the categorised packets: NICTER's "IoT 64%, PC 5%, ...". Empty before any
    ``analyze`` (no category table yet). ``con`` is a :class:`~iotscope.web.store_reader.StoreReader`
    cursor: its ``target_category`` gives ``source_hours`` rows their packets' category."""
    window = resolve_range(con, start, end)
    cover = coverage(con, window)
    rows_sql, params = source_rows(
        cover, f"{CATEGORY_MACRO}(proto, dport, traffic_class) AS category, packets", "category, count(*) AS packets",
        analysed_where="traffic_class = 'scan'", packets_where="category IS NOT NULL")
    result = con.execute(
        f"SELECT category, sum(packets) AS n, {_SOURCES} FROM ({rows_sql}) WHERE category IS NOT NULL "
        "GROUP BY category ORDER BY n DESC, category", params).fetchall()
    total = sum(n for _, n, _ in result)
    rows = [{"category": c, "packets": int(n), "sources": int(k), "share": n / total} for c, n, k in result]
    return {**window.as_json(), "analysed_hours": _hours(cover), "packets": int(total), "rows": rows}


def map_points(con: duckdb.DuckDBPyConnection, window: int, limit: int, scope: AddressScope = EVERYTHING,
               sources: bool = True) -> dict[str, Any]:
    """Packets per source and flag class in the latest ``window`` seconds of data, for the live map.

    ``points`` is columnar: one array per field (``src``, ``flag_class``, ``count``, ``lat``,
    ``lon``, ``country``), point ``i`` at index ``i`` of each, largest first. Why: 5,000 points as
    objects repeat every key 5,000 times; as columns, with coordinates in the shortest text that
    reads back to the stored float32, the answer is about 40% of the size, which is most of its
    serving time. ``lat``, ``lon`` and ``country`` come from the ``sources`` view; they are null for
    sources it does not locate (IPv6, unknown, before any ``analyze``), which the page draws on its
    "location unknown" band.
    The largest ``limit`` points are returned; ``truncated`` says whether any were left out.
    Only sources inside ``scope`` count; with ``sources=False`` (the public, under ``--orgs``) the
    points are per flag class (and location) with ``src`` null: how much, never who.
    """
    if window < 1:
        raise ApiParameterError("window", "must be at least 1 second")
    if limit < 1:
        raise ApiParameterError("limit", "must be at least 1")
    extent = data_extent(con)
    if extent is None:
        return {"window": window, "from": None, "to": None, "points": _columns([]), "truncated": False}
    span = TimeRange(extent[1] + 1 - window * US, extent[1] + 1)
    in_range, range_params = packets_in(span)
    in_scope, scope_params = scope.sql("src", "src6")
    who = "p.src, p.src6" if sources else "NULL::UINTEGER AS src, NULL::BLOB AS src6"
    group = "p.src, p.src6, flag_class, s.lat, s.lon, s.country" if sources else "flag_class, s.lat, s.lon, s.country"
    # float32 -> its shortest text -> double: 35.69 stays "35.69", not "35.689998626708984"
    short = "CAST(CAST(s.{0} AS VARCHAR) AS DOUBLE) AS {0}"
    rows = con.execute(
        f"WITH p AS (SELECT src, src6, flag_class, count(*) AS n FROM packets WHERE {in_range} AND {in_scope} "
        "GROUP BY src, src6, flag_class) "
        f"SELECT {who}, flag_class, sum(p.n) AS n, {short.format('lat')}, {short.format('lon')}, s.country "
        f"FROM p LEFT JOIN sources s ON s.src = p.src "
        f"GROUP BY {group} ORDER BY n DESC, {'p.src' if sources else 's.country'}, flag_class LIMIT ?",
        [*range_params, *scope_params, limit + 1]).fetchall()
    points = [(address_text(src, src6) if sources else None, flag, int(n), lat, lon, country)
              for src, src6, flag, n, lat, lon, country in rows[:limit]]
    return {"window": window, **span.as_json(), "points": _columns(points), "truncated": len(rows) > limit}


#: The fields of a map point, in the order of the columns ``map_points`` answers.
MAP_FIELDS = ("src", "flag_class", "count", "lat", "lon", "country")


def _columns(points: list[tuple]) -> dict[str, list]:
    return {name: [p[i] for p in points] for i, name in enumerate(MAP_FIELDS)}
