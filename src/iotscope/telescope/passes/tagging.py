"""The tagging stage (corsaro3's model): one hour of packets as the arrays every pass reads, made once.

Why: the passes read the same columns, and each used to convert them (dictionary codes, combined
chunks, the time order) and to hash every packet by its source, protocol and port: three passes,
three hash tables over the same ~10⁶ packets an hour. Here one compiled pass
(:func:`~iotscope.telescope.passes.kernels.source_port_groups`) puts every packet in its *source
group*, one per (source address, protocol, destination port, traffic class), the backscatter's
port left out (it is the spoofed client's). The passes then work over group numbers:

* ``source_hours`` is the groups themselves (first/last time, packets, tools);
* ``events`` splits each group's packets into runs (a group is one event key);
* ``port_series`` counts a scan group once per bucket (a scan group is one source toward one port).

IPv4-source groups come first, numbered in order of first packet; IPv6-source groups (rare) follow,
grouped by one ``np.unique`` of (address words, protocol, port, class).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from iotscope.store.schema import TOOLS, TRAFFIC_CLASSES
from iotscope.telescope.passes.kernels import NO_PORT, arrow_buffers, gather_codes, read_only, source_port_groups

#: The columns of ``packets`` the tagging reads (every hour is loaded with them).
TAG_COLUMNS = ("ts", "src", "src6", "dst", "dst6", "proto", "dport", "traffic_class", "tool")
BACKSCATTER = TRAFFIC_CLASSES.index("backscatter")
SCAN = TRAFFIC_CLASSES.index("scan")


@dataclass(frozen=True)
class HourTags:
    """One hour's packets as arrays (row order of the hour's table) and their source groups.

    The numpy arrays are read-only: every pass shares them.
    """

    t: np.ndarray  # µs since the epoch (int64)
    #: The rows in time order (stable), or empty when the rows already are: most captures are.
    order: np.ndarray
    traffic: np.ndarray  # TRAFFIC_CLASSES code (int8)
    tool: np.ndarray  # TOOLS code, -1 for no fingerprint (int8)
    group: np.ndarray  # the row's source group (int32)
    group_first_row: np.ndarray  # per group: its first row (int64)
    #: Per group: ``[first µs, last µs, packets, packets of each tool]`` (int64, one row per group).
    group_sums: np.ndarray
    #: The Arrow columns, in one chunk each (for ``take`` and the kernels' buffers) but the IPv6
    #: addresses, as the table holds them.
    src: pa.Array
    src6: pa.ChunkedArray
    dst: pa.Array
    dst6: pa.ChunkedArray
    proto: pa.Array
    dport: pa.Array

    @property
    def groups(self) -> int:
        return len(self.group_first_row)

    @property
    def group_class(self) -> np.ndarray:
        """Per group: its traffic class code."""
        return self.traffic[self.group_first_row]

    def src6_of(self, rows: pa.Array) -> pa.Array:
        """The IPv6 sources of ``rows`` (null for IPv4), in one chunk.

        Most hours have none: their column is all null, and a take over its chunks would copy
        nothing for ~10 ms an hour.
        """
        if self.src6.null_count == len(self.src6):
            return pa.nulls(len(rows), self.src6.type)
        return self.src6.take(rows).combine_chunks()


def tag_hour(table: pa.Table) -> HourTags:
    """The arrays and source groups of one hour of packets (``table`` has ``TAG_COLUMNS``)."""
    t = read_only(table.column("ts").combine_chunks().cast(pa.int64()).to_numpy())
    in_time = len(t) < 2 or bool(np.all(t[1:] >= t[:-1]))
    order = read_only(np.empty(0, dtype=np.int64) if in_time else np.argsort(t, kind="stable"))
    columns: dict[str, pa.Array | pa.ChunkedArray] = {
        name: table.column(name).combine_chunks() for name in ("src", "dst", "proto", "dport")}
    # IPv6 addresses stay in chunks: 16 bytes a row to copy, for the few rows that have one
    columns.update({name: table.column(name) for name in ("src6", "dst6")})
    traffic = read_only(dictionary_codes(table.column("traffic_class"), TRAFFIC_CLASSES))
    tool = read_only(dictionary_codes(table.column("tool"), TOOLS))
    group, first_row, sums, rows6 = source_port_groups(
        t, *arrow_buffers(columns["src"], np.uint32), arrow_buffers(columns["proto"], np.uint8)[0],
        *arrow_buffers(columns["dport"], np.uint16), traffic, BACKSCATTER, tool, len(TOOLS))
    if len(rows6):
        group6, first6, sums6 = _ipv6_groups(rows6, t, columns, traffic, tool)
        group[rows6] = len(first_row) + group6
        first_row, sums = np.concatenate([first_row, first6]), np.concatenate([sums, sums6])
    return HourTags(t, order, traffic, tool, read_only(group), read_only(first_row), read_only(sums), **columns)


def dictionary_codes(column: pa.ChunkedArray, names: tuple[str, ...]) -> np.ndarray:
    """Index of each value in ``names`` (int8), -1 for null or unknown.

    For the dictionary-encoded text columns (``traffic_class``, ``tool``): per chunk, the names are
    looked up once per dictionary entry and the row codes are a gather by the indices, never text per row.
    """
    parts = []
    for chunk in column.chunks:
        if pa.types.is_dictionary(chunk.type):
            lookup = read_only(np.array([names.index(v) if v in names else -1 for v in chunk.dictionary.to_pylist()],
                                        dtype=np.int8))  # once per dictionary entry
            parts.append(gather_codes(lookup, *arrow_buffers(chunk.indices, chunk.indices.type.to_pandas_dtype())))
        else:
            parts.append(pc.fill_null(pc.index_in(chunk.cast(pa.string()), pa.array(names)), -1)
                         .cast(pa.int8()).to_numpy())
    return np.concatenate(parts) if parts else np.empty(0, dtype=np.int8)


def ipv6_words(addresses: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """(n, 2) big-endian words (uint64) of a fixed-size binary(16) array without nulls."""
    fixed = (addresses.combine_chunks() if isinstance(addresses, pa.ChunkedArray) else addresses).cast(pa.binary(16))
    words = np.frombuffer(fixed.buffers()[1], dtype=">u8")[2 * fixed.offset:2 * (fixed.offset + len(fixed))]
    return words.reshape(-1, 2).astype(np.uint64)


def _ipv6_groups(rows6: np.ndarray, t: np.ndarray, columns: dict[str, pa.Array], traffic: np.ndarray,
                 tool: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The kernel's outputs for the packets ``rows6`` (IPv6 sources): groups by one ``np.unique`` of their keys."""
    take = pa.array(rows6)
    cls = traffic[rows6]
    port = pc.fill_null(columns["dport"].take(take).cast(pa.int64()), NO_PORT).to_numpy()
    port = np.where(cls == BACKSCATTER, NO_PORT, port)
    keys = np.column_stack([ipv6_words(columns["src6"].take(take)),
                            columns["proto"].take(take).to_numpy().astype(np.uint64),
                            port.astype(np.uint64), cls.astype(np.uint64)])
    _, first, group = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    group, n, times, tools = group.reshape(-1), len(first), t[rows6], tool[rows6]
    sums = np.zeros((n, 3 + len(TOOLS)), dtype=np.int64)
    sums[:, 0], sums[:, 1] = np.iinfo(np.int64).max, np.iinfo(np.int64).min
    np.minimum.at(sums[:, 0], group, times)
    np.maximum.at(sums[:, 1], group, times)
    sums[:, 2] = np.bincount(group, minlength=n)
    for k in range(len(TOOLS)):
        sums[:, 3 + k] = np.bincount(group[tools == k], minlength=n)
    return group.astype(np.int32), rows6[first], sums
