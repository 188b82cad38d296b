"""HTTP probe against asyncio web servers on loopback: open admin page, Basic, Digest, hostile."""

from __future__ import annotations

import asyncio
import time

import pytest

from iotscope.survey.credentials import Credential, load_builtin
from iotscope.survey.probes import http
from iotscope.survey.probes.http import Challenge, authorization_header, parse_challenges

from .fake_devices import FAST, Log, garbage, http_device, huge_banner, loopback_scope, serving, silent, tarpit

CREDENTIALS = load_builtin()


def run_probe(handler, host, credentials=CREDENTIALS):
    async def main():
        async with serving(handler, host) as port:
            return await http.probe(loopback_scope(), host, port, credentials, FAST)

    return asyncio.run(main())


def test_open_admin_page_is_vulnerable_without_credential():
    log = Log()
    result = run_probe(http_device(log, open_admin=True, server="GoAhead-Webs"), "127.0.0.41")
    assert (result.status, result.credential_id, result.attempts) == ("vulnerable", None, 0)
    assert result.device == "GoAhead"
    assert b"User-Agent: iotscope-survey" in log.received[0]


@pytest.mark.parametrize("scheme", ["basic", "digest"])
def test_default_credentials_behind_basic_or_digest_found(scheme):
    log = Log()
    handler = http_device(log, accounts={"admin": "12345"}, scheme=scheme, server="App-webs/")
    result = run_probe(handler, "127.0.0.42")
    assert (result.status, result.credential_id) == ("vulnerable", "mirai-54")
    assert result.device == "Hikvision"
    assert "realm: IP Camera" in result.banner


@pytest.mark.parametrize("scheme", ["basic", "digest"])
def test_hardened_auth_is_not_reported(scheme):
    log = Log()
    handler = http_device(log, accounts={"admin": "Unlisted-2024!"}, scheme=scheme)
    result = run_probe(handler, "127.0.0.43", credentials=CREDENTIALS[:10])
    assert (result.status, result.credential_id, result.attempts) == ("not_vulnerable", None, 10)


def test_plain_website_is_not_an_admin_page():
    result = run_probe(http_device(Log()), "127.0.0.44")
    assert result.status == "not_vulnerable"


def test_response_without_length_on_a_kept_open_connection_is_judged():
    async def handler(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.0 200 OK\r\nServer: Boa/0.94.14rc21\r\n\r\n<title>Router</title>Wireless settings")
        await asyncio.sleep(30)  # neither Content-Length nor close

    result = run_probe(handler, "127.0.0.46")
    assert (result.status, result.credential_id) == ("vulnerable", None)
    assert result.device == "Boa 0.94.14rc21"


@pytest.mark.parametrize(
    "handler", [tarpit(b"HTTP/1.1 200 OK\r\n"), huge_banner(b"HTTP/1.1 200 OK\r\nX: "), garbage(), silent()],
    ids=["tarpit", "huge", "garbage", "silent"],
)
def test_hostile_servers_end_in_error_within_the_deadline(handler):
    started = time.monotonic()
    result = run_probe(handler, "127.0.0.45")
    assert result.status == "error", result
    assert time.monotonic() - started < FAST.deadline + 1.0


def test_digest_matches_rfc_2617_worked_example():
    challenge = Challenge(
        "digest",
        {"realm": "testrealm@host.com", "qop": "auth,auth-int", "nonce": "dcd98b7102dd2f0e8b11d0f600bfb0c093", "opaque": "5ccc069c403ebaf9f0171e9517f40e41"},
    )
    credential = Credential("rfc", "Mufasa", "Circle Of Life", "RFC 2617 section 3.5")
    header = authorization_header(challenge, credential, "GET", "/dir/index.html", cnonce="0a4f113b")
    assert 'response="6629fae49393a05397450978507c4ef1"' in header
    assert 'opaque="5ccc069c403ebaf9f0171e9517f40e41"' in header


def test_challenge_parsing_handles_several_schemes_in_one_header():
    challenges = parse_challenges(['Digest realm="a, b", nonce="n1", qop="auth", Basic realm="x"'])
    assert [(c.scheme, c.params.get("realm")) for c in challenges] == [("digest", "a, b"), ("basic", "x")]


@pytest.mark.parametrize(
    ("body", "open_admin"),
    [
        (b"<title>Router</title>System settings, firmware upgrade", True),
        (b"<h1>Camera</h1>Change admin password <input type='password'> <a href=/logout>Logout</a>", True),
        (b"<title>Login</title>Device login: User name <input name=u> Password <input type=password>", False),
        (b"<title>Welcome</title>It works!", False),
    ],
    ids=["status-page", "settings-with-logout", "login-form", "plain-site"],
)
def test_open_admin_page_heuristic(body, open_admin):
    assert http.looks_like_open_admin_page(http.Response(200, {}, body)) is open_admin
