"""One source address's profile (``/api/ip/{address}``), as a plain function over a DuckDB cursor.

Apart from the aggregate questions in :mod:`iotscope.web.queries` because it answers a different
question: not "what does the telescope see over a time range" but "what did this one address
send, ever". It reads the ``packets`` view filtered to one source (and the ``sources`` view for
where it is), so the store's per-hour analysis datasets do not enter it. The CLI's store-level
profile is :func:`iotscope.telescope.report.source_profile`.
"""

from __future__ import annotations

import ipaddress
from typing import Any

import duckdb

from iotscope.errors import IotscopeError
from iotscope.ip_protocols import PROTOCOL_NAMES
from iotscope.store.schema import FLAG_CLASSES, TRAFFIC_CLASSES
from iotscope.web.access import EVERYTHING, AddressScope
from iotscope.web.queries import ApiParameterError
from iotscope.web.time_range import iso


class UnknownSourceError(IotscopeError, LookupError):
    """No packet from this address is in the store; the web layer answers 404."""


def source_profile(con: duckdb.DuckDBPyConnection, address: str, top_ports: int = 20,
                   scope: AddressScope = EVERYTHING) -> dict[str, Any]:
    """What the store knows about one source address, from its packets.

    Location, network and classification (``country``, ``asn``, ``as_name``, ``lat``, ``lon``,
    ``classification``) come from the ``sources`` view; null when it does not know the source.
    Raises :class:`ApiParameterError` for text that is not an address and
    :class:`UnknownSourceError` for an address never seen or outside ``scope`` (the same answer:
    an organization cannot tell another's sources from silence).
    """
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        raise ApiParameterError("address", f"{address!r} is not an IPv4 or IPv6 address") from None
    if not scope.contains(parsed):
        raise UnknownSourceError(f"address: {parsed} sent nothing the store holds")
    where, key = ("src = ?", int(parsed)) if parsed.version == 4 else ("src6 = ?", parsed.packed)
    packets, first, last, destinations = con.execute(
        f"SELECT count(*), epoch_us(min(ts)), epoch_us(max(ts)), count(DISTINCT coalesce(CAST(dst AS VARCHAR), "
        f"hex(dst6))) FROM packets WHERE {where}", [key]).fetchone()
    if not packets:
        raise UnknownSourceError(f"address: {parsed} sent nothing the store holds")
    by_flag = dict(con.execute(f"SELECT flag_class, count(*) FROM packets WHERE {where} GROUP BY 1", [key]).fetchall())
    by_traffic = dict(con.execute(
        f"SELECT traffic_class, count(*) FROM packets WHERE {where} GROUP BY 1", [key]).fetchall())
    tools = [t for (t,) in con.execute(
        f"SELECT DISTINCT tool FROM packets WHERE {where} AND tool IS NOT NULL ORDER BY 1", [key]).fetchall()]
    ports = con.execute(
        f"SELECT dport, proto, count(*) AS n FROM packets WHERE {where} AND dport IS NOT NULL "
        "GROUP BY 1, 2 ORDER BY n DESC, dport LIMIT ?", [key, top_ports]).fetchall()
    return {
        "address": str(parsed),
        "first_seen": iso(first),
        "last_seen": iso(last),
        "packets": int(packets),
        "destinations": int(destinations),
        "flag_class": {name: int(by_flag[name]) for name in FLAG_CLASSES if name in by_flag},
        "traffic_class": {name: int(by_traffic[name]) for name in TRAFFIC_CLASSES if name in by_traffic},
        "tools": tools,
        "ports": [{"port": int(d), "proto": PROTOCOL_NAMES.get(p, str(p)), "packets": int(n)} for d, p, n in ports],
        **_located(con, where, key),
    }


def _located(con: duckdb.DuckDBPyConnection, where: str, key: Any) -> dict[str, Any]:
    """A source's location, network and classification from the ``sources`` view (nulls when absent)."""
    row = con.execute(f"SELECT country, asn, as_name, lat, lon, classification FROM sources WHERE {where}",
                      [key]).fetchone()
    country, asn, as_name, lat, lon, classification = row or (None,) * 6
    return {"country": country, "asn": None if asn is None else int(asn), "as_name": as_name,
            "lat": None if lat is None else float(lat), "lon": None if lon is None else float(lon),
            "classification": classification}
