"""Plumbing every raw-socket device service shares: tracked connections, bounded reads, resets.

A fleet must stop without leaking a task or a socket even while a survey (or a hostile-device test)
holds connections open, so every connection handler runs under a :class:`ConnectionTracker` that
can cancel it. Reads are bounded in size and time: an emulated device must not be the thing that
a misbehaving *client* can stall or balloon.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Awaitable, Callable

from iotscope.simulate.devices.accounts import ServiceStats

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]

#: How long a device waits for the client to say something before hanging up (real firmware
#: uses 60 s login timeouts; tests shorten it through the spec).
DEFAULT_IDLE_TIMEOUT = 60.0

#: Seconds a finished connection may take to flush before it is aborted.
_CLOSE_GRACE = 2.0

#: The errors that just mean "the client went away"; a handler ends quietly on them.
CLIENT_GONE = (ConnectionError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError)


class ConnectionTracker:
    """Runs connection handlers as tracked tasks so :meth:`close_all` can end them all."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    def serve(self, handler: Handler, stats: ServiceStats) -> Handler:
        """Wrap ``handler`` for ``asyncio.start_server``: tracked, counted in ``stats`` (tarpits and
        hostile services too, so a test can tell that a device was never contacted), quiet on
        client errors, and the socket always closed afterwards."""

        async def tracked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            stats.connections += 1
            task = asyncio.current_task()
            assert task is not None
            self._tasks.add(task)
            stopping = False
            try:
                await handler(reader, writer)
            except CLIENT_GONE:
                pass
            except asyncio.CancelledError:
                # Cancelled only by close_all (the fleet stopping): ending quietly is the point,
                # and asyncio 3.11 would log a cancelled connection task as an error.
                stopping = True
            finally:
                await _close(writer, abort=stopping)
                self._tasks.discard(task)

        return tracked

    async def close_all(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _close(writer: asyncio.StreamWriter, *, abort: bool) -> None:
    """Close the connection; a client that does not read what is still buffered (a huge banner)
    must not keep it open, so after a short grace period (or at once when stopping) it is aborted."""
    if abort:
        writer.transport.abort()
        return
    writer.close()
    try:
        await asyncio.wait_for(writer.wait_closed(), _CLOSE_GRACE)
    except (*CLIENT_GONE, asyncio.CancelledError):
        writer.transport.abort()


async def read_line(
    reader: asyncio.StreamReader, *, timeout: float = DEFAULT_IDLE_TIMEOUT
) -> bytes | None:
    """One LF-terminated line without its line ending, or ``None`` at end of stream. A line longer
    than the stream's limit (asyncio's 64 KiB) is an error (:class:`asyncio.LimitOverrunError`):
    no device buffers megabytes for a client."""
    try:
        line = await asyncio.wait_for(reader.readuntil(b"\n"), timeout)
    except asyncio.IncompleteReadError as exc:
        return exc.partial.rstrip(b"\r") or None
    return line[:-1].rstrip(b"\r")


async def wait_for_close(reader: asyncio.StreamReader, *, limit: int = 1 << 20) -> None:
    """Swallow whatever the client sends until it hangs up (or sends more than ``limit``)."""
    received = 0
    while received <= limit:
        chunk = await reader.read(4096)
        if not chunk:
            return
        received += len(chunk)


def reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP RST instead of a FIN (SO_LINGER 0), as crashing firmware does.

    A client that reset the connection first has already closed the transport, and with it the
    socket (setting an option on it would fail with EBADF): there is nothing left to reset then.
    """
    sock = writer.get_extra_info("socket")
    if sock is not None and not writer.transport.is_closing():
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
