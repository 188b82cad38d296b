"""Per-source partial aggregates, one hour at a time: the input of the ``sources`` profiles.

Per (source, protocol, destination port, traffic class) of the hour: first and last packet,
packets, and how many carry each tool fingerprint. Backscatter rows have a null port (the
backscatter's destination port is the spoofed client's random one: keeping it would make one row
per packet). The profiles (``iotscope.telescope.profiles``) merge these rows over all hours with
one SQL aggregation, so the pass carries no state and shards of an hour merge by concatenation
(each row belongs to one source).

Array code: one compiled pass (:func:`~iotscope.telescope.passes.kernels.source_port_groups`)
groups the IPv4-source packets in a hash table of one packed integer key; the rare IPv6-source
packets are grouped by one ``np.unique`` of (address words, protocol, port, class). It replaced a
DuckDB ``GROUP BY`` over the dictionary codes (5M-packet bench capture, one hour of ~740k packets:
42 ms wall and 68 ms CPU in DuckDB, see BENCHMARKS.md for the kernel's figure).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from iotscope.store.datasets import SOURCE_HOURS, conform
from iotscope.store.schema import TOOLS, TRAFFIC_CLASSES
from iotscope.telescope.passes.base import (
    AnalysisPass,
    Partition,
    State,
    dictionary_codes,
)
from iotscope.telescope.passes.kernels import NO_PORT, arrow_buffers, source_port_groups

_BACKSCATTER = TRAFFIC_CLASSES.index("backscatter")


class SourceHoursPass(AnalysisPass):
    name = "source_hours"
    columns = ("ts", "src", "src6", "proto", "dport", "traffic_class", "tool")
    dataset = SOURCE_HOURS

    def run(self, partition: Partition, carried: State) -> tuple[pa.Table, State]:
        hour = partition.table
        t = hour.column("ts").combine_chunks().cast(pa.int64()).to_numpy()
        src, src6 = hour.column("src").combine_chunks(), hour.column("src6").combine_chunks()
        proto = hour.column("proto").combine_chunks()
        dport = hour.column("dport").combine_chunks()
        traffic = dictionary_codes(hour.column("traffic_class"), TRAFFIC_CLASSES)
        tool = dictionary_codes(hour.column("tool"), TOOLS)
        first_row, sums, rows6 = source_port_groups(
            t, *arrow_buffers(src, np.uint32), proto.to_numpy(), *arrow_buffers(dport, np.uint16), traffic,
            _BACKSCATTER, tool, len(TOOLS))
        if len(rows6):
            more_rows, more_sums = _ipv6_groups(rows6, t, src6, proto, dport, traffic, tool)
            first_row, sums = np.concatenate([first_row, more_rows]), np.concatenate([sums, more_sums])
        rows = pa.array(first_row, pa.int64())
        classes = traffic[first_row]
        port = dport.take(rows)
        rows_table = pa.table({
            "src": src.take(rows), "src6": src6.take(rows),
            "proto": proto.take(rows),
            "dport": pc.if_else(pa.array(classes == _BACKSCATTER), pa.nulls(len(port), port.type), port),
            "traffic_class": pa.array(np.asarray(TRAFFIC_CLASSES, dtype=object)[classes], pa.string()),
            "first_ts": sums[:, 0], "last_ts": sums[:, 1], "packets": sums[:, 2],
            **{name: sums[:, 3 + i] for i, name in enumerate(TOOLS)},
        })
        return conform(rows_table, SOURCE_HOURS.schema), {}


def _ipv6_groups(rows6: np.ndarray, t: np.ndarray, src6: pa.Array, proto: pa.Array, dport: pa.Array,
                 traffic: np.ndarray, tool: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The kernel's outputs for the packets ``rows6`` (IPv6 sources): groups by one ``np.unique`` of their keys."""
    fixed = src6.take(pa.array(rows6)).cast(pa.binary(16))
    words = np.frombuffer(fixed.buffers()[1], dtype=">u8")[2 * fixed.offset:2 * (fixed.offset + len(fixed))]
    cls = traffic[rows6]
    port = pc.fill_null(dport.take(pa.array(rows6)).cast(pa.int64()), NO_PORT).to_numpy()
    port = np.where(cls == _BACKSCATTER, NO_PORT, port)
    keys = np.column_stack([words.reshape(-1, 2).astype(np.uint64), proto.to_numpy()[rows6].astype(np.uint64),
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
    return rows6[first], sums
