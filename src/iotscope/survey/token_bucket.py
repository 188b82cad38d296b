"""A rate limit that hundreds of concurrent senders share without waking together.

The sweep's politeness rests on it: one global rate of connection attempts however many
coroutines (and, divided, worker processes) send them.
"""

from __future__ import annotations

import asyncio
import time


class TokenBucket:
    """At most ``rate`` takes per second on average, with bursts of at most ``capacity``.

    Implemented as GCRA (virtual scheduling): each take reserves the next slot on a shared
    timeline and sleeps until it, so hundreds of concurrent takers stay exactly on the rate
    instead of waking together. The capacity is 10 ms worth of tokens: enough to absorb
    event-loop jitter at high rates, too little to matter to any target network.
    """

    def __init__(self, rate: float, capacity: float | None = None) -> None:
        if not rate > 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.capacity = capacity if capacity is not None else max(1.0, rate / 100)
        self._interval = 1.0 / rate
        self._burst = (self.capacity - 1) * self._interval
        self._next = time.monotonic() - self._burst

    def reserve(self) -> float:
        """Take a token now: the seconds to wait before using it (0.0 if it may be used at once).

        The sweep calls this instead of :meth:`take` on its hot path, so an unlimited rate costs
        no coroutine per attempt."""
        now = time.monotonic()
        slot = max(self._next, now - self._burst)
        self._next = slot + self._interval
        return slot - now if slot > now else 0.0

    async def take(self) -> None:
        delay = self.reserve()
        if delay:
            await asyncio.sleep(delay)
