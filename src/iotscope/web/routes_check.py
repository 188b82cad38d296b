"""``GET /check``: the device owner's self-check of their own address, as a plain page (ja/en).

The address looked up is the requester's own (:mod:`iotscope.web.client_address`); there is no
parameter to name another. The facts come from :func:`iotscope.notify.check.check_address`; the
darknet window is the last ``check_days`` days of data the store holds (for a live sensor: up to
now), so a store of an old capture still answers about that capture. Each client may ask
:data:`CHECK_REQUESTS` times per :data:`CHECK_WINDOW_S` seconds; beyond, 429 with Retry-After.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from iotscope.notify.check import check_address
from iotscope.web import self_check_page
from iotscope.web.client_address import client_address
from iotscope.web.queries import data_extent

#: The self-check's budget per client address: requests per window (seconds).
CHECK_REQUESTS, CHECK_WINDOW_S = 10, 60.0
#: The darknet days the self-check covers by default (``iotscope serve --check-days``).
CHECK_DAYS = 30.0

router = APIRouter()


@router.get("/check", response_class=HTMLResponse, include_in_schema=False)
def self_check(request: Request, lang: Annotated[str | None, Query()] = None) -> HTMLResponse:
    """Was the requester's own address seen scanning the darknet, or found with a default password?"""
    state = request.app.state
    address = client_address(request.client.host if request.client else "", request.headers.get("x-forwarded-for"),
                             state.trusted_proxies)
    allowed, wait = state.check_limiter.allow(address)
    chosen = self_check_page.language(lang, request.headers.get("accept-language"))
    if not allowed:
        message = ("リクエストが多すぎます。しばらくしてから再度お試しください。" if chosen == "ja"
                   else "Too many requests; please try again in a minute.")
        return HTMLResponse(f"<!doctype html><p>{message}</p>", status_code=429,
                            headers={"Retry-After": str(max(1, math.ceil(wait)))})
    extent = data_extent(state.reader.cursor())
    newest = datetime.fromtimestamp(extent[1] / 1e6 + 1, tz=UTC) if extent else None
    result = check_address(state.reader.root, address, days=state.check_days, now=newest)
    return HTMLResponse(self_check_page.render(result, chosen, state.check_days),
                        headers={"Cache-Control": "no-store", "Vary": "Accept-Language"})
