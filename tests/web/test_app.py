"""The HTTP shell: same numbers as the library, 422 naming the parameter, JSON errors, no writes."""

from __future__ import annotations

import string
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from iotscope.web import profile_query, queries
from iotscope.web.app import create_app
from iotscope.web.store_reader import StoreReader
from tests.web.conftest import map_rows

ENDPOINTS = ["/api/summary", "/api/series", "/api/top/port", "/api/top/tool", "/api/map"]


@pytest.fixture(scope="module")
def reader(outbreak_store: Path) -> StoreReader:
    return StoreReader(outbreak_store)


@pytest.fixture(scope="module")
def client(reader: StoreReader) -> TestClient:
    return TestClient(create_app(reader), raise_server_exceptions=False)


@pytest.mark.parametrize(("url", "expected"), [
    ("/api/summary", lambda c: queries.summary(c)),
    ("/api/series?proto=tcp&port=2323&bucket=600", lambda c: queries.series(c, "tcp", 2323, 600)),
    ("/api/series?proto=udp&bucket=3600", lambda c: queries.series(c, "udp", None, 3600)),
    ("/api/top/port?limit=3", lambda c: queries.top(c, "port", 3)),
    ("/api/top/tool", lambda c: queries.top(c, "tool", 10)),
    ("/api/map?window=60&limit=100", lambda c: queries.map_points(c, 60, 100)),
])
def test_endpoints_answer_what_the_library_answers(client: TestClient, reader: StoreReader, url: str, expected) -> None:
    response = client.get(url)
    assert response.status_code == 200, response.text
    assert response.json() == expected(reader.cursor())


def test_time_parameters_are_iso_8601(client: TestClient, reader: StoreReader) -> None:
    response = client.get("/api/top/port", params={"from": "2016-09-01T01:00:00Z", "to": "2016-09-01T01:30:00+00:00"})
    assert response.status_code == 200
    assert response.json()["from"] == "2016-09-01T01:00:00+00:00"
    assert response.json()["to"] == "2016-09-01T01:30:00+00:00"


@pytest.mark.parametrize(("url", "parameter"), [
    ("/api/series?port=telnet", "port"),
    ("/api/series?port=65536", "port"),
    ("/api/series?proto=sctp", "proto"),
    ("/api/series?bucket=0", "bucket"),
    ("/api/series?from=yesterday", "from"),
    ("/api/series?from=2016-09-02&to=2016-09-01", "from"),
    ("/api/top/port?limit=0", "limit"),
    ("/api/top/port?limit=1001", "limit"),
    ("/api/top/city", "by"),
    ("/api/events?country=Narnia", "country"),
    ("/api/map?window=-5", "window"),
    ("/api/map?limit=abc", "limit"),
])
def test_bad_parameters_are_422_naming_the_parameter(client: TestClient, url: str, parameter: str) -> None:
    response = client.get(url)
    assert response.status_code == 422
    body = response.json()
    assert body["parameter"] == parameter
    assert body["error"].startswith(parameter + ":") and "\n" not in body["error"]


def test_source_profile_endpoint(client: TestClient, reader: StoreReader) -> None:
    address = client.get("/api/map", params={"window": 600, "limit": 1}).json()["points"]["src"][0]
    response = client.get(f"/api/ip/{address}")
    assert response.status_code == 200
    assert response.json() == profile_query.source_profile(reader.cursor(), address)
    unseen = client.get("/api/ip/192.0.2.1")
    assert unseen.status_code == 404 and "192.0.2.1" in unseen.json()["error"]
    malformed = client.get("/api/ip/not-an-address")
    assert malformed.status_code == 422 and malformed.json()["parameter"] == "address"


def test_unknown_path_is_a_json_404_and_nothing_accepts_a_write(client: TestClient) -> None:
    response = client.get("/api/nothing-here")
    assert response.status_code == 404 and "error" in response.json()
    for url in ENDPOINTS:
        assert client.post(url).status_code == 405
        assert client.delete(url).status_code == 405


def test_openapi_documents_every_endpoint(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/api/summary", "/api/series", "/api/top/{by}", "/api/map", "/api/live"} <= set(paths)
    assert client.get("/docs").status_code == 200


_text = st.text(alphabet=string.printable, max_size=12)
_value = st.one_of(_text, st.integers(-10**12, 10**12).map(str), st.sampled_from(
    ["tcp", "udp", "icmp", "2016-09-01", "2016-09-01T00:00:00Z", "", "nan", "1e9", "23", "-1", "0"]))
_params = st.dictionaries(st.sampled_from(["proto", "port", "bucket", "from", "to", "limit", "window", "x"]),
                          _value, max_size=5)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.one_of(st.sampled_from([*ENDPOINTS, "/api/top/x"]),
                      st.text(alphabet=string.hexdigits + ".:", min_size=1, max_size=40)
                      .filter(lambda t: t.strip("."))  # "." and ".." are path steps, not addresses
                      .map("/api/ip/".__add__)),
       params=_params)
def test_fuzzed_parameters_never_give_a_500(client: TestClient, path: str, params: dict[str, str]) -> None:
    response = client.get(path, params=params)
    assert response.status_code in (200, 404, 422), (path, params, response.text)
    body = response.json()
    if response.status_code == 422:
        # "by" and "address" are in the path; "bucket" may be the default, too small for a long range
        assert body["parameter"] in {*params, "by", "address", "bucket"}, (path, params, body)
    if response.status_code == 404:
        assert path.startswith("/api/ip/"), (path, body)


def test_an_empty_store_answers_zeros_not_errors(tmp_path: Path) -> None:
    from iotscope.store.packets import PacketStore

    PacketStore(tmp_path / "empty").close()  # a store with no capture committed yet
    client = TestClient(create_app(StoreReader(tmp_path / "empty")), raise_server_exceptions=False)
    summary = client.get("/api/summary").json()
    assert (summary["packets"], summary["sources"], summary["first"], summary["per_year"]) == (0, 0, None, [])
    series = client.get("/api/series", params={"proto": "tcp", "port": 23, "bucket": 3600}).json()
    assert len(series["t"]) in (24, 25) and set(series["packets"]) == {0}
    assert client.get("/api/top/port").json()["rows"] == []
    assert map_rows(client.get("/api/map").json()["points"]) == []
    assert client.get("/api/ip/192.0.2.1").status_code == 404


@pytest.mark.parametrize("url", ["/api/top/port", "/api/categories", "/api/series", "/api/events", "/api/alerts"])
def test_a_range_ending_at_the_start_of_the_calendar_is_empty_not_a_500(client: TestClient, url: str) -> None:
    response = client.get(url, params={"to": "0001-01-01T00:00:00Z"})  # 24 h before it is year 0
    assert response.status_code == 200, response.text
