"""A sweep shared by several worker processes, one event loop per core, merged into one sweep.

Kept apart from :mod:`iotscope.survey.sweep` because it is about processes (a forkserver, pipes,
signals, parent death), not about connecting: :func:`~iotscope.survey.sweep.sweep` hands it a
lane function and gets back one :class:`~iotscope.survey.sweep_bookkeeping.SweepStats`.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import fields
from functools import partial
from typing import TYPE_CHECKING

from iotscope.lifetime import end_with_parent
from iotscope.survey.journal import OpenPort
from iotscope.survey.permutation import Shard
from iotscope.survey.sweep_bookkeeping import Checkpoint, SweepCounts, SweepProgress, SweepStats

if TYPE_CHECKING:
    from multiprocessing.connection import Connection
    from multiprocessing.context import BaseContext

#: The module holding the lane function the workers run: preloaded by the forkserver (it imports
#: this one), so that no worker imports it on its own.
_LANE_MODULE = "iotscope.survey.sweep"

#: Seconds a stopped worker gets to send its last checkpoint and exit before it is killed.
_WORKER_STOP_GRACE = 5.0


async def sweep_in_processes(
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
    """Start the server that forks sweep workers (see :func:`sweep_in_processes`) now, in the
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
    context.set_forkserver_preload(["__main__", _LANE_MODULE])
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
