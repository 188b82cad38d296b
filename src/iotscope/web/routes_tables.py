"""``/api/events``, ``/api/attacks``, ``/api/alerts``: shells over ``listings``, scoped to the caller, paged by cursor.

The cursor is the previous page's ``next`` as given; it is signed and bound to the caller
(:mod:`iotscope.web.cursor`), so it works only for whoever received it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, FastAPI, Query, Request, Response

from iotscope.store.schema import TOOLS
from iotscope.web import listings
from iotscope.web.access import Caller, caller_of, require_addresses
from iotscope.web.errors import ERROR_RESPONSES, UNAUTHORIZED
from iotscope.web.routes_traffic import From, Question, To, answer

router = APIRouter(prefix="/api", tags=["tables"], responses={**ERROR_RESPONSES, **UNAUTHORIZED})

Limit = Annotated[int, Query(ge=1, le=listings.MAX_PAGE, description="Rows per page.")]
Cursor = Annotated[str | None, Query(description="The previous page's `cursor`, as given.")]
Port = Annotated[int | None, Query(ge=0, le=65535, description="Destination port (events) or victim port (attacks).")]
Proto = Annotated[Literal["tcp", "udp", "icmp"] | None, Query(description="IP protocol.")]


def page_question(app: FastAPI, caller: Caller, kind: str, arity: int, cursor: str | None, params: tuple,
                  compute, names_addresses: bool = True) -> Question:
    """The question of one page of listing ``kind`` for ``caller``, its cursor signed for that caller."""
    if names_addresses:
        require_addresses(caller)
    codec = app.state.cursors
    after = None if cursor is None else codec.decode(cursor, caller.name + "\0" + kind, arity)

    def run(con):
        page = compute(con, caller.scope, after)
        following = page.pop("next")
        page["cursor"] = None if following is None else codec.encode(following, caller.name + "\0" + kind)
        return page

    return (kind, caller.name, cursor, *params), run


def events_question(app: FastAPI, caller: Caller, port: int | None = None, proto: str | None = None,
                    tool: str | None = None, country: str | None = None, start: datetime | None = None,
                    end: datetime | None = None, limit: int = listings.DEFAULT_PAGE,
                    cursor: str | None = None) -> Question:
    return page_question(app, caller, "events", 4, cursor, (port, proto, tool, country, start, end, limit),
                         lambda con, scope, after: listings.events(con, scope=scope, port=port, proto=proto, tool=tool,
                                                                   country=country, start=start, end=end, limit=limit,
                                                                   after=after))


def attacks_question(app: FastAPI, caller: Caller, port: int | None = None, proto: str | None = None,
                     start: datetime | None = None, end: datetime | None = None, limit: int = listings.DEFAULT_PAGE,
                     cursor: str | None = None) -> Question:
    return page_question(app, caller, "attacks", 3, cursor, (port, proto, start, end, limit),
                         lambda con, scope, after: listings.attacks(con, scope=scope, port=port, proto=proto,
                                                                    start=start, end=end, limit=limit, after=after))


def alerts_question(app: FastAPI, caller: Caller, port: int | None = None, proto: str | None = None,
                    start: datetime | None = None, end: datetime | None = None, limit: int = listings.DEFAULT_PAGE,
                    cursor: str | None = None) -> Question:
    return page_question(app, caller, "alerts", 3, cursor, (port, proto, start, end, limit),
                         lambda con, scope, after: listings.alerts(con, port=port, proto=proto, start=start, end=end,
                                                                   limit=limit, after=after), names_addresses=False)


@router.get("/events")
def events(request: Request, port: Port = None, proto: Proto = None,
           tool: Annotated[str | None, Query(description=f"Scanning tool: {', '.join(TOOLS)}.")] = None,
           country: Annotated[str | None, Query(description="The source's country (ISO 3166 alpha-2).")] = None,
           start: From = None, end: To = None, limit: Limit = listings.DEFAULT_PAGE, cursor: Cursor = None) -> Response:
    """Scanner events newest first (one source, protocol and port; first and last packet, tool, country)."""
    return answer(request, *events_question(request.app, caller_of(request), port, proto, tool, country, start, end,
                                            limit, cursor))


@router.get("/attacks")
def attacks(request: Request, port: Port = None, proto: Proto = None, start: From = None, end: To = None,
            limit: Limit = listings.DEFAULT_PAGE, cursor: Cursor = None) -> Response:
    """DoS attacks inferred from backscatter, newest first, with estimated rates."""
    return answer(request, *attacks_question(request.app, caller_of(request), port, proto, start, end, limit, cursor))


@router.get("/alerts")
def alerts(request: Request, port: Annotated[int | None, Query(ge=0, le=65535, description="Destination port.")] = None,
           proto: Proto = None, start: From = None, end: To = None, limit: Limit = listings.DEFAULT_PAGE,
           cursor: Cursor = None) -> Response:
    """Surges of distinct sources per port (``alerts``), newest start first. Ports only, no addresses."""
    return answer(request, *alerts_question(request.app, caller_of(request), port, proto, start, end, limit, cursor))
