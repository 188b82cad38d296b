"""Services are named by their handshake, whatever port they listen on."""

from __future__ import annotations

import asyncio
import dataclasses
import time

import asyncssh
import pytest

from iotscope.survey.probes import identify_service
from iotscope.survey.probes.identify import service_from_greeting

from .fake_devices import FAST, Log, ftp_device, garbage, http_device, loopback_scope, serving, silent, telnet_device


#: FAST, but with the default greeting_timeout: what a survey really waits for a greeting.
PATIENT = dataclasses.replace(FAST, greeting_timeout=1.5)


def identify(handler, host="127.0.0.61", limits=FAST):
    async def main():
        async with serving(handler, host) as port:
            return await identify_service(loopback_scope(), host, port, limits)

    return asyncio.run(main())


@pytest.mark.parametrize(
    ("handler", "expected"),
    [
        (telnet_device({}, Log()), "telnet"),
        (telnet_device({}, Log(), negotiate=False, banner=b"", login_prompt=b"Username:"), "telnet"),
        (ftp_device({}, Log()), "ftp"),
        (http_device(Log()), "http"),
        (silent(), None),
        (garbage(), None),
    ],
    ids=["telnet-iac", "telnet-plain", "ftp", "http", "silent", "garbage"],
)
def test_identify_by_handshake(handler, expected):
    assert identify(handler) == expected


def test_identify_ssh_on_a_non_ssh_port():
    async def main():
        key = asyncssh.generate_private_key("ssh-ed25519")
        server = await asyncssh.create_server(asyncssh.SSHServer, "127.0.0.62", 0, server_host_keys=[key])
        try:
            return await identify_service(loopback_scope(), "127.0.0.62", server.sockets[0].getsockname()[1], FAST)
        finally:
            server.close()

    assert asyncio.run(main()) == "ssh"


def test_closed_port_is_none():
    async def main():
        async with serving(silent(), "127.0.0.63") as port:
            pass
        return await identify_service(loopback_scope(), "127.0.0.63", port, FAST)

    assert asyncio.run(main()) is None


def test_greetings():
    assert service_from_greeting(b"220 mail.example ESMTP Postfix\r\n") is None
    assert service_from_greeting(b"220 (vsFTPd 3.0.3)\r\n") == "ftp"
    assert service_from_greeting(b"SSH-2.0-dropbear_2022.83\r\n") == "ssh"
    assert service_from_greeting(b"\r\n\r\nBusyBox v1.35.0 built-in shell (ash)\r\n# ") == "telnet"


def test_a_late_greeting_still_names_the_service():
    async def slow_ftp(reader, writer):
        await asyncio.sleep(FAST.greeting_timeout + 0.2)
        writer.write(b"220 (vsFTPd 3.0.3)\r\n")
        await asyncio.sleep(5)

    assert identify(slow_ftp) == "ftp"


def test_a_banner_in_pieces_is_read_to_its_prompt():
    async def chatty_telnet(reader, writer):
        writer.write(b"\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(b"Welcome to the DVR\r\nUsername:")
        await asyncio.sleep(5)

    assert identify(chatty_telnet) == "telnet"


def test_an_http_service_is_identified_without_waiting_out_the_greeting_timeout():
    started = time.monotonic()
    assert identify(http_device(Log()), limits=PATIENT) == "http"
    assert time.monotonic() - started < 0.75  # not PATIENT.greeting_timeout (1.5 s) per HTTP service


def late(handler, seconds=0.8):
    """``handler`` on a loaded device: it greets ``seconds`` after the connection, long after the
    identifier has given up waiting and sent its HEAD request (which the device then reads)."""

    async def slow(reader, writer):
        await asyncio.sleep(seconds)
        await handler(reader, writer)

    return slow


@pytest.mark.parametrize(
    ("handler", "expected"),
    [
        (late(telnet_device({}, Log())), "telnet"),
        (late(telnet_device({}, Log(), negotiate=False, banner=b"", login_prompt=b"Username:")), "telnet"),
        (late(ftp_device({}, Log())), "ftp"),
    ],
    ids=["telnet-iac", "telnet-plain", "ftp"],
)
def test_a_greeting_after_the_head_request_still_names_the_service(handler, expected):
    assert identify(handler, limits=PATIENT) == expected


def test_a_late_ssh_server_is_still_ssh():
    """A real SSH server behind a relay that connects to it only 0.8 s after the client came: the
    server then reads the HEAD request as a bad version line, answers with its banner and hangs up."""

    async def main():
        key = asyncssh.generate_private_key("ssh-ed25519")
        server = await asyncssh.create_server(asyncssh.SSHServer, "127.0.0.64", 0, server_host_keys=[key])
        ssh_port = server.sockets[0].getsockname()[1]

        async def pipe(reader, writer):
            try:
                while data := await reader.read(4096):
                    writer.write(data)
                    await writer.drain()
            finally:
                writer.close()

        async def relay(reader, writer):
            await asyncio.sleep(0.8)
            ssh_reader, ssh_writer = await asyncio.open_connection("127.0.0.64", ssh_port)
            await asyncio.gather(pipe(reader, ssh_writer), pipe(ssh_reader, writer), return_exceptions=True)

        try:
            async with serving(relay, "127.0.0.65") as port:
                return await identify_service(loopback_scope(), "127.0.0.65", port, PATIENT)
        finally:
            server.close()

    assert asyncio.run(main()) == "ssh"
