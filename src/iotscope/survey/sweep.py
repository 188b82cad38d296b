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

This module walks the permutation and paces it; :mod:`~iotscope.survey.connect_engine` holds the
connects in flight, :mod:`~iotscope.survey.sweep_workers` the worker processes and
:mod:`~iotscope.survey.sweep_bookkeeping` the counters and checkpoints they share.
"""

from __future__ import annotations

import asyncio
import resource
import time
from collections.abc import Callable
from functools import partial

from iotscope.survey.connect_engine import ConnectEngine
from iotscope.survey.permutation import CyclicPermutation, Shard
from iotscope.survey.scope import Scope
from iotscope.survey.sweep_bookkeeping import Checkpoint, SweepProgress, SweepRun, SweepStats
from iotscope.survey.sweep_workers import sweep_in_processes
from iotscope.survey.token_bucket import TokenBucket

#: Where IoT devices take logins: telnet (23, Mirai's 2323), SSH, HTTP (80, 8080), FTP.
DEFAULT_PORTS = (23, 2323, 22, 80, 8080, 21)
#: Conservative default: ZMap's guidance is to scan at the slowest rate that finishes in time.
DEFAULT_RATE = 1000.0
DEFAULT_CONCURRENCY = 1000
DEFAULT_CONNECT_TIMEOUT = 2.0
_FILE_DESCRIPTOR_RESERVE = 64


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
    workers come from a forkserver (see :func:`sweep_in_processes`), so a script that calls this
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
    return await sweep_in_processes(
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
    run = SweepRun(scope, permutation, lane, start_position, set(done_above or ()), limit)
    bucket = TokenBucket(rate)
    started = time.monotonic()

    def report(finished: bool = False) -> None:
        if checkpoint is not None:
            checkpoint(*run.checkpoint(), finished)
        if progress is not None:
            progress(run.progress())

    engine = ConnectEngine(run, timeout)

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
    run: SweepRun, engine: ConnectEngine, bucket: TokenBucket, ports: list[int], start: int, limit: int
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
