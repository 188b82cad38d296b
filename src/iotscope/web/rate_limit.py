"""A per-client request budget for the public self-check: at most N requests in a sliding window.

Why: ``/check`` opens the store and runs the darknet and survey queries for each visit, and it is
meant to face the public; a budget per client address keeps one client from using the server up.
Memory is bounded: clients whose window has passed are forgotten when the table grows.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class RateLimiter:
    """``allow(client)`` is True for at most ``requests`` calls per ``window_s`` seconds per client."""

    requests: int
    window_s: float
    clock: Callable[[], float] = time.monotonic
    _seen: dict[str, deque[float]] = field(default_factory=dict, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.requests < 1 or self.window_s <= 0:
            raise ValueError("a rate limit needs at least 1 request in a positive window")

    def allow(self, client: str) -> tuple[bool, float]:
        """Whether ``client`` may make a request now, and if not, the seconds until it may."""
        now = self.clock()
        with self._lock:
            if len(self._seen) > 10_000:
                self._forget(now)
            times = self._seen.setdefault(client, deque())
            while times and times[0] <= now - self.window_s:
                times.popleft()
            if len(times) >= self.requests:
                return False, times[0] + self.window_s - now
            times.append(now)
            return True, 0.0

    def _forget(self, now: float) -> None:
        for client in [c for c, t in self._seen.items() if not t or t[-1] <= now - self.window_s]:
            del self._seen[client]
