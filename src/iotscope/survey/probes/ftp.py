"""FTP: anonymous login (RFC 1635), then any listed default credentials; QUIT at once.

A 230 reply to USER/PASS is access: anonymous access is reported with credential_id None.
Replies are read with the step timeout and size cap; a multi-line reply ("220-...") ends at the
line starting with the same code and a space (RFC 959).
"""

from __future__ import annotations

import re
from collections import deque

from iotscope.survey.credentials import Credential
from iotscope.survey.probes.limits import ProbeLimits
from iotscope.survey.probes.outcome import ProbeFailure, ProbeRecord, ProbeResult, service_probe
from iotscope.survey.probes.stream import DeviceStream, open_device
from iotscope.survey.scope import Scope

#: RFC 1635: user "anonymous", an e-mail-like password; this one names the scanner.
ANONYMOUS_PASSWORD = "iotscope@"
ANONYMOUS = Credential("anonymous", "anonymous", ANONYMOUS_PASSWORD, "RFC 1635")
_CODE = re.compile(rb"^(\d{3})([ -])")


def _reply_complete(data: bytes) -> bool:
    lines = data.split(b"\n")
    if len(lines) < 2:
        return False  # the last line has no newline yet
    first = _CODE.match(lines[0])
    if first is None:
        return True  # not FTP: let the caller reject it
    if first.group(2) == b" ":
        return True
    return any(line.startswith(first.group(1) + b" ") for line in lines[1:-1])


async def read_reply(stream: DeviceStream, what: str) -> int | None:
    """The 3-digit code of the next reply, None when the server hung up; garbage is a ProbeFailure."""
    data = await stream.read_until(_reply_complete, what)
    if not data:
        return None
    match = _CODE.match(data)
    if match is None:
        raise ProbeFailure(f"not an FTP {what}")
    return int(match.group(1))


async def _login(
    scope: Scope, ip: str, port: int, credentials: list[Credential], limits: ProbeLimits, record: ProbeRecord
) -> ProbeResult:
    """Anonymous login first, then ``credentials``, on the FTP service at ``ip:port``."""
    anonymous = ANONYMOUS
    pending: deque[Credential] | None = None  # planned once the greeting has named the device
    while pending is None or pending:
        async with open_device(scope, ip, port, limits, record) as stream:
            greeting = await stream.read_until(_reply_complete, "greeting")
            record.saw(greeting)
            if not greeting.startswith(b"220"):
                raise ProbeFailure("no FTP 220 greeting")
            if pending is None:
                pending = record.planned(credentials, limits, reserved=1, first=[anonymous])  # shared with parallel connections
            on_this_connection = 0
            while pending:
                credential = pending.popleft()
                await record.pace(limits)
                record.sending(credential)
                code = await _try(stream, credential)
                if code is None:  # the server hung up (e.g. vsftpd after 3 failures): reconnect
                    if on_this_connection == 0:
                        raise ProbeFailure("server closes the connection at login")
                    pending.appendleft(credential)
                    break
                on_this_connection += 1
                if credential is anonymous:
                    record.attempts += 1  # not a listed pair: nothing for --resume to skip
                else:
                    record.attempt(credential)
                if code == 230:
                    await _quit(stream)
                    if credential is anonymous:
                        return record.result("vulnerable", "anonymous login accepted (230)")
                    return record.result("vulnerable", "login accepted (230)", credential.id)
                record.rejected += 1
            else:
                await _quit(stream)
    return record.result("not_vulnerable", f"{record.attempts} logins refused")


probe = service_probe("ftp", _login)


async def _try(stream: DeviceStream, credential: Credential) -> int | None:
    """The code answering the login (230 = in), None when the connection closed."""
    try:
        await stream.send(f"USER {credential.username}\r\n".encode("ascii"))
        code = await _reply_or_none(stream, "USER reply")
        if code != 331:  # 230: in without a password; 530 and others: refused; None: closed
            return code
        await stream.send(f"PASS {credential.password}\r\n".encode("ascii"))
        return await _reply_or_none(stream, "PASS reply")
    except ConnectionError:
        return None


async def _reply_or_none(stream: DeviceStream, what: str) -> int | None:
    code = None if stream.eof else await read_reply(stream, what)
    return None if code == 421 else code  # 421: "closing control connection"


async def _quit(stream: DeviceStream) -> None:
    try:
        await stream.send(b"QUIT\r\n")
    except (ProbeFailure, OSError):
        pass
