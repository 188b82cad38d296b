"""Per-port time series (NICTER's per-port graphs): packets and distinct sources per bucket.

For scan traffic with a destination port (TCP SYN scans, UDP probes): per (protocol, destination
port, bucket of ``series_bucket_s``) the packets and the distinct source addresses. This is what
showed 2323/TCP rising before the Dyn attack, and the input of the surge detector.

Buckets divide the hour (checked in the settings), so no bucket straddles two partitions and the
pass carries no state. ICMP echo scans have no port and are not in the series.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from iotscope.store.datasets import PORT_SERIES, conform
from iotscope.store.schema import TRAFFIC_CLASSES
from iotscope.telescope.passes.base import (
    US_PER_SECOND,
    AnalysisPass,
    Partition,
    State,
    dictionary_codes,
)


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
        # The rows are selected in Arrow (dictionary codes, validity bitmap): SQL gets only the scans.
        scans = (dictionary_codes(hour.column("traffic_class"), TRAFFIC_CLASSES) == TRAFFIC_CLASSES.index("scan")) \
            & np.asarray(hour.column("dport").is_valid().to_numpy(zero_copy_only=False), dtype=bool)
        con = partition.con
        con.register("ps_scans", hour.select(["ts", "src", "src6", "proto", "dport"]).filter(pa.array(scans)))
        rows = con.sql(f"""
            SELECT proto, dport AS port, epoch_us(ts) // {width} * {width} AS bucket, {self.bucket_s} AS bucket_s,
                   count(*) AS packets, count(DISTINCT src) + count(DISTINCT src6) AS sources
            FROM ps_scans GROUP BY ALL ORDER BY bucket, proto, port
        """).to_arrow_table()
        con.unregister("ps_scans")
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
