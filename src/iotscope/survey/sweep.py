"""The L4 phase: which (address, port) pairs of the scope accept a TCP connection.

A TCP connect scan, because it needs no raw sockets or privileges and every attempt goes
through the scope's guard (:func:`~iotscope.survey.scope.start_guarded_connect`) like any other
sender; the connects in flight are watched by one epoll inside the asyncio loop, which keeps
pace with ``nmap -sT``. Three things keep it polite and restartable:

* a global token bucket (default 1,000 connection attempts per second) plus a bound on
  connections in flight;
* the order of :class:`~iotscope.survey.permutation.CyclicPermutation`, so no /24 sees a burst;
* checkpoints: the position below which every attempt is finished (a *watermark*; attempts
  finish out of order, so the few finished above it are saved too) and the open ports found,
  so a resumed sweep probes nothing twice.
"""

from __future__ import annotations

import asyncio
import errno
import resource
import select
import socket
import struct
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, fields

from iotscope.survey.journal import OpenPort
from iotscope.survey.permutation import CyclicPermutation
from iotscope.survey.scope import IPAddress, Scope, start_guarded_connect

#: Where IoT devices take logins: telnet (23, Mirai's 2323), SSH, HTTP (80, 8080), FTP.
DEFAULT_PORTS = (23, 2323, 22, 80, 8080, 21)
#: Conservative default: ZMap's guidance is to scan at the slowest rate that finishes in time.
DEFAULT_RATE = 1000.0
DEFAULT_CONCURRENCY = 1000
DEFAULT_CONNECT_TIMEOUT = 2.0
_FILE_DESCRIPTOR_RESERVE = 64
_LINGER_RESET = struct.pack("ii", 1, 0)


@dataclass
class SweepCounts:
    """What became of the connection attempts so far: the counters progress and totals share."""

    attempted: int = 0
    open: int = 0
    closed: int = 0
    timeouts: int = 0
    errors: int = 0
    #: Blocklisted since the permutation was fixed (or already done before a resume).
    skipped: int = 0


@dataclass(kw_only=True)
class SweepProgress(SweepCounts):
    """Counters a progress bar shows; ``positions_*`` drive the bar and its ETA."""

    positions_done: int
    positions_total: int


@dataclass
class SweepStats(SweepCounts):
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

    Implemented as GCRA (virtual scheduling): each take reserves the next slot on a shared
    timeline and sleeps until it, so hundreds of concurrent takers stay exactly on the rate
    instead of waking together. The capacity is 10 ms worth of tokens: enough to absorb
    event-loop jitter at high rates, too little to matter to any target network.
    """

    def __init__(self, rate: float, capacity: float | None = None) -> None:
        if not rate > 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.capacity = capacity if capacity is not None else max(1.0, rate / 100)
        self._interval = 1.0 / rate
        self._burst = (self.capacity - 1) * self._interval
        self._next = time.monotonic() - self._burst

    async def take(self) -> None:
        now = time.monotonic()
        slot = max(self._next, now - self._burst)
        self._next = slot + self._interval
        if slot > now:
            await asyncio.sleep(slot - now)


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
    run = _SweepRun(scope, permutation, start_position, set(done_above or ()), limit)
    bucket = TokenBucket(rate)
    started = time.monotonic()

    def report(finished: bool = False) -> None:
        if checkpoint is not None:
            checkpoint(*run.checkpoint(), finished)
        if progress is not None:
            progress(run.progress())

    engine = _ConnectEngine(run, timeout)

    async def housekeeping() -> None:
        last_report = time.monotonic()
        while True:
            await asyncio.sleep(min(0.05, timeout / 4))
            engine.expire()
            if time.monotonic() - last_report >= checkpoint_interval:
                last_report = time.monotonic()
                report()

    chores = asyncio.create_task(housekeeping())
    try:
        await _dispatch(run, engine, bucket, ports, start_position, limit)
        run.walked_all()
    except asyncio.CancelledError:
        report()
        raise
    finally:
        chores.cancel()
        engine.close()
    run.stats.seconds = time.monotonic() - started
    report(finished=True)
    return run.stats


async def _dispatch(
    run: _SweepRun, engine: _ConnectEngine, bucket: TokenBucket, ports: list[int], start: int, limit: int
) -> None:
    """Start a connect per target as tokens and room allow; return when none is in flight."""
    scope, nports, since_yield = run.scope, len(ports), 0
    for position, index in run.permutation.walk(start):
        if position in run.done_before_resume:
            continue
        address = scope.authorized_at(index // nports)
        if not scope.is_allowed(address):  # blocklisted: skipped without spending a token
            run.skip(position)
            continue
        while len(engine) >= limit:
            await engine.wait_for_room()
        await bucket.take()
        run.start(position)
        engine.start(position, address, ports[index % nports])
        since_yield += 1
        if since_yield == 256:  # let completions, checkpoints and Ctrl-C in
            since_yield = 0
            await asyncio.sleep(0)
    while len(engine):
        await engine.wait_for_room()


class _SweepRun:
    """The bookkeeping of one sweep: positions in flight, the watermark, counters, open ports."""

    def __init__(
        self, scope: Scope, permutation: CyclicPermutation, start: int, done_before_resume: set[int], concurrency: int,
    ) -> None:
        self.scope = scope
        self.permutation = permutation
        self.done_before_resume = done_before_resume
        self.stats = SweepStats(concurrency=concurrency)
        self.stats.skipped = len(done_before_resume)
        self._next = start  # one past the highest position dispatched or skipped
        self._in_flight: set[int] = set()
        self._finished_ahead: set[int] = set(done_before_resume)
        self._unsaved: list[OpenPort] = []

    def start(self, position: int) -> None:
        self._next = position + 1
        self._in_flight.add(position)
        self.stats.attempted += 1

    def skip(self, position: int) -> None:
        self.stats.skipped += 1
        self._next = position + 1
        self._finished_ahead.add(position)

    def done(self, position: int, outcome: str) -> None:
        """``outcome``: "closed", "timeouts" or "errors" (a counter of :class:`SweepStats`)."""
        setattr(self.stats, outcome, getattr(self.stats, outcome) + 1)
        self._in_flight.discard(position)
        self._finished_ahead.add(position)

    def found(self, position: int, open_port: OpenPort) -> None:
        self.stats.open += 1
        self.stats.open_ports.append(open_port)
        self._unsaved.append(open_port)
        self._in_flight.discard(position)
        self._finished_ahead.add(position)

    def walked_all(self) -> None:
        self._next = self.permutation.positions

    def watermark(self) -> int:
        return min(self._in_flight) if self._in_flight else self._next

    def checkpoint(self) -> tuple[int, list[int], list[OpenPort]]:
        mark = self.watermark()
        self._finished_ahead = {p for p in self._finished_ahead if p >= mark}
        found, self._unsaved = self._unsaved, []
        return mark, sorted(self._finished_ahead), found

    def progress(self) -> SweepProgress:
        counts = {f.name: getattr(self.stats, f.name) for f in fields(SweepCounts)}
        return SweepProgress(
            positions_done=self.watermark(), positions_total=self.permutation.positions, **counts
        )


class _ConnectEngine:
    """Connects in flight, watched by one epoll that the event loop polls as a single reader.

    Why not one ``sock_connect`` future per attempt: asyncio's per-socket machinery costs several
    times the connect itself, and the sweep must keep up with ``nmap -sT``. Every socket still
    comes from the scope's guard (:func:`start_guarded_connect`). All attempts share one timeout,
    so insertion order is deadline order and expiry only ever looks at the oldest.
    """

    def __init__(self, run: _SweepRun, timeout: float) -> None:
        self._run = run
        self._timeout = timeout
        self._epoll = select.epoll()
        self._pending: OrderedDict[int, tuple[socket.socket, int, IPAddress, int, float]] = OrderedDict()
        self._room = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self._epoll.fileno(), self._on_ready)

    def __len__(self) -> int:
        return len(self._pending)

    async def wait_for_room(self) -> None:
        self._room.clear()
        await self._room.wait()

    def start(self, position: int, address: IPAddress, port: int) -> None:
        try:
            sock, error = start_guarded_connect(self._run.scope, address, port)
        except OSError:  # no file descriptor or buffer left: an error of ours, counted
            self._run.done(position, "errors")
            return
        if error != errno.EINPROGRESS:
            self._conclude(sock, position, address, port, error)
            return
        self._pending[sock.fileno()] = (sock, position, address, port, time.monotonic() + self._timeout)
        self._epoll.register(sock.fileno(), select.EPOLLOUT)

    def _on_ready(self) -> None:
        for fd, _ in self._epoll.poll(0):
            sock, position, address, port, _ = self._pending.pop(fd)
            self._epoll.unregister(fd)
            self._conclude(sock, position, address, port, sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR))
        self._room.set()

    def expire(self) -> None:
        now = time.monotonic()
        while self._pending:
            fd, (sock, position, _, _, deadline) = next(iter(self._pending.items()))
            if deadline > now:
                break
            del self._pending[fd]
            self._epoll.unregister(fd)
            sock.close()
            self._run.done(position, "timeouts")
        self._room.set()

    def _conclude(self, sock: socket.socket, position: int, address: IPAddress, port: int, error: int) -> None:
        if error:
            sock.close()
            self._run.done(position, "closed" if error == errno.ECONNREFUSED else "errors")
            return
        scanner = sock.getsockname()[0]
        # Reset instead of FIN: the device frees the connection at once, we keep no TIME_WAIT.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
        sock.close()
        self._run.found(position, OpenPort(str(address), port, scanner))

    def close(self) -> None:
        """Drop whatever is still in flight (cancelled sweep): those positions stay undone."""
        self._loop.remove_reader(self._epoll.fileno())
        for sock, *_ in self._pending.values():
            sock.close()
        self._pending.clear()
        self._epoll.close()
