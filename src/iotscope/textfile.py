"""Reading the files a user names (scope, blocklist, credentials, zmap/masscan output, category and
research-scanner lists, sharing policies, feeds and keys).

Both halves and ``share`` read user files, so the one reader lives at the package top level.

A missing, unreadable or unsuitable file is the user's mistake, not a bug: it must end as one
line naming the file and what it was meant to be, raised as the caller's own typed error (which
the CLI maps to exit 2), never as a traceback, a hang or an exhausted memory. So every such file is
read here, and only if it is a regular file no larger than the cap of its kind:

* a device (``blocklist = "/dev/zero"``) would be read until ``MemoryError``, a FIFO (``--scope``
  naming a pipe) would block until some writer appears: both are refused before anything is read;
* the path is checked with ``stat`` before it is opened (opening some devices has side effects),
  opened with ``O_NONBLOCK`` (a FIFO swapped in after the check cannot block the open) and checked
  again on the open descriptor (what is read is what was checked);
* the size is capped before reading (a sparse 64 GiB file is refused at once) and while reading (a
  file that grows is not followed past the cap).

The caps (bytes) are per kind of file, defined by the module that reads that kind:
:data:`DEFAULT_MAX_BYTES` for configuration (scope and credential files), ``BLOCKLIST_MAX_BYTES``
in :mod:`iotscope.survey.scope`, ``IMPORT_MAX_BYTES`` in :mod:`iotscope.survey.l4import`.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

#: Cap for configuration files (scope, credentials): hand-written TOML is a few KiB.
DEFAULT_MAX_BYTES = 1 << 20

_READ_CHUNK = 1 << 20

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def read_text_file(
    path: Path, what: str, error: type[Exception], where: str | None = None, *, max_bytes: int = DEFAULT_MAX_BYTES
) -> str:
    """The UTF-8 text of ``path``; else ``error("<where>: <what> not found")``, "cannot read <what>
    (...)" or "<what> is N bytes, more than the cap of M bytes".

    ``what`` names the file for the user ("scope file"); ``where`` (default: the path) is the
    place to point at, e.g. the scope file that names a missing blocklist.
    """
    data = read_user_bytes(path, what, error, where, max_bytes=max_bytes)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{_where(path, where)}: cannot read {what} (not UTF-8 text: {exc})") from None


def read_user_bytes(
    path: Path, what: str, error: type[Exception], where: str | None = None, *, max_bytes: int = DEFAULT_MAX_BYTES
) -> bytes:
    """The content of the regular file ``path``, at most ``max_bytes`` of it (see the module doc)."""
    where = _where(path, where)
    try:
        check_regular(os.stat(path), what, error, where, max_bytes=max_bytes)
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise error(f"{where}: {what} not found") from None
    except OSError as exc:
        raise error(f"{where}: cannot read {what} ({exc.strerror or exc})") from None
    try:
        check_regular(os.fstat(fd), what, error, where, max_bytes=max_bytes)
        chunks = []
        total = 0
        while chunk := os.read(fd, _READ_CHUNK):
            total += len(chunk)
            if total > max_bytes:
                raise error(f"{where}: {what} grew past the cap of {max_bytes:,} bytes while it was read")
            chunks.append(chunk)
        return b"".join(chunks)
    except OSError as exc:
        raise error(f"{where}: cannot read {what} ({exc.strerror or exc})") from None
    finally:
        os.close(fd)


def check_regular(status: os.stat_result, what: str, error: type[Exception], where: str, *, max_bytes: int) -> None:
    """Raise ``error`` unless ``status`` is a regular file of at most ``max_bytes``."""
    if not stat.S_ISREG(status.st_mode):
        kind = next((name for test, name in _KINDS if test(status.st_mode)), "not a file")
        raise error(f"{where}: cannot read {what} ({kind}, not a regular file)")
    if status.st_size > max_bytes:
        raise error(f"{where}: {what} is {status.st_size:,} bytes, more than the cap of {max_bytes:,} bytes")


def _where(path: Path, where: str | None) -> str:
    return str(path) if where is None else where
