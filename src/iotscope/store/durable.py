"""Moving a finished file into a dataset so that a crash can neither lose it nor show half of it.

The packet store and the findings dataset both write a file in a staging directory, then rename it
into place: readers only ever see whole files. The rename is durable only once the file's bytes
and the new directory entry are on disk, hence an fsync of each (POSIX promises neither otherwise).
"""

from __future__ import annotations

import errno
import os
from pathlib import Path


def fsync_path(path: Path) -> None:
    """Flush a file or a directory (its entries) to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def move_into_place(staged: Path, target: Path) -> None:
    """Rename the finished file ``staged`` to ``target`` (creating its directory), durably."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fsync_path(staged)
    os.replace(staged, target)
    fsync_path(target.parent)


def is_disk_full(exc: BaseException) -> bool:
    """Whether a failed write ran out of space: an ``OSError`` with ENOSPC/EDQUOT/EFBIG, or a library
    (SQLite, Arrow) that reports it only in its message. Writers use it to tell the user the one
    thing to do (free space, run again) instead of a library's wording."""
    text = str(exc)
    return getattr(exc, "errno", None) in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG) or any(
        words in text for words in ("No space left", "disk is full", "Disk quota", "File too large"))
