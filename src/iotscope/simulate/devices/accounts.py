"""The one account of an emulated service: password check, lockout, and what was tried.

Every protocol asks the same question ("may this user in?"), and the survey's tests need the same
answer everywhere: how many attempts a device saw and whether the survey locked it out. Keeping
that in one small class means telnet, SSH, HTTP and FTP cannot drift apart in how a lockout works.
"""

from __future__ import annotations

import hmac
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class ServiceStats:
    """Counters a test can read to check that a survey stayed polite (no lockout, capped attempts)."""

    connections: int = 0
    attempts: int = 0
    successes: int = 0
    lockouts: int = 0


@dataclass
class Account:
    """A service's single account.

    ``username is None`` means the service asks for no credentials at all (an open device).
    With ``lockout_after`` set, that many failures within ``lockout_window`` seconds lock the
    account for ``lockout_seconds``: while locked even the right password is refused, as on
    hardened firmware that counts failures.
    """

    username: str | None
    password: str | None
    lockout_after: int | None = None
    lockout_window: float = 60.0
    lockout_seconds: float = 300.0
    clock: Callable[[], float] = time.monotonic
    stats: ServiceStats = field(default_factory=ServiceStats)
    _failures: deque[float] = field(default_factory=deque, repr=False)
    _locked_until: float = field(default=0.0, repr=False)

    @property
    def open(self) -> bool:
        """True when no login is needed."""
        return self.username is None

    @property
    def locked(self) -> bool:
        return self.clock() < self._locked_until

    def check(self, username: str, password: str) -> bool:
        """One login attempt with a plaintext password (telnet, SSH, FTP, HTTP Basic)."""
        return self.attempt(
            username, lambda real: hmac.compare_digest(password.encode(), real.encode())
        )

    def attempt(self, username: str, proves_password: Callable[[str], bool]) -> bool:
        """One login attempt where the client proves knowledge of the password without sending it
        (HTTP Digest): ``proves_password`` gets the real password and says whether the proof fits."""
        self.stats.attempts += 1
        if self.open:
            self.stats.successes += 1
            return True
        now = self.clock()
        matches = hmac.compare_digest(username.encode(), self.username.encode()) and (
            proves_password(self.password or "")
        )
        if matches and now >= self._locked_until:
            self.stats.successes += 1
            return True
        if not matches:
            self._record_failure(now)
        return False

    def _record_failure(self, now: float) -> None:
        if self.lockout_after is None:
            return
        self._failures.append(now)
        while self._failures and self._failures[0] < now - self.lockout_window:
            self._failures.popleft()
        if len(self._failures) >= self.lockout_after and now >= self._locked_until:
            self._locked_until = now + self.lockout_seconds
            self.stats.lockouts += 1
            self._failures.clear()
