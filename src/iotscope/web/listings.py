"""``/api/events`` and ``/api/attacks``: the analysis tables, filtered, newest first, a page at a time.

Why keyset pages: a page starts after the sort key of the previous page's last row (``after``),
not at an offset, so page 50 costs what page 1 costs and rows committed meanwhile neither repeat
nor vanish between pages. The sort is total (time, then address, then protocol and port), so
every row appears on exactly one page. The route turns ``next`` into an opaque cursor
(:mod:`iotscope.web.cursor`).

A row is in the time range when it overlaps ``[from, to)``: it started before ``to`` and its
last packet was at or after ``from``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import duckdb

from iotscope.store.schema import TOOLS
from iotscope.web.access import EVERYTHING, AddressScope
from iotscope.web.queries import PROTOCOLS, ApiParameterError, iso, resolve_range

#: Rows per page when the request names no ``limit``, and the most one page may hold.
DEFAULT_PAGE, MAX_PAGE = 100, 1000
_PROTOCOL_NAMES = {number: name for name, number in PROTOCOLS.items()}


def _common_filters(scope: AddressScope, v4: str, v6: str, proto: str | None, start: datetime | None,
                    end: datetime | None, con: duckdb.DuckDBPyConnection, limit: int) -> tuple[list[str], list[Any], Any]:
    if not 1 <= limit <= MAX_PAGE:
        raise ApiParameterError("limit", f"must be 1..{MAX_PAGE}")
    window = resolve_range(con, start, end)
    where = ["first_ts < make_timestamptz(?::BIGINT)", "last_ts >= make_timestamptz(?::BIGINT)"]
    params: list[Any] = [window.end_us, window.start_us]
    if proto is not None:
        if proto not in PROTOCOLS:
            raise ApiParameterError("proto", f"unknown protocol {proto!r}; one of {', '.join(PROTOCOLS)}")
        where.append("proto = ?")
        params.append(PROTOCOLS[proto])
    in_scope, scope_params = scope.sql(v4, v6)
    where.append(in_scope)
    params += scope_params
    return where, params, window


def _after(key: list[Any] | None, columns: str, arity: int, time: str = "first_ts") -> tuple[str, list[Any]]:
    """Rows after ``key`` in the order ``<time> DESC, <columns> ASC``."""
    if key is None:
        return "TRUE", []
    marks = ", ".join("?" * (arity - 1))
    return (f"(epoch_us({time}) < ? OR (epoch_us({time}) = ? AND ({columns}) > ({marks})))",
            [key[0], key[0], *key[1:]])


def _port(where: list[str], params: list[Any], port: int | None, condition: str) -> None:
    if port is None:
        return
    if not 0 <= port <= 65535:
        raise ApiParameterError("port", f"{port} is not a port (0..65535)")
    where.append(condition)
    params.append(port)


def _page(con: duckdb.DuckDBPyConnection, select: str, where: list[str], params: list[Any], columns: str,
          arity: int, after: list[Any] | None, limit: int,
          time: str = "first_ts") -> tuple[list[tuple], list[Any] | None]:
    """One page of ``select``'s rows (its first column ``f`` is ``time`` in µs, then the
    ``arity - 1`` sort ``columns``) and the key of its last row when more follow."""
    page, page_params = _after(after, columns, arity, time)
    rows = con.execute(f"{select} WHERE {' AND '.join(where)} AND {page} ORDER BY f DESC, {columns} LIMIT ?",
                       [*params, *page_params, limit + 1]).fetchall()
    shown = rows[:limit]
    following = [int(shown[-1][0]), *shown[-1][1:arity]] if len(rows) > limit else None
    return shown, following


def events(con: duckdb.DuckDBPyConnection, *, scope: AddressScope = EVERYTHING, port: int | None = None,
           proto: str | None = None, tool: str | None = None, country: str | None = None,
           start: datetime | None = None, end: datetime | None = None, limit: int = DEFAULT_PAGE,
           after: list[Any] | None = None) -> dict[str, Any]:
    """Scanner events (``events`` view) newest first; ``next`` is the key to pass as ``after``, or None.

    ``country`` (ISO 3166 alpha-2) keeps events whose source ``sources`` locates there."""
    where, params, window = _common_filters(scope, "src", "src6", proto, start, end, con, limit)
    _port(where, params, port, "dport = ?")
    if country is not None:
        if not (len(country) == 2 and country.isascii() and country.isalpha()):
            raise ApiParameterError("country", f"{country!r} is not an ISO 3166 alpha-2 code")
        where.append("country = ?")
        params.append(country.upper())
    if tool is not None:
        if tool not in TOOLS:
            raise ApiParameterError("tool", f"unknown tool {tool!r}; one of {', '.join(TOOLS)}")
        where.append("tool = ?")
        params.append(tool)
    shown, following = _page(
        con, "SELECT epoch_us(first_ts) AS f, src_ip, proto, coalesce(dport, -1) AS d, epoch_us(last_ts), "
        "traffic_class, packets, destinations, dst_24s, tool, open, country FROM events", where, params,
        "src_ip, proto, coalesce(dport, -1)", 4, after, limit)
    return {
        **window.as_json(),
        "rows": [{"src": src, "proto": _PROTOCOL_NAMES.get(p, str(p)), "port": None if d < 0 else int(d),
                  "first": iso(f), "last": iso(last), "traffic_class": kind, "packets": int(n),
                  "destinations": int(dests), "dst_24s": None if d24 is None else int(d24), "tool": t,
                  "open": bool(is_open), "country": cc}
                 for f, src, p, d, last, kind, n, dests, d24, t, is_open, cc in shown],
        "next": following,
    }


def attacks(con: duckdb.DuckDBPyConnection, *, scope: AddressScope = EVERYTHING, port: int | None = None,
            proto: str | None = None, start: datetime | None = None, end: datetime | None = None,
            limit: int = DEFAULT_PAGE, after: list[Any] | None = None) -> dict[str, Any]:
    """DoS attacks (``attacks`` view) newest first; ``port`` keeps attacks on that victim port."""
    where, params, window = _common_filters(scope, "victim", "victim6", proto, start, end, con, limit)
    _port(where, params, port, "list_contains(victim_ports, ?::USMALLINT)")
    shown, following = _page(
        con, "SELECT epoch_us(first_ts) AS f, victim_ip, proto, epoch_us(last_ts), packets, bytes, victim_ports, "
        "peak_window_packets, window_s, duration_s, observed_pps, est_attack_pps, est_peak_pps, open FROM attacks",
        where, params, "victim_ip, proto", 3, after, limit)

    def number(value: float | None) -> float | None:
        return None if value is None else float(value)

    return {
        **window.as_json(),
        "rows": [{"victim": victim, "proto": _PROTOCOL_NAMES.get(p, str(p)), "first": iso(f), "last": iso(last),
                  "packets": int(n), "bytes": int(size), "victim_ports": [int(x) for x in ports or []],
                  "peak_window_packets": int(peak), "window_s": int(win), "duration_s": number(dur),
                  "observed_pps": number(obs), "est_attack_pps": number(est), "est_peak_pps": number(est_peak),
                  "open": bool(is_open)}
                 for f, victim, p, last, n, size, ports, peak, win, dur, obs, est, est_peak, is_open in shown],
        "next": following,
    }


def alerts(con: duckdb.DuckDBPyConnection, *, port: int | None = None, proto: str | None = None,
           start: datetime | None = None, end: datetime | None = None, limit: int = DEFAULT_PAGE,
           after: list[Any] | None = None) -> dict[str, Any]:
    """Surge alerts (``alerts`` view) newest ``start`` first; an alert is in the range when its span
    ``[start, detected]`` overlaps ``[from, to)``. Alerts name ports, never addresses: no scope."""
    where, params, window = _common_filters(EVERYTHING, "NULL", "NULL", proto, start, end, con, limit)
    where[:2] = ["start < make_timestamptz(?::BIGINT)", "detected >= make_timestamptz(?::BIGINT)"]
    _port(where, params, port, "port = ?")
    shown, following = _page(
        con, "SELECT epoch_us(start) AS f, proto, port, epoch_us(detected), baseline_sources, level_sources, "
        "magnitude, packets, method FROM alerts", where, params, "proto, port", 3, after, limit, time="start")
    return {
        **window.as_json(),
        "rows": [{"proto": _PROTOCOL_NAMES.get(p, str(p)), "port": int(d), "start": iso(f), "detected": iso(det),
                  "baseline_sources": float(base), "level_sources": float(level), "magnitude": float(mag),
                  "packets": int(n), "method": method}
                 for f, p, d, det, base, level, mag, n, method in shown],
        "next": following,
    }
