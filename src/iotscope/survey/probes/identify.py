"""Which service listens on a port, from its handshake, never from the port number.

Telnet devices open with option negotiation (IAC, 0xFF) or a login prompt, SSH servers with
"SSH-", FTP servers with a 220 greeting; HTTP servers say nothing until asked, so a port that
stays silent for a short first window gets one HEAD request. Waiting the whole greeting_timeout
before asking would cost every HTTP service that long; asking early is safe because a slow
server-first device still opens with its greeting whatever it was sent (telnetd negotiates,
sshd and ftpd send their banner before they read a line), so the reply is classified the same
way as a greeting. Anything else (SMTP's 220 ESMTP, garbage, silence) is None: not probed.
"""

from __future__ import annotations

import asyncio
import re

from iotscope.survey.probes.limits import ProbeLimits
from iotscope.survey.probes.outcome import ProbeRecord
from iotscope.survey.probes.stream import DeviceStream, open_device
from iotscope.survey.probes.telnet import IAC, Prompt, classify_tail
from iotscope.survey.scope import OutOfScopeError, Scope

_FTP_GREETING = re.compile(rb"^220[ -]")
_TELNET_WORDS = re.compile(rb"login|user ?name|password|busybox", re.IGNORECASE)


def service_from_greeting(greeting: bytes) -> str | None:
    """The protocol a device's first words belong to, or None when they name none we probe."""
    if greeting.startswith(bytes((IAC,))):
        return "telnet"
    if greeting.startswith(b"SSH-"):
        return "ssh"
    if _FTP_GREETING.match(greeting):
        return None if b"SMTP" in greeting.upper() else "ftp"
    if greeting.startswith(b"HTTP/"):
        return "http"
    text = greeting.decode("latin-1")
    if _TELNET_WORDS.search(greeting) or classify_tail(text) in (Prompt.LOGIN, Prompt.PASSWORD, Prompt.SHELL):
        return "telnet"  # a telnet service that skips negotiation (or a raw shell)
    return None


async def identify_service(scope: Scope, ip: str, port: int, limits: ProbeLimits) -> str | None:
    """"telnet", "ssh", "ftp", "http" or None (unknown, hostile or unreachable) for ``ip:port``.

    Bounded by connect_timeout + greeting_timeout + read_timeout; only a scope refusal raises.
    """
    scope.check(ip)
    budget = limits.connect_timeout + limits.greeting_timeout + limits.read_timeout
    try:
        async with asyncio.timeout(budget):
            return await _identify(scope, ip, port, limits)
    except OutOfScopeError:
        raise
    except Exception:  # noqa: BLE001 - unreachable, silent, hostile: all mean "nothing to probe"
        return None


_GREETING_BYTES = 4096
_GREETING_PAUSE = 0.1
#: Seconds a port may stay silent before it is asked an HTTP question: a server-first device on
#: loopback or a LAN greets within milliseconds; slower ones are still recognised in the reply.
_FIRST_WINDOW = 0.25


async def _greeting(stream: DeviceStream, first_within: float) -> bytes:
    """What the peer says first: everything until it pauses (a banner may come in pieces).

    The first bytes must come within ``first_within`` seconds, the rest within read_timeout of
    them and ``_GREETING_BYTES``; a peer that resets right after speaking has still spoken.
    """
    data = await stream.quiet_for(first_within)
    until = asyncio.get_running_loop().time() + stream.limits.read_timeout
    while data and not stream.eof and len(data) < _GREETING_BYTES:
        remaining = until - asyncio.get_running_loop().time()
        try:
            more = await stream.quiet_for(min(_GREETING_PAUSE, remaining))
        except ConnectionError:
            break
        if not more:
            break
        data += more
    return data[:_GREETING_BYTES]


async def _identify(scope: Scope, ip: str, port: int, limits: ProbeLimits) -> str | None:
    async with open_device(scope, ip, port, limits, ProbeRecord("identify")) as stream:
        first_window = min(_FIRST_WINDOW, limits.greeting_timeout)
        greeting = await _greeting(stream, first_window)
        if greeting or stream.eof:
            return service_from_greeting(greeting) if greeting else None
        host = f"[{ip}]" if ":" in ip else ip
        await stream.send(f"HEAD / HTTP/1.0\r\nHost: {host}:{port}\r\n\r\n".encode("latin-1"))
        # A greeting that is merely late (a loaded device) arrives here instead of an HTTP status
        # line and still names its service, as late as greeting_timeout or read_timeout allows.
        reply = await _greeting(stream, max(limits.read_timeout, limits.greeting_timeout - first_window))
        return service_from_greeting(reply) if reply else None
