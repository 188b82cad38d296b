"""An emulated embedded FTP server (RFC 959 control channel only), anonymous login allowed or not.

DVRs and routers often ship an FTP server (BusyBox ``ftpd``, vsftpd) and some of them let anyone in
as ``anonymous``: that is what the survey's FTP probe looks for. The device speaks only the control
commands a login check needs; there is no data channel, so nothing can be read or written.
"""

from __future__ import annotations

import asyncio

from iotscope.simulate.devices.accounts import Account
from iotscope.simulate.devices.banners import Profile
from iotscope.simulate.devices.connections import DEFAULT_IDLE_TIMEOUT, read_line

ANONYMOUS_USERS = frozenset({"anonymous", "ftp"})
LOGIN_TRIES = 3
_MAX_COMMANDS = 100


def ftp_handler(
    profile: Profile,
    account: Account,
    *,
    anonymous: bool,
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
):
    """A connection handler with ``profile``'s banner; ``anonymous`` lets ``anonymous``/``ftp`` in
    with any password, ``account`` is the device's named user."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:

        async def reply(line: str) -> None:
            writer.write(f"{line}\r\n".encode("latin-1"))
            await writer.drain()

        await reply(profile.ftp_banner)
        username: str | None = None
        logged_in = False
        failures = 0
        for _ in range(_MAX_COMMANDS):
            line = await read_line(reader, timeout=idle_timeout)
            if line is None:
                return
            verb, _, argument = line.decode("latin-1").partition(" ")
            verb = verb.upper()
            if verb == "QUIT":
                await reply("221 Goodbye.")
                return
            if verb == "USER":
                username, logged_in = argument, False
                await reply("331 Please specify the password.")
            elif verb == "PASS":
                if username is None:
                    await reply("503 Login with USER first.")
                    continue
                if _login(account, anonymous, username, argument):
                    logged_in = True
                    await reply("230 Login successful.")
                    continue
                failures += 1
                await reply("530 Login incorrect.")
                if failures >= LOGIN_TRIES:
                    return
            elif not logged_in:
                await reply("530 Please login with USER and PASS.")
            elif verb == "SYST":
                await reply("215 UNIX Type: L8")
            elif verb in ("PWD", "XPWD"):
                await reply('257 "/" is the current directory')
            elif verb in ("TYPE", "NOOP"):
                await reply("200 Command okay.")
            else:
                await reply("502 Command not implemented.")

    return handle


def _login(account: Account, anonymous: bool, username: str, password: str) -> bool:
    if username.lower() in ANONYMOUS_USERS:
        account.stats.attempts += 1
        if anonymous:
            account.stats.successes += 1
        return anonymous
    return account.check(username, password)
