"""TCP port lists as nmap and zmap users type them: ``1-1024,2323,8000-8100``.

Operators come to the survey from nmap (``-p``) and zmap (``-p``/``--target-ports``), so the same
text means the same ports here: single ports and inclusive ranges, comma-separated, plus nmap's
open ends (``-1024`` is 1-1024, ``60000-`` is 60000-65535, ``-`` is every port). One parser, in
the library, so the CLI, the benchmarks and any later front end agree on what a spec means and
on how a bad one is reported (one line naming the offending item).
"""

from __future__ import annotations

from iotscope.errors import IotscopeError

LOWEST_PORT = 1
HIGHEST_PORT = 65535


class PortSpecError(IotscopeError, ValueError):
    """A port list that is empty, not numbers, reversed or outside 1..65535."""


def parse_ports(text: str) -> list[int]:
    """The ports of ``text`` in the order given, each once (``"23,22,23"`` -> ``[23, 22]``).

    Raises :class:`PortSpecError` naming the item that is wrong: an empty list or item, a word,
    a port outside 1..65535, or a reversed range (``1024-1``)."""
    if not text.strip():
        raise PortSpecError("empty port list: expected comma-separated ports or ranges, e.g. 1-1024,2323,8000-8100")
    ports: dict[int, None] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            raise PortSpecError(f"{text!r}: empty item between commas")
        low, high = _bounds(item)
        ports.update(dict.fromkeys(range(low, high + 1)))
    return list(ports)


def _bounds(item: str) -> tuple[int, int]:
    if "-" not in item:
        port = _number(item, item)
        return port, port
    first, _, last = item.partition("-")
    low = _number(first.strip(), item) if first.strip() else LOWEST_PORT
    high = _number(last.strip(), item) if last.strip() else HIGHEST_PORT
    if low > high:
        raise PortSpecError(f"range {item!r} is reversed: write {high}-{low}")
    return low, high


def _number(text: str, item: str) -> int:
    if not (text.isascii() and text.isdigit()):  # no "+23", "2_3", "0x17", "２３"
        raise PortSpecError(
            f"{item[:40]!r} is not a port or range: expected comma-separated numbers or ranges, e.g. 1-1024,2323,22"
        )
    port = int(text) if len(text) <= 6 else HIGHEST_PORT + 1  # (no 5,000-digit int parse)
    if not LOWEST_PORT <= port <= HIGHEST_PORT:
        raise PortSpecError(f"port {text[:20]} in {item[:40]!r}: ports are {LOWEST_PORT}..{HIGHEST_PORT}")
    return port
