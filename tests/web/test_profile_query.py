"""One source's profile, each number checked against DuckDB over the raw Parquet files (or the ``sources`` view)."""

from __future__ import annotations

import ipaddress
from datetime import datetime
from pathlib import Path

import pytest

from iotscope.web.profile_query import UnknownSourceError, source_profile
from iotscope.web.queries import ApiParameterError
from iotscope.web.store_reader import StoreReader
from tests.web.conftest import raw, views


@pytest.fixture(scope="module")
def reader(outbreak_store: Path) -> StoreReader:
    return StoreReader(outbreak_store)


@pytest.fixture(scope="module")
def analysed(analysed_store: Path) -> StoreReader:
    return StoreReader(analysed_store)


def test_source_profile_matches_the_store(reader: StoreReader, outbreak_store: Path) -> None:
    src, packets, first, last, destinations = raw(
        outbreak_store, "SELECT src, count(*) AS n, min(ts), max(ts), count(DISTINCT dst) FROM p "
                        "WHERE tool = 'mirai' GROUP BY src ORDER BY n DESC, src LIMIT 1")[0]
    address = str(ipaddress.IPv4Address(src))
    got = source_profile(reader.cursor(), address)
    assert (got["address"], got["packets"], got["destinations"]) == (address, packets, destinations)
    assert (datetime.fromisoformat(got["first_seen"]), datetime.fromisoformat(got["last_seen"])) == (first, last)
    assert got["tools"] == ["mirai"]
    ports = raw(outbreak_store, "SELECT dport, count(*) AS n FROM p WHERE src = ? GROUP BY 1 ORDER BY n DESC, 1",
                [src])
    assert [(p["port"], p["packets"]) for p in got["ports"]] == ports
    assert {p["port"] for p in got["ports"]} <= {23, 2323}
    assert got["flag_class"] == dict(raw(outbreak_store, "SELECT flag_class, count(*) FROM p WHERE src = ? "
                                                         "GROUP BY 1", [src]))
    assert got["country"] is None and "lat" in got and "asn" in got


def test_source_profile_of_an_unseen_or_malformed_address(reader: StoreReader) -> None:
    with pytest.raises(UnknownSourceError):
        source_profile(reader.cursor(), "192.0.2.1")  # TEST-NET-1: never a simulated source
    with pytest.raises(UnknownSourceError):
        source_profile(reader.cursor(), "2001:db8::1")
    for text in ("not-an-address", "999.1.1.1", "1.2.3", ""):
        with pytest.raises(ApiParameterError) as caught:
            source_profile(reader.cursor(), text)
        assert caught.value.parameter == "address"


def test_source_profile_carries_location_network_and_classification(analysed: StoreReader,
                                                                     analysed_store: Path, geo_data: None) -> None:
    ip, cc, asn, name, lat, lon, kind = views(
        analysed_store, "SELECT src_ip, country, asn, as_name, lat, lon, classification FROM sources "
        "WHERE asn IS NOT NULL AND lat IS NOT NULL ORDER BY packets DESC LIMIT 1")[0]
    got = source_profile(analysed.cursor(), ip)
    assert (got["country"], got["asn"], got["as_name"], got["classification"]) == (cc, asn, name, kind)
    assert (got["lat"], got["lon"]) == (pytest.approx(lat), pytest.approx(lon))
