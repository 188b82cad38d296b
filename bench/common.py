"""Shared helpers of the benchmarks: run a command, measure wall time and peak RSS, describe the machine."""

from __future__ import annotations

import os
import platform
import subprocess
import tempfile
import time
from dataclasses import dataclass


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
