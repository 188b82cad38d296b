"""The store's file lock: one holder at a time, released by death, never inherited by a fork."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from iotscope.store.lock import lock_holder, try_lock, unlock

TRY_LOCK = "import sys; from pathlib import Path; from iotscope.store.lock import try_lock; " \
    "print('locked' if try_lock(Path(sys.argv[1])) is not None else 'refused')"


def other_process_tries(path: Path) -> str:
    result = subprocess.run([sys.executable, "-c", TRY_LOCK, str(path)], capture_output=True, text=True, check=True)
    return result.stdout.strip()


def test_second_holder_refused_and_named(tmp_path: Path) -> None:
    path = tmp_path / ".x.lock"
    fd = try_lock(path)
    assert fd is not None and lock_holder(path) == os.getpid()
    assert other_process_tries(path) == "refused"
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    unlock(fd)
    assert other_process_tries(path) == "locked"


def test_a_forked_child_does_not_keep_the_lock(tmp_path: Path) -> None:
    """A child forked while the lock is held (a sweep worker) must not hold it once its parent
    lets go or dies: otherwise a surviving child would block every later run."""
    path = tmp_path / ".x.lock"
    fd = try_lock(path)
    assert fd is not None
    child = os.fork()
    if child == 0:  # pragma: no cover - the child only sleeps
        time.sleep(5)
        os._exit(0)
    try:
        unlock(fd)
        assert other_process_tries(path) == "locked"
    finally:
        os.kill(child, 9)
        os.waitpid(child, 0)
