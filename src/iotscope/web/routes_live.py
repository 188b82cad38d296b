"""``/api/live``: Server-Sent Events telling open pages that new data was committed.

Why polling a small SQLite query server-side: a commit (ingest or sensor) is one row in
``state.sqlite``; reading its count once a second per open page costs microseconds, and the page
then fetches only what it shows, so a page updates within a couple of seconds of the commit
without polling the whole store. Behind the prewarm (:class:`~iotscope.web.prewarm.PublishedView`),
the generation served is a value in memory, set when the server switches: it is looked at every
tenth of a second, so a page hears of the switch within ~0.1 s rather than within the SQLite poll.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import asdict

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from iotscope.errors import IotscopeError
from iotscope.web.errors import ERROR_RESPONSES
from iotscope.web.prewarm import PublishedView

router = APIRouter(prefix="/api", tags=["live"], responses=ERROR_RESPONSES)

#: A comment line this often keeps proxies and the browser from closing an idle stream.
_KEEPALIVE_SECONDS = 15.0
#: How often a stream looks whether the server is stopping (``iotscope.web.server``).
_STOP_CHECK_SECONDS = 0.1


def _event(name: str, data: dict) -> str:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n"


@router.get("/live", response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}}, "description": "An event stream."}})
async def live(request: Request) -> StreamingResponse:
    """Events: ``hello`` (the current generation) on connect, then ``commit`` after every commit."""
    reader = request.app.state.view  # the generation the server answers from: a commit is told when it is ready
    poll = _STOP_CHECK_SECONDS if isinstance(reader, PublishedView) else request.app.state.live_poll_seconds

    async def stream() -> AsyncIterator[str]:
        last = reader.generation()
        yield _event("hello", asdict(last))
        quiet_since = time.monotonic()
        while not request.app.state.stopping and not await request.is_disconnected():
            for _ in range(max(1, round(poll / _STOP_CHECK_SECONDS))):  # a shutdown need not wait a poll
                await asyncio.sleep(min(poll, _STOP_CHECK_SECONDS))
                if request.app.state.stopping:
                    return
            try:
                now = reader.generation()
            except IotscopeError as exc:
                yield _event("error", {"error": str(exc)})
                return
            if now != last:
                last = now
                quiet_since = time.monotonic()
                yield _event("commit", asdict(now))
            elif time.monotonic() - quiet_since > _KEEPALIVE_SECONDS:
                quiet_since = time.monotonic()
                yield ": keepalive\n\n"

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
