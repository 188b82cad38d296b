"""``iotscope analyze``: run every pass over the hours of ``packets`` not analysed yet.

Which hours: the analysis catalog (``iotscope.store.datasets``) records, per analysed hour, a
fingerprint of the committed packet files of that hour and the passes' configuration. The first
hour whose fingerprint or configuration differs from the catalog (new data, late data for an old
hour, other settings) and every hour after it are (re-)analysed, in time order: the passes carry
state forward, so a change in hour H can change everything after H, and nothing before it. The run
starts from the newest carried-state snapshot before H (saved every ``SNAPSHOT_EVERY_HOURS`` hours
and after the last hour of each run), re-computing the few hours between it and H to the same rows.

Crash safety is the packet store's recipe: files go to staging, are moved into place durably, and
the hour's catalog row is committed last; a killed run resumes at the first hour without a row.
The output is a function of (packets, carried state, settings) only, so the resumed run writes the
same rows a clean run would.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
import uuid
from collections.abc import Callable, Generator
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Protocol, Self

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import xxhash

from iotscope.store.datasets import (
    AnalysedHour,
    AnalysisCatalog,
    analysis_lock,
    remove_uncommitted,
    rows_path,
    staging_dir,
    state_path,
)
from iotscope.store.durable import is_disk_full, move_into_place
from iotscope.ip_protocols import PROTO_ICMP, PROTO_TCP, PROTO_UDP
from iotscope.store.packets import PacketStore, partition_of
from iotscope.store.schema import packet_record_batch
from iotscope.store.state import StoreError
from iotscope.telescope.classify import flag_class, traffic_class
from iotscope.telescope.passes.base import US_PER_HOUR, AnalysisPass, Partition, State
from iotscope.telescope.passes.finish import (
    EarlyWholeStore,
    ProfileInputs,
    finish,
    resolve_profile_inputs,
    start_whole_store,
)
from iotscope.telescope.passes.registry import default_passes
from iotscope.telescope.passes.settings import AnalysisSettings, Darknet
from iotscope.telescope.passes.tagging import TAG_COLUMNS, tag_hour

#: The carried state is saved after the last hour of a run and every this many hours: a re-analysis
#: (late data, a killed run) restarts from the newest snapshot before the first hour to redo, so this
#: bounds the hours recomputed, while saving it every hour would double the files written.
SNAPSHOT_EVERY_HOURS = 24
#: Files of one analysed hour written side by side (rows of 4 datasets and, in a snapshot, ~6 state tables).
COMMIT_THREADS = 4


class ComputedAhead(Protocol):
    """Hours computed before the run (``ingest`` computes them while it stores the packets)."""

    def results(self, config: str, first: int, snapshot: int | None) -> Generator[HourResult, None, None]:
        """The hours computed from ``first`` on, in order as they are ready, if they started where
        this run starts (same settings ``config``, same first hour, same state snapshot); else none."""
        ...


#: Called after each analysed hour with (hours done, hours to do).
ProgressCallback = Callable[[int, int], None]


@dataclass
class AnalyzeReport:
    """What one analysis did: the numbers the CLI prints."""

    hours_total: int = 0
    hours_analysed: int = 0
    hours_ahead: int = 0  # of those, computed while ``ingest`` stored them (see ``passes.ahead``)
    reanalysed_from: int | None = None  # first hour (since the epoch) analysed this run
    rows: dict[str, int] = field(default_factory=dict)  # rows written per dataset
    whole_store_overlapped: bool = False  # alerts/sources computed while the newest hour was committed
    darknet: Darknet | None = None
    settings: AnalysisSettings | None = None
    seconds: float = 0.0


def resolve_settings(root: Path, overrides: dict[str, object]) -> AnalysisSettings:
    """The store's stored settings (or the defaults) with ``overrides`` applied, validated."""
    catalog = AnalysisCatalog(root, read_only=True) if (Path(root) / "state.sqlite").is_file() else None
    stored = catalog.setting("settings") if catalog else None
    if catalog:
        catalog.close()
    values = {**AnalysisSettings().as_dict(), **(stored if isinstance(stored, dict) else {}), **overrides}
    return AnalysisSettings.from_dict(values)


def epoch_hour_of(relative: str) -> int:
    """The hour since the epoch of a packet file, from its ``date=YYYY-MM-DD/hour=HH`` path."""
    partition = partition_of(relative)
    if partition is None:
        raise StoreError(f"{relative}: a committed packet file outside a date=/hour= partition")
    day, hour = partition
    return (date.fromisoformat(day) - date(1970, 1, 1)).days * 24 + int(hour)


def analyze(
    store_dir: Path,
    overrides: dict[str, object] | None = None,
    darknet: Darknet | None = None,
    progress: ProgressCallback | None = None,
    passes: Callable[[AnalysisSettings], tuple[AnalysisPass, ...]] = default_passes,
    profile: ProfileInputs | None = None,
    ahead: ComputedAhead | None = None,
) -> AnalyzeReport:
    """Analyse every hour of the store at ``store_dir`` that needs it; see the module docstring.

    ``overrides`` (settings by field name) and ``darknet`` are validated before the store is touched
    and are stored, so that later runs (``ingest`` runs ``analyze`` at its end) keep them; so are
    ``profile``'s category table and ``.mmdb`` files (default: what the store recorded, see
    :func:`~iotscope.telescope.passes.finish.resolve_profile_inputs`). The whole-store results
    (``alerts``, ``sources``) are brought up to date at the end (``passes.finish``).

    ``ahead``: hours that ``ingest`` analysed from memory while it stored them; an hour whose
    inputs (packet files, carried state, horizon, settings) are those of this run is committed
    as computed, any other is computed here from the committed files.
    """
    started = time.perf_counter()
    root = Path(store_dir)
    settings = resolve_settings(root, overrides or {})
    profile = profile if profile is not None else resolve_profile_inputs(root)
    report = AnalyzeReport(settings=settings)
    with PacketStore(root, read_only=True) as store:  # only lists the live files
        files_by_hour: dict[int, list[str]] = {}
        for f in store.state.live_files():  # after compaction, an hour's one file replaces many
            files_by_hour.setdefault(epoch_hour_of(f), []).append(f)
    try:
        with analysis_lock(root):
            report.darknet = _analyze_locked(root, settings, darknet, passes, files_by_hour, report, progress,
                                             profile, ahead)
    except (OSError, sqlite3.OperationalError) as exc:  # pyarrow's I/O errors are OSErrors
        text = (str(exc).splitlines() or [type(exc).__name__])[0]
        why = "the disk is full" if is_disk_full(exc) else text
        raise StoreError(f"{root}: analysis stopped ({why}); hours committed so far are kept, the packets are "
                         "all committed; run `iotscope analyze` again to finish") from None
    report.seconds = time.perf_counter() - started
    return report


def _analyze_locked(root: Path, settings: AnalysisSettings, darknet: Darknet | None,
                    passes: Callable[[AnalysisSettings], tuple[AnalysisPass, ...]],
                    files_by_hour: dict[int, list[str]], report: AnalyzeReport,
                    progress: ProgressCallback | None, profile: ProfileInputs,
                    ahead: ComputedAhead | None) -> Darknet | None:
    """The work of :func:`analyze` while it holds the analysis lock; returns the darknet it assumed."""
    catalog = AnalysisCatalog(root)
    try:
        remove_uncommitted(root, catalog)
        catalog.set_setting("settings", settings.as_dict())
        known = catalog.setting("darknet")
        if darknet is not None:
            catalog.set_setting("darknet", _darknet_json(darknet))
            known = _darknet_json(darknet)
        with ThreadPoolExecutor(2, thread_name_prefix="whole-store") as workers:  # alerts and sources
            def start_early(newest: int, rows: dict[str, pa.Table]) -> EarlyWholeStore | None:
                return start_whole_store(root, catalog, settings, profile, newest, rows, workers)

            seen, early = _run(root, catalog, settings, passes(settings), files_by_hour, report, progress, ahead,
                               start_early)
            for name, rows in finish(root, catalog, settings, profile, early).items():
                report.rows[name] = rows
            report.whole_store_overlapped = early is not None and early.covers(catalog.hours())
        return _widen_darknet(catalog, known, seen)
    finally:
        catalog.close()


def _run(root: Path, catalog: AnalysisCatalog, settings: AnalysisSettings, passes: tuple[AnalysisPass, ...],
         files_by_hour: dict[int, list[str]], report: AnalyzeReport,
         progress: ProgressCallback | None, ahead: ComputedAhead | None,
         start_early: Callable[[int, dict[str, pa.Table]], EarlyWholeStore | None] | None = None,
         ) -> tuple[tuple[int, int] | None, EarlyWholeStore | None]:
    """Analyse the stale hours; return the lowest and highest IPv4 destination seen in them.

    ``start_early`` is called with the newest hour and its rows (dataset name -> rows) before that
    hour is committed: the whole-store step starts meanwhile (``passes.finish``); returned too.
    """
    config = analysis_config(passes)
    hours = sorted(files_by_hour)
    report.hours_total = len(hours)
    done = catalog.hours()
    fingerprints = {h: fingerprint(files_by_hour[h]) for h in hours}
    restart = restart_point(done, fingerprints, config)
    if restart is None:
        return None, None
    first, snapshot = restart
    catalog.forget_from(first)
    remove_uncommitted(root, catalog)
    states: dict[str, State] = load_state(root, done[snapshot], passes) if snapshot is not None else {
        p.name: {} for p in passes}
    todo = [h for h in hours if h >= first]
    report.reanalysed_from = todo[0] if todo else None
    columns = hour_columns(passes)
    seen: tuple[int, int] | None = None
    early: EarlyWholeStore | None = None
    computed = ahead.results(config, first, snapshot) if ahead is not None else (r for r in ())
    written: WrittenHour | None = None  # the previous hour: its files still being written

    def commit(hour: WrittenHour) -> None:
        hour.commit(catalog)
        report.hours_analysed += 1
        if progress is not None:
            progress(report.hours_analysed, len(todo))

    analyser: HourAnalyser | None = None  # made for the first hour not computed ahead (DuckDB: ~15 ms)
    with contextlib.ExitStack() as stack, contextlib.closing(computed), \
            ThreadPoolExecutor(COMMIT_THREADS, thread_name_prefix="commit") as writers:
        for i, hour in enumerate(todo):
            end = (hour + 1) * US_PER_HOUR
            # this hour as computed ahead, waiting for it only (the previous hour's commit overlapped
            # its computing); none once closed
            result = next(computed, None)
            if result is not None and result.hour == hour and fingerprint(list(result.files)) == fingerprints[hour] \
                    and result.horizon_us == (end if hour != hours[-1] else min(end, result.newest_us)):
                report.hours_ahead += 1
            else:  # not computed ahead (or from other inputs): from the committed files, and so every later hour
                computed.close()
                table = pq.read_table([str(root / f) for f in files_by_hour[hour]], columns=columns, partitioning=None)
                newest = pc.max(table.column("ts")).cast(pa.int64()).as_py()
                horizon = end if hour != hours[-1] else min(end, newest)
                analyser = analyser or stack.enter_context(HourAnalyser(passes))
                result = analyser.run(hour, table, horizon, states, files_by_hour[hour], newest)
            states = result.states
            if result.destinations is not None:
                low, high = result.destinations
                seen = (low, high) if seen is None else (min(seen[0], low), max(seen[1], high))
            for p in passes:
                report.rows[p.dataset.name] = report.rows.get(p.dataset.name, 0) + result.outputs[p.name].num_rows
            save_state = hour == todo[-1] or (i + 1) % SNAPSHOT_EVERY_HOURS == 0
            if hour == todo[-1] and start_early is not None:
                if written is not None:  # the step reads every other hour's committed files
                    commit(written)
                    written = None
                early = start_early(hour, {p.dataset.name: result.outputs[p.name] for p in passes})
            previous, written = written, _write_hour(root, hour, fingerprints[hour], config, passes, result.outputs,
                                                     states if save_state else None, writers)
            if previous is not None:  # committed while the next hour's files are written
                commit(previous)
        if written is not None:
            commit(written)
    return seen, early


def hour_columns(passes: tuple[AnalysisPass, ...]) -> list[str]:
    """The columns of ``packets`` an hour is loaded with: what the passes and the tagging stage read."""
    return sorted({*TAG_COLUMNS, *(c for p in passes for c in p.columns)})


@dataclass(frozen=True)
class HourResult:
    """What the passes made of one hour, before it is committed."""

    hour: int
    files: tuple[str, ...]  # the committed packet files (relative to the store) it was computed from
    newest_us: int  # the hour's newest packet time
    horizon_us: int
    outputs: dict[str, pa.Table]  # pass name -> rows
    states: dict[str, State]  # pass name -> state carried out of the hour
    destinations: tuple[int, int] | None  # lowest and highest IPv4 destination


class HourAnalyser:
    """Runs the passes over one hour after another, each hour's passes side by side on threads.

    The passes of one hour are independent (each has its own state), and DuckDB, Arrow and the
    numba kernels release the GIL, so they run on threads; hours run one after the other.

    ``side_by_side=False`` runs them one after the other on the calling thread, DuckDB on one
    thread: for the hours ``ingest`` computes while it decodes and encodes on every core, where
    more threads only contend (5M-packet bench capture, 2 cores: the ingest with its analysis
    costs about 0.5 CPU-s less and ends sooner; ``BENCHMARKS.md``).
    """

    def __init__(self, passes: tuple[AnalysisPass, ...]) -> None:
        self.passes = passes
        self._con = duckdb.connect()
        self._threads = self._con.execute("SELECT current_setting('threads')").fetchone()[0]
        self._workers = ThreadPoolExecutor(len(passes), thread_name_prefix="pass")

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._workers.shutdown()
        self._con.close()

    def warm_up(self) -> None:
        """Run every pass once over a few made-up packets and drop what they make.

        Why: a pass's first call loads its compiled kernels from numba's on-disk cache and pays
        other first-call costs (~0.3 s in all, measured on the bench capture); ``ingest`` calls
        this while it decodes the first hour, so that the first hour is not the slowest to analyse.
        """
        table = pa.Table.from_batches([_sample_packets()]).select(hour_columns(self.passes))
        self.run(0, table, US_PER_HOUR, {p.name: {} for p in self.passes}, [], US_PER_HOUR - 1, side_by_side=False)

    def run(self, hour: int, table: pa.Table, horizon_us: int, states: dict[str, State], files: list[str],
            newest_us: int, side_by_side: bool = True) -> HourResult:
        """Every pass over ``table`` (the hour's packets) with the ``states`` carried into the hour."""

        tags = tag_hour(table)

        def run_pass(p: AnalysisPass) -> tuple[pa.Table, State]:
            cursor = self._con.cursor()  # a connection of its own: passes of one hour run side by side
            try:
                cursor.register("packets_hour", table)
                return p.run(Partition(hour, cursor, horizon_us=horizon_us, table=table, tags=tags), states[p.name])
            finally:
                cursor.close()

        self._con.execute(f"SET threads = {self._threads if side_by_side else 1}")
        results = self._workers.map(run_pass, self.passes) if side_by_side else map(run_pass, self.passes)
        low, high = (v.as_py() for v in pc.min_max(tags.dst).values())
        outputs, after = {}, {}
        for p, (rows, state) in zip(self.passes, results, strict=True):
            outputs[p.name], after[p.name] = rows, state
        return HourResult(hour, tuple(files), newest_us, horizon_us, outputs, after,
                          None if low is None else (low, high))


def _sample_packets() -> pa.RecordBatch:
    """Four packets of hour 0 as ``ingest`` stores them: an IPv4 SYN scan (Mirai), an ICMP echo (no
    port), a SYN-ACK (backscatter) and an IPv6 UDP packet, so that every column has a null where real
    hours have them (the kernels' argument types, hence the code numba loads, depend on it)."""
    n = 4
    columns = {name: np.zeros(n, dtype=dtype) for name, dtype in (
        ("ip_version", np.uint8), ("src", np.uint32), ("dst", np.uint32), ("proto", np.uint8), ("sport", np.uint16),
        ("dport", np.uint16), ("icmp_type", np.uint8), ("icmp_code", np.uint8), ("tcp_flags", np.uint8),
        ("seq", np.uint32), ("ip_id", np.uint16), ("ttl", np.uint8), ("ip_len", np.uint16), ("win", np.uint16),
        ("l4", np.uint8))}
    columns["ts"] = np.array([1, 2, 3, 4], dtype=np.int64) * US_PER_HOUR // 8
    columns["src6"] = columns["dst6"] = np.zeros((n, 16), dtype=np.uint8)
    columns["ip_version"][:] = [4, 4, 4, 6]
    columns["src"][:3] = columns["dst"][:3] = 0xC6120001
    columns["proto"][:] = [PROTO_TCP, PROTO_ICMP, PROTO_TCP, PROTO_UDP]
    columns["dport"][:] = 23
    columns["tcp_flags"][:] = [0x02, 0, 0x12, 0]
    columns["icmp_type"][1] = 8  # echo request
    columns["l4"][:] = 1
    columns["ip_len"][:] = 40
    flags = flag_class(columns["proto"], columns["tcp_flags"], columns["icmp_type"], columns["l4"])
    traffic = traffic_class(columns["proto"], columns["tcp_flags"], columns["icmp_type"], columns["l4"])
    return packet_record_batch(columns, flags, traffic, np.array([0, -1, -1, -1], dtype=np.int8))


@dataclass(frozen=True)
class WrittenHour:
    """An analysed hour whose files are being written into place, and the catalog entry naming them."""

    entry: AnalysedHour
    staging: Path
    writes: tuple[Future[None], ...]

    def commit(self, catalog: AnalysisCatalog) -> None:
        """Once every file is in place, make them the hour's in one catalog statement."""
        for write in self.writes:
            write.result()  # the first error is raised (the files are nobody's: removed next run)
        self.staging.rmdir()
        catalog.commit_hour(self.entry)


def _write_hour(root: Path, hour: int, fingerprint: str, config: str, passes: tuple[AnalysisPass, ...],
                outputs: dict[str, pa.Table], states: dict[str, State] | None, writers: Executor) -> WrittenHour:
    """Start writing the hour's rows (and ``states``: a snapshot) into place on ``writers``.

    Why on threads (Parquet's writer and ``fsync`` release the GIL): after an ``ingest`` the hours
    computed ahead are committed one after the other, the serial tail of the command; the runner
    commits an hour while the next one's files are written, and each hour's files (the last one's
    carried state: millions of rows) are written side by side. Until its catalog statement
    (:meth:`WrittenHour.commit`), a file is nobody's: a crash leaves it to :func:`remove_uncommitted`.
    """
    run = uuid.uuid4().hex[:16]  # a new name per run: a re-analysis never overwrites a committed file
    staging = staging_dir(root) / run
    planned: list[tuple[pa.Table, Path, bool]] = []  # (table, where, whether it is carried state)
    rows: dict[str, str] = {}
    state: dict[str, dict[str, str]] = {}
    for p in passes:
        path = rows_path(p.dataset.name, hour, run)
        rows[p.dataset.name] = str(path)
        planned.append((outputs[p.name], path, False))
        for table_name, table in (states or {}).get(p.name, {}).items():
            path = state_path(p.name, table_name, hour, run)
            state.setdefault(p.name, {})[table_name] = str(path)
            planned.append((table, path, True))
    staging.mkdir(parents=True, exist_ok=True)

    def write(n: int, table: pa.Table, relative: Path, is_state: bool) -> None:
        staged = staging / f"{n}.parquet"  # flat staging: no directory tree to create and remove per hour
        # State without dictionary pages: the events' destination sets (millions of rows) write in
        # half the time for ~8% more bytes; only the runner reads them back.
        pq.write_table(table, staged, compression="zstd", compression_level=1, use_dictionary=not is_state)
        move_into_place(staged, root / relative)

    return WrittenHour(AnalysedHour(hour, fingerprint, config, rows, state), staging,
                       tuple(writers.submit(write, n, *plan) for n, plan in enumerate(planned)))


def analysis_config(passes: tuple[AnalysisPass, ...]) -> str:
    """What an analysed hour records of the passes' versions and settings (other settings: analyse again)."""
    return json.dumps({p.name: {"version": p.dataset.version, **p.config()} for p in passes}, sort_keys=True)


def restart_point(done: dict[int, AnalysedHour], fingerprints: dict[int, str], config: str
                  ) -> tuple[int, int | None] | None:
    """Where an analysis of hours with these packet-file ``fingerprints`` starts: (first hour to
    analyse, the hour whose carried-state snapshot it starts from or None: from scratch); None when
    every hour is up to date.

    The first stale hour (new or changed packets, other settings, packets gone) decides; the run
    restarts from the newest snapshot before it.
    """
    hours = sorted(fingerprints)
    stale = [h for h in hours if h not in done or done[h].fingerprint != fingerprints[h] or done[h].config != config]
    stale += [h for h in done if h not in fingerprints]  # packets gone (a rebuilt store): redo from there
    if not stale:
        return None
    snapshots = [h for h in done if h < min(stale) and done[h].state]
    if not snapshots:
        return hours[0], None
    return min((h for h in hours if h > max(snapshots)), default=max(snapshots) + 1), max(snapshots)


def load_state(root: Path, entry: AnalysedHour, passes: tuple[AnalysisPass, ...]) -> dict[str, State]:
    """The carried state snapshot of a committed hour."""
    return {p.name: {name: pq.read_table(root / path) for name, path in entry.state.get(p.name, {}).items()}
            for p in passes}


def fingerprint(files: list[str]) -> str:
    """Of an hour's committed packet files; their names carry the capture's content hash."""
    return xxhash.xxh3_128_hexdigest("\n".join(sorted(files)).encode())


def _darknet_json(darknet: Darknet) -> dict[str, object]:
    return {"prefix": darknet.prefix, "size": darknet.size, "inferred": darknet.inferred}


def _widen_darknet(catalog: AnalysisCatalog, known: object, seen: tuple[int, int] | None) -> Darknet | None:
    """The smallest prefix covering every IPv4 destination analysed so far (unless the user gave one)."""
    if isinstance(known, dict) and not known.get("inferred"):
        return Darknet(known["prefix"], known["size"])
    lowest, highest = (known["lowest"], known["highest"]) if isinstance(known, dict) else (None, None)
    if seen is not None:
        lowest = seen[0] if lowest is None else min(lowest, seen[0])
        highest = seen[1] if highest is None else max(highest, seen[1])
    if lowest is None:
        return None
    darknet = Darknet.covering(int(lowest), int(highest))
    catalog.set_setting("darknet", {**_darknet_json(darknet), "lowest": lowest, "highest": highest})
    return darknet
