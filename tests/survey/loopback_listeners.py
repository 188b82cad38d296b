"""Real TCP listeners on loopback addresses that count the connections a sweep makes to them."""

from __future__ import annotations

import socket
from collections import Counter


class Listeners:
    """TCP listeners on ``hosts`` (loopback), one port for all, that count the connections they receive."""

    def __init__(self, hosts: list[str]) -> None:
        self.sockets: dict[str, socket.socket] = {}
        first = socket.create_server((hosts[0], 0))
        self.port = first.getsockname()[1]
        self.sockets[hosts[0]] = first
        for host in hosts[1:]:
            self.sockets[host] = socket.create_server((host, self.port))
        for sock in self.sockets.values():
            sock.setblocking(False)
        self.accepted: Counter[str] = Counter()

    def count(self) -> Counter[str]:
        """Connections received so far, per host (accepting and closing those waiting)."""
        for host, sock in self.sockets.items():
            while True:
                try:
                    conn, _ = sock.accept()
                except BlockingIOError:
                    break
                conn.close()
                self.accepted[host] += 1
        return self.accepted

    def close(self) -> None:
        for sock in self.sockets.values():
            sock.close()

    def total(self) -> int:
        """Connections received so far, all hosts together."""
        return sum(self.count().values())
