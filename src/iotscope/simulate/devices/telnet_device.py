"""An emulated telnet login as BusyBox ``telnetd`` + ``login`` present it on IoT firmware.

The survey's telnet probe must cope with real option negotiation (RFC 854/855), prompts that differ
per vendor, echo, and a login that hangs up after three failures, so this device does all of that
on the wire: it opens with the same IAC sequence BusyBox ``telnetd`` sends, strips and answers the
client's negotiation, echoes the user name (the pty would) but not the password, and gives a fake
shell prompt on success.
"""

from __future__ import annotations

import asyncio

from iotscope.simulate.devices.accounts import Account
from iotscope.simulate.devices.banners import Profile, shell_reply
from iotscope.simulate.devices.connections import DEFAULT_IDLE_TIMEOUT

IAC, DONT, DO, WONT, WILL, SB, SE = 255, 254, 253, 252, 251, 250, 240
OPT_ECHO, OPT_SGA, OPT_NAWS = 1, 3, 31

#: BusyBox telnetd's opening (telnetd.c, ``iacs_to_send``): DO ECHO, DO NAWS, WILL ECHO, WILL SGA.
BUSYBOX_NEGOTIATION = bytes(
    [IAC, DO, OPT_ECHO, IAC, DO, OPT_NAWS, IAC, WILL, OPT_ECHO, IAC, WILL, OPT_SGA]
)
_WE_OFFERED = frozenset({OPT_ECHO, OPT_SGA})  # client DO these: agreed, no reply
_WE_ASKED = frozenset({OPT_ECHO, OPT_NAWS})  # client WILL these: agreed, no reply

#: BusyBox ``login`` gives up after this many wrong passwords on one connection.
LOGIN_TRIES = 3
_MAX_PROMPTS = 10
_MAX_LINE = 512
_MAX_SUBNEGOTIATION = 1024
_MAX_SHELL_COMMANDS = 50


class TelnetChannel:
    """The data stream of one telnet connection with the option negotiation taken out of it."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, idle_timeout: float
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._idle_timeout = idle_timeout
        self._pending = bytearray()
        self._refused: set[tuple[int, int]] = set()
        # After a CR, a following LF or NUL belongs to the same line ending (RFC 854).
        self._swallow_after_cr = False

    async def send(self, text: str) -> None:
        # Data bytes equal to IAC must be doubled on the wire (RFC 854).
        self._writer.write(text.encode("latin-1").replace(b"\xff", b"\xff\xff"))
        await self._writer.drain()

    async def send_raw(self, data: bytes) -> None:
        self._writer.write(data)
        await self._writer.drain()

    async def read_line(self, *, echo: bool) -> str | None:
        """The next input line (CR LF, CR NUL or LF ends it), or ``None`` when the client is gone.
        Over-long lines are cut at ``_MAX_LINE`` as a tty's line buffer would."""
        line = bytearray()
        while True:
            byte = await self._next_data_byte()
            if byte is None:
                return None
            if byte in (0x0D, 0x0A):
                if byte == 0x0D:
                    self._swallow_after_cr = True
                break
            if len(line) < _MAX_LINE:
                line.append(byte)
        text = line.decode("latin-1")
        if echo:
            await self.send(text + "\r\n")
        return text

    async def _next_data_byte(self) -> int | None:
        while True:
            byte = await self._read_byte()
            if byte is None:
                return None
            if self._swallow_after_cr:
                self._swallow_after_cr = False
                if byte in (0x00, 0x0A):
                    continue
            if byte != IAC:
                return byte
            command = await self._read_byte()
            if command is None:
                return None
            if command == IAC:
                return IAC
            if command in (DO, DONT, WILL, WONT):
                option = await self._read_byte()
                if option is None:
                    return None
                await self._answer(command, option)
            elif command == SB and not await self._skip_subnegotiation():
                return None

    async def _read_byte(self) -> int | None:
        if not self._pending:
            chunk = await asyncio.wait_for(self._reader.read(4096), self._idle_timeout)
            if not chunk:
                return None
            self._pending += chunk
        byte = self._pending[0]
        del self._pending[0]
        return byte

    async def _answer(self, command: int, option: int) -> None:
        """Refuse what we did not offer, once per option (answering twice would loop, RFC 854)."""
        if command == DO and option not in _WE_OFFERED:
            reply = WONT
        elif command == WILL and option not in _WE_ASKED:
            reply = DONT
        else:
            return
        if (reply, option) not in self._refused:
            self._refused.add((reply, option))
            await self.send_raw(bytes([IAC, reply, option]))

    async def _skip_subnegotiation(self) -> bool:
        """Drop an ``IAC SB ... IAC SE`` block (NAWS window size, terminal type), bounded."""
        previous = None
        for _ in range(_MAX_SUBNEGOTIATION):
            byte = await self._read_byte()
            if byte is None:
                return False
            if previous == IAC and byte == SE:
                return True
            previous = None if (previous == IAC and byte == IAC) else byte
        raise ConnectionError("telnet subnegotiation too long")


def telnet_handler(
    profile: Profile,
    account: Account,
    *,
    fail_delay: float = 0.0,
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
):
    """A connection handler for ``asyncio.start_server`` that behaves like ``profile``'s telnet."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        channel = TelnetChannel(reader, writer, idle_timeout)
        await channel.send_raw(BUSYBOX_NEGOTIATION)
        if account.open:
            await _run_shell(channel, profile)
            return
        await channel.send(profile.telnet_preamble)
        failures = 0
        for _ in range(_MAX_PROMPTS):
            await channel.send(profile.login_prompt)
            username = await channel.read_line(echo=True)
            if username is None:
                return
            if not username.strip():
                continue  # BusyBox login asks again for an empty name
            await channel.send(profile.password_prompt)
            password = await channel.read_line(echo=False)
            if password is None:
                return
            await channel.send("\r\n")
            if account.check(username, password):
                await _run_shell(channel, profile)
                return
            await asyncio.sleep(fail_delay)
            await channel.send(profile.login_incorrect)
            failures += 1
            if failures >= LOGIN_TRIES:
                return

    return handle


async def _run_shell(channel: TelnetChannel, profile: Profile) -> None:
    await channel.send(profile.shell_banner + profile.shell_prompt)
    for _ in range(_MAX_SHELL_COMMANDS):
        command = await channel.read_line(echo=True)
        reply = None if command is None else shell_reply(command)
        if reply is None:
            return
        await channel.send(reply + profile.shell_prompt)
