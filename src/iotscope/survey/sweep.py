"""The L4 phase: which (address, port) pairs of the scope accept a TCP connection.

An asyncio connect scan, because it needs no raw sockets or privileges and every attempt goes
through the scope's guarded opener like any other sender. Three things keep it polite and
restartable:

* a global token bucket (default 1,000 connection attempts per second) plus a bound on
  connections in flight;
* the order of :class:`~iotscope.survey.permutation.CyclicPermutation`, so no /24 sees a burst;
* checkpoints: the position below which every attempt is finished (a *watermark*; attempts
  finish out of order, so the few finished above it are saved too) and the open ports found,
  so a resumed sweep probes nothing twice.
"""

from __future__ import annotations

import asyncio
import resource
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from iotscope.survey.journal import OpenPort
from iotscope.survey.permutation import CyclicPermutation
from iotscope.survey.scope import Scope, open_guarded_socket

#: Conservative default: ZMap's guidance is to scan at the slowest rate that finishes in time.
DEFAULT_RATE = 1000.0
DEFAULT_CONCURRENCY = 1000
DEFAULT_CONNECT_TIMEOUT = 2.0
_FILE_DESCRIPTOR_RESERVE = 64
_LINGER_RESET = struct.pack("ii", 1, 0)


@dataclass
class SweepProgress:
    """Counters a progress bar shows; ``positions_*`` drive the bar and its ETA."""

    positions_done: int
    positions_total: int
    attempted: int = 0
    open: int = 0
    closed: int = 0
    timeouts: int = 0
    errors: int = 0
    skipped: int = 0


@dataclass
class SweepStats:
    attempted: int = 0
    open: int = 0
    closed: int = 0
    timeouts: int = 0
    errors: int = 0
    #: Blocklisted since the permutation was fixed (or already done before a resume).
    skipped: int = 0
    seconds: float = 0.0
    concurrency: int = 0
    open_ports: list[OpenPort] = field(default_factory=list)

    @property
    def attempts_per_second(self) -> float:
        return self.attempted / self.seconds if self.seconds > 0 else 0.0


#: Called with (watermark position, positions done above it, open ports found since last call, finished).
Checkpoint = Callable[[int, list[int], list[OpenPort], bool], None]


class TokenBucket:
    """At most ``rate`` takes per second on average, with bursts of at most ``capacity``.

    The capacity is 10 ms worth of tokens: enough to absorb event-loop jitter at high rates,
    too little to matter to any target network.
    """

    def __init__(self, rate: float, capacity: float | None = None) -> None:
        if not rate > 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.capacity = capacity if capacity is not None else max(1.0, rate / 100)
        self._tokens = 1.0
        self._last = time.monotonic()

    async def take(self) -> None:
        now = time.monotonic()
        self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if self._tokens < 1:
            await asyncio.sleep((1 - self._tokens) / self.rate)
            now = time.monotonic()
            self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.rate)
            self._last = now
        self._tokens -= 1


def usable_concurrency(requested: int) -> int:
    """``requested`` connections in flight, or fewer if the file-descriptor limit is lower."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return max(1, requested)
    return max(1, min(requested, soft - _FILE_DESCRIPTOR_RESERVE))


async def sweep(
    scope: Scope,
    ports: list[int],
    permutation: CyclicPermutation,
    *,
    rate: float = DEFAULT_RATE,
    concurrency: int = DEFAULT_CONCURRENCY,
    timeout: float = DEFAULT_CONNECT_TIMEOUT,
    start_position: int = 0,
    done_above: list[int] | None = None,
    checkpoint: Checkpoint | None = None,
    checkpoint_interval: float = 1.0,
    progress: Callable[[SweepProgress], None] | None = None,
) -> SweepStats:
    """Connect to every (address, port) of ``permutation``'s shard, from ``start_position`` on.

    The index space is ``scope.authorized_count * len(ports)``, index ``i`` meaning address
    ``scope.authorized_at(i // len(ports))`` and port ``ports[i % len(ports)]``. Cancelling the
    task (Ctrl-C) saves a final checkpoint before the ``CancelledError`` propagates.
    """
    if permutation.size != scope.authorized_count * len(ports):
        raise ValueError("permutation size does not match scope x ports")
    limit = usable_concurrency(concurrency)
    run = _SweepRun(scope, ports, permutation, timeout, start_position, set(done_above or ()), limit)
    bucket = TokenBucket(rate)
    slots = asyncio.Semaphore(limit)
    started = time.monotonic()

    def report(finished: bool = False) -> None:
        if checkpoint is not None:
            checkpoint(*run.checkpoint(), finished)
        if progress is not None:
            progress(run.progress())

    async def ticker() -> None:
        while True:
            await asyncio.sleep(checkpoint_interval)
            report()

    ticking = asyncio.create_task(ticker())
    try:
        for position, index in permutation.walk(start_position):
            if position in run.done_before_resume:
                continue
            ip = scope.authorized_at(index // len(ports))
            port = ports[index % len(ports)]
            if not scope.is_allowed(ip):
                run.stats.skipped += 1
                run.finish(position)
                continue
            await bucket.take()
            await slots.acquire()
            run.launch(position, ip, port, slots)
        await run.drain()
    except asyncio.CancelledError:
        await run.abort()
        report()
        raise
    finally:
        ticking.cancel()
    run.stats.seconds = time.monotonic() - started
    report(finished=True)
    return run.stats


class _SweepRun:
    """The moving parts of one sweep: tasks in flight, the watermark, counters."""

    def __init__(
        self, scope: Scope, ports: list[int], permutation: CyclicPermutation, timeout: float,
        start: int, done_before_resume: set[int], concurrency: int,
    ) -> None:
        self.scope = scope
        self.timeout = timeout
        self.permutation = permutation
        self.done_before_resume = done_before_resume
        self.stats = SweepStats(concurrency=concurrency)
        self.stats.skipped = len(done_before_resume)
        self._start = start
        self._next = start  # one past the highest position dispatched or skipped
        self._in_flight: set[int] = set()
        self._finished_ahead: set[int] = set(done_before_resume)
        self._unsaved: list[OpenPort] = []
        self._tasks: set[asyncio.Task[None]] = set()

    def launch(self, position: int, ip: str, port: int, slots: asyncio.Semaphore) -> None:
        self._next = position + 1
        self._in_flight.add(position)
        self.stats.attempted += 1
        task = asyncio.create_task(self._attempt(position, ip, port))
        self._tasks.add(task)
        task.add_done_callback(lambda t: (self._tasks.discard(t), slots.release()))

    def finish(self, position: int) -> None:
        self._next = position + 1
        self._in_flight.discard(position)
        self._finished_ahead.add(position)

    async def _attempt(self, position: int, ip: str, port: int) -> None:
        try:
            sock = await open_guarded_socket(self.scope, ip, port, timeout=self.timeout)
        except ConnectionRefusedError:
            self.stats.closed += 1
        except TimeoutError:
            self.stats.timeouts += 1
        except OSError:
            self.stats.errors += 1
        else:
            found = OpenPort(ip, port, sock.getsockname()[0])
            # Reset instead of FIN: the device frees the connection at once, we keep no TIME_WAIT.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
            sock.close()
            self.stats.open += 1
            self.stats.open_ports.append(found)
            self._unsaved.append(found)
        self.finish(position)

    async def drain(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks))
        self._next = self.permutation.positions

    async def abort(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for task in list(self._tasks):
            self._tasks.discard(task)

    def watermark(self) -> int:
        return min(self._in_flight) if self._in_flight else self._next

    def checkpoint(self) -> tuple[int, list[int], list[OpenPort]]:
        mark = self.watermark()
        self._finished_ahead = {p for p in self._finished_ahead if p >= mark}
        found, self._unsaved = self._unsaved, []
        return mark, sorted(self._finished_ahead), found

    def progress(self) -> SweepProgress:
        s = self.stats
        return SweepProgress(
            self.watermark(), self.permutation.positions, s.attempted, s.open, s.closed,
            s.timeouts, s.errors, s.skipped,
        )
