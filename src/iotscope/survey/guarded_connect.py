"""The one guarded way the survey opens a socket: the scope check comes before the socket exists.

A survey sends connection attempts to other people's devices, so the rule "never outside the
authorized scope" must not depend on every probe remembering to check. Every sender (the sweep's
connect engine, the probes, the source-address lookup for imported scans) opens its sockets
through these functions, which call :meth:`~iotscope.survey.scope.Scope.admit_host` first and
connect to exactly the address it returns.
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket

from iotscope.survey.addresses import IPAddress
from iotscope.survey.scope import Scope


def start_guarded_connect(scope: Scope, ip: str | IPAddress, port: int) -> tuple[socket.socket, int]:
    """Begin a non-blocking TCP connect to ``ip:port``: the socket and ``connect_ex``'s errno
    (0 connected, ``EINPROGRESS`` pending: wait until writable and read ``SO_ERROR``).

    The building block of both openers below and of the sweep's connect engine, which polls
    thousands of these with one epoll instead of one asyncio future each. The scope check comes
    before the socket exists; the socket connects to the canonical form of the checked address,
    so no other parser (``inet_aton`` accepting ``127.1``, a resolver) can reinterpret it.
    """
    family, host = scope.admit_host(ip)
    if not 0 < port < 65536:
        raise ValueError(f"port {port} is not a TCP port")
    sock = socket.socket(family, socket.SOCK_STREAM | socket.SOCK_NONBLOCK)  # one syscall, not two
    try:
        return sock, sock.connect_ex((host, port))
    except BaseException:
        sock.close()
        raise


def guarded_source_address(scope: Scope, ip: str | IPAddress) -> str:
    """The local address the kernel would use to reach ``ip`` (the ``scanner`` field of evidence
    for targets this process did not connect to itself, e.g. imported from masscan).

    A connected UDP socket only consults the routing table: nothing is sent. The target is still
    checked first, like every socket of the survey.
    """
    family, host = scope.admit_host(ip)
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        probe.connect((host, 9))  # discard port; UDP connect sends no packet
        return probe.getsockname()[0]


async def open_guarded_socket(
    scope: Scope, ip: str | IPAddress, port: int, *, timeout: float
) -> socket.socket:
    """A connected non-blocking TCP socket to ``ip:port`` (for ``asyncssh.connect(sock=...)``).

    Raises :class:`OutOfScopeError` (before any socket exists), ``TimeoutError`` or ``OSError``.
    """
    sock, error = start_guarded_connect(scope, ip, port)
    try:
        if error == errno.EINPROGRESS:
            loop = asyncio.get_running_loop()
            writable = loop.create_future()
            loop.add_writer(sock.fileno(), lambda: writable.done() or writable.set_result(None))
            try:
                async with asyncio.timeout(timeout):
                    await writable
            finally:
                loop.remove_writer(sock.fileno())
            error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if error:
            raise OSError(error, os.strerror(error))
    except BaseException:
        sock.close()
        raise
    return sock


async def open_guarded_connection(
    scope: Scope, ip: str | IPAddress, port: int, *, timeout: float, limit: int = 2**16
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Asyncio streams to ``ip:port`` through :func:`open_guarded_socket` (same checks).

    ``limit`` is the stream reader's buffer cap, for probes that bound what a device may send.
    """
    sock = await open_guarded_socket(scope, ip, port, timeout=timeout)
    try:
        return await asyncio.open_connection(sock=sock, limit=limit)
    except BaseException:
        sock.close()
        raise
