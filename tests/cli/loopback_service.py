"""A real TCP service on a loopback address for the CLI tests: a thread serving one connection at a time."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator


@contextlib.contextmanager
def serving(host: str, handle: Callable[[socket.socket], None]) -> Iterator[int]:
    """A TCP service on ``host`` (loopback) run by a thread, one connection at a time; yields its port."""
    server = socket.create_server((host, 0))
    server.settimeout(0.1)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn, contextlib.suppress(OSError):  # e.g. the sweep's connect resets at once
                handle(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        server.close()
