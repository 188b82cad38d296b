"""``GET /check``: the requester's own address only (peer, or a trusted proxy's X-Forwarded-For),
seen scanning or not, ja/en, rate limited; in Debian's chromium and over real HTTP."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from iotscope.telescope.ingest import ingest
from iotscope.telescope.passes.runner import analyze
from iotscope.web.client_address import (
    ClientAddressError,
    client_address,
    trusted_networks,
)
from iotscope.web.rate_limit import RateLimiter
from iotscope.web.routes_check import CHECK_REQUESTS
from iotscope.web.self_check_page import language
from tests.notify.test_check import add_finding
from tests.telescope.passes.captures import at, darknet_address, syn, write_capture

from .conftest import raw

PROXY = "127.0.0.1"
ELSEWHERE = "192.0.2.77"  # documentation address: only ever written into a header, never contacted
DEFAULT_PASSWORD = "203.0.113.50"  # a survey finding (written into the store; never contacted)


@pytest.fixture(scope="module")
def loopback_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A darknet capture in which 127.0.0.1 scanned 23 and 2323/tcp and 203.0.113.9 scanned 22/tcp."""
    root = tmp_path_factory.mktemp("selfcheck")
    start = at("2016-09-01T10:00:00")
    packets = [(start + i * 1000, syn("127.0.0.1", darknet_address(i), 23 if i % 2 else 2323)) for i in range(50)]
    packets += [(start + i * 1000 + 7, syn("203.0.113.9", darknet_address(i), 22)) for i in range(20)]
    write_capture(root / "capture.pcap", packets)
    ingest([root / "capture.pcap"], root / "store")
    analyze(root / "store")  # the self-check reads the scanner events
    add_finding(root / "store", DEFAULT_PASSWORD, "vulnerable", datetime(2026, 11, 1, tzinfo=UTC), "S1")
    return root / "store"


def test_the_peer_is_the_client_unless_a_trusted_proxy_says_otherwise() -> None:
    trusted = trusted_networks(["127.0.0.1", "10.0.0.0/8"])
    assert client_address("198.51.100.4", "127.0.0.1", trusted) == "198.51.100.4"  # not from a proxy: ignored
    assert client_address("127.0.0.1", None, trusted) == "127.0.0.1"
    assert client_address("127.0.0.1", f"6.6.6.6, {ELSEWHERE}", trusted) == ELSEWHERE  # rightmost untrusted
    assert client_address("127.0.0.1", f"{ELSEWHERE}, 10.1.2.3", trusted) == ELSEWHERE  # chain of proxies
    with pytest.raises(ClientAddressError):
        client_address("127.0.0.1", "not-an-address", trusted)
    with pytest.raises(ClientAddressError, match="--trusted-proxy proxy.example"):
        trusted_networks(["proxy.example"])


def test_language_follows_lang_then_accept_language() -> None:
    assert language("ja", "en") == "ja"
    assert language(None, "ja-JP,ja;q=0.9,en;q=0.8") == "ja"
    assert language(None, "en-US,en;q=0.9,ja;q=0.8") == "en"
    assert language(None, "fr, ja;q=0.5") == "ja"
    assert language("xx", "de") == "en"


def test_rate_limit_counts_per_client_in_a_sliding_window() -> None:
    now = [0.0]
    limiter = RateLimiter(3, 60, clock=lambda: now[0])
    assert [limiter.allow("a")[0] for _ in range(4)] == [True, True, True, False]
    assert limiter.allow("b")[0]
    now[0] = 59.0
    allowed, wait = limiter.allow("a")
    assert not allowed and wait == pytest.approx(1.0)
    now[0] = 60.5
    assert limiter.allow("a")[0]


def test_over_http_own_address_only_rate_limited(serve, loopback_store: Path) -> None:
    (packets,) = raw(loopback_store, "SELECT count(*) FROM p WHERE src = ?", [int(ipaddress.ip_address("127.0.0.1"))])[0]
    assert packets == 50
    server = serve(loopback_store)  # no trusted proxy: X-Forwarded-For is the client's own words
    page = httpx.get(server.url + "/check", headers={"X-Forwarded-For": ELSEWHERE}).text
    assert 'data-verdict="seen"' in page and '<strong id="address">127.0.0.1</strong>' in page, page
    assert "50 packets" in page and "23" in page and "2323" in page
    assert "Restart the device" in page
    japanese = httpx.get(server.url + "/check?address=203.0.113.9", headers={"Accept-Language": "ja"}).text
    assert '<html lang="ja">' in japanese and "127.0.0.1" in japanese and "203.0.113.9" not in japanese
    assert "再起動" in japanese
    statuses = [httpx.get(server.url + "/check").status_code for _ in range(CHECK_REQUESTS)]
    assert statuses.count(429) >= 1 and statuses[0] == 200  # 2 requests above, so the budget runs out
    refused = httpx.get(server.url + "/check")
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1


def test_a_trusted_proxy_names_the_client(serve, loopback_store: Path) -> None:
    server = serve(loopback_store, extra=("--trusted-proxy", PROXY))
    page = httpx.get(server.url + "/check", headers={"X-Forwarded-For": ELSEWHERE}).text
    assert 'data-verdict="clean"' in page and ELSEWHERE in page and "127.0.0.1" not in page
    scanner = httpx.get(server.url + "/check", headers={"X-Forwarded-For": "203.0.113.9"}).text
    assert 'data-verdict="seen"' in scanner and "20 packets" in scanner and "22" in scanner


def test_the_page_in_chromium_says_seen_or_not_seen(browser, serve, loopback_store: Path) -> None:
    server = serve(loopback_store, extra=("--trusted-proxy", PROXY))
    artifacts = Path(__file__).resolve().parents[2] / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    context = browser.new_context(locale="ja-JP")
    page = context.new_page()
    page.goto(server.url + "/check")
    assert page.get_attribute("#verdict", "data-verdict") == "seen"
    assert page.inner_text("#address") == "127.0.0.1"
    assert "スキャン" in page.inner_text("#verdict") and "再起動" in page.inner_text("#advice")
    page.screenshot(path=str(artifacts / "self-check-seen-ja.png"), full_page=True)
    context.close()
    context = browser.new_context(locale="en-US", extra_http_headers={"X-Forwarded-For": ELSEWHERE})
    page = context.new_page()
    page.goto(server.url + "/check")
    assert page.get_attribute("#verdict", "data-verdict") == "clean"
    assert page.inner_text("#address") == ELSEWHERE
    assert "was not seen scanning the darknet in the last 30 days" in page.inner_text("#verdict")
    page.screenshot(path=str(artifacts / "self-check-clean-en.png"), full_page=True)
    context.close()


def test_a_survey_finding_says_default_password(serve, loopback_store: Path) -> None:
    server = serve(loopback_store, extra=("--trusted-proxy", PROXY))
    page = httpx.get(server.url + "/check", headers={"X-Forwarded-For": DEFAULT_PASSWORD}).text
    assert 'data-verdict="vulnerable"' in page
    assert "default password" in page and "port 23/telnet" in page and "2026-11-01 00:00:00 UTC" in page
    assert "Change the default password" in page
    japanese = httpx.get(server.url + "/check?lang=ja", headers={"X-Forwarded-For": DEFAULT_PASSWORD}).text
    assert "初期パスワード" in japanese and "ポート 23/telnet" in japanese
