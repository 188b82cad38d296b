"""The kernel's process table (/proc), for tests that prove child processes end with their parent."""

from __future__ import annotations

from pathlib import Path


def _stat_fields(pid: int | str) -> list[str]:
    """The fields of ``/proc/PID/stat`` after the command name (state first, then the parent)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def running(pid: int) -> bool:
    """Alive and not a zombie (an orphan's zombie may wait for a reaper in a container)."""
    try:
        return _stat_fields(pid)[0] != "Z"
    except OSError:
        return False


def parents() -> dict[int, int]:
    """Parent pid of every live (not zombie) process."""
    table: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = _stat_fields(stat.parent.name)
        except OSError:
            continue
        if fields[0] != "Z":
            table[int(stat.parent.name)] = int(fields[1])
    return table


def children(pid: int) -> list[int]:
    """The live children of ``pid``."""
    return [child for child, parent in parents().items() if parent == pid]


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid``: children, their children, and so on."""
    table = parents()
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in table.items() if parent in frontier} - found
        found |= frontier
    return found
