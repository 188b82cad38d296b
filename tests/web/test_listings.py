"""``/api/events`` and ``/api/attacks``: the rows of the store's views, filtered, newest first, every
row on exactly one page, bad parameters named."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from iotscope.web import listings
from iotscope.web.app import create_app
from iotscope.web.store_reader import StoreReader

from .conftest import views

ALL = {"from": "2016-09-01T00:00:00Z", "to": "2016-09-02T00:00:00Z"}


@pytest.fixture(scope="module")
def client(analysed_store: Path) -> TestClient:
    return TestClient(create_app(StoreReader(analysed_store)), raise_server_exceptions=False)


def walk(client: TestClient, url: str, params: dict) -> list[dict]:
    """Every row of a listing, following cursors."""
    rows, cursor, pages = [], None, 0
    while True:
        response = client.get(url, params={**params, **({"cursor": cursor} if cursor else {})})
        assert response.status_code == 200, response.text
        body = response.json()
        rows += body["rows"]
        pages += 1
        cursor = body["cursor"]
        if cursor is None:
            return rows
        assert pages < 10_000


def test_events_pages_hold_every_matching_row_once_newest_first(client: TestClient, analysed_store: Path) -> None:
    expected = views(analysed_store, "SELECT src_ip, dport, epoch_us(first_ts), packets FROM events "
                     "WHERE proto = 6 AND dport = 2323 AND tool = 'mirai' ORDER BY 3 DESC")
    assert len(expected) > 250  # several pages
    rows = walk(client, "/api/events", {**ALL, "port": 2323, "tool": "mirai", "proto": "tcp", "limit": 97})
    assert len(rows) == len(expected)
    got = sorted((r["src"], r["port"], r["first"], r["packets"]) for r in rows)
    assert {(r["src"], r["packets"]) for r in rows} == {(s, n) for s, _, _, n in expected}
    assert len(set(got)) == len(got)
    firsts = [r["first"] for r in rows]
    assert firsts == sorted(firsts, reverse=True)
    assert sum(r["packets"] for r in rows) == sum(n for *_, n in expected)


def test_events_time_range_keeps_overlapping_events(client: TestClient, analysed_store: Path) -> None:
    start, end = "2016-09-01T01:00:00+00:00", "2016-09-01T01:20:00+00:00"
    (count,) = views(analysed_store, "SELECT count(*) FROM events WHERE first_ts < ?::TIMESTAMPTZ AND "
                     "last_ts >= ?::TIMESTAMPTZ", [end, start])[0]
    assert count > 0
    rows = walk(client, "/api/events", {"from": start, "to": end, "limit": 1000})
    assert len(rows) == count


def test_events_default_covers_the_last_day_of_data(client: TestClient, analysed_store: Path) -> None:
    (count,) = views(analysed_store, "SELECT count(*) FROM events")[0]
    assert len(walk(client, "/api/events", {"limit": 1000})) == count  # the store holds 3 hours


def test_attacks_match_the_view(client: TestClient, analysed_store: Path) -> None:
    expected = views(analysed_store, "SELECT victim_ip, packets, bytes, est_attack_pps FROM attacks ORDER BY first_ts DESC")
    assert len(expected) >= 2
    rows = walk(client, "/api/attacks", {**ALL, "limit": 1})
    assert [(r["victim"], r["packets"], r["bytes"]) for r in rows] == [e[:3] for e in expected]
    assert rows[0]["est_attack_pps"] == pytest.approx(expected[0][3])
    on_80 = views(analysed_store, "SELECT count(*) FROM attacks WHERE list_contains(victim_ports, 80)")[0][0]
    assert len(walk(client, "/api/attacks", {**ALL, "port": 80})) == on_80


def test_library_and_endpoint_agree(client: TestClient, analysed_store: Path) -> None:
    con = StoreReader(analysed_store).cursor()
    page = listings.events(con, limit=5, port=23)
    body = client.get("/api/events", params={"limit": 5, "port": 23}).json()
    assert body["rows"] == page["rows"]


@pytest.mark.parametrize(("url", "parameter"), [
    ("/api/events?port=telnet", "port"),
    ("/api/events?port=70000", "port"),
    ("/api/events?tool=nmap", "tool"),
    ("/api/events?proto=sctp", "proto"),
    ("/api/events?limit=0", "limit"),
    ("/api/events?limit=1001", "limit"),
    ("/api/events?from=2016-09-02&to=2016-09-01", "from"),
    ("/api/events?cursor=bm9wZQ.AAAA", "cursor"),
    ("/api/attacks?cursor=x", "cursor"),
    ("/api/events?cursor=.%C2%80", "cursor"),  # a non-ASCII tag (found by schemathesis)
    ("/api/events?cursor=%C3%A9.%C3%A9", "cursor"),
    ("/api/attacks?to=tomorrow", "to"),
])
def test_bad_parameters_are_422_naming_them(client: TestClient, url: str, parameter: str) -> None:
    response = client.get(url)
    assert response.status_code == 422, response.text
    assert response.json()["parameter"] == parameter


def test_a_cursor_of_one_listing_is_refused_by_the_other(client: TestClient) -> None:
    cursor = client.get("/api/events", params={**ALL, "limit": 1}).json()["cursor"]
    assert cursor
    assert client.get("/api/attacks", params={"cursor": cursor}).status_code == 422
    forged = cursor.split(".")[0] + ".AAAAAAAAAAAAAAAAAAAAAA"
    assert client.get("/api/events", params={"cursor": forged}).json()["parameter"] == "cursor"


def test_alerts_match_the_view_newest_first_over_pages(alerting_store: Path) -> None:
    client = TestClient(create_app(StoreReader(alerting_store)), raise_server_exceptions=False)
    expected = views(alerting_store, "SELECT proto, port, epoch_us(start), packets, magnitude FROM alerts "
                     "ORDER BY start DESC, proto, port")
    assert len(expected) >= 2  # the outbreak's 23 and 2323
    rows = walk(client, "/api/alerts", {**ALL, "limit": 1})
    assert [(r["port"], r["packets"]) for r in rows] == [(port, n) for _, port, _, n, _ in expected]
    assert rows[0]["magnitude"] == pytest.approx(expected[0][4])
    assert {r["port"] for r in walk(client, "/api/alerts", {**ALL, "port": 2323})} == {2323}
    assert walk(client, "/api/alerts", {**ALL, "proto": "udp", "port": 2323}) == [
        r for r in rows if r["proto"] == "udp" and r["port"] == 2323]
    # a range that ends before every alert starts holds none
    assert walk(client, "/api/alerts", {"from": "2016-08-01T00:00:00Z", "to": "2016-08-02T00:00:00Z"}) == []


def test_events_of_one_country(client: TestClient, analysed_store: Path, geo_data: None) -> None:
    (country, count), = views(analysed_store, "SELECT country, count(*) FROM events WHERE country IS NOT NULL "
                              "GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 1")
    rows = walk(client, "/api/events", {**ALL, "country": country.lower(), "limit": 1000})
    assert len(rows) == count > 0 and {r["country"] for r in rows} == {country}
    assert client.get("/api/events", params={"country": "Narnia"}).json()["parameter"] == "country"
