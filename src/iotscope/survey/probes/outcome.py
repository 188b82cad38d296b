"""What a probe reports, and the one place that turns a misbehaving device into an error result.

A probe body raises :class:`ProbeFailure` (or lets a timeout, a socket error or a protocol error
escape); :func:`run_probe` converts all of that into ``status="error"`` within the deadline, so a
hostile device can never crash or stall the survey. Scope refusals are the exception: they
propagate, because contacting an unauthorized target is a bug to stop on, not a device to log.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Literal

from iotscope.survey.credentials import Credential, attempt_order, prefer_vendor
from iotscope.survey.probes.fingerprint import device_maker, guess_device, name_in_greeting
from iotscope.survey.probes.limits import ProbeLimits
from iotscope.survey.scope import OutOfScopeError, Scope

ProbeStatus = Literal["vulnerable", "not_vulnerable", "error", "incomplete"]

#: Banners are evidence in reports: printable ASCII only, one line, bounded.
BANNER_CHARS = 256
_NON_PRINTABLE = re.compile(r"[^\x20-\x7e]+")


class ProbeFailure(Exception):
    """The device did not behave like the service (timeout, size cap, garbage, endless negotiation)."""


@dataclass(frozen=True, slots=True)
class ProbeResult:
    protocol: str
    status: ProbeStatus
    #: Id of the credential that logged in; None when nothing needed one (or nothing worked).
    credential_id: str | None = None
    banner: str = ""
    #: Vendor/software guess from what the device said ("BusyBox 1.35.0", "Hikvision", ...).
    device: str | None = None
    detail: str = ""
    attempts: int = 0
    #: Credential pairs not tried because the device's deadline ended first (``incomplete``).
    remaining: int | None = None
    #: When the probe reached this verdict (UTC): the evidence's time, not the survey's start.
    confirmed_at: datetime | None = None
    #: Ids of the listed pairs tried, in order: what ``--resume`` skips when it continues an
    #: ``incomplete`` service (the journal keeps them, the findings do not need them).
    tried: tuple[str, ...] = ()
    #: Connections opened to the service: fewer than ``attempts`` where the protocol lets one
    #: connection carry several logins (SSH's MaxAuthTries, telnet's re-prompt, FTP's USER again).
    connections: int = 0


def sanitize_banner(raw: bytes | str, limit: int = BANNER_CHARS) -> str:
    """Printable ASCII, whitespace runs and control bytes folded to one space, at most ``limit`` chars."""
    text = raw.decode("latin-1") if isinstance(raw, bytes) else raw
    return _NON_PRINTABLE.sub(" ", text[: limit * 4]).strip()[:limit]


class ProbeRecord:
    """What a probe has seen so far, so that an error result still carries banner and attempts.

    The banner is what the device said *before the first login attempt* (greeting, issue text,
    login prompt, SSH version, HTTP server/realm/title): it identifies the device. What follows
    (echoed user names, "Login incorrect", a shell) is not evidence anyone needs, and may repeat
    what was typed; it is kept apart, bounded, only to help guess the device.
    """

    def __init__(self, protocol: str) -> None:
        self.protocol = protocol
        self._said = bytearray()  # what the device said before the first attempt (bounded)
        self._after = bytearray()  # what it said after (bounded; for the device guess only)
        self.attempts = 0  # credentials sent
        self.tried: list[str] = []  # ids of the listed pairs tried, in order (see attempt)
        self.connections = 0  # connections opened to the service
        self.rejected = 0  # attempts the device answered with a clear "no"
        self._sent: dict[str, str] = {}  # credential id -> password, of the credentials sent
        self.untried = 0  # listed pairs left out by the max_attempts cap (see plan_attempts)
        #: The pairs still to try, shared by the service's parallel connections (see planned).
        self.plan: deque[Credential] | None = None
        self.lanes = 1  # connections probing the service at the same time
        self._next_attempt_at = 0.0  # event-loop time before which no lane may start an attempt
        self._last_attempt_at = float("-inf")  # event-loop time the last attempt of any lane started

    def planned(
        self, credentials: list[Credential], limits: ProbeLimits, reserved: int = 0, first: Iterable[Credential] = (),
    ) -> deque[Credential]:
        """The service's queue of pairs to try, planned once (by :func:`plan_attempts`, after
        ``first``) by whichever connection has seen the device's banner first; every parallel
        connection takes its next pair from it, so no pair is tried twice."""
        if self.plan is None:
            self.plan = deque([*first, *plan_attempts(credentials, self, limits, reserved)])
        return self.plan

    def sending(self, credential: Credential) -> None:
        """Note that ``credential`` goes to the device now (its password is masked wherever the
        result shows what the device said, should the device echo it)."""
        self._sent[credential.id] = credential.password

    def attempt(self, credential: Credential) -> None:
        """Count a login attempt with ``credential`` (its id is what ``--resume`` later skips)."""
        self.attempts += 1
        self.tried.append(credential.id)

    def unattempt(self, credential: Credential) -> None:
        """Take back the last attempt: the device hung up before answering it (it is tried again)."""
        self.attempts -= 1
        if self.tried and self.tried[-1] == credential.id:
            self.tried.pop()

    async def pace(self, limits: ProbeLimits) -> None:
        """Wait ``limits.attempt_delay`` before any login attempt but the first: a device that
        locks an account after quick failures would lock its owner out, so probes go slowly.
        Parallel connections to one service share the pace: their attempts start at least
        ``attempt_delay`` apart, so a second connection adds no login rate, only hides fail delays."""
        if self.lanes == 1:
            if self.attempts:
                await asyncio.sleep(limits.attempt_delay)
            return
        loop = asyncio.get_running_loop()
        start = max(loop.time(), self._next_attempt_at)
        self._next_attempt_at = start + limits.attempt_delay
        await asyncio.sleep(start - loop.time())
        # A lane woken late (the loop was busy at its turn) must not bring the next lane's on-time
        # start closer than the delay: the gap is kept from the last real start, not the reserved one.
        while (wait := self._last_attempt_at + limits.attempt_delay - loop.time()) > 0:
            await asyncio.sleep(wait)
        self._last_attempt_at = loop.time()
        self._next_attempt_at = max(self._next_attempt_at, self._last_attempt_at + limits.attempt_delay)

    def saw(self, data: bytes) -> None:
        # Once the pairs are planned, the device has said who it is: a parallel connection's or a
        # reconnection's greeting would only repeat it.
        kept = self._after if self.attempts or self.plan is not None else self._said
        room = 4 * BANNER_CHARS - len(kept)
        if room > 0:
            kept += data[:room]

    @property
    def banner(self) -> str:
        """The pre-login banner, sanitized."""
        return sanitize_banner(bytes(self._said))

    def _masked(self, text: str, passwords: list[str]) -> str:
        for secret in sorted((p for p in passwords if p), key=len, reverse=True):
            text = text.replace(secret, "***")
        return text

    def result(
        self, status: ProbeStatus, detail: str = "", credential_id: str | None = None, remaining: int | None = None
    ) -> ProbeResult:
        """The verdict, stamped with the time it was reached.

        Findings carry credential ids, never plaintext: the password that logged in is masked in
        the banner (a device may print it). Only that one: masking every password tried would
        deface banners that merely contain a listed word ("220 Welcome to blah FTP service.").
        """
        used = [self._sent[credential_id]] if credential_id in self._sent else []
        banner = sanitize_banner(self._masked(bytes(self._said).decode("latin-1"), used))
        later = self._masked(bytes(self._after).decode("latin-1"), list(self._sent.values()))
        if status == "not_vulnerable" and self.untried:  # the list was not exhausted: not a verdict
            status, remaining = "incomplete", self.untried
            detail = f"{detail}; {self.untried} listed pairs not tried (--max-attempts cap; --resume tries the next)"
        return ProbeResult(
            protocol=self.protocol,
            status=status,
            credential_id=credential_id,
            banner=banner,
            device=guess_device(banner, sanitize_banner(later)) or name_in_greeting(self.protocol, banner),
            detail=sanitize_banner(detail, 200),
            attempts=self.attempts,
            remaining=remaining,
            confirmed_at=datetime.now(timezone.utc),
            tried=tuple(self.tried),
            connections=self.connections,
        )


def plan_attempts(
    credentials: list[Credential], record: ProbeRecord, limits: ProbeLimits, reserved: int = 0
) -> list[Credential]:
    """The pairs to try on this service, in order: when what the device said before login names
    its maker (banner, HTTP realm/title/server, SSH version, FTP greeting), that maker's defaults
    first; then the rest in list order (Mirai's pairs by prevalence, then the corpus by how many
    makers ship a pair). Each pair once, at most ``limits.max_attempts`` less the ``reserved``
    attempts the probe makes on its own (FTP's anonymous login)."""
    ordered = attempt_order(prefer_vendor(credentials, device_maker(record.banner)))
    room = max(0, limits.max_attempts - reserved)
    record.untried = max(0, len(ordered) - room)
    return ordered[:room]


#: What the survey calls: probe the service at ``ip:port`` with ``credentials`` -> one result;
#: an optional keyword ``until`` (event-loop time) is the device's deadline when it comes before
#: ``limits.deadline`` from now (see :mod:`iotscope.survey.probes.device`).
Probe = Callable[..., Awaitable[ProbeResult]]
#: What a protocol module implements: log in on ``ip:port`` with ``credentials``, noting what the
#: device says and how many attempts were made in the record it is given.
ProbeBody = Callable[[Scope, str, int, list[Credential], ProbeLimits, ProbeRecord], Awaitable[ProbeResult]]


def service_probe(protocol: str, body: ProbeBody, *, parallel: bool = True) -> Probe:
    """The probe for ``protocol``: its ``body`` run the way every probe must be run.

    The scope is checked before any socket exists, and the body runs under :func:`run_probe`, so
    whatever the device does the survey gets a result (with the banner and attempts seen so far)
    within ``limits.service_deadline`` (and ``limits.deadline``), or by ``until``, the device's
    deadline, when that comes first. One wrapper keeps these guarantees from drifting apart per protocol.
    A ``parallel`` body (one that takes its pairs from :meth:`ProbeRecord.planned`) runs on
    ``limits.per_device_connections`` connections at once (see :func:`in_lanes`).
    """

    async def probe(
        scope: Scope, ip: str, port: int, credentials: list[Credential], limits: ProbeLimits, *, until: float | None = None
    ) -> ProbeResult:
        scope.check(ip)
        record = ProbeRecord(protocol)
        if parallel and limits.per_device_connections > 1:
            body_run = in_lanes(limits.per_device_connections, body, scope, ip, port, credentials, limits, record)
        else:
            body_run = body(scope, ip, port, credentials, limits, record)
        pairs = len(attempt_order(credentials))  # distinct pairs, as plan_attempts counts them
        return await run_probe(record, limits, body_run, until=until, pairs=pairs)

    probe.__qualname__ = probe.__name__ = f"{protocol}_probe"
    return probe


async def in_lanes(
    lanes: int, body: ProbeBody, scope: Scope, ip: str, port: int, credentials: list[Credential],
    limits: ProbeLimits, record: ProbeRecord,
) -> ProbeResult:
    """``body`` on ``lanes`` connections at once, sharing ``record`` (one queue of pairs, one
    pace): the first login that works ends them all. A slow login (login(1) waits 3 s after a
    failure) then costs the service 1/lanes of the time. The second and later connections open
    once the first has planned the pairs (it has seen the banner), so the device is identified
    once; a lane's failure ends the probe (a device that misbehaves is not asked again)."""
    record.lanes = lanes

    async def lane(first: bool) -> ProbeResult:
        while not first and record.plan is None:
            await asyncio.sleep(0.02)
        return await body(scope, ip, port, credentials, limits, record)

    tasks = [asyncio.ensure_future(lane(n == 0)) for n in range(lanes)]
    try:
        last: ProbeResult | None = None
        for finished in asyncio.as_completed(tasks):
            result = await finished
            if result.status == "vulnerable":
                return result
            last = result
        assert last is not None
        # Each lane's verdict saw only its own attempts so far: the service's are all of them.
        return dataclasses.replace(
            last, attempts=record.attempts, tried=tuple(record.tried), connections=record.connections,
        )
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def run_probe(
    record: ProbeRecord, limits: ProbeLimits, body: Awaitable[ProbeResult], *, until: float | None = None, pairs: int = 0,
) -> ProbeResult:
    """Await ``body`` until the service's deadline (``limits.service_deadline`` from now, never
    past ``limits.deadline`` from now nor past ``until``, the device's deadline in event-loop
    time); every failure of the device becomes an error result.

    A deadline reached after login attempts is ``incomplete``: of the ``pairs`` listed, those not
    tried are ``remaining`` (``--resume`` tries them); a slow but well-behaved login (login(1)
    waits 3 s after each failure) was cut short, and calling that ``not_vulnerable`` would hide
    every pair never tried. A deadline reached before any attempt is an error (a device that never
    got to a login prompt in time).
    """
    now = asyncio.get_running_loop().time()
    own = now + min(limits.service_deadline, limits.deadline)
    which = f"service deadline {min(limits.service_deadline, limits.deadline):g}s"
    if until is not None and until < own:
        own, which = until, f"device deadline {limits.deadline:g}s"
    try:
        async with asyncio.timeout_at(own):
            return await body
    except OutOfScopeError:
        raise
    except TimeoutError:
        if record.attempts:
            remaining = max(0, pairs - len(record.tried))
            return record.result(
                "incomplete", f"{which} reached: {len(record.tried)} pairs tried, {remaining} not", remaining=remaining,
            )
        return record.result("error", f"{which} reached before a login attempt")
    except ProbeFailure as exc:
        return record.result("error", str(exc))
    except (OSError, EOFError) as exc:
        return record.result("error", f"connection failed: {type(exc).__name__}: {exc}")
    except Exception as exc:  # noqa: BLE001 - a hostile device must never crash the survey
        return record.result("error", f"{type(exc).__name__}: {exc}")
