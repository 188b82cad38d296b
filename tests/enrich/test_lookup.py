"""lookup_ipv4 accepts the address columns the store has and returns nulls where nothing is known."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from iotscope.enrich import RESULT_SCHEMA
from iotscope.enrich.lookup import lookup_ipv4
from iotscope.enrich.ranges import from_intervals

TABLE = from_intervals(
    np.array([0, 0x08080800]),
    np.array([3, 0x080808FF]),
    {
        "country": np.array([0, 1]),
        "lat": np.array([1.0, 37.75], np.float32),
        "lon": np.array([2.0, -122.5], np.float32),
        "asn": np.array([64500, 15169]),
        "as_name": np.array([0, 1]),
    },
    countries=("AQ", "US"),
    as_names=("Doc AS", "Google LLC"),
)


def test_schema_and_values():
    result = lookup_ipv4(TABLE, np.array([0x08080808, 1, 4], np.uint32))
    assert result.schema.remove_metadata() == RESULT_SCHEMA
    assert result.to_pylist() == [
        {"country": "US", "lat": 37.75, "lon": -122.5, "asn": 15169, "as_name": "Google LLC"},
        {"country": "AQ", "lat": 1.0, "lon": 2.0, "asn": 64500, "as_name": "Doc AS"},
        {"country": None, "lat": None, "lon": None, "asn": None, "as_name": None},
    ]


def test_null_addresses_give_null_rows_even_where_zero_is_known():
    column = pa.chunked_array([pa.array([0, None], pa.uint32()), pa.array([0x08080808], pa.uint32())])
    result = lookup_ipv4(TABLE, column)
    assert result.column("country").to_pylist() == ["AQ", None, "US"]
    assert result.column("lat").to_pylist() == [1.0, None, 37.75]
    assert result.column("asn").to_pylist() == [64500, None, 15169]


def test_wider_integers_in_range_are_accepted():
    assert lookup_ipv4(TABLE, np.array([0x08080808], np.int64)).column("asn").to_pylist() == [15169]
    assert len(lookup_ipv4(TABLE, np.array([], np.uint32))) == 0


@pytest.mark.parametrize(
    ("addresses", "error"),
    [
        (np.array([-1], np.int64), ValueError),
        (np.array([1 << 32], np.int64), ValueError),
        (np.array([1.5]), TypeError),
        (pa.array(["8.8.8.8"]), TypeError),
    ],
)
def test_values_that_are_not_ipv4_integers_are_refused(addresses, error):
    with pytest.raises(error):
        lookup_ipv4(TABLE, addresses)
