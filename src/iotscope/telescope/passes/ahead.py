"""Analysis computed ahead: ``ingest`` runs the passes over each hour it has stored, from memory, while it decodes the next.

Why: analysing after the ingest re-reads every hour's Parquet files that the ingest has just
written, and leaves a core idle while the ingest's main thread decodes. Here the packet writer
shows each batch to an :class:`AnalysisAhead` (``PartitionWriter``'s observer) and says when the
captures have moved past an hour; a worker thread then runs the passes over that hour (the packets
committed before this ingest, read from Parquet, plus the capture's rows, from memory), carrying
the state forward, while the ingest goes on. ``analyze`` (the runner) then commits those results.

Why it stays exact and crash-safe: nothing here writes. The runner, run as before once the
packets are committed, decides which hours to analyse from what is committed, and takes a result
computed ahead only where its inputs are the run's own: the same settings, the same first hour and
state snapshot, and per hour the same packet files (fingerprint) and horizon; from the first hour
that differs (a capture out of time order adding rows to an hour already computed, a concurrent
``analyze``) it computes from the committed files as always. Memory stays bounded: the ingest waits
while more than ``MAX_ROWS`` computable rows wait for the worker, and computing ahead stops (the
runner reads Parquet instead) when rows it cannot compute yet would exceed that, or when the
computed hours held for the runner exceed ``MAX_RESULT_BYTES`` (the carried state of a busy
telescope is tens of MB an hour).
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Generator
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from iotscope.store.datasets import AnalysisCatalog
from iotscope.store.packets import PacketStore
from iotscope.telescope.passes.base import US_PER_HOUR, AnalysisPass, State
from iotscope.telescope.passes.registry import default_passes
from iotscope.telescope.passes.runner import (
    HourAnalyser,
    HourResult,
    analysis_config,
    epoch_hour_of,
    fingerprint,
    hour_columns,
    load_state,
    resolve_settings,
    restart_point,
)
from iotscope.telescope.passes.settings import AnalysisSettings

#: Rows held in memory for the worker (~60 bytes each in Arrow); more waits or stops computing ahead.
MAX_ROWS = 1 << 22
#: Bytes of computed hours (rows and carried state) held until the runner commits them after the
#: ingest; beyond this, computing ahead stops and the runner computes the later hours from Parquet.
MAX_RESULT_BYTES = 1 << 30
_PACKETS = Path("packets")


class AnalysisAhead:
    """Observer of an ingest's writers (one per capture) and the runner's source of hours computed ahead.

    Use: create it on the store before the ingest (with the number of ``captures``, if known: the
    last hour then starts as soon as the last capture's rows are all shown), give it to
    ``ingest_file`` for every capture, call :meth:`input_done` after the last one is committed
    (a capture already stored shows no rows), then pass it to ``analyze``; call :meth:`close` if
    the ingest fails.
    """

    def __init__(self, store: PacketStore,
                 passes: Callable[[AnalysisSettings], tuple[AnalysisPass, ...]] = default_passes,
                 max_rows: int = MAX_ROWS, max_result_bytes: int = MAX_RESULT_BYTES,
                 captures: int | None = None) -> None:
        self._root = store.root
        self._passes = passes(resolve_settings(store.root, {}))
        self._config = analysis_config(self._passes)
        self._max_rows = max_rows
        self._max_result_bytes = max_result_bytes
        self._before: dict[int, list[str]] = {}  # packet files committed before this ingest, by hour
        for f in store.state.live_files():
            self._before.setdefault(epoch_hour_of(f), []).append(f)
        catalog = AnalysisCatalog(store.root, read_only=True)
        try:
            self._done = catalog.hours()
        finally:
            catalog.close()
        self._cond = threading.Condition()
        self._batches: dict[int, list[pa.RecordBatch]] = {}  # the capture's rows by hour, not computed yet
        self._files: dict[int, list[str]] = {}  # the capture's packet files by hour
        self._watermark = -1  # the captures moved to this hour: earlier hours are complete (as far as they show)
        self._retained = 0  # rows in _batches
        self._position = -1  # hours up to this one are computed (or skipped): rows for them come too late
        self._input_done = False
        self._captures_left = captures  # the ingest's captures not shown whole yet (None: unknown)
        self._stopped = False
        self._start: tuple[int, int | None] | None = None
        self._results: list[HourResult] = []
        self._finished = False  # the worker has ended
        self._first_rows_hour: int | None = None  # the hour of the first rows shown
        # started now: it loads the passes' compiled code while the ingest decodes the first hour
        self._thread = threading.Thread(target=self._work, name="analyse-ahead", daemon=True)
        self._thread.start()

    # -- the writer's side (HourObserver) ------------------------------------------------------

    def rows(self, hour: int, batch: pa.RecordBatch) -> None:
        with self._cond:
            if self._stopped:
                return
            if hour <= self._position:  # out of time order: that hour is computed already
                self._stop()
                return
            while self._retained + batch.num_rows > self._max_rows and self._computable() and not self._stopped:
                self._cond.wait()  # let the worker catch up: memory stays bounded
            if self._stopped:
                return
            if self._retained + batch.num_rows > self._max_rows:  # nothing computable frees memory
                self._stop()
                return
            self._batches.setdefault(hour, []).append(batch)
            self._retained += batch.num_rows
            if self._first_rows_hour is None:
                self._first_rows_hour = hour
            self._cond.notify_all()

    def file(self, hour: int, relative: Path) -> None:
        with self._cond:
            self._files.setdefault(hour, []).append(str(_PACKETS / relative))

    def moved_to(self, hour: int) -> None:
        with self._cond:
            if hour > self._watermark:
                self._watermark = hour
                self._cond.notify_all()

    def rows_done(self) -> None:
        """A capture was shown whole; after the last one (``captures``), the input is done: its
        last hour is computed while the ingest encodes and commits the last files."""
        with self._cond:
            if self._captures_left is not None:
                self._captures_left -= 1
                if self._captures_left <= 0:
                    self._input_done = True
                    self._cond.notify_all()

    # -- the ingest's and the runner's side -----------------------------------------------------

    def input_done(self) -> None:
        """Every capture is committed: the last hours can be computed (the newest with its horizon)."""
        with self._cond:
            self._input_done = True
            self._cond.notify_all()

    @property
    def hours_computed(self) -> int:
        """Hours computed so far (for progress and tests)."""
        with self._cond:
            return len(self._results)

    def close(self) -> None:
        """Stop computing (the ingest failed); drop what is held."""
        with self._cond:
            self._stop()
        self._thread.join()

    def results(self, config: str, first: int, snapshot: int | None) -> Generator[HourResult, None, None]:
        """The hours computed, in order, as they are ready, if they started at ``first`` from
        ``snapshot`` with settings ``config`` (else none). Closing the iterator stops the computing."""
        try:
            with self._cond:
                while self._start is None and not self._finished:
                    self._cond.wait()
                if (config, (first, snapshot)) != (self._config, self._start):
                    return
            for i in itertools.count():
                with self._cond:
                    while i >= len(self._results) and not self._finished:
                        self._cond.wait()
                    if i >= len(self._results):
                        return
                    result = self._results[i]
                yield result
        finally:
            with self._cond:
                self._stop()

    # -- the worker ------------------------------------------------------------------------------

    def _stop(self) -> None:
        self._stopped = True
        self._batches.clear()
        self._retained = 0
        self._cond.notify_all()

    def _hours(self) -> list[int]:
        return sorted(set(self._before) | set(self._batches) | set(self._files))

    def _next(self) -> int | None:
        return min((h for h in self._hours() if h > self._position), default=None)

    def _computable(self) -> bool:
        """Whether the next hour can be computed now (its rows are all here, as far as the capture shows)."""
        hour = self._next()
        if hour is None:
            return False
        return self._input_done or hour < self._watermark

    def _work(self) -> None:
        try:
            with HourAnalyser(self._passes) as analyser:
                analyser.warm_up()
                with self._cond:
                    while self._first_rows_hour is None and not self._stopped and not self._input_done:
                        self._cond.wait()
                    first_rows_hour = self._first_rows_hour
                if first_rows_hour is None:  # stopped, or every capture was stored before: nothing to compute
                    return
                fingerprints = {h: fingerprint(files) for h, files in self._before.items()}
                fingerprints[first_rows_hour] = "changed by this ingest"
                start = restart_point(self._done, fingerprints, self._config)
                assert start is not None  # the capture's first hour is new
                first, snapshot = start
                states: dict[str, State] = load_state(self._root, self._done[snapshot], self._passes) \
                    if snapshot is not None else {p.name: {} for p in self._passes}
                with self._cond:
                    self._start = start
                    self._position = first - 1
                    self._cond.notify_all()
                held = 0
                while (hour := self._wait_for_hour()) is not None:
                    result = self._compute(analyser, hour, states)
                    states = result.states
                    held += sum(t.nbytes for t in result.outputs.values())
                    held += sum(t.nbytes for tables in states.values() for t in tables.values())
                    with self._cond:
                        self._results.append(result)
                        self._cond.notify_all()
                        if held > self._max_result_bytes:  # the runner goes on from this hour's state
                            self._stop()
        except Exception:  # noqa: BLE001 - the runner computes the hours itself, and reports any error
            with self._cond:
                self._stop()
        finally:
            with self._cond:
                self._finished = True
                self._cond.notify_all()

    def _wait_for_hour(self) -> int | None:
        """The next hour to compute, once it can be; None when there is none left to compute ahead."""
        with self._cond:
            while not self._stopped:
                hour = self._next()
                if self._input_done and (hour is None or hour > max(self._files, default=-1)):
                    return None  # later hours have no rows of this ingest: the runner computes them
                if self._computable():
                    return hour
                self._cond.wait()
            return None

    def _compute(self, analyser: HourAnalyser, hour: int, states: dict[str, State]) -> HourResult:
        with self._cond:
            batches = self._batches.pop(hour, [])
            files = [*self._before.get(hour, []), *self._files.get(hour, [])]
            last = self._input_done and hour == self._hours()[-1]
            ingesting = not self._input_done  # the ingest still decodes on every core
            self._position = hour
            self._retained -= sum(b.num_rows for b in batches)
            self._cond.notify_all()
        columns = hour_columns(self._passes)
        parts = []
        if hour in self._before:
            parts.append(pq.read_table([str(self._root / f) for f in self._before[hour]], columns=columns,
                                       partitioning=None))
        if batches:
            fresh = pa.Table.from_batches(batches).select(columns)
            parts.append(fresh.cast(parts[0].schema) if parts and parts[0].schema != fresh.schema else fresh)
        table = pa.concat_tables(parts) if len(parts) > 1 else parts[0]
        newest = pc.max(table.column("ts")).cast(pa.int64()).as_py()
        end = (hour + 1) * US_PER_HOUR
        return analyser.run(hour, table, min(end, newest) if last else end, states, files, newest,
                            side_by_side=not ingesting)
