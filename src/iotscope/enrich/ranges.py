"""The one lookup structure of the enrich stage: sorted IPv4 range starts plus per-range columns.

Every data source (the embedded CSV/mmdb default, a user's MaxMind-format file) is converted once
into this shape so that one vectorized path answers all of them: a binary search over ``starts``
(compiled, bucketed: :mod:`iotscope.enrich.search`) gives each address its range, and the
columns are gathered at that row. The ranges
cover the whole IPv4 space (``starts[0] == 0``); space no source knows is a row of nulls, so a
lookup never needs a second "is it inside" test. Adjacent rows with equal values are merged.

On disk a table is a directory of ``.npy`` files (memory-mapped on load, so opening costs no
parsing and the pages are shared between processes) plus ``meta.json`` with the string
dictionaries and the sources. The files are what a lookup reads: the starts, the columns packed
row by row, and the bucket index. Storing the last two (format 2) rather than building them when
a table is opened saves every process that looks an address up ~0.2 s of CPU on the default
table (the tail of an ``ingest``, the web API's first profile).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pyarrow as pa

from iotscope.enrich.search import BUCKET_BITS, PACKED_DTYPE, bucket_index, lookup_values, pack_columns, rows_of
from iotscope.enrich.source import EnrichmentSource
from iotscope.store.durable import fsync_path

#: The per-range value columns, their dtype and the value that means "unknown".
COLUMNS: dict[str, tuple[np.dtype, object]] = {
    "country": (np.dtype(np.int16), -1),  # index into RangeTable.countries
    "lat": (np.dtype(np.float32), np.nan),
    "lon": (np.dtype(np.float32), np.nan),
    "asn": (np.dtype(np.uint32), 0),  # AS 0 is reserved (RFC 7607): never a real origin
    "as_name": (np.dtype(np.int32), -1),  # index into RangeTable.as_names
}
GEO_COLUMNS = ("country", "lat", "lon")
ASN_COLUMNS = ("asn", "as_name")
_IPV4_END = 1 << 32
_FORMAT_VERSION = 2


@dataclass(frozen=True)
class RangeTable:
    """Sorted IPv4 ranges covering 0.0.0.0-255.255.255.255 and their values (see module doc)."""

    starts: np.ndarray
    columns: dict[str, np.ndarray]
    countries: tuple[str, ...] = ()
    as_names: tuple[str, ...] = ()
    sources: tuple[EnrichmentSource, ...] = field(default=())

    @cached_property
    def country_dictionary(self) -> pa.Array:
        """``countries`` as the Arrow dictionary of result columns (built once per table)."""
        return pa.array(self.countries, pa.string())

    @cached_property
    def as_name_dictionary(self) -> pa.Array:
        """``as_names`` as the Arrow dictionary of result columns (built once per table)."""
        return pa.array(self.as_names, pa.string())

    def __len__(self) -> int:
        return len(self.starts)

    @cached_property
    def bucket_index(self) -> np.ndarray:
        """The index on the addresses' top bits that narrows every search (see :mod:`search`)."""
        return bucket_index(self.starts)

    @cached_property
    def packed(self) -> np.ndarray:
        """The value columns row by row, for the one-pass lookup kernel (built once per table)."""
        return pack_columns(self.columns)

    def values_at(self, addresses: np.ndarray) -> dict[str, np.ndarray]:
        """Each value column at each uint32 address (one compiled pass: search, then gather)."""
        return lookup_values(self.starts, self.bucket_index, self.packed, addresses)

    def row_index(self, addresses: np.ndarray) -> np.ndarray:
        """Index of the range holding each uint32 address (bucketed binary search, compiled)."""
        return rows_of(self.starts, self.bucket_index, addresses)

    def save(self, directory: Path) -> None:
        """Write the table to ``directory`` atomically: a reader sees the old table or the whole new one."""
        directory = Path(directory)
        directory.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
        try:
            np.save(staging / "starts.npy", self.starts)
            np.save(staging / "packed.npy", self.packed)
            np.save(staging / "index.npy", self.bucket_index)
            meta = {
                "format_version": _FORMAT_VERSION,
                "countries": list(self.countries),
                "as_names": list(self.as_names),
                "sources": [asdict(s) for s in self.sources],
            }
            (staging / "meta.json").write_text(json.dumps(meta))
            for child in staging.iterdir():
                fsync_path(child)
            os.chmod(staging, 0o755)
            if directory.exists():
                shutil.rmtree(directory)
            os.replace(staging, directory)
            fsync_path(directory.parent)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise

    @classmethod
    def load(cls, directory: Path) -> RangeTable:
        """Open a saved table, memory-mapping its arrays. Raises OSError/ValueError if unreadable."""
        directory = Path(directory)
        meta = json.loads((directory / "meta.json").read_text())
        if meta.get("format_version") != _FORMAT_VERSION:
            raise ValueError(f"range table format {meta.get('format_version')!r}, expected {_FORMAT_VERSION}")
        starts = np.load(directory / "starts.npy", mmap_mode="r")
        packed = np.load(directory / "packed.npy", mmap_mode="r")
        index = np.load(directory / "index.npy", mmap_mode="r")
        if packed.dtype != PACKED_DTYPE or index.dtype != np.int32 or index.shape != ((1 << BUCKET_BITS) + 1,):
            raise ValueError("packed columns or bucket index malformed")
        table = cls(
            starts=starts,
            columns={name: packed[name] for name in COLUMNS},  # views of the packed rows
            countries=tuple(meta["countries"]),
            as_names=tuple(meta["as_names"]),
            sources=tuple(EnrichmentSource.from_dict(s) for s in meta["sources"]),
        )
        _check(table)
        # the lookup kernel does not check bounds: an index that stays within the rows is a condition of using it
        if int(index[0]) != 0 or int(index[-1]) != len(starts) - 1 or not bool(np.all(index[1:] >= index[:-1])):
            raise ValueError("bucket index does not match the range starts")
        vars(table).update(packed=packed, bucket_index=index)  # the cached properties, as stored
        return table


def _null_column(name: str, n: int) -> np.ndarray:
    dtype, null = COLUMNS[name]
    return np.full(n, null, dtype=dtype)


def _check(table: RangeTable) -> None:
    n = len(table.starts)
    if table.starts.dtype != np.uint32 or n == 0 or table.starts[0] != 0:
        raise ValueError("range starts must be uint32 and begin at 0.0.0.0")
    if n > 1 and not bool(np.all(table.starts[1:] > table.starts[:-1])):
        raise ValueError("range starts are not strictly increasing")
    for name, (dtype, _) in COLUMNS.items():
        column = table.columns.get(name)
        if column is None or column.dtype != dtype or len(column) != n:
            raise ValueError(f"range column {name} missing or malformed")


def empty_table() -> RangeTable:
    """One range, all of IPv4, every value unknown."""
    return RangeTable(np.zeros(1, np.uint32), {name: _null_column(name, 1) for name in COLUMNS})


def from_intervals(
    starts: np.ndarray,
    ends: np.ndarray,
    values: dict[str, np.ndarray],
    *,
    countries: tuple[str, ...] = (),
    as_names: tuple[str, ...] = (),
    sources: tuple[EnrichmentSource, ...] = (),
    clip_overlaps: bool = False,
) -> RangeTable:
    """Build a table from inclusive ``[start, end]`` intervals (sorted or not).

    Overlapping intervals raise ValueError, unless ``clip_overlaps``: then an interval ends where
    the next one starts (the later-starting one wins; of equal starts, the last given).

    ``values`` holds some of :data:`COLUMNS` (one value per interval); the others are unknown.
    The gaps between intervals become rows of unknowns. Raises ValueError on overlaps.
    """
    starts = np.asarray(starts, dtype=np.uint64)
    ends = np.asarray(ends, dtype=np.uint64)
    order = np.argsort(starts, kind="stable")
    starts, ends = starts[order], ends[order]
    values = {name: np.asarray(v)[order].astype(COLUMNS[name][0]) for name, v in values.items()}
    if len(starts) and (bool(np.any(ends < starts)) or int(ends.max()) >= _IPV4_END):
        raise ValueError("an interval ends before it starts or past 255.255.255.255")
    if len(starts) > 1 and bool(np.any(starts[1:] <= ends[:-1])):
        if not clip_overlaps:
            raise ValueError("intervals overlap")
        ends[:-1] = np.minimum(ends[:-1], starts[1:] - 1)  # the later-starting interval wins
        keep = (ends >= starts) & np.append(starts[1:] != starts[:-1], True)
        starts, ends = starts[keep], ends[keep]
        values = {name: v[keep] for name, v in values.items()}
    after = ends + 1
    following = np.append(starts[1:], np.uint64(_IPV4_END))
    gap = (after < _IPV4_END) & (after != following)
    lead = [np.uint64(0)] if not len(starts) or starts[0] != 0 else []
    row_starts = np.concatenate([np.array(lead, np.uint64), starts, after[gap]])
    n_gap = len(lead) + int(gap.sum())
    columns = {}
    for name in COLUMNS:
        given = values.get(name)
        real = given if given is not None else _null_column(name, len(starts))
        columns[name] = np.concatenate([_null_column(name, len(lead)), real, _null_column(name, n_gap - len(lead))])
    order = np.argsort(row_starts, kind="stable")
    return _merge_equal_neighbours(
        row_starts[order].astype(np.uint32),
        {name: col[order] for name, col in columns.items()},
        countries,
        as_names,
        sources,
    )


def _merge_equal_neighbours(starts, columns, countries, as_names, sources) -> RangeTable:
    """Drop rows whose values equal the previous row's: same answers, fewer ranges to search."""
    keep = np.zeros(len(starts), dtype=bool)
    keep[0] = True
    for column in columns.values():
        bits = column.view(np.int32) if column.dtype == np.float32 else column  # NaN == NaN by bits
        keep[1:] |= bits[1:] != bits[:-1]
    table = RangeTable(
        starts=np.ascontiguousarray(starts[keep]),
        columns={name: np.ascontiguousarray(col[keep]) for name, col in columns.items()},
        countries=tuple(countries),
        as_names=tuple(as_names),
        sources=tuple(sources),
    )
    _check(table)
    return table


def combine(geo: RangeTable, asn: RangeTable) -> RangeTable:
    """One table answering geo columns from ``geo`` and ASN columns from ``asn``.

    The two sources cut the address space at different places; the union of their cuts gives
    ranges on which both are constant, so a lookup is still a single search.
    """
    starts = np.union1d(geo.starts, asn.starts).astype(np.uint32)
    geo_rows = geo.row_index(starts)
    asn_rows = asn.row_index(starts)
    columns = {name: np.asarray(geo.columns[name])[geo_rows] for name in GEO_COLUMNS}
    columns.update({name: np.asarray(asn.columns[name])[asn_rows] for name in ASN_COLUMNS})
    sources = tuple(s for s in geo.sources if s.provides == "geo") + tuple(
        s for s in asn.sources if s.provides == "asn"
    )
    return _merge_equal_neighbours(starts, columns, geo.countries, asn.as_names, sources)


class StringDictionary:
    """Assigns each distinct string (a country code, an AS name) a small integer, in first-seen order.

    The tables store these integers; the strings are the Arrow dictionary of the lookup result.
    """

    def __init__(self) -> None:
        self._index: dict[str, int] = {}

    def code(self, value: str | None) -> int:
        """The integer of ``value``; -1 for None (unknown)."""
        if value is None:
            return -1
        found = self._index.get(value)
        if found is None:
            found = self._index[value] = len(self._index)
        return found

    @property
    def values(self) -> tuple[str, ...]:
        return tuple(self._index)
