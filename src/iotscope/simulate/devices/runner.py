"""Running a fleet: one asyncio server per service, started and stopped as a unit.

Tests start and stop fleets many times on a shared machine, so stopping must leave nothing behind
(listening sockets, open connections, tasks), and a failed start (port already taken) must undo
what it started and say which address failed. :class:`FleetThread` runs the same fleet on its own
event loop in a background thread, for synchronous callers such as pytest fixtures.

A fleet run as a command (:func:`serve_fleet`) ends with the process that started it, however that
one ends (``kill -9`` included): a fleet left behind keeps its loopback addresses and ports taken,
and the next demo or test finds them busy.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import signal
import threading
import zlib
from collections.abc import AsyncIterator, Callable
from typing import Any, Self

import asyncssh

from iotscope.lifetime import signal_when_parent_dies
from iotscope.simulate.devices.accounts import Account
from iotscope.simulate.devices.connections import ConnectionTracker
from iotscope.simulate.devices.fleet import (
    LOGIN,
    DeviceSpec,
    FleetError,
    FleetSpec,
    ServiceSpec,
)
from iotscope.simulate.devices.ftp_device import ftp_handler
from iotscope.simulate.devices.http_device import http_handler
from iotscope.simulate.devices.misbehaviour import misbehaviour_handler
from iotscope.simulate.devices.ssh_device import (
    SSHConnections,
    generate_host_key,
    start_ssh_service,
)
from iotscope.simulate.devices.telnet_device import telnet_handler

_START_TIMEOUT = 60.0


class Fleet:
    """The running servers of one :class:`FleetSpec`."""

    def __init__(self, spec: FleetSpec, *, host_key: asyncssh.SSHKey | None = None) -> None:
        self.spec = spec
        self._host_key = host_key
        self._servers: list[asyncio.Server | asyncssh.SSHAcceptor] = []
        self._connections = ConnectionTracker()
        self._ssh_connections = SSHConnections()
        self._accounts: dict[tuple[str, int], tuple[str, Account]] = {}

    async def start(self) -> None:
        """Listen on every service; on any failure stop what started and raise :class:`FleetError`."""
        try:
            for device in self.spec.devices:
                for service in device.services:
                    await self._start_service(device, service)
        except OSError as exc:
            await self.stop()
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            if exc.errno == errno.EACCES:
                reason += " (ports below 1024 need root or CAP_NET_BIND_SERVICE)"
            raise FleetError(f"cannot listen on {device.ip}:{service.port}: {reason}") from None
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Close listeners, end every open connection, and wait until all of it is gone."""
        servers, self._servers = self._servers, []
        for server in servers:
            server.close()
        await self._connections.close_all()
        await self._ssh_connections.close_all()
        for server in servers:
            await server.wait_closed()

    def ground_truth(self) -> list[dict[str, object]]:
        return self.spec.ground_truth()

    def stats(self) -> list[dict[str, Any]]:
        """Per service: connections, login attempts, successes, lockouts so far (read these from
        the fleet's own loop or after it stopped)."""
        return [
            {
                "ip": ip,
                "port": port,
                "protocol": protocol,
                "connections": account.stats.connections,
                "attempts": account.stats.attempts,
                "successes": account.stats.successes,
                "lockouts": account.stats.lockouts,
            }
            for (ip, port), (protocol, account) in self._accounts.items()
        ]

    async def _start_service(self, device: DeviceSpec, service: ServiceSpec) -> None:
        spec = self.spec
        profile = spec.profile_of(device)
        account = Account(
            service.username,
            service.password,
            lockout_after=service.lockout_after,
            lockout_window=spec.lockout_window,
            lockout_seconds=spec.lockout_seconds,
        )
        self._accounts[(device.ip, service.port)] = (service.protocol, account)
        if service.behaviour == LOGIN and service.protocol == "ssh":
            if self._host_key is None:
                self._host_key = generate_host_key()
            self._servers.append(
                await start_ssh_service(
                    device.ip, service.port, profile, account, host_key=self._host_key,
                    connections=self._ssh_connections, idle_timeout=spec.idle_timeout,
                )
            )
            return
        if service.behaviour != LOGIN:
            handler = misbehaviour_handler(
                service.protocol, service.behaviour,
                seed=zlib.crc32(f"{spec.seed}:{device.ip}:{service.port}".encode()),
                drip_interval=spec.drip_interval,
            )
        elif service.protocol == "telnet":
            handler = telnet_handler(
                profile, account, fail_delay=spec.fail_delay, idle_timeout=spec.idle_timeout
            )
        elif service.protocol == "http":
            handler = http_handler(
                profile, account, auth=service.http_auth, idle_timeout=spec.idle_timeout
            )
        else:
            handler = ftp_handler(
                profile, account, anonymous=service.anonymous, idle_timeout=spec.idle_timeout
            )
        self._servers.append(
            await asyncio.start_server(
                self._connections.serve(handler, account.stats), host=device.ip, port=service.port,
                reuse_address=True,
            )
        )


@contextlib.asynccontextmanager
async def run_fleet(spec: FleetSpec) -> AsyncIterator[Fleet]:
    """``async with run_fleet(spec) as fleet:``: the fleet listens inside the block only."""
    fleet = Fleet(spec)
    await fleet.start()
    try:
        yield fleet
    finally:
        await fleet.stop()


class FleetThread:
    """A fleet on its own event loop in a daemon thread: ``with FleetThread(spec) as fleet: ...``."""

    def __init__(self, spec: FleetSpec) -> None:
        self.spec = spec
        self.fleet = Fleet(spec)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="iotscope-fleet", daemon=True
        )

    def start(self) -> Self:
        self._thread.start()
        try:
            self._call(self.fleet.start())
        except BaseException:
            self._shut_down_loop()
            raise
        return self

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        try:
            self._call(self.fleet.stop())
        finally:
            self._shut_down_loop()

    def ground_truth(self) -> list[dict[str, object]]:
        return self.spec.ground_truth()

    def stats(self) -> list[dict[str, Any]]:
        """The fleet's counters, read on the fleet's own loop."""

        async def read() -> list[dict[str, Any]]:
            return self.fleet.stats()

        return self._call(read())

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _call(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(_START_TIMEOUT)

    def _shut_down_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()


def serve_fleet(spec: FleetSpec, *, on_ready: Callable[[Fleet], None] | None = None) -> None:
    """Run ``spec`` in the foreground until SIGINT or SIGTERM, then stop it cleanly (the
    ``simulate-devices`` command). ``on_ready`` is called once every service listens."""

    parent = os.getppid()

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signal_number in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signal_number, stop.set)
        _stop_with_parent(parent)
        async with run_fleet(spec) as fleet:
            if on_ready is not None:
                on_ready(fleet)
            await stop.wait()

    asyncio.run(serve())


def _stop_with_parent(parent: int) -> None:
    """Have the kernel send SIGTERM (a clean stop, see :func:`serve_fleet`) when the process that
    started this one exits (:func:`iotscope.lifetime.signal_when_parent_dies`), and stop now if it
    has exited already.

    The death signal only covers a parent that dies after the call, hence the check that the
    parent is still ``parent`` (the one seen at start). Elsewhere the fleet runs until stopped.
    """
    signal_when_parent_dies(signal.SIGTERM)
    if os.getppid() != parent:
        os.kill(os.getpid(), signal.SIGTERM)
