"""Exclusive locks on a file, held by the one process that writes something: an ingest, a survey.

Why ``flock``: the kernel drops the lock when the holder's file descriptor is closed, which
happens when its process dies however it dies (``kill -9`` included), so a crash never leaves a
stale lock for a person to delete, and a lock that is free really means nobody is writing.

A forked child would share the lock with its parent (it inherits the descriptor), so a child
that outlives its parent would keep the lock. Every lock taken here is closed in the child right
after a fork: only the process that took a lock holds it.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

_held: set[int] = set()  # file descriptors of the locks this process holds


def _close_in_child() -> None:
    for fd in _held:
        try:
            os.close(fd)
        except OSError:
            pass
    _held.clear()


os.register_at_fork(after_in_child=_close_in_child)


def try_lock(path: Path) -> int | None:
    """Take an exclusive lock on ``path`` (created if missing, private): the file descriptor that
    holds it, or None if another process holds it. The holder's pid is written into the file so a
    refusal can name it (:func:`lock_holder`). Release with :func:`unlock`."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    _held.add(fd)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    except OSError:
        pass  # a full disk: the lock holds anyway, only the pid is missing from refusals
    return fd


def unlock(fd: int) -> None:
    """Release a lock taken by :func:`try_lock` (closing its file descriptor). In a forked child
    the lock was closed already, and the number may name another file by now: left alone."""
    if fd in _held:
        _held.discard(fd)
        os.close(fd)


def lock_holder(path: Path) -> int | None:
    """The pid written by the process that holds (or last held) the lock on ``path``, if readable."""
    try:
        return int(path.read_text(encoding="ascii").strip())
    except (OSError, ValueError):
        return None
