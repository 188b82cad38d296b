"""The live sensor: capture -> spool of closed pcapng files -> ingest -> analyse, continuously.

The spool is the write-ahead log. dumpcap (``iotscope.capture.live``) writes a new pcapng file
every ``rotate`` seconds into it; each file, once closed, is ingested with the ordinary
``ingest_file`` and deleted only after its commit. So whatever ends the sensor, every packet that
reached a spool file is stored exactly once:

* SIGTERM / SIGINT: dumpcap closes its file, the sensor ingests everything left, then exits;
* ``kill -9`` or a power cut: the next start ingests whatever the spool holds before anything else
  is deleted; a file committed but not yet deleted is recognised by its content hash ("already");
  a torn last record (power cut mid-write) is counted as skipped, the rest of the file is stored.

One sensor per spool: a lock on ``<spool>/.sensor.lock`` is held by the sensor *and* inherited by
its dumpcap, so a capture orphaned by some failure of the death signal still holds it, and a new
sensor refuses rather than ingesting a file that process is still writing.

A full spool disk while running stops dumpcap with an error: the sensor says so once, keeps
ingesting (which frees the spool), and restarts the capture when space is back; what was spooled
is never lost. Other capture errors (the interface went away) are retried the same way.
"""

from __future__ import annotations

import fcntl
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from iotscope.capture import CaptureError
from iotscope.capture.live import CaptureSettings, DumpcapRing
from iotscope.errors import IotscopeError
from iotscope.store.compaction import compact_hours, delete_retired
from iotscope.store.packets import PacketStore
from iotscope.store.retention import apply_retention, keep_text
from iotscope.telescope.ingest import CAPTURE_SUFFIXES, FileReport, ingest_file
from iotscope.telescope.live_analysis import ANALYZE_EVERY_SECONDS, AnalysisSchedule
from iotscope.telescope.metrics import SensorMetrics
from iotscope.telescope.store_worker import StoreWorker

#: Below this much free space in the spool, capture does not start (a minute of a busy link fits).
MIN_FREE_BYTES = 16 << 20
#: Seconds between compaction / retention rounds while running.
MAINTENANCE_SECONDS = 300.0
#: Seconds between attempts to restart a capture that stopped on an error.
RETRY_SECONDS = 2.0

Log = Callable[[str], None]


class SensorError(IotscopeError):
    """The sensor cannot run: spool unusable or full, spool in use, capture refused; one line."""


@dataclass(frozen=True)
class SensorConfig:
    """Everything ``iotscope sensor`` was asked for."""

    capture: CaptureSettings
    store: Path
    keep: timedelta | None = None  # retention; None keeps everything
    maintenance_seconds: float = MAINTENANCE_SECONDS
    analyze_every: float = ANALYZE_EVERY_SECONDS  # see iotscope.telescope.live_analysis

    def __post_init__(self) -> None:
        if not 0 <= self.analyze_every <= 86400:
            raise SensorError(f"--analyze-every must be between 0 and 86400 seconds, got {self.analyze_every:g}")


@dataclass
class SensorSummary:
    """Totals of one run, printed when the sensor stops."""

    files: int = 0
    packets: int = 0
    captured: int = 0
    kernel_drops: int = 0
    drops_unknown: int = 0  # capture sessions that ended without a drop report (killed)
    rejected: list[Path] = field(default_factory=list)
    analyses: int = 0  # runs of the analytics passes


def spooled_files(spool: Path) -> list[Path]:
    """Capture files waiting in ``spool``, oldest first (names carry the session and a sequence)."""
    return sorted(p for p in spool.iterdir() if p.is_file() and p.name.endswith(CAPTURE_SUFFIXES))


def lock_spool(spool: Path) -> int:
    """Lock ``spool`` for this sensor; the descriptor is meant to be inherited by the capture.

    Not ``iotscope.store.lock.try_lock``: those locks are closed in every forked child on purpose,
    while this one must stay held by dumpcap for as long as dumpcap may write into the spool.
    """
    path = spool / ".sensor.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        holder = path.read_text(errors="replace").strip() or "?"
        raise SensorError(f"spool {spool} is in use by another sensor or its capture (pid {holder})") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def prepare_spool(spool: Path) -> None:
    """Create the spool (private: it holds raw traffic) and check it has room to start."""
    try:
        spool.mkdir(mode=0o700, parents=True, exist_ok=True)
        free = os.statvfs(spool)
    except OSError as exc:
        raise SensorError(f"spool {spool}: unusable ({exc.strerror})") from None
    if not os.access(spool, os.W_OK | os.X_OK):
        raise SensorError(f"spool {spool}: not writable by this user")
    available = free.f_bavail * free.f_frsize
    if available < MIN_FREE_BYTES:
        raise SensorError(
            f"spool {spool}: disk full ({available >> 10} KiB free, the sensor needs {MIN_FREE_BYTES >> 20} MiB)")


class Sensor:
    """One running sensor; :meth:`run` returns when ``stop`` is set (by a signal handler)."""

    def __init__(self, config: SensorConfig, metrics: SensorMetrics | None = None, log: Log = print) -> None:
        self.config = config
        self.metrics = metrics or SensorMetrics(config.capture.interface)
        self.log = log
        self.summary = SensorSummary()
        self._spool = config.capture.spool
        self._counted = 0  # packets of the current capture session already added to the totals
        self._ring: DumpcapRing | None = None  # the current capture session
        self._analysis = AnalysisSchedule(config.analyze_every)

    def run(self, stop: threading.Event) -> SensorSummary:
        """Capture and ingest until ``stop``; raises ``IotscopeError`` (one line) if it cannot start.

        Order matters: the spool and the store's write lock are checked before the capture starts
        (a refusal then leaves nothing running), and the spool is listed before the capture starts
        (so every file in that backlog is closed).
        """
        prepare_spool(self._spool)
        lock = lock_spool(self._spool)
        try:
            with StoreWorker(self.config.store) as store:
                store.run(PacketStore.lock_for_writing)
                backlog = spooled_files(self._spool)
                ring = self._start_capture(lock)
                self.log(f"capturing on {self.config.capture.interface} (dumpcap pid {ring.pid}) into {self._spool}")
                if backlog:
                    self.log(f"ingesting {len(backlog)} file(s) left in the spool by an earlier run")
                for path in backlog:
                    self._ingest(path, store)
                self._analysis.committed()  # once at start: whatever an earlier run left unanalysed
                self._analyze(store)
                self._loop(ring, lock, store, stop)
                self._analyze(store)  # after the last ingest: the store is analysed when the sensor ends
        finally:
            if self._ring is not None and self._ring.running():  # an error: its file waits in the spool
                self._ring.stop()
            os.close(lock)
            self.summary.analyses = self._analysis.runs
        return self.summary

    def _start_capture(self, lock: int) -> DumpcapRing:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        ring = DumpcapRing(self.config.capture, f"sensor-{stamp}", inherit_fds=(lock,))
        ring.start()
        self._ring = ring
        self._counted = 0
        self.metrics.paused.set(0)
        return ring

    def _loop(self, ring: DumpcapRing | None, lock: int, store: StoreWorker, stop: threading.Event) -> None:
        next_maintenance = time.monotonic() + self.config.maintenance_seconds
        paused_since: float | None = None
        while True:
            if stop.is_set() and ring is not None:
                self._end_session(ring)
                self._drain(ring, store)
                return
            if stop.is_set():  # stopped while paused: what is spooled is still ingested now
                for path in spooled_files(self._spool):
                    self._ingest(path, store)
                return
            if ring is None:  # paused: ingest what is spooled, then try again
                for path in spooled_files(self._spool):
                    self._ingest(path, store)
                self._analyze(store, backlog=False)
                if stop.wait(RETRY_SECONDS):
                    continue
                ring = self._resume(lock)
                if ring is not None and paused_since is not None:
                    self.log(f"capture resumed after {time.monotonic() - paused_since:.0f} s paused")
                    paused_since = None
                continue
            self._ingest_closed(ring, store, stop)
            self._analyze(store, backlog=not ring.closed.empty())
            if not ring.running() and not stop.is_set():
                end = self._end_session(ring)
                self._drain(ring, store)
                self.log(f"warning: capture stopped ({end or 'dumpcap exited'}); capture paused, spooled files kept")
                self.metrics.paused.set(1)
                paused_since = time.monotonic()
                ring = None
            if time.monotonic() >= next_maintenance:
                store.run(self.maintain)
                next_maintenance = time.monotonic() + self.config.maintenance_seconds

    def _resume(self, lock: int) -> DumpcapRing | None:
        try:
            prepare_spool(self._spool)
            return self._start_capture(lock)
        except IotscopeError:
            return None

    def _ingest_closed(self, ring: DumpcapRing, store: StoreWorker, stop: threading.Event) -> None:
        """Ingest the next file dumpcap closes; returns after it, after ~0.5 s without one, or on stop
        (one file per call, so analysis and maintenance get their turn however busy the link)."""
        if stop.is_set():
            return
        try:
            path = ring.closed.get(timeout=0.5)
        except queue.Empty:
            self._refresh_gauges(ring)
            return
        if path is None:
            ring.closed.put(None)  # keep the end marker for _drain
            return
        self._ingest(path, store)
        self._refresh_gauges(ring)

    def _analyze(self, store: StoreWorker, backlog: bool | None = None) -> None:
        """Run the analytics passes when the schedule says so (``backlog``: files wait to be
        ingested), or, with ``backlog`` None, whenever commits are pending (start and stop)."""
        run = self._analysis.pending if backlog is None else self._analysis.due(backlog)
        if run:
            store.run(self._analysis.run, self.log, self.metrics)

    def _end_session(self, ring: DumpcapRing) -> str | None:
        end = ring.stop()
        self._count_captured(ring)
        if end.kernel_drops is None:
            self.summary.drops_unknown += 1
            self.log("warning: the capture ended without reporting the kernel's drop counter")
        else:
            self.summary.kernel_drops += end.kernel_drops
            self.metrics.kernel_dropped.inc(end.kernel_drops)
            self.log(f"capture session: {ring.packets:,} packets written, {end.kernel_drops:,} dropped by the kernel")
        return end.error

    def _drain(self, ring: DumpcapRing, store: StoreWorker) -> None:
        while (path := ring.closed.get()) is not None:
            self._ingest(path, store)
        for path in spooled_files(self._spool):  # anything else in the spool (never lost)
            self._ingest(path, store)

    def _count_captured(self, ring: DumpcapRing) -> None:
        new = ring.packets - self._counted
        self._counted = ring.packets
        self.summary.captured += new
        self.metrics.captured.inc(new)

    def _refresh_gauges(self, ring: DumpcapRing) -> None:
        self._count_captured(ring)
        self.metrics.spool_bytes.set(sum(p.stat().st_size for p in spooled_files(self._spool)))
        self.metrics.refresh_interface()

    def _ingest(self, path: Path, store: StoreWorker) -> FileReport | None:
        """Ingest one closed spool file on the store's low-priority thread, then delete it."""
        return store.run(self._ingest_now, path)

    def _ingest_now(self, store: PacketStore, path: Path) -> FileReport | None:
        """Ingest one closed spool file, then delete it (only after the commit)."""
        if not path.exists():
            return None  # ingested and deleted already (listed twice)
        try:
            report = ingest_file(path, store)
        except CaptureError as exc:
            self._reject(path, str(exc))
            return None
        except OSError as exc:
            self.log(f"warning: {path.name}: ingest failed ({exc.strerror}); kept in the spool, retried later")
            return None
        committed = time.time()
        lag = committed - path.stat().st_mtime
        path.unlink()
        self.summary.files += 1
        if report.status == "ingested":
            self.summary.packets += report.packets
            self.metrics.ingested.inc(report.packets)
        self.metrics.files.inc()
        self.metrics.ingest_lag.set(max(0.0, lag))
        if report.status == "ingested" and report.packets:
            self._analysis.committed()  # analysed later: see iotscope.telescope.live_analysis
        return report

    def _reject(self, path: Path, reason: str) -> None:
        """A spool file that is not a readable capture is moved aside, never deleted silently."""
        rejected = self._spool / "rejected"
        rejected.mkdir(mode=0o700, exist_ok=True)
        target = rejected / path.name
        os.replace(path, target)
        self.summary.rejected.append(target)
        self.log(f"warning: {reason}; moved to {target}")

    def maintain(self, store: PacketStore) -> None:
        maintain_store(store, timedelta(seconds=2 * self.config.capture.rotate_seconds), self.config.keep, self.log)


def maintain_store(store: PacketStore, settle: timedelta, keep: timedelta | None, log: Log) -> None:
    """Compact hours that ended ``settle`` ago or more, apply retention ``keep``, and delete files
    retired longer than the grace period ago. Used by the sensor and ``ingest --watch``."""
    now = datetime.now(UTC)
    compacted = compact_hours(store, before=now - settle)
    if compacted:
        log(f"compacted {compacted} hour partition(s)")
    if keep is not None:
        removed = apply_retention(store, keep, now=now)
        if removed:
            log(f"retention {keep_text(keep)}: removed {removed} hour partition(s)")
    delete_retired(store)
