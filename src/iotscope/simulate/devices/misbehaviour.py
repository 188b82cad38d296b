"""Devices that waste a scanner's time or try to break it: tarpits and hostile services.

A survey over real address space meets honeypot tarpits (endlessh-style), broken firmware, and
services that answer with junk. The survey's contract is that every step has a timeout and a size
cap, so these behaviours exist to prove it: each one is a byte stream that starts like the service
it imitates (so the survey has to engage with it) and then never finishes, finishes too big, or
turns into garbage or a reset.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import Iterator

from iotscope.simulate.devices.connections import Handler, reset, wait_for_close
from iotscope.simulate.devices.telnet_device import (
    BUSYBOX_NEGOTIATION,
    DO,
    IAC,
    SB,
    SE,
    WILL,
)

TARPIT_BEHAVIOURS = ("drip", "stall")
HOSTILE_BEHAVIOURS: dict[str, tuple[str, ...]] = {
    "telnet": ("huge-banner", "garbage", "endless-iac", "reset"),
    "ssh": ("huge-banner", "garbage", "reset"),
    "http": ("huge-banner", "garbage", "reset"),
    "ftp": ("huge-banner", "garbage", "reset"),
}
#: A "huge" banner is larger than any sane size cap (the brief: 10 MB+).
HUGE_BANNER_BYTES = 12 * 1024 * 1024
GARBAGE_BYTES = 2 * 1024 * 1024
_CHUNK = 64 * 1024

#: The first bytes of each service, so a tarpit or a reset looks like the real thing at first.
_OPENINGS = {
    "telnet": BUSYBOX_NEGOTIATION,
    "ssh": b"SSH-2.0-dropbear",
    "http": b"HTTP/1.1 200 OK\r\n",
    "ftp": b"220",
}


def misbehaviour_handler(
    protocol: str, behaviour: str, *, seed: int, drip_interval: float = 1.0
) -> Handler:
    """The connection handler for one tarpit (``drip``, ``stall``) or hostile behaviour."""
    allowed = TARPIT_BEHAVIOURS + HOSTILE_BEHAVIOURS[protocol]
    if behaviour not in allowed:
        raise ValueError(f"{protocol} cannot misbehave as {behaviour!r}; one of {', '.join(allowed)}")

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if behaviour == "drip":
            for byte in _endless_preface(protocol, random.Random(seed)):
                await _send(writer, bytes([byte]))
                await asyncio.sleep(drip_interval)
        elif behaviour == "stall":
            if protocol == "telnet":  # never finishes negotiation: one DO, then silence
                await _send(writer, BUSYBOX_NEGOTIATION[:3])
            await wait_for_close(reader)
        elif behaviour == "huge-banner":
            for chunk in _huge_banner(protocol):
                await _send(writer, chunk)
        elif behaviour == "garbage":
            rng = random.Random(seed)
            for _ in range(GARBAGE_BYTES // _CHUNK):
                await _send(writer, rng.randbytes(_CHUNK))
        elif behaviour == "endless-iac":
            for chunk in _endless_negotiation(random.Random(seed)):
                await _send(writer, chunk)
                await asyncio.sleep(0.01)
        else:  # reset: start like the service, then RST
            await _send(writer, _OPENINGS[protocol][:8])
            await asyncio.sleep(0.05)
            reset(writer)

    return handle


async def _send(writer: asyncio.StreamWriter, data: bytes) -> None:
    if writer.transport.is_closing():
        raise ConnectionResetError("client went away")
    writer.write(data)
    await writer.drain()


def _endless_preface(protocol: str, rng: random.Random) -> Iterator[int]:
    """A preface that looks like the service's opening and never reaches the part a client waits
    for (prompt, version line, end of headers, final ``220 ``)."""
    if protocol == "ssh":
        # endlessh: RFC 4253 lets a server send lines before its version; these never end.
        def lines() -> Iterator[bytes]:
            while True:
                yield b"%x\r\n" % rng.getrandbits(32)
    else:
        first, line = {
            "telnet": (BUSYBOX_NEGOTIATION, b"System is booting, please wait...\r\n"),
            "http": (b"HTTP/1.1 200 OK\r\n", b"X-Firmware-Status: loading\r\n"),
            "ftp": (b"220-Welcome\r\n", b"220-Please wait while the device starts...\r\n"),
        }[protocol]

        def lines() -> Iterator[bytes]:
            yield first
            yield from itertools.repeat(line)

    for chunk in lines():
        yield from chunk


def _huge_banner(protocol: str) -> Iterator[bytes]:
    """More than :data:`HUGE_BANNER_BYTES` of one never-ending banner line."""
    prefix = {
        "telnet": BUSYBOX_NEGOTIATION + b"Welcome ",
        "ssh": b"SSH-2.0-dropbear_",
        "http": b"HTTP/1.1 200 OK\r\nServer: ",
        "ftp": b"220-",
    }[protocol]
    yield prefix
    filler = b"A" * _CHUNK
    for _ in range(HUGE_BANNER_BYTES // _CHUNK + 1):
        yield filler


def _endless_negotiation(rng: random.Random) -> Iterator[bytes]:
    """Telnet option negotiation that never ends: DO/WILL for random options and empty
    subnegotiations, 4 KiB at a time, without a single data byte."""
    while True:
        chunk = bytearray()
        while len(chunk) < 4096:
            option = rng.randrange(0, 50)
            if rng.random() < 0.2:
                chunk += bytes([IAC, SB, option, 1, IAC, SE])
            else:
                chunk += bytes([IAC, rng.choice((DO, WILL)), option])
        yield bytes(chunk)
