"""Per-source partial aggregates, one hour at a time: the input of the ``sources`` profiles.

Per (source, protocol, destination port, traffic class) of the hour: first and last packet,
packets, and how many carry each tool fingerprint. Backscatter rows have a null port (the
backscatter's destination port is the spoofed client's random one: keeping it would make one row
per packet). The profiles (``iotscope.telescope.profiles``) merge these rows over all hours with
one SQL aggregation, so the pass carries no state and shards of an hour merge by concatenation
(each row belongs to one source).

These are the tagging stage's source groups (``passes.tagging``): the pass only writes them out. A
DuckDB ``GROUP BY`` over the dictionary codes did the same in 42 ms wall and 68 ms CPU an hour
(5M-packet bench capture, ~740k packets an hour), then a kernel of its own (see BENCHMARKS.md).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from iotscope.store.datasets import SOURCE_HOURS, conform
from iotscope.store.schema import TOOLS, TRAFFIC_CLASSES
from iotscope.telescope.passes.base import AnalysisPass, Partition, State
from iotscope.telescope.passes.tagging import BACKSCATTER


class SourceHoursPass(AnalysisPass):
    name = "source_hours"
    columns = ("ts", "src", "src6", "proto", "dport", "traffic_class", "tool")
    dataset = SOURCE_HOURS

    def run(self, partition: Partition, carried: State) -> tuple[pa.Table, State]:
        tags = partition.tags
        rows = pa.array(tags.group_first_row, pa.int64())
        classes = tags.group_class
        port = tags.dport.take(rows)
        sums = tags.group_sums
        rows_table = pa.table({
            "src": tags.src.take(rows), "src6": tags.src6.take(rows).combine_chunks(),
            "proto": tags.proto.take(rows),
            "dport": pc.if_else(pa.array(classes == BACKSCATTER), pa.nulls(len(port), port.type), port),
            "traffic_class": pa.array(np.asarray(TRAFFIC_CLASSES, dtype=object)[classes], pa.string()),
            "first_ts": sums[:, 0], "last_ts": sums[:, 1], "packets": sums[:, 2],
            **{name: sums[:, 3 + i] for i, name in enumerate(TOOLS)},
        })
        return conform(rows_table, SOURCE_HOURS.schema), {}
