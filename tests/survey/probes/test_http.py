"""HTTP probe against asyncio web servers on loopback: open admin page, Basic, Digest, hostile."""

from __future__ import annotations

import asyncio
import time

import pytest

from iotscope.survey.credentials import Credential, load_builtin
from iotscope.survey.probes import http
from iotscope.survey.probes.http import Challenge, authorization_header, parse_challenges

from iotscope.simulate.devices.accounts import Account
from iotscope.simulate.devices.banners import PROFILES
from iotscope.simulate.devices.http_device import http_handler

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


#: Stock pages that web servers install: never a device's admin UI, whatever words they contain.
STOCK_PAGES = {
    "nginx": b"<!DOCTYPE html><html><head><title>Welcome to nginx!</title></head><body><h1>Welcome to nginx!</h1>"
    b"<p>If you see this page, the nginx web server is successfully installed and working. Further configuration "
    b"is required.</p><p>For online documentation and support please refer to nginx.org.</p></body></html>",
    "apache-debian": b"<title>Apache2 Debian Default Page: It works</title><div class='section_header'>It works!</div>"
    b"This is the default welcome page used to test the correct operation of the Apache2 server after installation "
    b"on Debian systems. Configuration Overview: Debian's Apache2 default configuration is different from the "
    b"upstream default configuration, /etc/apache2/apache2.conf, Device settings in ports.conf",
    "apache-ubuntu": b"<title>Apache2 Ubuntu Default Page: It works</title>Ubuntu system configuration network",
    "apache-plain": b"<html><body><h1>It works!</h1></body></html>",
    "apache-rhel": b"<title>Test Page for the Apache HTTP Server on Red Hat Enterprise Linux</title>admin setup",
    "lighttpd": b"<title>Welcome page</title><h1>Placeholder page</h1>The owner of this web site has not put up any "
    b"web pages yet. Unless you changed its configuration, your new server is configured as follows: This is a "
    b"placeholder page installed by the Debian release of the Lighttpd server package. This computer has installed "
    b"the Debian GNU/Linux operating system",
    "iis": b"<title>IIS Windows Server</title><a href='https://go.microsoft.com/fwlink/?linkid=66138'>"
    b"<img src='iisstart.png' alt='IIS'></a> Internet Information Services system administration",
    "iis-old": b"<title>IIS7</title><img src='welcome.png' alt='IIS7' /> Windows Server device settings",
}


@pytest.mark.parametrize("body", STOCK_PAGES.values(), ids=STOCK_PAGES.keys())
def test_stock_web_server_page_is_never_an_open_admin_page(body):
    assert http.looks_like_open_admin_page(http.Response(200, {"server": ["nginx/1.22.1"]}, body)) is False


@pytest.mark.parametrize(
    "body",
    [
        b"<title>Welcome</title><p>Configuration of our network and systems is described in the admin guide.</p>",
        b"<title>Docs</title>Device settings and setup notes for our office",
    ],
    ids=["blog-with-admin-words", "office-wiki"],
)
def test_admin_words_alone_are_not_evidence_of_a_device(body):
    assert http.looks_like_open_admin_page(http.Response(200, {}, body)) is False


@pytest.mark.parametrize("profile", PROFILES, ids=[p.name for p in PROFILES])
def test_emulated_device_uis_are_open_admin_pages(profile):
    result = run_probe(http_handler(profile, Account(None, None)), "127.0.0.47")
    assert (result.status, result.credential_id) == ("vulnerable", None), result


def test_maker_named_by_the_server_gets_its_defaults_first():
    """Issue 7 items 2/6: the Server header names ZyXEL, so ZyXEL's pairs are tried first and
    zyxel-2 (past the 100-attempt cap in list order) is found within a few attempts."""
    log = Log()
    handler = http_device(log, accounts={"admin": "Zyxel*2012*"}, server="RomPager/4.07 UPnP/1.0 ZyXEL NBG")
    result = run_probe(handler, "127.0.0.48")
    assert (result.status, result.credential_id) == ("vulnerable", "zyxel-2"), result
    assert result.attempts <= len([c for c in CREDENTIALS if "ZyXEL" in c.vendors])
