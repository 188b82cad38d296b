"""Telnet probe against real asyncio telnet servers on loopback: found, hardened, hostile."""

from __future__ import annotations

import asyncio
import dataclasses
import time

import pytest

from iotscope.survey.credentials import Credential, load_builtin
from iotscope.survey.probes import telnet
from iotscope.survey.probes.telnet import DO, IAC, SB, SE, WILL, Prompt, TelnetNegotiator, classify_tail

from .fake_devices import (
    FAST,
    Log,
    endless_negotiation,
    garbage,
    huge_banner,
    loopback_scope,
    serving,
    tarpit,
    telnet_device,
)

CREDENTIALS = load_builtin()


def run_probe(handler, host="127.0.0.1", limits=FAST, credentials=CREDENTIALS):
    async def main():
        async with serving(handler, host) as port:
            return await telnet.probe(loopback_scope(), host, port, credentials, limits)

    return asyncio.run(main())


def test_default_credentials_found_with_the_right_id_after_reconnecting():
    log = Log()
    # admin/admin is Mirai's 4th pair: three failures, the device hangs up, the probe reconnects.
    result = run_probe(telnet_device({"admin": "admin"}, log), "127.0.0.21")
    assert (result.status, result.credential_id) == ("vulnerable", "mirai-04")
    assert result.attempts == 4
    assert log.connections == 2
    assert log.received[-1] == b"SHELL:exit"  # left at once, typed nothing else
    assert result.device == "BusyBox 1.35.0"
    assert "login" in result.banner


def test_hardened_device_is_not_reported():
    log = Log()
    limits = dataclasses.replace(FAST, deadline=30.0)
    result = run_probe(telnet_device({"admin": "Xk#92-long-unique"}, log), "127.0.0.22", limits)
    # The corpus is longer than the cap: the list was not exhausted, so no verdict (issue 7 item 2).
    assert result.status == "incomplete"
    assert result.credential_id is None
    distinct = len({(c.username, c.password) for c in CREDENTIALS})
    assert result.attempts == min(distinct, limits.max_attempts)
    assert result.remaining == distinct - limits.max_attempts
    assert f"{distinct - limits.max_attempts} listed pairs not tried (--max-attempts cap" in result.detail
    assert result.connections < result.attempts  # login(1)-like devices re-prompt on one connection
    assert not any(r.startswith(b"SHELL:") for r in log.received)


def test_attempt_cap_is_respected():
    log = Log()
    limits = dataclasses.replace(FAST, max_attempts=5)
    result = run_probe(telnet_device({"admin": "nope-not-listed"}, log), "127.0.0.23", limits)
    assert (result.status, result.attempts) == ("incomplete", 5)  # pairs left: no verdict
    assert len([r for r in log.received if not r.startswith(b"SHELL")]) == 5


def test_device_without_password_is_vulnerable_without_credential():
    log = Log()
    result = run_probe(telnet_device({}, log, no_login=True), "127.0.0.24")
    assert (result.status, result.credential_id, result.attempts) == ("vulnerable", None, 0)
    assert log.received == [b"exit"]


def test_vendor_prompts_without_negotiation():
    log = Log()
    handler = telnet_device(
        {"root": "vizxv"},
        log,
        negotiate=False,
        banner=b"\r\nUser Access Verification\r\n\r\n",
        login_prompt=b"Username:",
        password_prompt=b"Password:",
        shell=b"\r\nDVR> ",
    )
    result = run_probe(handler, "127.0.0.25")
    assert (result.status, result.credential_id) == ("vulnerable", "mirai-02")


def test_silent_device_gets_one_key_press_then_shows_its_prompt():
    log = Log()
    result = run_probe(telnet_device({"root": "xc3511"}, log, wait_for_key=True), "127.0.0.27")
    assert (result.status, result.credential_id) == ("vulnerable", "mirai-01")
    assert log.received[0] == b"KEY:"


@pytest.mark.parametrize(
    ("name", "handler"),
    [
        ("tarpit", tarpit(b"\xff\xfb\x01login")),
        ("huge banner", huge_banner()),
        ("garbage", garbage()),
        ("endless negotiation", endless_negotiation()),
    ],
)
def test_hostile_devices_end_in_error_within_the_deadline(name, handler):
    started = time.monotonic()
    result = run_probe(handler, "127.0.0.26")
    elapsed = time.monotonic() - started
    assert result.status == "error", result
    assert elapsed < FAST.deadline + 1.0
    assert len(result.banner) <= 256 and result.banner.isprintable()


def test_negotiation_answers_once_and_refuses_what_it_does_not_need():
    negotiator = TelnetNegotiator(max_rounds=64)
    data, replies = negotiator.feed(bytes((IAC, WILL, 1, IAC, DO, 24, IAC, WILL, 1)) + b"log")
    assert data == b"log"
    assert replies == bytes((IAC, DO, 1, IAC, 252, 24))  # DO ECHO, WONT TTYPE; the repeat unanswered
    # A command split across chunks, a subnegotiation and an escaped 0xFF data byte.
    data, replies = negotiator.feed(bytes((IAC,)))
    assert (data, replies) == (b"", b"")
    data, replies = negotiator.feed(bytes((SB, 24, 1, IAC, SE)) + b"in" + bytes((IAC, IAC)) + b": ")
    assert data == b"in\xff: "


def test_prompt_classification():
    assert classify_tail("\r\n(none) login: ") is Prompt.LOGIN
    assert classify_tail("User Name:") is Prompt.LOGIN
    assert classify_tail("\r\nPassword: ") is Prompt.PASSWORD
    assert classify_tail("BusyBox v1.35.0 built-in shell (ash)\r\n~ # ") is Prompt.SHELL
    assert classify_tail("[admin@MikroTik] > ") is Prompt.SHELL
    assert classify_tail("\x1b[1;32mroot@OpenWrt\x1b[0m:~# ") is Prompt.SHELL
    assert classify_tail("login as: ") is Prompt.LOGIN
    assert classify_tail("Password for admin:") is Prompt.PASSWORD
    assert classify_tail("Login incorrect\r\n") is None
    assert classify_tail("Last login: Sun Nov 22 03:40:28 on pts/0") is None
    assert classify_tail("Welcome to the device\r\n") is None



def test_password_only_device_and_an_echoed_password_never_reaches_the_banner():
    log = Log()

    async def handler(reader, writer):
        log.connections += 1
        writer.write(b"\r\nRouter console\r\nPassword: ")
        while True:
            password = await reader.readuntil(b"\n")
            writer.write(password)  # bad firmware: echoes what was typed
            if password.strip() == b"juantech":
                writer.write(b"\r\nRouter> ")
                log.received.append(b"SHELL:" + (await reader.readuntil(b"\n")).strip())
                return
            writer.write(b"\r\nBad password\r\nPassword: ")

    result = run_probe(handler, "127.0.0.28")
    assert (result.status, result.credential_id) == ("vulnerable", "mirai-08")
    # Each distinct password once: xc3511 vizxv admin (admin/admin skipped) 888888 xmhdipc default juantech.
    assert result.attempts == 7
    # The banner is what the device said before the first attempt: no echo of anything typed.
    assert result.banner == "Router console Password:"
    assert log.received == [b"SHELL:exit"]


def test_banner_is_the_pre_login_greeting_and_names_the_device():
    """Issue 7 item 4: the banner kept is what precedes the first login (issue text and prompt),
    never the echoed user names or what follows, and ``device`` comes from that greeting."""

    async def handler(reader, writer):
        writer.write(b"\r\nDebian GNU/Linux 12\r\nNVR-4CH login: ")
        while True:
            user = await reader.readuntil(b"\n")
            writer.write(user + b"Password: ")  # echoes the typed user name
            await reader.readuntil(b"\n")
            writer.write(b"\r\nLogin incorrect\r\nNVR-4CH login: ")

    credentials = [Credential("c1", "supervisor", "service", "test"), Credential("c2", "admin", "1234", "test")]
    result = run_probe(handler, "127.0.0.29", credentials=credentials)
    assert (result.status, result.attempts) == ("not_vulnerable", 2), result
    assert result.banner == "Debian GNU/Linux 12 NVR-4CH login:"
    assert "supervisor" not in result.banner and "incorrect" not in result.banner
    assert result.device == "Debian 12"


def test_device_named_only_by_its_login_prompt():
    async def handler(reader, writer):
        writer.write(b"\r\nNVR-4CH login: ")
        await reader.readuntil(b"\n")
        writer.close()

    result = run_probe(handler, "127.0.0.29", credentials=[Credential("c1", "supervisor", "service", "test")])
    assert result.device == "NVR-4CH", result


def test_a_device_that_names_its_maker_gets_that_makers_defaults_first():
    """Issue 7 items 2/6: the greeting names ZTE, so ZTE's pairs come first: root/Zte521 (Mirai's
    39th) is found at once, and zte-3 (number 664 of the corpus, past the 100-attempt cap in
    list order) is found at all."""
    for account, expected in (({"root": "Zte521"}, "mirai-39"), ({"root": "W!n0&oO7."}, "zte-3")):
        log = Log()
        handler = telnet_device(account, log, banner=b"\r\nZXHN F660\r\n", tries_per_connection=10)
        result = run_probe(handler, "127.0.0.23", dataclasses.replace(FAST, deadline=10.0))
        assert (result.status, result.credential_id) == ("vulnerable", expected), result
        zte = [c for c in CREDENTIALS if "ZTE" in c.vendors]
        assert result.attempts <= len(zte), result
