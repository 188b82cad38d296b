"""A connection to a device where every read and write is bounded in time and size.

All probes talk through :class:`DeviceStream`, opened only by :func:`open_device`, which goes
through the scope's guarded sender: there is no other way for a probe to reach the network.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from iotscope.survey.guarded_connect import open_guarded_connection
from iotscope.survey.probes.limits import ProbeLimits
from iotscope.survey.probes.outcome import ProbeFailure, ProbeRecord
from iotscope.survey.scope import Scope

_CHUNK = 4096


class DeviceStream:
    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        limits: ProbeLimits,
        record: ProbeRecord,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self.limits = limits
        self.record = record
        self.eof = False

    async def read_chunk(self, until: float, what: str) -> bytes:
        """Up to one chunk before loop time ``until``; b"" at end of stream."""
        remaining = until - asyncio.get_running_loop().time()
        if remaining <= 0:
            raise ProbeFailure(f"no {what} within {self.limits.read_timeout:g}s")
        try:
            async with asyncio.timeout(remaining):
                data = await self._reader.read(_CHUNK)
        except TimeoutError:
            raise ProbeFailure(f"no {what} within {self.limits.read_timeout:g}s") from None
        if not data:
            self.eof = True
        return data

    async def read_until(
        self,
        complete: Callable[[bytes], bool],
        what: str,
        *,
        usable: Callable[[bytes], bool] | None = None,
    ) -> bytes:
        """Read until ``complete(data)`` holds or the device closes; bounded by read_timeout and max_bytes.

        When time runs out on data that is ``usable`` (e.g. HTTP headers of a response whose
        server keeps the connection open without saying how long the body is), return it.
        """
        until = self.step_deadline()
        data = bytearray()
        while not complete(bytes(data)):
            try:
                chunk = await self.read_chunk(until, what)
            except ProbeFailure:
                if usable is not None and usable(bytes(data)):
                    break
                raise
            if not chunk:
                break
            data += chunk
            if len(data) > self.limits.max_bytes:
                raise ProbeFailure(f"no {what} within {self.limits.max_bytes} bytes")
        return bytes(data)

    async def quiet_for(self, seconds: float) -> bytes:
        """What the device says within ``seconds`` (b"" when it stays silent, as at a prompt)."""
        if seconds <= 0:
            return b""
        try:
            async with asyncio.timeout(seconds):
                data = await self._reader.read(_CHUNK)
        except TimeoutError:
            return b""
        if not data:
            self.eof = True
        return data

    def step_deadline(self) -> float:
        return asyncio.get_running_loop().time() + self.limits.read_timeout

    async def send(self, data: bytes) -> None:
        self._writer.write(data)
        try:
            async with asyncio.timeout(self.limits.read_timeout):
                await self._writer.drain()
        except TimeoutError:
            raise ProbeFailure("device stopped reading") from None

    async def close(self) -> None:
        self._writer.close()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(1.0):
                await self._writer.wait_closed()


@contextlib.asynccontextmanager
async def open_device(scope: Scope, ip: str, port: int, limits: ProbeLimits, record: ProbeRecord):
    """A :class:`DeviceStream` to ``ip:port`` through the scope's guarded sender, closed on exit."""
    try:
        reader, writer = await open_guarded_connection(
            scope, ip, port, timeout=limits.connect_timeout
        )
    except TimeoutError:
        raise ProbeFailure(f"connect timed out after {limits.connect_timeout:g}s") from None
    record.connections += 1
    stream = DeviceStream(reader, writer, limits, record)
    try:
        yield stream
    finally:
        await stream.close()
