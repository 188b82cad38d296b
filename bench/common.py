"""Shared helpers of the benchmarks: run a command, measure wall time and peak RSS, describe the machine."""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Run:
    """One measured process: wall seconds, peak resident memory and CPU seconds (user + system, all threads)."""

    seconds: float
    peak_rss_mb: float
    stdout: str
    cpu_seconds: float = 0.0


def measure(cmd: list[str], **kwargs) -> Run:
    """Run ``cmd`` to completion; peak RSS is the kernel's rusage of that one child (``wait4``)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, **kwargs)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            raise RuntimeError(f"{cmd[0]} failed ({proc.returncode}): {err.read().decode(errors='replace')[-500:]}")
        return Run(seconds, usage.ru_maxrss / 1024, out.read().decode(errors="replace"), usage.ru_utime + usage.ru_stime)


def machine() -> str:
    """One line that says what the numbers were measured on."""
    cpu = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{cpu}, {os.cpu_count()} cores, {mem_gb:.0f} GiB, {platform.system()} {platform.release()}, Python {platform.python_version()}"


def bench_parser(doc: str) -> argparse.ArgumentParser:
    """A benchmark's command line, described by the first line of its docstring."""
    return argparse.ArgumentParser(description=doc.splitlines()[0])


def parse_bench_args(parser: argparse.ArgumentParser) -> argparse.Namespace:
    """``parser``'s arguments plus the ``--out`` every benchmark has (where its results go,
    created if missing), added last so that it is listed last."""
    parser.add_argument("--out", type=Path, default=Path("bench/out"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    return args


def timed(fn: Callable[[], object]) -> tuple[float, float]:
    """Wall seconds and this process's CPU seconds (all threads) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def best_of(runs: int, fn: Callable[[], object]) -> float:
    """Fastest wall time of ``runs`` calls (the machine is shared; the minimum is the least disturbed)."""
    return min(timed(fn)[0] for _ in range(runs))
