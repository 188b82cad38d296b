"""Scanner events (Merit ORION's darknet-events): runs of packets of one source toward one port.

An event is the packets of one (source address, protocol, destination port, traffic class) whose
gaps are all at most ``event_idle_s``: the event ends when the source stays silent for *longer*
than the threshold, so a gap of exactly the threshold continues it. Backscatter is left out (its
destination port is the spoofed client's random port; the ``attacks`` pass is about it).

Per event: first/last packet time, packets, distinct destinations, distinct destination /24s
(IPv4), and ``tool``: the most frequent fingerprint among its packets, where "no fingerprint"
competes as a value too (ties go to the tool, in ``mirai, zmap, masscan`` order).

Carried state: the events that could still continue (last packet at most ``event_idle_s`` before
the hour's end) with their counts (table ``open``), and their distinct destinations (``dsts``), so
an event spanning hours, capture files and separate ingests is one event with exact counts.
An event's row is written in the hour in which it was found closed.

Array code: the hour's rows and the carried events are keyed by one integer each
(:func:`packed_keys`), split into runs by one sort (``passes.base.sessions``), and aggregated with
``bincount``; distinct destinations are one sort of ``run << 32 | dst`` integers. Python runs once
per hour.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from iotscope.store.datasets import EVENTS, conform, with_address_text
from iotscope.store.schema import TOOLS
from iotscope.telescope.passes.base import (
    US_PER_SECOND,
    AnalysisPass,
    Partition,
    State,
    sessions,
)

_KEY = "src, src6, proto, dport, traffic_class"
_TOOL_COUNTS = [pa.field(f"n_{tool}", pa.int64(), nullable=False) for tool in TOOLS]
#: ``open``: the dataset's columns plus per-tool packet counts (the majority needs them across hours).
OPEN_SCHEMA = pa.schema([*EVENTS.schema, *_TOOL_COUNTS])
#: ``dsts``: the distinct destinations of each open event, by its packed key ``k``.
DSTS_SCHEMA = pa.schema([pa.field("k", pa.uint64()), pa.field("dst", pa.uint32()), pa.field("dst6", pa.binary(16))])


class EventsPass(AnalysisPass):
    name = "events"
    columns = ("ts", "src", "src6", "dst", "dst6", "proto", "dport", "traffic_class", "tool")
    dataset = EVENTS

    def __init__(self, idle_s: float) -> None:
        self.idle_us = round(idle_s * US_PER_SECOND)

    def config(self) -> dict[str, object]:
        return {"idle_us": self.idle_us, "key": 1}  # "key": version of ``packed_keys`` (the carried sets use it)

    def run(self, partition: Partition, carried: State) -> tuple[pa.Table, State]:
        con = partition.con
        opened = carried.get("open", OPEN_SCHEMA.empty_table())
        carried_dsts = carried.get("dsts", DSTS_SCHEMA.empty_table())
        hour = partition.table
        traffic = hour.column("traffic_class").combine_chunks().cast(pa.string())
        hour = hour.filter(pc.not_equal(traffic, "backscatter"))
        tool = _codes(hour.column("tool"), TOOLS)
        fresh = pa.table({
            "t": hour.column("ts").cast(pa.int64()), "tool": tool, "dst": hour.column("dst"),
            "dst6": hour.column("dst6"), "src": hour.column("src"), "src6": hour.column("src6"),
            "proto": hour.column("proto"), "dport": hour.column("dport"),
            "is_scan": pc.equal(hour.column("traffic_class").cast(pa.string()), "scan"),
        })
        fresh = fresh.append_column("k", pa.array(packed_keys(fresh)))
        old = pa.table({
            "t": opened.column("last_ts").cast(pa.int64()), "first_us": opened.column("first_ts").cast(pa.int64()),
            "src": opened.column("src"), "src6": opened.column("src6"), "proto": opened.column("proto"),
            "dport": opened.column("dport"), "is_scan": pc.equal(opened.column("traffic_class"), "scan"),
        })
        old = old.append_column("k", pa.array(packed_keys(old)))
        # Sessionize the carried events with this hour's packets: a carried event's last packet is
        # older than any of this hour's, so it is the first row of its key and its session continues it.
        nc = old.num_rows
        k = np.concatenate([old.column("k").to_numpy(), fresh.column("k").to_numpy()])
        t = np.concatenate([old.column("t").to_numpy(), fresh.column("t").to_numpy()])
        runs = sessions(k, t, self.idle_us)
        n = runs.count
        sid_old, sid_new = runs.ids[:nc], runs.ids[nc:]

        def stacked(name: str) -> pa.Array:
            return pa.concat_arrays([old.column(name).combine_chunks(), fresh.column(name).combine_chunks()])

        firsts = pa.array(runs.first_row)
        first_us = np.concatenate([old.column("first_us").to_numpy(), t[nc:]])[runs.first_row]
        packets = np.bincount(sid_new, minlength=n)
        np.add.at(packets, sid_old, opened.column("packets").to_numpy())
        tool = np.asarray(tool)
        tool_counts = {}
        for i, name in enumerate(TOOLS):
            counts = np.bincount(sid_new, weights=tool == i, minlength=n).astype(np.int64)
            np.add.at(counts, sid_old, opened.column(f"n_{name}").to_numpy())
            tool_counts[f"n_{name}"] = counts
        destinations, dst_24s, open_dsts = self._destinations(
            fresh, carried_dsts, old.column("k").to_numpy(), sid_old, sid_new, n,
            open_run=t[runs.last_row] >= partition.horizon_us - self.idle_us, run_key=k[runs.first_row])
        is_scan = stacked("is_scan").take(firsts)
        src = stacked("src").take(firsts)
        runs_table = pa.table({
            "src": src, "src6": stacked("src6").take(firsts), "proto": stacked("proto").take(firsts),
            "dport": stacked("dport").take(firsts),
            "traffic_class": pc.if_else(is_scan, "scan", "other"),
            "first_ts": first_us, "last_ts": t[runs.last_row], "packets": packets, "destinations": destinations,
            "dst_24s": pa.array(dst_24s, mask=np.asarray(src.is_null())), **tool_counts,
        })
        con.register("ev_runs", runs_table)
        closes_before = partition.horizon_us - self.idle_us  # closed: more than idle before the horizon
        select = f"SELECT * EXCLUDE (first_ts, last_ts), first_ts, last_ts, {_majority_tool_sql()} AS tool FROM ev_runs"
        order = f"ORDER BY first_ts, {_KEY}"
        closed = con.sql(f"{select} WHERE last_ts < {closes_before} {order}").to_arrow_table()
        still_open = con.sql(f"{select} WHERE last_ts >= {closes_before} {order}").to_arrow_table()
        con.unregister("ev_runs")
        return with_address_text(closed, "src", "src6", "src_ip", EVENTS.schema), {
            "open": with_address_text(still_open, "src", "src6", "src_ip", OPEN_SCHEMA),
            "dsts": conform(open_dsts, DSTS_SCHEMA),
        }

    @staticmethod
    def _destinations(fresh: pa.Table, carried: pa.Table, carried_keys: np.ndarray, sid_old: np.ndarray,
                      sid_new: np.ndarray, n: int, open_run: np.ndarray, run_key: np.ndarray,
                      ) -> tuple[np.ndarray, np.ndarray, pa.Table]:
        """Distinct destinations and /24s per run, and the destination sets of the runs left open.

        Each (run, IPv4 destination) pair is one integer, ``run << 32 | dst``, so the distinct pairs
        are one ``np.unique``; /24s are the distinct ``pair >> 8``. IPv6 destinations are rows of
        (run, high, low) words. A carried destination belongs to the run that continues its event.
        """
        by_key = np.argsort(carried_keys)
        carried_run = sid_old[by_key][np.searchsorted(carried_keys[by_key], carried.column("k").to_numpy())] \
            if len(carried_keys) else np.empty(carried.num_rows, dtype=np.int64)
        pairs, pairs6 = [], []
        for runs, table in ((sid_new, fresh), (carried_run, carried)):
            dst = table.column("dst").combine_chunks()
            v4 = np.asarray(dst.is_valid())
            pairs.append((runs[v4].astype(np.uint64) << np.uint64(32)) | dst.filter(pa.array(v4)).to_numpy().astype(np.uint64))
            dst6 = table.column("dst6").combine_chunks()
            v6 = np.asarray(dst6.is_valid())
            if v6.any():
                fixed = dst6.filter(pa.array(v6)).cast(pa.binary(16))
                words = np.frombuffer(fixed.buffers()[1], dtype=">u8")[2 * fixed.offset:].reshape(-1, 2)
                pairs6.append(np.column_stack([runs[v6].astype(np.uint64), words.astype(np.uint64)]))
        unique4 = _distinct(np.concatenate(pairs[::-1]))  # the carried sorted run first
        run4 = (unique4 >> np.uint64(32)).astype(np.int64)
        destinations = np.bincount(run4, minlength=n)
        dst_24s = np.bincount((_distinct(unique4 >> np.uint64(8)) >> np.uint64(24)).astype(np.int64), minlength=n)
        keep4 = open_run[run4]
        columns = {"k": [run_key[run4[keep4]]], "dst": [(unique4[keep4] & np.uint64(0xFFFFFFFF)).astype(np.uint32)],
                   "dst6": [pa.nulls(int(keep4.sum()), pa.binary(16))]}
        if pairs6:
            unique6 = np.unique(np.concatenate(pairs6), axis=0)
            run6 = unique6[:, 0].astype(np.int64)
            destinations += np.bincount(run6, minlength=n)
            keep6 = open_run[run6]
            raw = unique6[keep6][:, 1:].astype(">u8").tobytes()
            columns["k"].append(run_key[run6[keep6]])
            columns["dst"].append(pa.nulls(int(keep6.sum()), pa.uint32()))
            columns["dst6"].append(pa.Array.from_buffers(pa.binary(16), int(keep6.sum()), [None, pa.py_buffer(raw)]))
        open_dsts = pa.table({
            "k": pa.array(np.concatenate(columns["k"]), pa.uint64()),
            "dst": pa.concat_arrays([pa.array(c, pa.uint32()) if isinstance(c, np.ndarray) else c for c in columns["dst"]]),
            "dst6": pa.concat_arrays(columns["dst6"]),
        })
        return destinations, dst_24s, open_dsts


_SCAN_BIT_SHIFT, _PORT_SHIFT, _PROTO_SHIFT, _SRC_SHIFT = 0, 1, 18, 26
_V6 = np.uint64(1 << 63)


def packed_keys(table: pa.Table) -> np.ndarray:
    """One uint64 per row for (source, proto, dport, scan or other): exact for IPv4, hashed for IPv6.

    IPv4: ``src << 26 | proto << 18 | (dport or 65536) << 1 | not scan`` (58 bits). IPv6: a
    multiply-xor hash of the address words and the same fields, with the top bit set so it never
    equals an IPv4 key; two IPv6 keys colliding is a ~n²/2⁶⁴ event. Array code, no DuckDB hash, so
    the carried destination sets stay valid across DuckDB versions.
    """
    n = table.num_rows
    proto = table.column("proto").to_numpy(zero_copy_only=False).astype(np.uint64)
    dport = pc.fill_null(table.column("dport").cast(pa.int64()), 65536).to_numpy().astype(np.uint64)
    other = (~np.asarray(table.column("is_scan").to_numpy(zero_copy_only=False), dtype=bool)).astype(np.uint64)
    fields = (proto << np.uint64(_PROTO_SHIFT)) | (dport << np.uint64(_PORT_SHIFT)) | (other << np.uint64(_SCAN_BIT_SHIFT))
    src = table.column("src").combine_chunks() if n else pa.array([], pa.uint32())
    v4 = np.asarray(src.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    keys = (pc.fill_null(src, 0).to_numpy().astype(np.uint64) << np.uint64(_SRC_SHIFT)) | fields
    if not v4.all():
        v6 = ~v4
        fixed = table.column("src6").combine_chunks().filter(pa.array(v6)).cast(pa.binary(16))
        words = np.frombuffer(fixed.buffers()[1], dtype=">u8")[2 * fixed.offset:].reshape(-1, 2).astype(np.uint64)
        with np.errstate(over="ignore"):
            mixed = (words[:, 0] * np.uint64(0x9E3779B97F4A7C15)) ^ (words[:, 1] * np.uint64(0xC2B2AE3D27D4EB4F))
            mixed ^= (fields[v6] + np.uint64(0x165667B19E3779F9)) * np.uint64(0xFF51AFD7ED558CCD)
        keys[v6] = mixed | _V6
    return keys


def _codes(column: pa.ChunkedArray, names: tuple[str, ...]) -> pa.Array:
    """Index of each value in ``names`` (int8), -1 for null or unknown."""
    values = column.combine_chunks().cast(pa.string())
    return pc.fill_null(pc.index_in(values, pa.array(names)), -1).cast(pa.int8())


def _distinct(values: np.ndarray) -> np.ndarray:
    """Sorted distinct values: a sort and a compare (numpy 2's hash-based ``unique`` measured 3x slower here).

    A stable sort is a timsort for 64-bit integers, which merges sorted runs in linear time: the
    carried destination sets arrive as one sorted run (stored in (key, destination) order, and run
    numbers follow key order), so only this hour's pairs are really sorted.
    """
    values = np.sort(values, kind="stable")
    if len(values) < 2:
        return values
    keep = np.empty(len(values), dtype=bool)
    keep[0] = True
    np.not_equal(values[1:], values[:-1], out=keep[1:])
    return values[keep]


def _majority_tool_sql() -> str:
    """The most frequent tool, "none" (untagged packets) competing; ties go to the earlier tool."""
    untagged = "packets - " + " - ".join(f"n_{t}" for t in TOOLS)
    best = f"greatest({', '.join(f'n_{t}' for t in TOOLS)})"
    cases = " ".join(f"WHEN n_{t} = {best} THEN '{t}'" for t in TOOLS)
    return f"CASE WHEN {best} = 0 OR {best} < {untagged} THEN NULL {cases} END"
