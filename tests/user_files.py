"""Paths a user may name by mistake that must be refused before anything is read.

Each value is (path, the words the one-line refusal must contain). Before the one capped reader
(:mod:`iotscope.textfile`) was used everywhere, the FIFO hung its reader forever, ``/dev/zero``
was read until ``MemoryError`` and a directory or a huge file gave a different message per module.
"""

from __future__ import annotations

import os
from pathlib import Path

from iotscope.textfile import DEFAULT_MAX_BYTES

KINDS = ("fifo", "dev-zero", "directory", "huge")


def unsuitable_file(kind: str, tmp_path: Path, cap: int = DEFAULT_MAX_BYTES) -> tuple[Path, str]:
    """A real FIFO, /dev/zero, a directory or a sparse file past ``cap`` (default: the configuration cap)."""
    if kind == "fifo":
        path = tmp_path / "pipe.toml"
        os.mkfifo(path)
        return path, "(a FIFO, not a regular file)"
    if kind == "dev-zero":
        return Path("/dev/zero"), "(a character device, not a regular file)"
    if kind == "directory":
        path = tmp_path / "dir.toml"
        path.mkdir()
        return path, "(a directory, not a regular file)"
    path = tmp_path / "huge.toml"
    with open(path, "wb") as handle:
        handle.truncate(cap + 1)
    return path, "more than the cap"
