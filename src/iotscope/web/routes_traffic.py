"""``/api/summary``, ``/api/series``, ``/api/top/{by}``, ``/api/categories``, ``/api/map``, ``/api/ip/{address}``:
shells over ``queries``.

Summary, series and top lists are aggregates (no address) and the same for every caller; the map
and the profile are scoped to the caller (:mod:`iotscope.web.access`).

Parameter bounds are declared here (FastAPI checks them and answers 422 naming the parameter);
what needs the data to decide (``from`` after ``to``, too many buckets) is checked in ``queries``.
Answers are kept until the next commit (``result_cache``): same store content, same answer.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Literal

import duckdb
from fastapi import APIRouter, FastAPI, Path, Query, Request, Response

from iotscope.web import profile_query, queries
from iotscope.web.access import EVERYTHING, Caller, caller_of, require_addresses
from iotscope.web.errors import ERROR_RESPONSES, UNAUTHORIZED, ErrorBody
from iotscope.web.store_reader import Generation

router = APIRouter(prefix="/api", tags=["traffic"], responses=ERROR_RESPONSES)

From = Annotated[datetime | None, Query(alias="from", description="ISO 8601 start (default: 24 h before `to`).")]
To = Annotated[datetime | None, Query(alias="to", description="ISO 8601 end, exclusive (default: the last packet).")]


#: A question: the key its answer is kept under, and how to compute the answer from a cursor.
Question = tuple[tuple, Callable[[duckdb.DuckDBPyConnection], Any]]


def answer(request: Request, key: tuple, compute: Callable[[duckdb.DuckDBPyConnection], Any]) -> Response:
    """``compute`` over the store as committed now, as JSON kept until the next commit (``result_cache``)."""
    return Response(answer_body(request.app, key, compute), media_type="application/json")


def answer_body(app: FastAPI, key: tuple, compute: Callable[[duckdb.DuckDBPyConnection], Any],
                snapshot: tuple[Generation, duckdb.DuckDBPyConnection] | None = None) -> bytes:
    """The JSON text of ``compute``'s answer for the generation the server answers from (``app.state.view``,
    or ``snapshot``'s), computed once per generation.

    The JSON text is what is kept: encoding 5,000 map points costs more than serving them.
    """
    generation, con = snapshot or app.state.view.snapshot()
    return app.state.results.get(generation, key, lambda: json.dumps(compute(con)).encode())


def summary_question() -> Question:
    return ("summary",), queries.summary


def series_question(proto: str, port: int | None, bucket: int, start: datetime | None = None,
                    end: datetime | None = None) -> Question:
    return (("series", proto, port, bucket, start, end),
            lambda con: queries.series(con, proto, port, bucket, start, end))


def top_question(by: str, limit: int, start: datetime | None = None, end: datetime | None = None) -> Question:
    return ("top", by, limit, start, end), lambda con: queries.top(con, by, limit, start, end)


def categories_question(start: datetime | None = None, end: datetime | None = None) -> Question:
    return ("categories", start, end), lambda con: queries.categories(con, start, end)


def map_question(caller: Caller, window: int, limit: int) -> Question:
    # the public's points count every source but name none; everyone else's name their own sources only
    scope = caller.scope if caller.sees_addresses else EVERYTHING
    return (("map", caller.name, window, limit),
            lambda con: queries.map_points(con, window, limit, scope, caller.sees_addresses))


@router.get("/summary")
def summary(request: Request) -> Response:
    """Packets, sources, first/last time, counts by flag and traffic class and tool, packets per year."""
    return answer(request, *summary_question())


@router.get("/series")
def series(
    request: Request,
    proto: Annotated[Literal["tcp", "udp", "icmp"], Query(description="IP protocol.")] = "tcp",
    port: Annotated[int | None, Query(ge=0, le=65535, description="Destination port (tcp/udp).")] = None,
    bucket: Annotated[int, Query(ge=1, le=31 * 86400, description="Bucket length in seconds.")] = 600,
    start: From = None,
    end: To = None,
) -> Response:
    """Packets and distinct sources per bucket for one protocol and destination port."""
    return answer(request, *series_question(proto, port, bucket, start, end))


@router.get("/top/{by}")
def top(
    request: Request,
    by: Annotated[Literal["port", "tool", "country", "asn"], Path(description="What to rank.")],
    limit: Annotated[int, Query(ge=1, le=1000)] = 10,
    start: From = None,
    end: To = None,
) -> Response:
    """The largest destination ports (with protocol), scanning tools, source countries or ASes, by packets.

    Counts only, no address: the same for every caller."""
    return answer(request, *top_question(by, limit, start, end))


@router.get("/categories")
def categories(request: Request, start: From = None, end: To = None) -> Response:
    """Scan packets, distinct sources and share per target category (iot, pc, database, ...)."""
    return answer(request, *categories_question(start, end))


@router.get("/map", responses=UNAUTHORIZED)
def map_points(
    request: Request,
    window: Annotated[int, Query(ge=1, le=7 * 86400, description="Seconds of the latest data to draw.")] = 600,
    limit: Annotated[int, Query(ge=1, le=50_000, description="At most this many points, largest first.")] = 5000,
) -> Response:
    """Packets per source and flag class in the latest window, with lat/lon/country for the map, as
    columns (``points.src``, ``points.lat``, ...: one array each, the same length).

    With ``--orgs``: an organization's token shows its own sources only; without a token, the
    points are per flag class with ``src`` null."""
    return answer(request, *map_question(caller_of(request), window, limit))


_UNSEEN = {404: {"model": ErrorBody, "description": "The store holds no packet from this address."}, **UNAUTHORIZED}


@router.get("/ip/{address}", responses=_UNSEEN)
def source_profile(
    request: Request,
    address: Annotated[str, Path(description="An IPv4 or IPv6 source address.")],
) -> Response:
    """One source's profile: first/last seen, packets, destinations, flag classes, tools, top ports.

    With ``--orgs``: a token is needed (401), and an address outside the organization's networks is 404."""
    caller = caller_of(request)
    require_addresses(caller)
    return answer(request, ("ip", caller.name, address), lambda con: profile_query.source_profile(
        con, address, scope=caller.scope))
