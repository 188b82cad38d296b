"""The embedded default answers what its pinned source data says, offline, with its provenance."""

from __future__ import annotations

import bisect
import csv
import ipaddress
from pathlib import Path

import maxminddb
import numpy as np
import pyarrow as pa
import pytest

from iotscope.enrich import SOURCES_METADATA_KEY, EnrichDataError, Enricher, sources_from_json
from iotscope.enrich.default_data import ASN_FILE, ASN_PACKAGE, CITY_FILE, CITY_PACKAGE
from iotscope.enrich.ranges import empty_table

NODE_MODULES = Path(__file__).resolve().parents[2] / "data" / "geo" / "node_modules"


@pytest.fixture(scope="module")
def enricher() -> Enricher:
    return Enricher.default()


@pytest.fixture(scope="module")
def sample(enricher) -> np.ndarray:
    """Random addresses plus the first address of random ranges and the address before each."""
    rng = np.random.default_rng(2026)
    starts = np.asarray(enricher.table.starts)
    edges = starts[rng.integers(1, len(starts), 3000)]
    noise = rng.integers(0, 1 << 32, 12000, dtype=np.uint64).astype(np.uint32)
    return np.concatenate([noise, edges, edges - 1, np.array([0, 0xFFFFFFFF], np.uint32)])


def test_known_addresses(enricher):
    result = enricher.lookup_ipv4(np.array([0x08080808, 0x01010101, 0x0A000001, 0x7F000001], np.uint32))
    assert result.column("country").to_pylist()[:2] == ["US", "AU"]
    assert result.column("asn").to_pylist() == [15169, 13335, None, None]
    assert result.column("as_name").to_pylist()[:2] == ["Google LLC", "Cloudflare, Inc."]
    lat, lon = result.column("lat").to_pylist(), result.column("lon").to_pylist()
    assert 30 < lat[0] < 45 and -125 < lon[0] < -70  # somewhere in the continental US
    # private and loopback space: no data, nulls (not a guess)
    assert result.column("country").to_pylist()[2:] == [None, None]


def test_geo_equals_maxminddb_on_the_shipped_mmdb(enricher, sample):
    result = enricher.lookup_ipv4(sample)
    got = list(zip(*(result.column(c).to_pylist() for c in ("country", "lat", "lon")), strict=True))
    expected = []
    with maxminddb.open_database(str(NODE_MODULES / CITY_PACKAGE / CITY_FILE)) as reader:
        for value in sample.tolist():
            record = reader.get(str(ipaddress.IPv4Address(value))) or {}
            lat, lon = record.get("latitude"), record.get("longitude")
            expected.append(
                (
                    record.get("country_code") or None,
                    None if lat is None else float(np.float32(lat)),
                    None if lon is None else float(np.float32(lon)),
                )
            )
    assert got == expected
    assert sum(1 for row in got if row[0]) > len(got) // 3  # the sample does hit allocated space


def test_asn_equals_the_shipped_csv(enricher, sample):
    starts, ends, numbers, names = [], [], [], []
    with open(NODE_MODULES / ASN_PACKAGE / ASN_FILE, newline="") as handle:
        for first, last, asn, name in csv.reader(handle):
            starts.append(int(first))
            ends.append(int(last))
            numbers.append(int(asn))
            names.append(name)
    expected = []
    for value in sample.tolist():
        i = bisect.bisect_right(starts, value) - 1
        inside = i >= 0 and value <= ends[i] and numbers[i] != 0
        expected.append((numbers[i], names[i]) if inside else (None, None))
    result = enricher.lookup_ipv4(sample)
    assert list(zip(result.column("asn").to_pylist(), result.column("as_name").to_pylist(), strict=True)) == expected


def test_every_result_carries_its_sources(enricher):
    result = enricher.lookup_ipv4(pa.array([0x08080808], pa.uint32()))
    sources = sources_from_json(result.schema.metadata[SOURCES_METADATA_KEY])
    assert sources == enricher.sources
    by_kind = {s.provides: s for s in sources}
    assert by_kind["geo"].licence == by_kind["asn"].licence == "CC BY 4.0"
    assert CITY_PACKAGE in by_kind["geo"].origin and ASN_PACKAGE in by_kind["asn"].origin
    assert "db-ip.com" in by_kind["geo"].attribution
    assert by_kind["geo"].date.startswith("20") and len(by_kind["asn"].date) == 10


def test_default_arrays_are_memory_mapped(enricher):
    assert isinstance(enricher.table.starts, np.memmap)


def test_missing_default_data_says_how_to_build_it(tmp_path):
    with pytest.raises(EnrichDataError, match="make geo-data") as caught:
        Enricher.default(tmp_path / "absent")
    assert str(tmp_path / "absent") in str(caught.value)


def test_damaged_default_data_is_an_error(tmp_path):
    empty_table().save(tmp_path / "copy")
    assert len(Enricher.default(tmp_path / "copy").table) == 1
    (tmp_path / "copy" / "starts.npy").write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(EnrichDataError, match="missing or damaged"):
        Enricher.default(tmp_path / "copy")
