"""Per-port time series (NICTER's per-port graphs): packets and distinct sources per bucket.

For scan traffic with a destination port (TCP SYN scans, UDP probes): per (protocol, destination
port, bucket of ``series_bucket_s``) the packets and the distinct source addresses. This is what
showed 2323/TCP rising before the Dyn attack, and the input of the surge detector.

Buckets divide the hour (checked in the settings), so no bucket straddles two partitions and the
pass carries no state. ICMP echo scans have no port and are not in the series.

Array code: one compiled pass over the hour's Arrow buffers counts packets per (protocol, port,
bucket) cell and inserts each IPv4 (cell, source) pair into a hash set (``passes.hash_table``):
exact distinct counts, no sort. IPv6 sources (rare) are counted with one ``np.unique`` afterwards.
"""

from __future__ import annotations

from collections.abc import Sequence

import numba
import numpy as np
import pyarrow as pa

from iotscope.store.datasets import PORT_SERIES, conform
from iotscope.store.schema import TRAFFIC_CLASSES
from iotscope.telescope.passes.arrow_buffers import arrow_buffers, valid
from iotscope.telescope.passes.base import (
    US_PER_SECOND,
    AnalysisPass,
    Partition,
    State,
    dictionary_codes,
)
from iotscope.telescope.passes.hash_table import find_or_add, new_table

_BUCKET_BITS = 22  # bucket numbers relative to the hour's first: < 3600 (buckets are >= 1 s and divide the hour)


class PortSeriesPass(AnalysisPass):
    name = "port_series"
    columns = ("ts", "src", "src6", "proto", "dport", "traffic_class")
    dataset = PORT_SERIES

    def __init__(self, bucket_s: int) -> None:
        self.bucket_s = bucket_s

    def config(self) -> dict[str, object]:
        return {"bucket_s": self.bucket_s}

    def run(self, partition: Partition, carried: State) -> tuple[pa.Table, State]:
        width = self.bucket_s * US_PER_SECOND
        hour = partition.table
        base = partition.start_us // width
        src = hour.column("src").combine_chunks()
        cells, packets, sources, rows6, cells6 = count_cells(
            hour.column("ts").combine_chunks().cast(pa.int64()).to_numpy(), *arrow_buffers(src, np.uint32),
            hour.column("proto").combine_chunks().to_numpy(), *arrow_buffers(hour.column("dport").combine_chunks(), np.uint16),
            dictionary_codes(hour.column("traffic_class"), TRAFFIC_CLASSES), TRAFFIC_CLASSES.index("scan"), width, base)
        if len(rows6):  # IPv6 sources: distinct (cell, address) rows
            fixed = hour.column("src6").combine_chunks().take(rows6).cast(pa.binary(16))
            words = np.frombuffer(fixed.buffers()[1], dtype=">u8")[2 * fixed.offset:2 * (fixed.offset + len(fixed))]
            unique6 = np.unique(np.column_stack([cells6.astype(np.uint64), words.reshape(-1, 2).astype(np.uint64)]), axis=0)
            sources += np.bincount(unique6[:, 0].astype(np.int64), minlength=len(cells))
        rows = pa.table({
            "proto": (cells >> np.uint64(16 + _BUCKET_BITS)).astype(np.uint8),
            "port": ((cells >> np.uint64(_BUCKET_BITS)) & np.uint64(0xFFFF)).astype(np.uint16),
            "bucket": ((cells & np.uint64((1 << _BUCKET_BITS) - 1)).astype(np.int64) + base) * width,
            "bucket_s": np.full(len(cells), self.bucket_s, dtype=np.int32),
            "packets": packets, "sources": sources,
        }).sort_by([("bucket", "ascending"), ("proto", "ascending"), ("port", "ascending")])
        return conform(rows, PORT_SERIES.schema), {}

    def merge(self, results: Sequence[tuple[pa.Table, State]]) -> tuple[pa.Table, State]:
        """Sum over source-disjoint shards: packets add up, and so do distinct sources."""
        import duckdb

        rows = pa.concat_tables([r for r, _ in results]) if results else PORT_SERIES.schema.empty_table()
        con = duckdb.connect()
        con.register("shards", rows)
        merged = con.sql(
            "SELECT proto, port, bucket, bucket_s, sum(packets) AS packets, sum(sources) AS sources "
            "FROM shards GROUP BY ALL ORDER BY bucket, proto, port").to_arrow_table()
        return conform(merged, PORT_SERIES.schema), {}


@numba.njit(cache=True, nogil=True)
def count_cells(t: np.ndarray, src: np.ndarray, src_bits: np.ndarray, src_offset: int, proto: np.ndarray,
                dport: np.ndarray, dport_bits: np.ndarray, dport_offset: int, traffic: np.ndarray, scan_class: int,
                width: int, base: int):
    """Per (proto, port, bucket) cell of the scans with a port: packets and distinct IPv4 sources.

    A cell is ``proto << 38 | port << 22 | bucket - base`` (``_BUCKET_BITS`` = 22); cells are numbered in order of first
    packet (one hash table), and each IPv4 (cell number, source) pair is inserted into a hash set.
    Returns the cells, packets, IPv4 sources, and the rows with an IPv6 source with their cell numbers.
    """
    n = len(t)
    cells = new_table(1024)
    pairs = new_table(1024)
    cell_key = np.empty(n, dtype=np.uint64)
    packets = np.zeros(n, dtype=np.int64)
    sources = np.zeros(n, dtype=np.int64)
    rows6 = np.empty(n, dtype=np.int64)
    cells6 = np.empty(n, dtype=np.int64)
    used_cells = 0
    used_pairs = 0
    w6 = 0
    for i in range(n):
        if traffic[i] != scan_class or not valid(dport_bits, dport_offset, i):
            continue
        key = (np.uint64(proto[i]) << np.uint64(16 + _BUCKET_BITS)) | (np.uint64(dport[i]) << np.uint64(_BUCKET_BITS)) \
            | np.uint64(t[i] // width - base)
        cells, s, added, used_cells = find_or_add(cells, key, used_cells)
        if added:
            cells[2 * s + 1] = np.uint64(used_cells - 1)
            cell_key[used_cells - 1] = key
        c = np.int64(cells[2 * s + 1])
        packets[c] += 1
        if valid(src_bits, src_offset, i):
            pairs, _, added, used_pairs = find_or_add(pairs, (np.uint64(c) << np.uint64(32)) | np.uint64(src[i]),
                                                      used_pairs)
            if added:
                sources[c] += 1
        else:
            rows6[w6] = i
            cells6[w6] = c
            w6 += 1
    return cell_key[:used_cells], packets[:used_cells], sources[:used_cells], rows6[:w6], cells6[:w6]
