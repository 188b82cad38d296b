"""Finding each address's range: a bucket index on the top 22 bits, then a short binary search.

``np.searchsorted`` over 3.7M range starts costs ~22 dependent cache misses per address: about a
second per million random addresses on a busy 2-core machine. Indexing the starts by the
address's top bits first narrows each search to the ranges of one /22: most hold zero or one
range cut, so the search usually ends at once. Measured on the default table (CPU time, 5M
random addresses): 16 bits 9.4M/s, 18 bits 13.4M/s, 20 bits 14M/s, 22 bits 20M/s; the 22-bit
index costs 16 MiB and under a second to build when a table is opened. The
kernel is numba (compiled once, cached on disk), one pass over the addresses, no Python per address.

:func:`lookup_values` also gathers the answer in the same pass, from the columns packed row by
row (:data:`PACKED_DTYPE`, 20 bytes), so each address costs one more cache line, not five.
"""

from __future__ import annotations

import itertools
import os
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np

#: Bits of the address that pick the bucket (a /22 each; see the module doc for the measurements).
BUCKET_BITS = 22
#: Lookups of at least this many addresses are split over up to MAX_THREADS threads.
PARALLEL_FROM = 1 << 20
MAX_THREADS = 4


def bucket_index(starts: np.ndarray) -> np.ndarray:
    """``index[b]``: the row of the range holding the first address of bucket ``b`` (plus one entry, the end)."""
    bucket_starts = np.arange(1 << BUCKET_BITS, dtype=np.uint64) << np.uint64(32 - BUCKET_BITS)
    rows = np.searchsorted(starts, bucket_starts.astype(np.uint32), side="right") - 1
    return np.append(rows, len(starts) - 1).astype(np.int32)


@numba.njit(cache=True, nogil=True, inline="always")
def _row(starts: np.ndarray, index: np.ndarray, address: np.uint32) -> int:
    """Row of the range holding ``address``: its bucket's bounds, then binary search between them."""
    bucket = address >> (32 - BUCKET_BITS)
    lo = index[bucket]  # starts[lo] <= address
    hi = index[bucket + 1] + 1  # every start at or past hi lies beyond this bucket
    # invariant: starts[lo] <= address, and the answer is < hi
    while hi - lo > 1:
        mid = (lo + hi) >> 1
        if starts[mid] <= address:
            lo = mid
        else:
            hi = mid
    return lo


@numba.njit(cache=True, nogil=True)
def _rows_of(starts: np.ndarray, index: np.ndarray, addresses: np.ndarray, out: np.ndarray) -> None:
    for i in range(addresses.shape[0]):
        out[i] = _row(starts, index, addresses[i])


def rows_of(starts: np.ndarray, index: np.ndarray, addresses: np.ndarray) -> np.ndarray:
    """Row of the range holding each address (== ``searchsorted(starts, addresses, 'right') - 1``)."""
    out = np.empty(addresses.shape[0], dtype=np.int64)
    _rows_of(starts, index, np.ascontiguousarray(addresses, dtype=np.uint32), out)
    return out


#: One range's values side by side (same names and meanings as ``ranges.COLUMNS``).
PACKED_DTYPE = np.dtype(
    [
        ("lat", np.float32),
        ("lon", np.float32),
        ("asn", np.uint32),
        ("as_name", np.int32),
        ("country", np.int16),
        ("_pad", np.int16),
    ]
)


def pack_columns(columns: dict[str, np.ndarray]) -> np.ndarray:
    """The per-range columns as one row-major array of :data:`PACKED_DTYPE`."""
    packed = np.zeros(len(columns["lat"]), dtype=PACKED_DTYPE)
    for name in ("lat", "lon", "asn", "as_name", "country"):
        packed[name] = columns[name]
    return packed


@numba.njit(cache=True, nogil=True)
def _lookup(starts, index, packed, addresses, lat, lon, asn, as_name, country) -> None:
    for i in range(addresses.shape[0]):
        row = packed[_row(starts, index, addresses[i])]
        lat[i] = row.lat
        lon[i] = row.lon
        asn[i] = row.asn
        as_name[i] = row.as_name
        country[i] = row.country


def lookup_values(
    starts: np.ndarray, index: np.ndarray, packed: np.ndarray, addresses: np.ndarray
) -> dict[str, np.ndarray]:
    """The values (lat, lon, asn, as_name, country) of each address's range, as numpy columns."""
    n = addresses.shape[0]
    out = {
        "lat": np.empty(n, np.float32),
        "lon": np.empty(n, np.float32),
        "asn": np.empty(n, np.uint32),
        "as_name": np.empty(n, np.int32),
        "country": np.empty(n, np.int16),
    }
    addresses = np.ascontiguousarray(addresses, dtype=np.uint32)
    columns = (out["lat"], out["lon"], out["asn"], out["as_name"], out["country"])
    workers = min(MAX_THREADS, os.cpu_count() or 1) if n >= PARALLEL_FROM else 1
    if workers == 1:
        _lookup(starts, index, packed, addresses, *columns)
        return out
    # the kernel releases the GIL (nogil): threads on disjoint slices run on separate cores
    bounds = np.linspace(0, n, workers + 1).astype(np.int64)
    with ThreadPoolExecutor(workers) as pool:
        jobs = [
            pool.submit(_lookup, starts, index, packed, addresses[a:b], *(c[a:b] for c in columns))
            for a, b in itertools.pairwise(bounds)
        ]
        for job in jobs:
            job.result()
    return out
