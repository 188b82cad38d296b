"""The survey benchmark's processes (nmap, hydra, iotscope's sweep and probes), each bounded in
time and all ended with the benchmark, even when it fails or is signalled mid-measure.

Imported by ``bench/survey/run.py``, which puts ``bench/`` on the path for :mod:`common`.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from common import Run, measure

#: Seconds any one peer or iotscope process may take before ``timeout`` ends it (and its children).
PROCESS_LIMIT = 60
_TIMED_OUT = 124  # timeout(1)'s exit status
_EXIT_LINE = "bench-exit-status "


def limited(cmd: list[str]) -> list[str]:
    """``cmd`` under ``timeout``: it (and its children, in timeout's process group) end by
    PROCESS_LIMIT seconds even if this script is killed outright."""
    return ["timeout", "-k", "5", str(PROCESS_LIMIT), *cmd]


def measure_tolerant(cmd: list[str], **kwargs: Any) -> tuple[Run, str | None]:
    """Like :func:`measure_bounded`, but a failing ``cmd`` still gives its output (hydra exits 255 after
    worker errors even when it found pairs) and the failure as text."""
    run = measure_bounded(["sh", "-c", f'"$@"; echo "{_EXIT_LINE}$?"', "sh", *limited(cmd)], limited=False, **kwargs)
    output, _, status_line = run.stdout.rstrip("\n").rpartition("\n")
    status = int(status_line.removeprefix(_EXIT_LINE))
    failure = None
    if status == _TIMED_OUT:
        failure = f"did not finish in {PROCESS_LIMIT} s"
    elif status != 0:
        failure = f"exit status {status}"
    return Run(run.seconds, run.peak_rss_mb, output), failure


def measure_bounded(cmd: list[str], *, limited: bool = True, **kwargs: Any) -> Run:
    """:func:`common.measure` of ``cmd`` (under :func:`limited` unless told), its time echoed to stderr."""
    started = time.monotonic()
    try:
        return measure(limited(cmd) if limited else cmd, **kwargs)
    finally:
        print(f"  {time.monotonic() - started:6.2f} s  {' '.join(cmd[:8])} ...", file=sys.stderr)


def end_children() -> None:
    """Terminate whatever this process started and is still running (a failure or a signal
    mid-measure): every descendant, each ``timeout`` together with its process group."""
    parents: dict[int, tuple[int, int]] = {}  # pid -> (ppid, pgid)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents[int(entry.name)] = (int(fields[1]), int(fields[2]))
    mine, frontier = set(), {os.getpid()}
    while frontier:
        frontier = {pid for pid, (ppid, _) in parents.items() if ppid in frontier} - mine
        mine |= frontier
    for pid in mine:
        try:
            if parents[pid][1] == pid:
                os.killpg(pid, signal.SIGTERM)
            else:
                os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass


def exit_on_signal(signum: int, _frame: object) -> None:
    """A SIGTERM handler: leave through ``finally`` blocks (which stop the fleet and the peers)."""
    raise SystemExit(128 + signum)
