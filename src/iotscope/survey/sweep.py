"""The L4 phase: which (address, port) pairs of the scope accept a TCP connection.

A TCP connect scan, because it needs no raw sockets or privileges and every attempt goes
through the scope's guard (:func:`~iotscope.survey.guarded_connect.start_guarded_connect`) like any other
sender; the connects in flight are watched by one epoll inside the asyncio loop, which keeps
pace with ``nmap -sT`` in one process, and ``workers`` processes (one per core) outpace it.
Three things keep it polite and restartable, however many processes share it:

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
import os
import resource
import select
import signal
import socket
import struct
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, fields
from functools import partial
from typing import TYPE_CHECKING

from iotscope.lifetime import end_with_parent
from iotscope.survey.guarded_connect import start_guarded_connect
from iotscope.survey.journal import OpenPort
from iotscope.survey.permutation import CyclicPermutation, Shard
from iotscope.survey.scope import Scope

if TYPE_CHECKING:
    from multiprocessing.connection import Connection
    from multiprocessing.context import BaseContext

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

    def reserve(self) -> float:
        """Take a token now: the seconds to wait before using it (0.0 if it may be used at once).

        The sweep calls this instead of :meth:`take` on its hot path, so an unlimited rate costs
        no coroutine per attempt."""
        now = time.monotonic()
        slot = max(self._next, now - self._burst)
        self._next = slot + self._interval
        return slot - now if slot > now else 0.0

    async def take(self) -> None:
        delay = self.reserve()
        if delay:
            await asyncio.sleep(delay)


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
    workers: int = 1,
) -> SweepStats:
    """Connect to every (address, port) of ``permutation``'s shard, from ``start_position`` on.

    The index space is ``scope.authorized_count * len(ports)``, index ``i`` meaning address
    ``scope.authorized_at(i // len(ports))`` and port ``ports[i % len(ports)]``. Cancelling the
    task (Ctrl-C) saves a final checkpoint before the ``CancelledError`` propagates.

    ``workers`` > 1 sweeps in that many worker processes, because one event loop is bound to
    one core: worker ``j`` takes the positions ``p`` with ``p % workers == j`` (disjoint, together
    complete) at ``rate / workers`` with ``concurrency / workers`` in flight, so the totals hold.
    Their checkpoints are merged into one (the lowest watermark plus everything done above it),
    so a resumed sweep needs no per-worker state and may use another number of workers. The
    workers come from a forkserver (see :func:`_sweep_in_processes`), so a script that calls this
    with ``workers`` > 1 needs the ``if __name__ == "__main__":`` guard, as with any
    multiprocessing program that does not fork.
    """
    if permutation.size != scope.authorized_count * len(ports):
        raise ValueError("permutation size does not match scope x ports")
    if workers < 1:
        raise ValueError(f"workers must be at least 1, not {workers}")
    lane_sweep = partial(
        _sweep_lane, scope, ports, permutation, timeout=timeout, start_position=start_position,
        checkpoint_interval=checkpoint_interval,
    )
    if workers == 1:
        return await lane_sweep(
            Shard(), rate=rate, concurrency=concurrency, done_above=done_above,
            checkpoint=checkpoint, progress=progress,
        )
    return await _sweep_in_processes(
        lane_sweep, permutation.positions, workers, rate=rate, concurrency=concurrency,
        start_position=start_position, done_above=done_above, checkpoint=checkpoint, progress=progress,
    )


async def _sweep_lane(
    scope: Scope,
    ports: list[int],
    permutation: CyclicPermutation,
    lane: Shard,
    *,
    rate: float,
    concurrency: int,
    timeout: float,
    start_position: int,
    done_above: list[int] | None,
    checkpoint: Checkpoint | None,
    checkpoint_interval: float,
    progress: Callable[[SweepProgress], None] | None,
) -> SweepStats:
    """The sweep in this process, over the positions of ``lane`` (all of them for ``Shard()``)."""
    limit = usable_concurrency(concurrency)
    run = _SweepRun(scope, permutation, lane, start_position, set(done_above or ()), limit)
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


# -- several processes --------------------------------------------------------------------------------

#: Seconds a stopped worker gets to send its last checkpoint and exit before it is killed.
_WORKER_STOP_GRACE = 5.0


async def _sweep_in_processes(
    lane_sweep: Callable[..., Awaitable[SweepStats]],
    positions: int,
    workers: int,
    *,
    rate: float,
    concurrency: int,
    start_position: int,
    done_above: list[int] | None,
    checkpoint: Checkpoint | None,
    progress: Callable[[SweepProgress], None] | None,
) -> SweepStats:
    """Run ``lane_sweep`` for lanes 0..workers-1 in worker processes, merging what they report.

    Workers are forked by a ``forkserver``, never from this process: by the time a sweep starts,
    the survey has threads (pyarrow's allocator starts two when it is imported, the CLI's bar, a
    library caller's own), and a fork copies every lock another thread holds as held forever (a
    deadlock waiting in the child; Python >= 3.12 warns about it). The server is a fresh,
    single-threaded interpreter with this module (and the main script) preloaded; it forks each
    worker and hands it what it needs, pickled: ``lane_sweep`` (the scope, the ports, the
    permutation) and its lane. Starting the server takes a few tenths of a second, once per
    process: :func:`start_worker_server` starts it early (``survey run`` does, before importing
    the survey engine), so that it is ready when the sweep begins.

    Workers ignore SIGINT and SIGTERM (a terminal or ``systemctl stop`` signals the whole group):
    the parent stops them when it is cancelled, and they send a last checkpoint before exiting.
    A worker whose parent is gone, even by ``kill -9``, stops at once
    (:func:`~iotscope.lifetime.end_with_parent`, and the end-of-file of its pipe).
    """
    started = time.monotonic()
    context = _worker_context()
    loop = asyncio.get_running_loop()
    merged = _MergedLanes(positions, workers, start_position, done_above or [])
    all_ended = loop.create_future()
    results: dict[int, SweepStats] = {}
    connections, processes = [], []

    def receive(lane: int) -> None:
        try:
            message = connections[lane].recv()
        except (EOFError, OSError):
            loop.remove_reader(connections[lane].fileno())
            merged.ended.add(lane)
            if len(merged.ended) == workers and not all_ended.done():
                all_ended.set_result(None)
            return
        kind, *body = message
        try:
            if kind == "checkpoint":
                merged.update(lane, *body)
                if checkpoint is not None:
                    checkpoint(*merged.checkpoint(), merged.finished())
            elif kind == "progress":
                merged.progress[lane] = body[0]
                if progress is not None:
                    progress(merged.merged_progress())
            elif kind == "failed":
                raise ChildProcessError(f"sweep worker {lane + 1}/{workers} failed: {body[0]}")
            else:
                results[lane] = body[0]
        except Exception as exc:  # e.g. the journal's disk is full: the sweep ends with it, as in one process
            if not all_ended.done():
                all_ended.set_exception(exc)

    try:
        for lane in range(workers):
            parent_end, child_end = context.Pipe()
            job = partial(
                lane_sweep, Shard(lane, workers), rate=rate / workers, concurrency=max(1, concurrency // workers),
                done_above=merged.ahead[lane],
            )
            process = context.Process(target=_worker_main, args=(child_end, job), daemon=True)
            process.start()
            child_end.close()  # so the parent sees EOF when the worker exits
            connections.append(parent_end)
            processes.append(process)
            loop.add_reader(parent_end.fileno(), receive, lane)
        await all_ended
    except BaseException:  # cancelled (Ctrl-C, SIGTERM), or a failure above
        _stop_workers(connections, merged.ended, receive)
        raise
    finally:
        for connection in connections:
            if not connection.closed:
                loop.remove_reader(connection.fileno())
                connection.close()
        for process in processes:
            process.join(_WORKER_STOP_GRACE)
            if process.is_alive():
                process.kill()  # it ignores SIGTERM
                process.join()
    failed = [lane for lane in range(workers) if lane not in results]
    if failed:
        lane = failed[0]
        raise ChildProcessError(
            f"sweep worker {lane + 1}/{workers} ended with exit status {processes[lane].exitcode} before finishing; "
            "progress up to its last checkpoint is saved"
        )
    stats = SweepStats(seconds=time.monotonic() - started, open_ports=merged.found)
    for result in results.values():
        for counter in fields(SweepCounts):
            setattr(stats, counter.name, getattr(stats, counter.name) + getattr(result, counter.name))
        stats.concurrency += result.concurrency
    return stats


def start_worker_server() -> None:
    """Start the server that forks sweep workers (see :func:`_sweep_in_processes`) now, in the
    background: its start-up then overlaps whatever the caller does before sweeping. Optional (a
    sweep starts it when needed) and idempotent; it ends when this process does."""
    from multiprocessing import forkserver

    _worker_context()
    forkserver.ensure_running()


def _worker_context() -> BaseContext:
    import multiprocessing  # here: a one-process sweep (and its start-up) does without it

    context = multiprocessing.get_context("forkserver")
    # Imported once, by the server: every worker forks with them loaded. The main script too, or
    # each worker would run it again to rebuild ``__main__`` (the CLI's imports, a test runner's).
    context.set_forkserver_preload(["__main__", __name__])
    return context


def _stop_workers(connections: list[Connection], ended: set[int], receive: Callable[[int], None]) -> None:
    """Ask every worker to stop and take their last messages (blocking: the sweep is ending)."""
    for connection in connections:
        try:
            connection.send(None)
        except OSError:
            pass  # that worker has exited already
    deadline = time.monotonic() + _WORKER_STOP_GRACE
    for lane, connection in enumerate(connections):
        while lane not in ended and connection.poll(max(0.0, deadline - time.monotonic())):
            receive(lane)
        if lane not in ended:
            break  # out of time; the rest is terminated


def _worker_main(connection: Connection, job: Callable[..., Awaitable[SweepStats]]) -> None:
    """A worker process: run ``job`` on a new event loop, talking to the parent over ``connection``.

    Its parent is the forkserver, which exits when the survey does (even on ``kill -9``: the
    end-of-file of the server's own pipe from the survey); the end-of-file of ``connection`` says
    the same to the worker directly."""
    end_with_parent(os.getppid())
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    asyncio.run(_worker(connection, job))


async def _worker(connection: Connection, job: Callable[..., Awaitable[SweepStats]]) -> None:
    loop, task = asyncio.get_running_loop(), asyncio.current_task()

    def stop() -> None:  # a message from the parent, or its end of the pipe closing
        loop.remove_reader(connection.fileno())
        task.cancel()

    loop.add_reader(connection.fileno(), stop)
    try:
        stats = await job(
            checkpoint=lambda *state: connection.send(("checkpoint", *state)),
            progress=lambda p: connection.send(("progress", p)),
        )
    except asyncio.CancelledError:
        return  # the sweep sent its last checkpoint
    except (BrokenPipeError, ConnectionResetError):
        return  # the parent is gone (where no PR_SET_PDEATHSIG ended us): nobody to report to
    except Exception as exc:  # reported by the parent as one line, not a worker's traceback
        connection.send(("failed", f"{type(exc).__name__}: {exc}"))
        return
    stats.open_ports = []  # sent with the checkpoints already
    connection.send(("stats", stats))


class _MergedLanes:
    """The workers' checkpoints and progress as one sweep's: what the journal and the bar see."""

    def __init__(self, positions: int, lanes: int, start: int, done_above: list[int]) -> None:
        self.lanes = lanes
        self.marks = [start] * lanes  # per lane: every position of the lane below is done
        self.ahead = [[p for p in done_above if p % lanes == lane] for lane in range(lanes)]
        self.done = [False] * lanes
        self.progress: dict[int, SweepProgress] = {}
        self.found: list[OpenPort] = []
        self.ended: set[int] = set()
        self._positions = positions
        self._start = start
        self._unsaved: list[OpenPort] = []

    def update(self, lane: int, mark: int, ahead: list[int], found: list[OpenPort], finished: bool) -> None:
        self.marks[lane], self.ahead[lane], self.done[lane] = mark, ahead, finished
        self.found += found
        self._unsaved += found

    def finished(self) -> bool:
        return all(self.done)

    def checkpoint(self) -> tuple[int, list[int], list[OpenPort]]:
        """The lowest watermark, and above it each lane's positions below its own watermark
        plus those it finished ahead; the open ports not handed out yet."""
        low = min(self.marks)
        done_above: list[int] = []
        for lane, (mark, ahead) in enumerate(zip(self.marks, self.ahead)):
            done_above += range(low + (lane - low) % self.lanes, mark, self.lanes)
            done_above += ahead
        found, self._unsaved = self._unsaved, []
        return low, sorted(done_above), found

    def merged_progress(self) -> SweepProgress:
        counts = {f.name: sum(getattr(p, f.name) for p in self.progress.values()) for f in fields(SweepCounts)}
        done = min((p.positions_done for p in self.progress.values()), default=self._start)
        if len(self.progress) < self.lanes:
            done = min(done, self._start)
        return SweepProgress(positions_done=done, positions_total=self._positions, **counts)


async def _dispatch(
    run: _SweepRun, engine: _ConnectEngine, bucket: TokenBucket, ports: list[int], start: int, limit: int
) -> None:
    """Start a connect per target as tokens and room allow; return when none is in flight."""
    nports, since_yield, done_before = len(ports), 0, run.done_before_resume
    target_at = run.scope.authorized_target_at
    lane, lanes = run.lane.index, run.lane.count
    for position, index in run.permutation.walk(start):
        if (lanes > 1 and position % lanes != lane) or position in done_before:
            continue
        host = target_at(index // nports)
        if host is None:  # blocklisted: skipped without spending a token
            run.skip(position)
            continue
        while len(engine) >= limit:
            await engine.wait_for_room()
        delay = bucket.reserve()
        if delay:
            await asyncio.sleep(delay)
        run.start(position)
        engine.start(position, host, ports[index % nports])
        since_yield += 1
        if since_yield == 256:  # let completions, checkpoints and Ctrl-C in
            since_yield = 0
            await asyncio.sleep(0)
    while len(engine):
        await engine.wait_for_room()


class _SweepRun:
    """The bookkeeping of one sweep: positions in flight, the watermark, counters, open ports."""

    def __init__(
        self, scope: Scope, permutation: CyclicPermutation, lane: Shard, start: int, done_before_resume: set[int],
        concurrency: int,
    ) -> None:
        self.scope = scope
        self.permutation = permutation
        self.lane = lane
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
        if outcome == "closed":  # most attempts: spared the getattr/setattr
            self.stats.closed += 1
        else:
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
    comes from the scope's guard (:func:`start_guarded_connect`). Per attempt the engine makes
    as few system calls as it can: closing a socket also removes it from the epoll (no
    unregister), and the event itself tells an accepted connect (writable, no error) from a
    failed one, so ``SO_ERROR`` is read only to tell a refusal from other errors. All attempts
    share one timeout, so start order is deadline order and expiry only looks at the oldest.
    """

    def __init__(self, run: _SweepRun, timeout: float) -> None:
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
