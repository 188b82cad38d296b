"""The vectorized lookup: a column of IPv4 addresses in, an Arrow table of country/lat/lon/AS out.

One compiled pass finds each address's range and gathers its values (see :mod:`search`); no
Python per address.
Strings come back dictionary-encoded (the table's small dictionaries), so a million rows of
"US" cost a million small integers. The result's schema metadata names the data's sources.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from iotscope.enrich.ranges import RangeTable
from iotscope.enrich.source import SOURCES_METADATA_KEY, sources_to_json

#: The columns of every lookup result, in this order (nulls where the data knows nothing).
RESULT_SCHEMA = pa.schema(
    [
        pa.field("country", pa.dictionary(pa.int16(), pa.string())),
        pa.field("lat", pa.float32()),
        pa.field("lon", pa.float32()),
        pa.field("asn", pa.uint32()),
        pa.field("as_name", pa.dictionary(pa.int32(), pa.string())),
    ]
)


def as_ipv4_array(addresses: np.ndarray | pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray | None]:
    """Addresses as a uint32 numpy array (host byte order) and a mask of null inputs (or None).

    Accepts uint32 numpy/Arrow data as the packets table stores it; wider integer types are
    accepted when every value fits in 0..2**32-1, anything else is a TypeError/ValueError.
    """
    if isinstance(addresses, pa.ChunkedArray):
        addresses = addresses.combine_chunks()
    nulls = None
    if isinstance(addresses, pa.Array):
        if not pa.types.is_integer(addresses.type):
            raise TypeError(f"IPv4 addresses must be an integer array, not {addresses.type}")
        if addresses.null_count:
            nulls = addresses.is_null().to_numpy(zero_copy_only=False)
            addresses = addresses.fill_null(0)
        addresses = addresses.to_numpy(zero_copy_only=False)
    values = np.asarray(addresses)
    if values.dtype == np.uint32:
        return values, nulls
    if not np.issubdtype(values.dtype, np.integer):
        raise TypeError(f"IPv4 addresses must be integers, not {values.dtype}")
    if values.size and (int(values.min()) < 0 or int(values.max()) > 0xFFFFFFFF):
        raise ValueError("IPv4 addresses must lie in 0..4294967295")
    return values.astype(np.uint32), nulls


def _dictionary_column(codes: np.ndarray, dictionary: pa.Array, index_type: pa.DataType, nulls) -> pa.Array:
    missing = codes < 0 if nulls is None else (codes < 0) | nulls
    indices = pa.array(codes, type=index_type, mask=missing if missing.any() else None)
    return pa.DictionaryArray.from_arrays(indices, dictionary, safe=False)  # codes come from the table: in range


def _float_column(values: np.ndarray, nulls) -> pa.Array:
    if nulls is None:
        return pa.array(values, from_pandas=True)  # NaN (unknown) becomes null in Arrow's C++ path
    return pa.array(values, mask=np.isnan(values) | nulls)


def _asn_column(values: np.ndarray, nulls) -> pa.Array:
    missing = values == 0 if nulls is None else (values == 0) | nulls
    return pa.array(values, mask=missing if missing.any() else None)


def lookup_ipv4(table: RangeTable, addresses: np.ndarray | pa.Array | pa.ChunkedArray) -> pa.Table:
    """Country, lat, lon, ASN and AS name of every address (see :data:`RESULT_SCHEMA`)."""
    values, nulls = as_ipv4_array(addresses)
    found = table.values_at(values)
    result = pa.table(
        [
            _dictionary_column(found["country"], table.country_dictionary, pa.int16(), nulls),
            _float_column(found["lat"], nulls),
            _float_column(found["lon"], nulls),
            _asn_column(found["asn"], nulls),
            _dictionary_column(found["as_name"], table.as_name_dictionary, pa.int32(), nulls),
        ],
        schema=RESULT_SCHEMA,
    )
    return result.replace_schema_metadata({SOURCES_METADATA_KEY: sources_to_json(table.sources)})
