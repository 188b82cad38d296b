"""A user's .mmdb file converted to ranges answers exactly what maxminddb's own lookup answers."""

from __future__ import annotations

import ipaddress
import os

import maxminddb
import numpy as np
import pytest

from iotscope.enrich import EnrichDataError, Enricher
from iotscope.enrich.mmdb import cached_mmdb_table, convert_mmdb
from iotscope.errors import IotscopeError

from .mmdb_files import CITY_NETWORKS, write_asn_mmdb, write_city_mmdb


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    directory = tmp_path_factory.mktemp("mmdb")
    return write_city_mmdb(directory / "city.mmdb"), write_asn_mmdb(directory / "asn.mmdb")


def _probe_addresses() -> np.ndarray:
    """Every network's first and last address, their outside neighbours, the ends of IPv4, noise."""
    points = [0, 1, 2, 3, 4, 0xFFFFFFFF, 0xFFFFFFFE, 0xFFFFFF00, 0xFFFFFEFF]
    for network in [n for n, *_ in CITY_NETWORKS] + ["8.8.0.0/16", "1.0.0.0/23", "81.2.69.0/24"]:
        net = ipaddress.ip_network(network)
        first, last = int(net.network_address), int(net.broadcast_address)
        points += [first, last, max(first - 1, 0), min(last + 1, 0xFFFFFFFF), (first + last) // 2]
    noise = np.random.default_rng(7).integers(0, 1 << 32, 2000, dtype=np.uint64)
    return np.concatenate([np.array(points, np.uint64), noise]).astype(np.uint32)


def _expected(city_path, asn_path, addresses):
    """Per-address answers of the maxminddb reader itself (the reference)."""
    rows = []
    with maxminddb.open_database(str(city_path)) as city, maxminddb.open_database(str(asn_path)) as asn:
        for value in addresses.tolist():
            address = str(ipaddress.IPv4Address(value))
            geo = city.get(address) or {}
            system = asn.get(address) or {}
            location = geo.get("location") or {}
            rows.append(
                (
                    (geo.get("country") or {}).get("iso_code"),
                    location.get("latitude"),
                    location.get("longitude"),
                    system.get("autonomous_system_number"),
                    system.get("autonomous_system_organization"),
                )
            )
    return rows


def test_vectorized_answers_equal_maxminddb_per_address(files, tmp_path):
    city, asn = files
    addresses = _probe_addresses()
    result = Enricher.from_mmdb(city=city, asn=asn, cache_dir=tmp_path).lookup_ipv4(addresses)
    got = list(
        zip(*(result.column(name).to_pylist() for name in ("country", "lat", "lon", "asn", "as_name")), strict=True)
    )
    assert got == _expected(city, asn, addresses)
    # the probes do reach both known and unknown space, so the comparison covers both
    assert result.column("country").null_count > 0 and result.column("country").null_count < len(addresses)


def test_edges_of_ipv4_space_and_unallocated_space(files, tmp_path):
    city, asn = files
    result = Enricher.from_mmdb(city=city, asn=asn, cache_dir=tmp_path).lookup_ipv4(
        np.array([0, 3, 4, 0x01000000 - 1, 0xFFFFFFFF, 0x0A000001], np.uint32)
    )
    assert result.column("country").to_pylist() == ["AQ", "AQ", None, None, None, None]
    # 255.255.255.255: a record without location (city), an AS (asn file)
    assert result.column("lat").to_pylist()[4] is None
    assert result.column("asn").to_pylist() == [None, None, None, None, 64512, None]
    assert result.column("as_name").to_pylist()[4] == "Private Use AS"


def test_sources_name_the_files_and_their_dates(files, tmp_path):
    city, asn = files
    enricher = Enricher.from_mmdb(city=city, asn=asn, cache_dir=tmp_path)
    by_kind = {s.provides: s for s in enricher.sources}
    assert by_kind["geo"].name == "Test-City" and by_kind["asn"].name == "Test-ASN"  # database_type
    assert by_kind["geo"].origin == str(city)
    assert len(by_kind["geo"].date) == 10 and len(by_kind["geo"].sha256) == 64


def test_conversion_is_cached_by_content(files, tmp_path):
    city, _ = files
    first = cached_mmdb_table(city, tmp_path)
    entries = sorted(p.name for p in tmp_path.iterdir())
    assert len(entries) == 1 and entries[0].startswith("mmdb-")
    copy = tmp_path.parent / "renamed-city.mmdb"
    copy.write_bytes(city.read_bytes())
    again = cached_mmdb_table(copy, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == entries  # same bytes, same entry
    assert isinstance(again.starts, np.memmap) and np.array_equal(again.starts, first.starts)


@pytest.mark.parametrize("damage", ["random", "truncated", "empty", "text", "corrupt-tree"])
def test_malformed_mmdb_is_one_line_error_naming_the_file(files, tmp_path, damage):
    city, _ = files
    bad = tmp_path / f"{damage}.mmdb"
    data = city.read_bytes()
    bad.write_bytes(
        {
            "random": np.random.default_rng(1).bytes(4096),
            "truncated": data[: len(data) // 2],
            "empty": b"",
            "text": b"not a database\n" * 100,
            # metadata intact, search tree overwritten: opens, then fails while walking the tree
            "corrupt-tree": np.random.default_rng(2).bytes(600) + data[600:],
        }[damage]
    )
    with pytest.raises(EnrichDataError) as caught:
        Enricher.from_mmdb(city=bad, cache_dir=tmp_path / "cache")
    message = str(caught.value)
    assert isinstance(caught.value, IotscopeError)
    assert str(bad) in message and "\n" not in message
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())  # nothing cached


def test_missing_and_unreadable_files_are_errors(files, tmp_path):
    with pytest.raises(EnrichDataError, match="no such MaxMind DB file"):
        Enricher.from_mmdb(asn=tmp_path / "absent.mmdb", cache_dir=tmp_path)
    if os.geteuid() != 0:  # root reads mode-000 files, so only a normal user can see this case
        locked = tmp_path / "locked.mmdb"
        locked.write_bytes(files[0].read_bytes())
        locked.chmod(0)
        with pytest.raises(EnrichDataError, match="locked.mmdb"):
            Enricher.from_mmdb(city=locked, cache_dir=tmp_path)


def test_a_city_file_given_as_asn_is_refused(files, tmp_path):
    city, _ = files
    with pytest.raises(EnrichDataError, match="no AS records"):
        Enricher.from_mmdb(city=city, asn=city, cache_dir=tmp_path)


def test_convert_reads_only_ipv4_networks(files):
    table = convert_mmdb(files[0])
    rows = table.row_index(np.array([0x08080808], np.uint32))
    assert table.countries[table.columns["country"][rows[0]]] == "US"
