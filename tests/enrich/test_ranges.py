"""Intervals become a gap-free, merged, sorted range table that round-trips through disk."""

from __future__ import annotations

import numpy as np
import pytest

from iotscope.enrich.ranges import RangeTable, combine, empty_table, from_intervals
from iotscope.enrich.source import EnrichmentSource

GEO = EnrichmentSource(name="g", provides="geo", date="2026-01-01", licence="CC0", origin="test")
ASN = EnrichmentSource(name="a", provides="asn", date="2026-01-02", licence="CC0", origin="test")


def _geo_table() -> RangeTable:
    # [10, 19] country 0, [20, 29] country 0 again (merged), [40, 49] country 1, [0xFFFFFFF0, end] country 1
    return from_intervals(
        np.array([20, 10, 40, 0xFFFFFFF0]),
        np.array([29, 19, 49, 0xFFFFFFFF]),
        {
            "country": np.array([0, 0, 1, 1]),
            "lat": np.array([1.5, 1.5, 2.5, 3.5], np.float32),
            "lon": np.array([4.5, 4.5, 5.5, 6.5], np.float32),
        },
        countries=("AA", "BB"),
        sources=(GEO,),
    )


def test_gaps_become_unknown_rows_and_equal_neighbours_merge():
    table = _geo_table()
    assert table.starts.tolist() == [0, 10, 30, 40, 50, 0xFFFFFFF0]
    assert table.columns["country"].tolist() == [-1, 0, -1, 1, -1, 1]
    assert np.isnan(table.columns["lat"][[0, 2, 4]]).all()
    assert table.columns["asn"].tolist() == [0] * 6


def test_row_index_at_boundaries():
    table = _geo_table()
    probes = np.array([0, 9, 10, 29, 30, 39, 40, 49, 50, 0xFFFFFFEF, 0xFFFFFFF0, 0xFFFFFFFF], np.uint32)
    assert table.row_index(probes).tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    assert table.row_index(probes).tolist() == (np.searchsorted(table.starts, probes, side="right") - 1).tolist()


def test_overlaps_are_refused_unless_clipped():
    starts, ends = np.array([0, 5]), np.array([9, 20])
    with pytest.raises(ValueError, match="overlap"):
        from_intervals(starts, ends, {"asn": np.array([1, 2])})
    table = from_intervals(starts, ends, {"asn": np.array([1, 2])}, clip_overlaps=True)
    assert table.starts.tolist() == [0, 5, 21] and table.columns["asn"].tolist() == [1, 2, 0]


def test_bad_intervals_are_refused():
    with pytest.raises(ValueError):
        from_intervals(np.array([10]), np.array([5]), {})
    with pytest.raises(ValueError):
        from_intervals(np.array([10]), np.array([1 << 32]), {})


def test_combine_cuts_at_both_sources_boundaries():
    asn = from_intervals(
        np.array([15]),
        np.array([44]),
        {"asn": np.array([64500]), "as_name": np.array([0])},
        as_names=("Example AS",),
        sources=(ASN,),
    )
    table = combine(_geo_table(), asn)
    assert table.starts.tolist() == [0, 10, 15, 30, 40, 45, 50, 0xFFFFFFF0]
    assert table.columns["asn"].tolist() == [0, 0, 64500, 64500, 64500, 0, 0, 0]
    assert table.columns["country"].tolist() == [-1, 0, 0, -1, 1, 1, -1, 1]
    assert table.sources == (GEO, ASN) and table.as_names == ("Example AS",) and table.countries == ("AA", "BB")


def test_combine_keeps_only_the_half_each_source_provides():
    both = EnrichmentSource(name="b", provides="asn", date="2026-01-03", licence="x", origin="t")
    geo = _geo_table()
    assert combine(geo, empty_table()).sources == (GEO,)
    assert combine(empty_table(), RangeTable(geo.starts, geo.columns, sources=(GEO, both))).sources == (both,)


def test_save_load_round_trip(tmp_path):
    table = _geo_table()
    table.save(tmp_path / "t")
    loaded = RangeTable.load(tmp_path / "t")
    assert loaded.starts.tolist() == table.starts.tolist() and loaded.sources == table.sources
    assert all(np.array_equal(loaded.columns[n], table.columns[n], equal_nan=True) for n in table.columns)
    table.save(tmp_path / "t")  # replacing an existing table leaves no staging directory behind
    assert [p.name for p in tmp_path.iterdir()] == ["t"]


def test_load_refuses_a_malformed_table(tmp_path):
    _geo_table().save(tmp_path / "t")
    np.save(tmp_path / "t" / "packed.npy", np.zeros(3, np.int64))
    with pytest.raises(ValueError, match="packed"):
        RangeTable.load(tmp_path / "t")


def test_load_refuses_a_bucket_index_that_leaves_the_rows(tmp_path):
    """The lookup kernel trusts the stored index (no bounds checks): one pointing past the rows is refused."""
    table = _geo_table()
    table.save(tmp_path / "t")
    index = table.bucket_index.copy()
    index[5] = len(table.starts) + 100
    np.save(tmp_path / "t" / "index.npy", index)
    with pytest.raises(ValueError, match="bucket index"):
        RangeTable.load(tmp_path / "t")


def test_a_loaded_table_answers_from_its_stored_index(tmp_path):
    table = _geo_table()
    table.save(tmp_path / "t")
    loaded = RangeTable.load(tmp_path / "t")
    assert isinstance(vars(loaded)["bucket_index"], np.memmap) and isinstance(vars(loaded)["packed"], np.memmap)
    addresses = np.array([0, 1, 2**31, 2**32 - 1, 167772161], dtype=np.uint32)
    assert all(np.array_equal(a, b, equal_nan=True)
               for a, b in zip(loaded.values_at(addresses).values(), table.values_at(addresses).values(), strict=True))
