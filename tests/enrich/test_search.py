"""The bucketed compiled search finds exactly the range np.searchsorted finds, in one or many threads."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from iotscope.enrich.search import PARALLEL_FROM, bucket_index, lookup_values, pack_columns, rows_of

addresses = st.integers(min_value=0, max_value=0xFFFFFFFF)


@settings(max_examples=200, deadline=None)
@given(st.lists(addresses, max_size=300), st.lists(addresses, min_size=1, max_size=300))
def test_rows_equal_searchsorted(cuts, probes):
    starts = np.unique(np.array([0, *cuts], np.uint32))
    probes = np.array(probes, np.uint32)
    expected = np.searchsorted(starts, probes, side="right") - 1
    assert rows_of(starts, bucket_index(starts), probes).tolist() == expected.tolist()


def test_threaded_lookup_equals_a_gather():
    rng = np.random.default_rng(3)
    starts = np.unique(np.concatenate([[0], rng.integers(0, 1 << 32, 50_000, dtype=np.uint64)]).astype(np.uint32))
    columns = {
        "lat": rng.random(len(starts), np.float32),
        "lon": rng.random(len(starts), np.float32),
        "asn": rng.integers(0, 1 << 32, len(starts), dtype=np.uint64).astype(np.uint32),
        "as_name": rng.integers(-1, 100, len(starts)).astype(np.int32),
        "country": rng.integers(-1, 250, len(starts)).astype(np.int16),
    }
    probes = rng.integers(0, 1 << 32, PARALLEL_FROM + 7, dtype=np.uint64).astype(np.uint32)
    found = lookup_values(starts, bucket_index(starts), pack_columns(columns), probes)
    rows = np.searchsorted(starts, probes, side="right") - 1
    for name, column in columns.items():
        assert np.array_equal(found[name], column[rows]), name
