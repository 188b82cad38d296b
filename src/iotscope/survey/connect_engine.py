"""TCP connects in flight by the thousand, watched by one epoll: the sweep's inner loop.

Split from :mod:`iotscope.survey.sweep` because it is the one part tuned for system calls per
attempt; the sweep decides what to connect to and when, this module only how.
"""

from __future__ import annotations

import asyncio
import errno
import select
import socket
import struct
import time
from collections import deque

from iotscope.survey.guarded_connect import start_guarded_connect
from iotscope.survey.journal import OpenPort
from iotscope.survey.sweep_bookkeeping import SweepRun

_LINGER_RESET = struct.pack("ii", 1, 0)


class ConnectEngine:
    """Connects in flight, watched by one epoll that the event loop polls as a single reader.

    Why not one ``sock_connect`` future per attempt: asyncio's per-socket machinery costs several
    times the connect itself, and the sweep must keep up with ``nmap -sT``. Every socket still
    comes from the scope's guard (:func:`start_guarded_connect`). Per attempt the engine makes
    as few system calls as it can: closing a socket also removes it from the epoll (no
    unregister), and the event itself tells an accepted connect (writable, no error) from a
    failed one, so ``SO_ERROR`` is read only to tell a refusal from other errors. All attempts
    share one timeout, so start order is deadline order and expiry only looks at the oldest.
    """

    def __init__(self, run: SweepRun, timeout: float) -> None:
        self._run = run
        self._timeout = timeout
        self._epoll = select.epoll()
        self._pending: dict[int, tuple[socket.socket, int, str, int]] = {}  # fd -> (sock, position, host, port)
        self._deadlines: deque[tuple[float, int, int]] = deque()  # (deadline, fd, position), oldest first
        self._room = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self._epoll.fileno(), self._on_ready)

    def __len__(self) -> int:
        return len(self._pending)

    async def wait_for_room(self) -> None:
        self._room.clear()
        await self._room.wait()

    def start(self, position: int, host: str, port: int) -> None:
        try:
            sock, error = start_guarded_connect(self._run.scope, host, port)
        except OSError:  # no file descriptor or buffer left: an error of ours, counted
            self._run.done(position, "errors")
            return
        if error == errno.EINPROGRESS:
            # A refusal may be in already (a local RST, loopback): one getsockopt is cheaper than
            # watching the socket. 0 means pending or connected, and epoll tells which.
            error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) or errno.EINPROGRESS
        if error != errno.EINPROGRESS:
            self._conclude(sock, position, host, port, error)
            return
        fd = sock.fileno()
        self._pending[fd] = (sock, position, host, port)
        self._deadlines.append((time.monotonic() + self._timeout, fd, position))
        self._epoll.register(fd, select.EPOLLOUT)

    def _on_ready(self) -> None:
        pending, conclude = self._pending, self._conclude
        for fd, events in self._epoll.poll(0):
            sock, position, host, port = pending.pop(fd)
            error = 0
            if events & select.EPOLLERR:
                error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) or errno.EIO
            conclude(sock, position, host, port, error)
        self._room.set()

    def expire(self) -> None:
        now, pending, deadlines = time.monotonic(), self._pending, self._deadlines
        while deadlines and deadlines[0][0] <= now:
            _, fd, position = deadlines.popleft()
            entry = pending.get(fd)
            if entry is None or entry[1] != position:
                continue  # finished already (the fd may be another attempt's by now)
            del pending[fd]
            entry[0].close()
            self._run.done(position, "timeouts")
        self._room.set()

    def _conclude(self, sock: socket.socket, position: int, host: str, port: int, error: int) -> None:
        if error:
            sock.close()
            self._run.done(position, "closed" if error == errno.ECONNREFUSED else "errors")
            return
        scanner = sock.getsockname()[0]
        # Reset instead of FIN: the device frees the connection at once, we keep no TIME_WAIT.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
        sock.close()
        self._run.found(position, OpenPort(host, port, scanner))

    def close(self) -> None:
        """Drop whatever is still in flight (cancelled sweep): those positions stay undone."""
        self._loop.remove_reader(self._epoll.fileno())
        for sock, *_ in self._pending.values():
            sock.close()
        self._pending.clear()
        self._deadlines.clear()
        self._epoll.close()
