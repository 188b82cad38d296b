"""The application factory: routes, the one error mapping, and the built dashboard.

Errors become JSON, never a traceback: a bad parameter is 422 ``{"error", "parameter"}``; a
problem with the store (an :class:`~iotscope.errors.IotscopeError`) is 503 with its one line;
an address the store never saw is 404; a missing or wrong token (``--orgs``) is 401; anything else is a bug, logged by the server and answered 500 ``{"error": "internal error"}``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import duckdb
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from iotscope.errors import IotscopeError
from iotscope.notify.orgs import OrgCatalog
from iotscope.web import routes_check, routes_live, routes_tables, routes_traffic
from iotscope.web.access import Unauthorized, caller_of
from iotscope.web.client_address import IPNetwork
from iotscope.web.cursor import CursorCodec
from iotscope.web.prewarm import PREWARM_POLL_SECONDS, Prewarmer, PublishedView
from iotscope.web.profile_query import UnknownSourceError
from iotscope.web.queries import ApiParameterError
from iotscope.web.rate_limit import RateLimiter
from iotscope.web.result_cache import ResultCache
from iotscope.web.store_reader import StoreReader

#: Where ``make setup`` (npm ci + vite build) puts the dashboard; not in git.
STATIC_DIR = Path(__file__).parent / "static"


def create_app(reader: StoreReader, live_poll_seconds: float = 1.0, static_dir: Path = STATIC_DIR,
               orgs: OrgCatalog | None = None, trusted_proxies: tuple[IPNetwork, ...] = (),
               check_days: float = routes_check.CHECK_DAYS, prewarm: bool = True) -> FastAPI:
    """The API and dashboard over ``reader``'s store (closed when the application shuts down).

    With ``orgs``, each organization's token shows it only its own networks' addresses and a caller
    without a token sees aggregates only (:mod:`iotscope.web.access`). ``trusted_proxies`` may set
    ``X-Forwarded-For`` for the self-check at ``/check``, which covers ``check_days`` days. With
    ``prewarm``, the dashboard's default questions are answered after every commit in the
    background and the commit is served once they are (:mod:`iotscope.web.prewarm`) while the
    application runs.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        warmer = None
        if prewarm:
            app.state.view = PublishedView(reader)
            warmer = Prewarmer(app, app.state.view, min(live_poll_seconds, PREWARM_POLL_SECONDS))
            warmer.start()
        app.state.prewarmer = warmer
        yield
        if warmer:
            warmer.stop()
        reader.close()

    app = FastAPI(
        title="iotscope",
        summary="Darknet telescope API: what reaches the darknet, from where, of which kind.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.reader = reader
    app.state.view = reader  # what answers come from; the prewarm's PublishedView while it runs
    app.state.live_poll_seconds = live_poll_seconds
    app.state.stopping = False  # set by iotscope.web.server on Ctrl-C/SIGTERM: live streams end
    app.state.results = ResultCache()
    app.state.orgs = orgs
    app.state.cursors = CursorCodec()
    app.state.trusted_proxies = trusted_proxies
    app.state.check_days = check_days
    app.state.check_limiter = RateLimiter(routes_check.CHECK_REQUESTS, routes_check.CHECK_WINDOW_S)
    identified = [Depends(caller_of)]  # a wrong token is a 401 on every endpoint, aggregates included
    app.include_router(routes_traffic.router, dependencies=identified)
    app.include_router(routes_tables.router, dependencies=identified)
    app.include_router(routes_live.router, dependencies=identified)
    app.include_router(routes_check.router)  # public: the requester's own address only
    _add_error_handlers(app)
    if (static_dir / "index.html").is_file():
        app.mount("/", StaticFiles(directory=static_dir, html=True), name="dashboard")
    else:
        @app.get("/", include_in_schema=False)
        def dashboard_missing() -> JSONResponse:
            return JSONResponse({"error": "the dashboard is not built; run `make setup` (npm ci + vite build)"},
                                status_code=503)
    return app


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0]
        location = [str(part) for part in first.get("loc", ()) if part not in ("query", "path")]
        parameter = location[-1] if location else "request"
        return JSONResponse({"error": f"{parameter}: {first.get('msg', 'invalid')}", "parameter": parameter},
                            status_code=422)

    @app.exception_handler(ApiParameterError)
    async def invalid_parameter(request: Request, exc: ApiParameterError) -> JSONResponse:
        return JSONResponse({"error": str(exc), "parameter": exc.parameter}, status_code=422)

    @app.exception_handler(Unauthorized)
    async def unauthorized(request: Request, exc: Unauthorized) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=401, headers={"WWW-Authenticate": "Bearer"})

    @app.exception_handler(UnknownSourceError)
    async def unknown_source(request: Request, exc: UnknownSourceError) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=404)

    @app.exception_handler(IotscopeError)
    async def store_problem(request: Request, exc: IotscopeError) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=503)

    @app.exception_handler(duckdb.IOException)
    async def unreadable(request: Request, exc: duckdb.IOException) -> JSONResponse:
        return JSONResponse({"error": "the store could not be read: " + str(exc).splitlines()[0]}, status_code=503)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def bug(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"error": "internal error"}, status_code=500)
