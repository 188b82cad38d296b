"""Per-port time series (NICTER's per-port graphs): packets and distinct sources per bucket.

For scan traffic with a destination port (TCP SYN scans, UDP probes): per (protocol, destination
port, bucket of ``series_bucket_s``) the packets and the distinct source addresses. This is what
showed 2323/TCP rising before the Dyn attack, and the input of the surge detector.

Buckets divide the hour (checked in the settings), so no bucket straddles two partitions and the
pass carries no state. ICMP echo scans have no port and are not in the series.

Array code: one compiled pass in time order counts packets per (protocol, port, bucket) cell and
each scan's source group (``passes.tagging``: one source toward one port) once per bucket
(:func:`~iotscope.telescope.passes.kernels.count_cells`): exact distinct counts, IPv4 and IPv6 alike,
no sort and no set of (cell, source) pairs.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from iotscope.store.datasets import PORT_SERIES, conform
from iotscope.telescope.passes.base import US_PER_SECOND, AnalysisPass, Partition, State
from iotscope.telescope.passes.kernels import BUCKET_BITS, arrow_buffers, count_cells
from iotscope.telescope.passes.tagging import SCAN


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
        tags = partition.tags
        base = partition.start_us // width
        cells, packets, sources = count_cells(
            tags.t, tags.order, arrow_buffers(tags.proto, np.uint8)[0], *arrow_buffers(tags.dport, np.uint16),
            tags.traffic, SCAN, tags.group, tags.groups, width, base)
        rows = pa.table({
            "proto": (cells >> np.uint64(16 + BUCKET_BITS)).astype(np.uint8),
            "port": ((cells >> np.uint64(BUCKET_BITS)) & np.uint64(0xFFFF)).astype(np.uint16),
            "bucket": ((cells & np.uint64((1 << BUCKET_BITS) - 1)).astype(np.int64) + base) * width,
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
