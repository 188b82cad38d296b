"""``/api/summary``, ``/api/series``, ``/api/top/{by}``, ``/api/map``, ``/api/ip/{address}``: shells over ``queries``.

Parameter bounds are declared here (FastAPI checks them and answers 422 naming the parameter);
what needs the data to decide (``from`` after ``to``, too many buckets) is checked in ``queries``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import duckdb
from fastapi import APIRouter, Depends, Path, Query, Request

from iotscope.web import queries
from iotscope.web.errors import ERROR_RESPONSES, ErrorBody

router = APIRouter(prefix="/api", tags=["traffic"], responses=ERROR_RESPONSES)

From = Annotated[datetime | None, Query(alias="from", description="ISO 8601 start (default: 24 h before `to`).")]
To = Annotated[datetime | None, Query(alias="to", description="ISO 8601 end, exclusive (default: the last packet).")]


def cursor(request: Request) -> duckdb.DuckDBPyConnection:
    """A cursor of the store opened by the app, seeing every capture committed so far."""
    return request.app.state.reader.cursor()


Cursor = Annotated[duckdb.DuckDBPyConnection, Depends(cursor)]


@router.get("/summary")
def summary(con: Cursor) -> dict[str, Any]:
    """Packets, sources, first/last time, counts by flag and traffic class and tool, packets per year."""
    return queries.summary(con)


@router.get("/series")
def series(
    con: Cursor,
    proto: Annotated[Literal["tcp", "udp", "icmp"], Query(description="IP protocol.")] = "tcp",
    port: Annotated[int | None, Query(ge=0, le=65535, description="Destination port (tcp/udp).")] = None,
    bucket: Annotated[int, Query(ge=1, le=31 * 86400, description="Bucket length in seconds.")] = 600,
    start: From = None,
    end: To = None,
) -> dict[str, Any]:
    """Packets and distinct sources per bucket for one protocol and destination port."""
    return queries.series(con, proto, port, bucket, start, end)


@router.get("/top/{by}")
def top(
    con: Cursor,
    by: Annotated[Literal["port", "tool"], Path(description="What to rank (country and asn come with geo data).")],
    limit: Annotated[int, Query(ge=1, le=1000)] = 10,
    start: From = None,
    end: To = None,
) -> dict[str, Any]:
    """The largest destination ports (with protocol) or scanning tools, by packets."""
    return queries.top(con, by, limit, start, end)


@router.get("/map")
def map_points(
    con: Cursor,
    window: Annotated[int, Query(ge=1, le=7 * 86400, description="Seconds of the latest data to draw.")] = 600,
    limit: Annotated[int, Query(ge=1, le=50_000, description="At most this many points, largest first.")] = 5000,
) -> dict[str, Any]:
    """Packets per source and flag class in the latest window, with lat/lon/country for the map."""
    return queries.map_points(con, window, limit)


_UNSEEN = {404: {"model": ErrorBody, "description": "The store holds no packet from this address."}}


@router.get("/ip/{address}", responses=_UNSEEN)
def source_profile(
    con: Cursor,
    address: Annotated[str, Path(description="An IPv4 or IPv6 source address.")],
) -> dict[str, Any]:
    """One source's profile: first/last seen, packets, destinations, flag classes, tools, top ports."""
    return queries.source_profile(con, address)
