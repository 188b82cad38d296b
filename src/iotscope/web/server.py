"""Running the application under uvicorn: a bad address is one line, Ctrl-C stops it at once.

Why bind here: uvicorn reports a host that does not resolve or a port in use as a logged ERROR
and exit 3; binding the socket first turns that into a :class:`ServeError` (one line, exit 2 at
the CLI) before anything is printed as if the server were up.

Why a subclass: uvicorn waits for open requests before it stops, and an ``/api/live`` stream never
ends by itself. On the exit signal we raise ``app.state.stopping``, which every stream checks
often; they end cleanly, and shutdown completes without cancelling (and logging) anything.
"""

from __future__ import annotations

import socket
from types import FrameType

import uvicorn
from fastapi import FastAPI

from iotscope.errors import IotscopeError


class ServeError(IotscopeError):
    """The server cannot listen where asked (unknown host, port in use, not permitted)."""


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, app: FastAPI) -> None:
        super().__init__(config)
        self._app = app

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self._app.state.stopping = True
        super().handle_exit(sig, frame)


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port``; raises :class:`ServeError` with one line.

    ``host`` is an IP address (or ``localhost``): no name is looked up, so starting the server
    never sends a DNS query.
    """
    numeric = "127.0.0.1" if host == "localhost" else host
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            numeric, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE | socket.AI_NUMERICHOST)[0]
    except socket.gaierror:
        raise ServeError(f"--host {host}: not an IP address (e.g. 127.0.0.1, ::1, 0.0.0.0)") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise ServeError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    return sock


def run(app: FastAPI, sock: socket.socket) -> None:
    """Serve ``app`` on the listening socket ``sock`` until a signal asks to stop."""
    # proxy_headers off: uvicorn would otherwise take X-Forwarded-For from any loopback peer as the
    # client's address; only iotscope.web.client_address reads it, and only from --trusted-proxy peers.
    config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=5,
                            proxy_headers=False)
    _Server(config, app).run(sockets=[sock])
