"""Per-source partial aggregates, one hour at a time: the input of the ``sources`` profiles.

Per (source, protocol, destination port, traffic class) of the hour: first and last packet,
packets, and how many carry each tool fingerprint. Backscatter rows have a null port (the
backscatter's destination port is the spoofed client's random one: keeping it would make one row
per packet). The profiles (``iotscope.telescope.profiles``) merge these rows over all hours with
one SQL aggregation, so the pass carries no state and shards of an hour merge by concatenation
(each row belongs to one source).
"""

from __future__ import annotations

import pyarrow as pa

from iotscope.store.datasets import SOURCE_HOURS, conform
from iotscope.telescope.passes.base import AnalysisPass, Partition, State


class SourceHoursPass(AnalysisPass):
    name = "source_hours"
    columns = ("ts", "src", "src6", "proto", "dport", "traffic_class", "tool")
    dataset = SOURCE_HOURS

    def run(self, partition: Partition, carried: State) -> tuple[pa.Table, State]:
        rows = partition.con.sql("""
            SELECT src, src6, proto,
                   CASE WHEN traffic_class = 'backscatter' THEN NULL ELSE dport END AS dport,
                   CAST(traffic_class AS VARCHAR) AS traffic_class,
                   min(ts) AS first_ts, max(ts) AS last_ts, count(*) AS packets,
                   count(*) FILTER (WHERE tool = 'mirai') AS mirai,
                   count(*) FILTER (WHERE tool = 'zmap') AS zmap,
                   count(*) FILTER (WHERE tool = 'masscan') AS masscan
            FROM packets_hour GROUP BY ALL
        """).to_arrow_table()
        return conform(rows, SOURCE_HOURS.schema), {}
