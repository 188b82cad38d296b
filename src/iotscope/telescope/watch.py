"""``iotscope ingest --watch DIR``: ingest the closed capture files other tools write into a directory.

Sites that capture with their own tools (``tcpdump -G``, ``dumpcap -b``, a vendor's probe) drop
rotating files into a directory. A file is taken only once it is *closed*, which from outside the
writer means both:

* no process has it open for writing: every ``/proc/PID/fd`` entry that names it is checked for
  write access in ``/proc/PID/fdinfo`` (processes of other users cannot be seen without
  privileges, hence also:)
* its size and modification time have not changed for ``settle`` seconds.

Files are never deleted or moved: they belong to the tool that wrote them (and its rotation). The
store's content hash makes a restart of the watch re-ingest nothing; each file seen is hashed once.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from iotscope.capture import CaptureError
from iotscope.store.packets import PacketStore
from iotscope.telescope.ingest import FileReport, capture_files, ingest_file
from iotscope.telescope.live_analysis import ANALYZE_EVERY_SECONDS, AnalysisSchedule
from iotscope.telescope.metrics import SensorMetrics
from iotscope.telescope.sensor import MAINTENANCE_SECONDS, maintain_store

#: Seconds a file's size and mtime must stay unchanged before it counts as closed.
DEFAULT_SETTLE_SECONDS = 5.0
POLL_SECONDS = 1.0


def open_for_writing(paths: set[Path]) -> set[Path]:
    """Those of ``paths`` that some visible process holds open with write access."""
    wanted = {os.path.realpath(p): p for p in paths}
    found: set[Path] = set()
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        fd_dir = f"/proc/{pid}/fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"{fd_dir}/{fd}")
            except OSError:
                continue
            if target in wanted and _writable(pid, fd):
                found.add(wanted[target])
    return found


def _writable(pid: str, fd: str) -> bool:
    try:
        with open(f"/proc/{pid}/fdinfo/{fd}") as info:
            for line in info:
                if line.startswith("flags:"):
                    return int(line.split()[1], 8) & os.O_ACCMODE in (os.O_WRONLY, os.O_RDWR)
    except (OSError, ValueError):
        return True  # cannot tell: assume it may be written
    return True


class DirectoryWatch:
    """Polls a directory and ingests each capture once it is closed."""

    def __init__(self, directory: Path, store: PacketStore, settle: float = DEFAULT_SETTLE_SECONDS,
                 metrics: SensorMetrics | None = None, log: Callable[[str], None] = print,
                 analyze_every: float = ANALYZE_EVERY_SECONDS) -> None:
        self.directory = directory
        self.store = store
        self.settle = settle
        self.metrics = metrics or SensorMetrics()
        self.log = log
        self.analysis = AnalysisSchedule(analyze_every)
        self._seen: dict[Path, tuple[int, int, float]] = {}  # path -> (size, mtime_ns, unchanged since)
        self._done: set[tuple[Path, int, int]] = set()  # (path, size, mtime_ns) handled

    def poll(self) -> list[FileReport]:
        """One look at the directory: ingest the files that are closed now."""
        now = time.monotonic()
        candidates: list[tuple[Path, int, int]] = []
        for path in capture_files([self.directory]):
            try:
                st = path.stat()
            except OSError:
                continue
            key = (path, st.st_size, st.st_mtime_ns)
            if key in self._done:
                continue
            previous = self._seen.get(path)
            if previous is None or previous[:2] != (st.st_size, st.st_mtime_ns):
                self._seen[path] = (st.st_size, st.st_mtime_ns, now)
                continue
            if now - previous[2] >= self.settle:
                candidates.append(key)
        busy = open_for_writing({k[0] for k in candidates}) if candidates else set()
        reports = []
        for key in candidates:
            if key[0] in busy:
                continue
            report = self._ingest(key[0])
            self._done.add(key)
            self._seen.pop(key[0], None)
            if report is not None:
                reports.append(report)
        return reports

    def _ingest(self, path: Path) -> FileReport | None:
        try:
            report = ingest_file(path, self.store)
        except CaptureError as exc:
            self.log(f"warning: {exc}; skipped")
            return None
        self.metrics.files.inc()
        if report.status == "ingested":
            self.metrics.ingested.inc(report.packets)
        self.metrics.ingest_lag.set(max(0.0, time.time() - path.stat().st_mtime))
        if report.status == "ingested" and report.packets:
            self.analysis.committed()  # analysed later: see iotscope.telescope.live_analysis
        return report

    def run(self, stop: threading.Event, on_report: Callable[[FileReport], None] | None = None) -> None:
        """Poll until ``stop`` is set; every ``MAINTENANCE_SECONDS`` compact the hours that ended.
        Analysis: once at start (what an earlier run left), on the schedule, and once at the end."""
        self.analysis.committed()
        self.analysis.run(self.store, self.log, self.metrics)
        next_maintenance = time.monotonic() + MAINTENANCE_SECONDS
        while not stop.is_set():
            for report in self.poll():
                if on_report is not None:
                    on_report(report)
            self.analysis.run_if_due(self.store, False, self.log, self.metrics)
            if time.monotonic() >= next_maintenance:
                maintain_store(self.store, timedelta(minutes=5), None, self.log)
                next_maintenance = time.monotonic() + MAINTENANCE_SECONDS
            stop.wait(POLL_SECONDS)
        if self.analysis.pending:
            self.analysis.run(self.store, self.log, self.metrics)
