"""Children that end with their parent, even when the parent is killed with SIGKILL."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time

from iotscope.lifetime import end_with_parent
from tests.process_table import running

PARENT = """
import os, signal, sys, time
from iotscope.lifetime import end_with_parent
parent = os.getpid()
child = os.fork()
if child == 0:
    end_with_parent(parent)
    time.sleep(30)
    os._exit(0)
print(child, flush=True)
time.sleep(0.3)
os.kill(parent, signal.SIGKILL)
"""


def test_child_dies_with_a_parent_killed_by_sigkill() -> None:
    parent = subprocess.run([sys.executable, "-c", PARENT], capture_output=True, text=True, timeout=30, check=False)
    assert parent.returncode == -signal.SIGKILL
    child = int(parent.stdout)
    try:
        deadline = time.monotonic() + 2
        while running(child) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not running(child)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signal.SIGKILL)


def test_child_whose_parent_is_gone_already_exits() -> None:
    """The race PR_SET_PDEATHSIG leaves open: the parent died between fork and prctl."""
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        end_with_parent(os.getppid() + 1 if os.getppid() != 1 else 2)  # "not my parent any more"
        os._exit(0)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 1
