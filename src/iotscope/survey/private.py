"""Evidence stays with the operator: the survey's files are 0600 and its directories 0700.

Findings name vulnerable devices and the survey state lists every open port of a network, so
other local users must not read them. The process umask is not enough (a permissive 002 or 022
is the norm on desktops and in containers), hence explicit modes on everything the survey
creates, set after creation because ``mkdir``/``open`` modes are filtered by the umask.
"""

from __future__ import annotations

import os
from pathlib import Path

PRIVATE_DIRECTORY = 0o700
PRIVATE_FILE = 0o600


def private_directory(path: Path) -> Path:
    """Create ``path`` (and missing parents, each 0700) and make ``path`` itself 0700.

    Directories that already existed above ``path`` are left as they are: they may be the
    operator's (a home directory, a shared store root).
    """
    missing = []
    for directory in (path, *path.parents):
        if directory.is_dir():
            break
        missing.append(directory)
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=PRIVATE_DIRECTORY)
        except FileExistsError:
            pass  # made by a concurrent writer; the chmod below still applies
        os.chmod(directory, PRIVATE_DIRECTORY)
    os.chmod(path, PRIVATE_DIRECTORY)
    return path


def private_file(path: Path) -> Path:
    """Create ``path`` empty if missing, and make it 0600 either way (older stores tightened)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, PRIVATE_FILE)
    try:
        os.fchmod(fd, PRIVATE_FILE)
    finally:
        os.close(fd)
    return path


def open_private(path: Path) -> int:
    """A new file at ``path`` (which must not exist), 0600 from the first byte: a descriptor."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, PRIVATE_FILE)
    os.fchmod(fd, PRIVATE_FILE)
    return fd
