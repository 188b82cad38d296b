"""FTP probe against asyncio FTP servers on loopback: anonymous, default credentials, hostile."""

from __future__ import annotations

import asyncio
import time

import pytest

from iotscope.survey.credentials import Credential, load_builtin
from iotscope.survey.probes import ftp

from .fake_devices import FAST, Log, ftp_device, garbage, huge_banner, loopback_scope, serving, tarpit

CREDENTIALS = load_builtin()


def run_probe(handler, host, credentials=CREDENTIALS):
    async def main():
        async with serving(handler, host) as port:
            return await ftp.probe(loopback_scope(), host, port, credentials, FAST)

    return asyncio.run(main())


def test_anonymous_login_is_vulnerable_without_credential():
    log = Log()
    result = run_probe(ftp_device({}, log, anonymous=True), "127.0.0.51")
    assert (result.status, result.credential_id, result.attempts) == ("vulnerable", None, 1)
    assert log.received == [b"USER anonymous", b"PASS iotscope@", b"QUIT"]
    assert result.device == "vsFTPd 3.0.3"


def test_default_credentials_found_across_reconnects():
    log = Log()
    result = run_probe(ftp_device({"admin": "admin"}, log), "127.0.0.52")
    # anonymous, then mirai-01..04: the server hangs up after three failures.
    assert (result.status, result.credential_id, result.attempts) == ("vulnerable", "mirai-04", 5)
    assert log.connections == 2


def test_hardened_server_is_not_reported():
    result = run_probe(ftp_device({"admin": "Unlisted-2024!"}, Log()), "127.0.0.53", credentials=CREDENTIALS[:8])
    assert (result.status, result.credential_id, result.attempts) == ("not_vulnerable", None, 9)


@pytest.mark.parametrize("handler", [tarpit(b"220"), huge_banner(b"220-"), garbage()], ids=["tarpit", "huge", "garbage"])
def test_hostile_servers_end_in_error_within_the_deadline(handler):
    started = time.monotonic()
    result = run_probe(handler, "127.0.0.54")
    assert result.status == "error", result
    assert time.monotonic() - started < FAST.deadline + 1.0


def greeting_device(greeting: bytes, accounts: dict[str, str]):
    async def handler(reader, writer):
        writer.write(greeting)
        user = ""
        while True:
            verb, _, arg = (await reader.readuntil(b"\n")).strip().decode().partition(" ")
            if verb == "USER":
                user = arg
                writer.write(b"331 Please specify the password.\r\n")
            elif verb == "PASS":
                writer.write(b"230 Login successful.\r\n" if accounts.get(user) == arg else b"530 Login incorrect.\r\n")
            else:
                writer.write(b"221 Goodbye.\r\n")
                return

    return handler


def test_a_listed_password_in_the_greeting_is_not_masked_and_the_greeting_names_the_device():
    """Issue 7 item 4: "service" is a listed password, so the banner used to read
    "220 Welcome to blah FTP ***." Only the password that logged in is masked."""
    credentials = [Credential("c1", "root", "service", "test"), Credential("c2", "admin", "blah", "test")]
    refused = run_probe(greeting_device(b"220 Welcome to blah FTP service.\r\n", {}), "127.0.0.55", credentials)
    assert (refused.status, refused.attempts) == ("not_vulnerable", 3), refused
    assert refused.banner == "220 Welcome to blah FTP service."
    assert refused.device == "blah"
    found = run_probe(greeting_device(b"220 Welcome to blah FTP service.\r\n", {"admin": "blah"}), "127.0.0.55", credentials)
    assert (found.status, found.credential_id) == ("vulnerable", "c2"), found
    assert found.banner == "220 Welcome to *** FTP service."  # the password that logged in, only


def test_maker_named_by_the_greeting_gets_its_defaults_first():
    found = run_probe(greeting_device(b"220 ZXHN H108N FTP version 1.0 ready\r\n", {"ZXDSL": "ZXDSL"}), "127.0.0.56")
    assert (found.status, found.credential_id) == ("vulnerable", "zte-1"), found
    assert found.attempts <= 1 + len([c for c in CREDENTIALS if "ZTE" in c.vendors])  # anonymous first
