"""Which part of a time range the analysis datasets answer exactly, and which part only the packets can.

Why: the dashboard's numbers are counts and *distinct sources* per group, and distinct sources over
ten million packets cost a scan of every packet (0.2-1 s a question). ``analyze`` has already
written, per hour, one ``source_hours`` row per (source, protocol, destination port, traffic class)
with its packets and tool counts: the hour's source *sets*, ~35 times fewer rows than packets on
the bench store. The distinct sources of a range are the size of the union of its hours' sets, so an
answer read from them is the packets' answer exactly (never a sum of per-hour distinct counts,
which would count a source once per hour).

An hour is read from the analysis when both hold:

- its analysis is current: the packets its ``source_hours`` rows count equal the packets the store
  holds for that hour now. The store only ever adds packets to an hour (ingest), rewrites them
  unchanged (compaction) or removes the whole hour (retention), so an ingest committed after the
  last ``analyze`` makes the hour's counts differ until the next ``analyze``;
- all its packets are inside the range: the hour lies inside it, or its first and last packet
  (``source_hours``' ``first_ts``/``last_ts``) do, as for the default range that starts at the first packet.

Every other hour with packets in the range is read from ``packets``, for its part of the range only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import duckdb

from iotscope.web.time_range import US_PER_HOUR, TimeRange, packets_in

#: The hour (since the epoch) of a ``packets`` row, from the Hive partition path: no data read.
PACKET_HOUR = "epoch_us(date + hour * INTERVAL 1 HOUR) // 3600000000"


@dataclass(frozen=True)
class Coverage:
    """``window`` split into whole hours with a current analysis and the pieces only packets answer."""

    window: TimeRange
    #: Hours (since the epoch) read from the analysis datasets, as half-open runs ``(first, end)``.
    analysed: tuple[tuple[int, int], ...]
    #: The rest of ``window`` that holds packets, read from ``packets``.
    rest: tuple[TimeRange, ...]

    def packets_only(self) -> Coverage:
        """The same window read from ``packets`` alone (for a question the analysis cannot answer exactly)."""
        return Coverage(self.window, (), (self.window,))

    def analysed_sql(self, column: str) -> tuple[str, list[Any]]:
        """SQL selecting the rows of an analysis dataset whose ``column`` (a timestamp) is in an analysed hour."""
        if not self.analysed:
            return "false", []
        terms = " OR ".join(f"({column} >= make_timestamptz(?::BIGINT) AND {column} < make_timestamptz(?::BIGINT))"
                            for _ in self.analysed)
        return f"({terms})", [us for first, end in self.analysed for us in (first * US_PER_HOUR, end * US_PER_HOUR)]

    def rest_sql(self) -> tuple[str, list[Any]]:
        """SQL selecting the ``packets`` rows of the pieces of ``window`` not read from the analysis."""
        if not self.rest:
            return "false", []
        terms, params = [], []
        for piece in self.rest:
            sql, piece_params = packets_in(piece)
            terms.append(f"({sql})")
            params += piece_params
        return f"({' OR '.join(terms)})", params


#: The per-hour table :func:`record_hours` makes: packets stored, packets the analysis counted, first/last analysed packet.
HOURS_TABLE = "hour_coverage"


def record_hours(con: duckdb.DuckDBPyConnection) -> None:
    """Make the table :func:`coverage` reads, once per connection (the views do not change under it).

    Why once: the packets per hour come from the Parquet row counts grouped by the partition path,
    the analysed packets per hour from ``source_hours``: ~25 ms together on the 10M-packet bench
    store, which every aggregate question would otherwise pay again. A plain table, so every
    cursor of the connection sees it.
    """
    con.execute(
        f"CREATE TABLE {HOURS_TABLE} AS WITH p AS (SELECT {PACKET_HOUR} AS h, count(*) AS n FROM packets GROUP BY h), "
        "a AS (SELECT epoch_us(first_ts) // 3600000000 AS h, sum(packets) AS n, epoch_us(min(first_ts)) AS lo, "
        "epoch_us(max(last_ts)) AS hi FROM source_hours GROUP BY h) "
        "SELECT p.h, a.n IS NOT DISTINCT FROM p.n AS current, a.lo, a.hi FROM p LEFT JOIN a USING (h)")


def coverage(con: duckdb.DuckDBPyConnection, window: TimeRange) -> Coverage:
    """How ``window`` splits (see the module docstring), from the table :func:`record_hours` made."""
    first_hour, last_hour = window.start_us // US_PER_HOUR, (window.end_us - 1) // US_PER_HOUR
    rows = con.execute(f"SELECT h, current, lo, hi FROM {HOURS_TABLE} WHERE h BETWEEN ? AND ? ORDER BY h",
                       [first_hour, last_hour]).fetchall()
    analysed: list[tuple[int, int]] = []
    rest: list[TimeRange] = []
    for hour, current, low, high in rows:
        start, end = hour * US_PER_HOUR, (hour + 1) * US_PER_HOUR
        inside = window.start_us <= start and end <= window.end_us
        if current and (inside or (window.start_us <= low and high < window.end_us)):
            if analysed and analysed[-1][1] == hour:
                analysed[-1] = (analysed[-1][0], hour + 1)
            else:
                analysed.append((hour, hour + 1))
            continue
        piece = TimeRange(max(start, window.start_us), min(end, window.end_us))
        if rest and rest[-1].end_us == piece.start_us:
            rest[-1] = TimeRange(rest[-1].start_us, piece.end_us)
        else:
            rest.append(piece)
    return Coverage(window, tuple(analysed), tuple(rest))


def source_rows(cover: Coverage, analysed: str, from_packets: str, *, analysed_where: str = "true",
                packets_where: str = "true", params: tuple[list[Any], list[Any]] = ([], [])) -> tuple[str, list[Any]]:
    """SQL of rows ``(src, src6, <columns>)`` that count every packet of ``cover.window`` once.

    ``analysed`` are the ``<columns>`` as expressions over ``source_hours``, ``from_packets`` the
    same columns over ``packets`` with aggregates (the packets' part is grouped by source and the
    other columns, so it is small too); ``params`` are the parameters of the two ``where``
    conditions. Grouped by some of the columns, ``sum`` of a count and
    ``count(DISTINCT src) + count(DISTINCT src6)`` are exactly what a query of the packets gives.
    """
    parts, values = [], []
    if cover.analysed:
        hours_sql, hours_params = cover.analysed_sql("first_ts")
        parts.append(f"SELECT src, src6, {analysed} FROM source_hours WHERE {hours_sql} AND ({analysed_where})")
        values += hours_params + params[0]
    if cover.rest or not parts:  # with nothing in the range: the columns, no row
        rest_sql, rest_params = cover.rest_sql()
        parts.append(f"SELECT src, src6, {from_packets} FROM packets WHERE {rest_sql} AND ({packets_where}) GROUP BY ALL")
        values += rest_params + params[1]
    return " UNION ALL ".join(parts), values
