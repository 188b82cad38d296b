"""Telnet: negotiate options (RFC 854/855), find the login prompt, try credentials, leave a shell at once.

Success is a shell prompt after login (or before any login: a device with no password at all).
The probe never types anything into a shell except ``exit``. Negotiation is answered once per
option change and capped, prompts are recognized only when the device then falls silent, and
every wait is bounded, so a tarpit, endless negotiation, a huge banner or garbage ends in an error.
"""

from __future__ import annotations

import asyncio
import enum
import re
from collections import deque

from iotscope.survey.credentials import Credential, attempt_order
from iotscope.survey.probes.limits import ProbeLimits
from iotscope.survey.probes.outcome import ProbeFailure, ProbeRecord, ProbeResult, service_probe
from iotscope.survey.probes.stream import DeviceStream, open_device
from iotscope.survey.scope import Scope

IAC, DONT, DO, WONT, WILL, SB, SE = 255, 254, 253, 252, 251, 250, 240
ECHO, SGA = 1, 3
#: Options we let the server enable: it echoes and does not need go-aheads, as every device expects.
_ACCEPTED_REMOTE = frozenset({ECHO, SGA})
_MAX_SUBNEGOTIATION = 512


class TelnetNegotiator:
    """Strips telnet commands from the byte stream and answers them.

    Requests that do not change an option's state get no answer (RFC 854's rule against
    acknowledgement loops), and more than ``max_rounds`` commands mean the device is only
    negotiating: a :class:`ProbeFailure`. State survives chunk boundaries.
    """

    def __init__(self, max_rounds: int) -> None:
        self._max_rounds = max_rounds
        self.rounds = 0
        self._remote_on: set[int] = set()  # options the server does (it said WILL, we said DO)
        self._answered: dict[tuple[int, int], int] = {}  # (verb, option) -> our last answer
        self._pending = bytearray()  # an incomplete command at the end of the last chunk
        self._in_sub = False
        self._sub_len = 0

    def feed(self, chunk: bytes) -> tuple[bytes, bytes]:
        """(data bytes for the terminal, reply bytes to send back)."""
        buf = self._pending + chunk
        self._pending = bytearray()
        data = bytearray()
        replies = bytearray()
        i, n = 0, len(buf)
        while i < n:
            byte = buf[i]
            if self._in_sub:
                if byte == IAC and i + 1 < n and buf[i + 1] == SE:
                    self._in_sub = False
                    i += 2
                    continue
                if byte == IAC and i + 1 == n:
                    self._pending = bytearray(buf[i:])
                    break
                self._sub_len += 1
                if self._sub_len > _MAX_SUBNEGOTIATION:
                    raise ProbeFailure("endless telnet subnegotiation")
                i += 1
                continue
            if byte != IAC:
                data.append(byte)
                i += 1
                continue
            if i + 1 >= n:
                self._pending = bytearray(buf[i:])
                break
            verb = buf[i + 1]
            if verb == IAC:  # escaped 0xFF data byte
                data.append(IAC)
                i += 2
                continue
            if verb in (DO, DONT, WILL, WONT):
                if i + 2 >= n:
                    self._pending = bytearray(buf[i:])
                    break
                self._count()
                replies += self._answer(verb, buf[i + 2])
                i += 3
                continue
            if verb == SB:
                self._count()
                self._in_sub, self._sub_len = True, 0
            i += 2  # SB or a two-byte command (NOP, GA, AYT, ...): nothing to answer
        return bytes(data), bytes(replies)

    def _count(self) -> None:
        self.rounds += 1
        if self.rounds > self._max_rounds:
            raise ProbeFailure(f"endless telnet option negotiation (> {self._max_rounds} commands)")

    def _answer(self, verb: int, option: int) -> bytes:
        if verb == WILL:
            answer = DO if option in _ACCEPTED_REMOTE else DONT
            if answer == DO:
                self._remote_on.add(option)
        elif verb == WONT:
            if option not in self._remote_on:
                return b""
            self._remote_on.discard(option)
            answer = DONT
        elif verb == DO:
            answer = WONT  # we enable nothing on our side (no terminal type, window size, ...)
        else:  # DONT: we never enabled anything, nothing changes
            return b""
        if self._answered.get((verb, option)) == answer:
            return b""
        self._answered[(verb, option)] = answer
        return bytes((IAC, answer, option))


class Prompt(enum.Enum):
    LOGIN = "login"
    PASSWORD = "password"
    SHELL = "shell"
    CLOSED = "closed"


# A short tail is allowed before the colon: "Password for admin:", "login as:", "User ID:".
_LOGIN = re.compile(r"(?:login|user ?name|user|account)[^\r\n:]{0,20}:\s*$", re.IGNORECASE)
_PASSWORD = re.compile(r"pass(?:word|code|wd)?[^\r\n:]{0,30}:\s*$", re.IGNORECASE)
_SHELL = re.compile(r"^[\x20-\x7e]{0,80}[#$%>]\s?$")
_LAST_LOGIN = re.compile(r"last login", re.IGNORECASE)


_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-_]")


def classify_tail(text: str) -> Prompt | None:
    """The prompt the device shows at the end of ``text`` (its last line, colours removed), if any."""
    text = _ANSI_ESCAPE.sub("", text[-512:])
    tail = re.split(r"[\r\n]", text.rstrip("\x00"))[-1].lstrip("\x00 ")
    if not tail or _LAST_LOGIN.search(tail):
        return None
    if _PASSWORD.search(tail):
        return Prompt.PASSWORD
    if _LOGIN.search(tail):
        return Prompt.LOGIN
    if _SHELL.match(tail):
        return Prompt.SHELL
    return None


def _mostly_text(data: bytes) -> bool:
    """Garbage that happens to end in '#' is not a shell: a real session is printable text."""
    printable = sum(1 for b in data if 32 <= b < 127 or b in (0, 8, 9, 10, 13, 27))
    return printable >= 0.9 * len(data)


class TelnetSession:
    def __init__(self, stream: DeviceStream, limits: ProbeLimits) -> None:
        self._stream = stream
        self._limits = limits
        self._negotiator = TelnetNegotiator(limits.max_negotiation_rounds)

    async def next_prompt(self, what: str, *, nudge: bool = False) -> Prompt:
        """Read until the device shows a prompt (a shell prompt: and falls silent), or closes.

        With ``nudge``, a device that has said nothing readable by half the step timeout gets
        one empty line: some firmwares print their login prompt only after a key press.
        """
        loop = asyncio.get_running_loop()
        until = self._stream.step_deadline()
        nudge_at = loop.time() + self._limits.read_timeout / 2 if nudge else None
        text = bytearray()
        while True:
            try:
                chunk = await self._stream.read_chunk(nudge_at or until, what)
            except ProbeFailure:
                if nudge_at is None:
                    raise
                nudge_at = None
                if not text.strip():
                    await self.send_line("")
                continue
            if not chunk:
                return Prompt.CLOSED
            await self._absorb(chunk, text)
            kind = classify_tail(text.decode("latin-1"))
            if kind in (Prompt.LOGIN, Prompt.PASSWORD):
                return kind  # unambiguous: "Last login:" is excluded, and prompts end in ':'
            while kind is Prompt.SHELL:
                # A line ending in '#', '$' or '>' may be message text: a shell falls silent.
                more = await self._stream.quiet_for(self._limits.prompt_settle)
                if self._stream.eof:
                    return Prompt.CLOSED
                if not more:
                    if not _mostly_text(bytes(text)):
                        raise ProbeFailure("garbage instead of a telnet session")
                    return kind
                await self._absorb(more, text)
                kind = classify_tail(text.decode("latin-1"))
            if kind is not None:
                return kind

    async def _absorb(self, chunk: bytes, text: bytearray) -> None:
        data, replies = self._negotiator.feed(chunk)
        if replies:
            await self._stream.send(replies)
        text += data
        if len(text) > self._limits.max_bytes:
            raise ProbeFailure(f"no prompt within {self._limits.max_bytes} bytes")
        self._stream.record.saw(data)

    async def send_line(self, line: str) -> None:
        await self._stream.send(line.encode("ascii") + b"\r\n")

    async def leave(self) -> None:
        await self.send_line("exit")


async def _login(
    scope: Scope, ip: str, port: int, credentials: list[Credential], limits: ProbeLimits, record: ProbeRecord
) -> ProbeResult:
    """Try ``credentials`` (at most ``limits.max_attempts``) on the telnet service at ``ip:port``."""
    ordered = attempt_order(credentials)
    pending: deque[Credential] | None = None  # planned once the device has said who it is
    tried_passwords: set[str] = set()  # for devices that ask only for a password
    while True:
        attempts_here = 0  # on this connection (record.attempts also counts parallel connections')
        async with open_device(scope, ip, port, limits, record) as stream:
            session = TelnetSession(stream, limits)
            prompt = await session.next_prompt("login prompt", nudge=True)
            if prompt is Prompt.SHELL:
                await session.leave()
                return record.result("vulnerable", "shell without login")
            if pending is None:
                pending = record.planned(credentials, limits)  # shared with parallel connections
            while pending and prompt in (Prompt.LOGIN, Prompt.PASSWORD):
                credential = pending.popleft()
                if prompt is Prompt.PASSWORD and credential.password in tried_passwords:
                    continue
                await record.pace(limits)
                record.attempt(credential)
                attempts_here += 1
                if prompt is Prompt.LOGIN:
                    await session.send_line(credential.username)
                    prompt = await session.next_prompt("password prompt")
                    if prompt is Prompt.SHELL:
                        await session.leave()
                        empty = _empty_password_id(ordered, credential)
                        return record.result("vulnerable", "shell after user name, no password asked", empty)
                    if prompt is not Prompt.PASSWORD:
                        record.rejected += 1
                        continue
                else:
                    tried_passwords.add(credential.password)
                record.sending(credential)
                await session.send_line(credential.password)
                prompt = await session.next_prompt("login result")
                if prompt is Prompt.SHELL:
                    await session.leave()
                    return record.result("vulnerable", "shell after login", credential.id)
                record.rejected += 1
            if not pending:
                return record.result("not_vulnerable", f"{record.attempts} credentials rejected")
            if attempts_here == 0:
                raise ProbeFailure("connection closed before a login prompt")
        # The device hung up after failures (as login(1) does after a few); reconnect, go on.


probe = service_probe("telnet", _login)


def _empty_password_id(ordered: list[Credential], credential: Credential) -> str:
    """The listed pair (user, "") when the device let ``credential.username`` in without a password."""
    return next(
        (c.id for c in ordered if c.username == credential.username and c.password == ""),
        credential.id,
    )
