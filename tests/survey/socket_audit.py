"""Watch socket creation and connects from inside the interpreter (``sys.addaudithook``).

Why an audit hook rather than a mock: the guard is tested unchanged, and the hook sees every
socket the process creates, whoever creates it. While a check is active the hook can also *veto*
an operation by raising, so a broken guard fails the test instead of sending a packet: the
survey tests may only ever contact 127.0.0.0/8 or ::1.
"""

from __future__ import annotations

import ipaddress
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


class SocketVetoed(RuntimeError):
    """Raised inside the socket call the active audit rejected."""


@dataclass
class SocketAudit:
    forbid_sockets: bool = False
    created: int = 0
    connects: list[tuple[str, int]] = field(default_factory=list)


_active: list[SocketAudit] = []


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def _hook(event: str, args: tuple) -> None:
    if not _active or event not in ("socket.__new__", "socket.connect"):
        return
    audit = _active[-1]
    if event == "socket.__new__":
        if threading.get_ident() == _owner[0]:
            audit.created += 1
            if audit.forbid_sockets:
                raise SocketVetoed("a socket was created while sockets are forbidden")
        return
    address = args[1]
    if isinstance(address, tuple) and isinstance(address[0], str):
        audit.connects.append((address[0], address[1]))
        if not _is_loopback(address[0]):
            raise SocketVetoed(f"connect to {address[0]} vetoed: tests only contact loopback")


_owner = [0]
sys.addaudithook(_hook)


@contextmanager
def socket_audit(*, forbid_sockets: bool = False) -> Iterator[SocketAudit]:
    """Record sockets created by this thread and every TCP connect; veto non-loopback connects
    (and, with ``forbid_sockets``, any socket creation at all)."""
    audit = SocketAudit(forbid_sockets=forbid_sockets)
    _owner[0] = threading.get_ident()
    _active.append(audit)
    try:
        yield audit
    finally:
        _active.remove(audit)
