"""Small scriptable devices on 127.0.0.0/8 for the probe tests: real asyncio servers, real sockets.

Each behaves like one kind of IoT service (or one kind of hostile peer) and logs what it was sent,
so tests can assert both the verdict and that the probe behaved (left at once, never typed a
password into a shell).
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import random
import re
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from iotscope.survey.probes.limits import ProbeLimits
from iotscope.survey.scope import AuthorizedRange, Scope

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]

IAC, DONT, DO, WONT, WILL, SB, SE = 255, 254, 253, 252, 251, 250, 240
BUSYBOX_SHELL = b"\r\n\r\nBusyBox v1.35.0 (2022-09-12 10:14:02 UTC) built-in shell (ash)\r\nEnter 'help' for a list of built-in commands.\r\n\r\n# "

#: Quick limits so that hostile devices end in a few seconds.
FAST = ProbeLimits(
    connect_timeout=1.0,
    read_timeout=1.0,
    deadline=4.0,
    attempt_delay=0.0,
    prompt_settle=0.02,
    greeting_timeout=0.3,
)


def loopback_scope() -> Scope:
    return Scope(
        "test scope",
        (AuthorizedRange(ipaddress.ip_network("127.0.0.0/8"), "tests", "loopback only", True),),
    )


@dataclass
class Log:
    received: list[bytes] = field(default_factory=list)
    connections: int = 0


@asynccontextmanager
async def serving(handler: Handler, host: str = "127.0.0.1"):
    """Run ``handler`` as a TCP server on ``host``; yields the port."""
    tasks: set[asyncio.Task] = set()

    async def tracked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        tasks.add(asyncio.current_task())
        try:
            await handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass  # the peer left, or the test is over
        finally:
            writer.close()

    server = await asyncio.start_server(tracked, host, 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await asyncio.sleep(0.05)  # let handlers log what the probe sent last (its "exit")
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def read_line(reader: asyncio.StreamReader) -> bytes:
    """A line typed by a telnet client, with telnet commands removed and CR/LF/NUL stripped."""
    line = await asyncio.wait_for(reader.readuntil(b"\n"), 10)
    line = re.sub(rb"\xff[\xfb-\xfe].|\xff\xfa.*?\xff\xf0|\xff[\xf0-\xfa]", b"", line, flags=re.DOTALL)
    return line.strip(b"\r\n\x00")


def telnet_device(
    accounts: dict[str, str],
    log: Log,
    *,
    negotiate: bool = True,
    banner: bytes = b"\r\n(none) ",
    login_prompt: bytes = b"login: ",
    password_prompt: bytes = b"Password: ",
    shell: bytes = BUSYBOX_SHELL,
    no_login: bool = False,
    tries_per_connection: int = 3,
    wait_for_key: bool = False,
) -> Handler:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        log.connections += 1
        if negotiate:
            writer.write(bytes((IAC, WILL, 1, IAC, WILL, 3, IAC, DO, 24, IAC, DO, 31)))
        if wait_for_key:  # some firmwares show nothing until a key is pressed
            log.received.append(b"KEY:" + await read_line(reader))
        if no_login:
            writer.write(shell)
            log.received.append(await read_line(reader))
            return
        for _ in range(tries_per_connection):
            writer.write(banner + login_prompt)
            user = (await read_line(reader)).decode()
            log.received.append(user.encode())
            writer.write(b"\r\n" + password_prompt)
            password = (await read_line(reader)).decode()
            if accounts.get(user) == password:
                writer.write(b"\r\n" + shell)
                log.received.append(b"SHELL:" + await read_line(reader))
                return
            writer.write(b"\r\nLogin incorrect\r\n")

    return handler


def ftp_device(accounts: dict[str, str], log: Log, *, anonymous: bool = False) -> Handler:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        log.connections += 1
        writer.write(b"220-Welcome\r\n220 (vsFTPd 3.0.3)\r\n")
        failures, user = 0, ""
        while failures < 3:
            line = (await asyncio.wait_for(reader.readuntil(b"\n"), 10)).strip().decode()
            log.received.append(line.encode())
            verb, _, arg = line.partition(" ")
            if verb == "USER":
                user = arg
                writer.write(b"331 Please specify the password.\r\n")
            elif verb == "PASS":
                if (user == "anonymous" and anonymous) or accounts.get(user) == arg:
                    writer.write(b"230 Login successful.\r\n")
                else:
                    failures += 1
                    writer.write(b"530 Login incorrect.\r\n")
            elif verb == "QUIT":
                writer.write(b"221 Goodbye.\r\n")
                return
            else:
                writer.write(b"500 Unknown command.\r\n")

    return handler


def http_device(
    log: Log,
    *,
    accounts: dict[str, str] | None = None,
    scheme: str = "basic",
    open_admin: bool = False,
    server: str = "lighttpd/1.4.35",
) -> Handler:
    """An admin page: open (``open_admin``), behind Basic or Digest (``accounts``), or a plain site."""
    realm, nonce = "IP Camera", "a1b2c3d4e5"

    def authorized(header: str, path: str) -> bool:
        if accounts is None or not header:
            return False
        if scheme == "basic":
            import base64

            user, _, password = base64.b64decode(header.split(" ", 1)[1]).decode().partition(":")
            return accounts.get(user) == password
        fields = dict(re.findall(r'(\w+)="?([^",]*)"?', header))
        password = accounts.get(fields.get("username", ""))
        if password is None or fields.get("nonce") != nonce or fields.get("uri") != path:
            return False
        md5 = lambda s: hashlib.md5(s.encode()).hexdigest()  # noqa: E731
        ha1 = md5(f"{fields['username']}:{realm}:{password}")
        ha2 = md5(f"GET:{path}")
        expected = md5(f"{ha1}:{nonce}:{fields['nc']}:{fields['cnonce']}:auth:{ha2}")
        return fields.get("response") == expected

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        log.connections += 1
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        log.received.append(head)
        path = head.split(b" ")[1].decode()
        auth = re.search(rb"\r\nAuthorization: ([^\r\n]*)", head)
        admin = b"<html><title>Network Camera</title><body>System settings, firmware upgrade, reboot</body></html>"
        if open_admin or authorized(auth.group(1).decode() if auth else "", path):
            status, body, extra = "200 OK", admin, ""
        elif accounts is not None:
            challenge = f'Basic realm="{realm}"' if scheme == "basic" else f'Digest realm="{realm}", qop="auth", nonce="{nonce}", opaque="xyz"'
            status, body, extra = "401 Unauthorized", b"Unauthorized", f"WWW-Authenticate: {challenge}\r\n"
        else:
            status, body, extra = "200 OK", b"<html><title>Welcome</title><body>It works!</body></html>", ""
        writer.write(
            f"HTTP/1.1 {status}\r\nServer: {server}\r\n{extra}Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            + body
        )
        await writer.drain()

    return handler


# -- hostile peers ---------------------------------------------------------------------------------


def tarpit(greeting: bytes = b"") -> Handler:
    """Says ``greeting`` then drips one byte every 0.3 s, forever (never a complete prompt)."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(greeting)
        while True:
            writer.write(b".")
            await writer.drain()
            await asyncio.sleep(0.3)

    return handler


def huge_banner(prefix: bytes = b"") -> Handler:
    """Sends a 10 MB banner without a prompt (or a line end) in it."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(prefix)
        block = b"A" * 65536
        for _ in range(160):
            writer.write(block)
            await writer.drain()
        await asyncio.sleep(30)

    return handler


def garbage(seed: int = 7) -> Handler:
    """Random bytes (0xFF included, so they parse as telnet commands too), then silence."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(random.Random(seed).randbytes(200_000))
        await writer.drain()
        await asyncio.sleep(30)

    return handler


def endless_negotiation() -> Handler:
    """Telnet option requests without end, cycling through options, never a prompt."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        option = 0
        while True:
            writer.write(bytes((IAC, DO, option % 40, IAC, WILL, option % 40)))
            option += 1
            await writer.drain()
            await asyncio.sleep(0.001)

    return handler


def silent() -> Handler:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(30)

    return handler
