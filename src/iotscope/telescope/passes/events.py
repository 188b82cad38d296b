"""Scanner events (Merit ORION's darknet-events): runs of packets of one source toward one port.

An event is the packets of one (source address, protocol, destination port, traffic class) whose
gaps are all at most ``event_idle_s``: the event ends when the source stays silent for *longer*
than the threshold, so a gap of exactly the threshold continues it. Backscatter is left out (its
destination port is the spoofed client's random port; the ``attacks`` pass is about it).

Per event: first/last packet time, packets, distinct destinations, distinct destination /24s
(IPv4), and ``tool``: the most frequent fingerprint among its packets, where "no fingerprint"
competes as a value too (ties go to the tool, in ``mirai, zmap, masscan`` order).

Carried state: the events that could still continue (last packet at most ``event_idle_s`` before
the hour's end) with their counts (table ``open``), and their distinct destinations (one sorted
list per event: ``dsts`` has each event's key and list length, ``dst_lists`` the lists one after
the other), so an event spanning hours, capture files and separate ingests is one event with exact
counts.
An event's row is written in the hour in which it was found closed.

Array code: the hour's rows and the carried events are keyed by one integer each
(:func:`packed_keys`), split into runs by one compiled pass in time order and aggregated with
``bincount``; distinct destinations are one radix sort of ``run << width | dst - base`` integers merged with the
carried sets (:mod:`.kernels`). The ``open`` table is kept in run order (carried events first,
then new ones by first packet, hence ``first_ts`` order); each carried list is merged in place,
never re-sorted, and a busy telescope's millions of carried destinations cost 4 bytes each, the
event's key stored once per list (a flat column: Parquet with zstd wrote the bench's last hour in
26 ms, as a list column in 39 ms). Python runs once per hour.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from iotscope.store.datasets import EVENTS, with_address_text
from iotscope.store.schema import TOOLS
from iotscope.telescope.passes.base import US_PER_SECOND, AnalysisPass, Partition, State
from iotscope.telescope.passes.kernels import (
    NO_PORT,
    arrow_buffers,
    merge_destinations,
    radix_sort,
    read_only,
    split_runs,
)
from iotscope.telescope.passes.tagging import BACKSCATTER, SCAN, ipv6_words

_TOOL_COUNTS = [pa.field(f"n_{tool}", pa.int64(), nullable=False) for tool in TOOLS]
#: ``open``: the dataset's columns plus per-tool packet counts (the majority needs them across hours).
OPEN_SCHEMA = pa.schema([*EVENTS.schema, *_TOOL_COUNTS])
#: ``dsts``: per open event with IPv4 destinations, its packed key ``k`` and how many (``n``); ``dst_lists``:
#: the destinations, each event's sorted, in ``dsts`` order.
DSTS_SCHEMA = pa.schema([pa.field("k", pa.uint64()), pa.field("n", pa.int64(), nullable=False)])
DST_LISTS_SCHEMA = pa.schema([pa.field("dst", pa.uint32(), nullable=False)])
#: ``dsts6``: the distinct IPv6 destinations of the open events, a row each, by event key ``k``.
DSTS6_SCHEMA = pa.schema([pa.field("k", pa.uint64()), pa.field("dst6", pa.binary(16), nullable=False)])


class EventsPass(AnalysisPass):
    name = "events"
    columns = ("ts", "src", "src6", "dst", "dst6", "proto", "dport", "traffic_class", "tool")
    dataset = EVENTS

    def __init__(self, idle_s: float) -> None:
        self.idle_us = round(idle_s * US_PER_SECOND)

    def config(self) -> dict[str, object]:
        # "key": version of ``packed_keys`` and of the carried sets' layout (5: one list per event)
        return {"idle_us": self.idle_us, "key": 5}

    def run(self, partition: Partition, carried: State) -> tuple[pa.Table, State]:
        opened = carried.get("open", OPEN_SCHEMA.empty_table())
        tags = partition.tags
        old = {name: opened.column(name).combine_chunks() for name in ("src", "src6", "proto", "dport")}
        old["is_scan"] = np.asarray(pc.equal(opened.column("traffic_class"), "scan").to_numpy(zero_copy_only=False),
                                    dtype=bool)
        old_keys = packed_keys(old)
        nc = opened.num_rows
        # Each source group is one event key (backscatter's groups are never read): its key, and the
        # carried event it may continue.
        firsts = pa.array(tags.group_first_row)
        group_keys = packed_keys({"src": tags.src.take(firsts), "src6": tags.src6_of(firsts),
                                  "proto": tags.proto.take(firsts), "dport": tags.dport.take(firsts),
                                  "is_scan": tags.group_class == SCAN})
        lowest, highest = (v.as_py() for v in pc.min_max(tags.dst).values())
        dst_base = lowest or 0  # the pairs are run << dst_width | dst - dst_base: fewer bits to sort
        dst_width = max(1, (highest or 0) - dst_base).bit_length()
        first_row, sums, pairs, rows6, runs6 = split_runs(
            read_only(opened.column("last_ts").cast(pa.int64()).to_numpy()), index_in(group_keys, old_keys),
            tags.t, tags.order, tags.traffic, BACKSCATTER, tags.group, tags.tool, len(TOOLS),
            *arrow_buffers(tags.dst, np.uint32), dst_base, dst_width, self.idle_us)
        n = len(first_row)
        sums[:nc, 0] = opened.column("first_ts").cast(pa.int64()).to_numpy()
        sums[:nc, 2] += opened.column("packets").to_numpy()
        for i, name in enumerate(TOOLS):
            sums[:nc, 3 + i] += opened.column(f"n_{name}").to_numpy()
        first_us, last_us, packets = sums[:, 0].copy(), sums[:, 1].copy(), sums[:, 2].copy()
        tool_counts = np.ascontiguousarray(sums[:, 3:])
        closes_before = partition.horizon_us - self.idle_us  # closed: more than idle before the horizon
        still_open = last_us >= closes_before
        new_rows = first_row[nc:]
        new = {name: getattr(tags, name).take(new_rows) for name in ("src", "proto", "dport")}
        new["src6"] = tags.src6_of(pa.array(new_rows))
        new["is_scan"] = tags.traffic[new_rows] == SCAN
        run_key = np.concatenate([old_keys, group_keys[tags.group[new_rows]]])
        destinations, dst_24s, sets = _destinations(tags.dst6, pairs, (dst_base, dst_width), (rows6, runs6), carried,
                                                    old_keys, n, still_open, run_key)

        def per_run(name: str) -> pa.Array:
            return pa.concat_arrays([old[name], new[name]])

        src = per_run("src")
        is_scan = np.concatenate([old["is_scan"], new["is_scan"]])
        runs = pa.table({
            "src": src, "src6": per_run("src6"), "proto": per_run("proto"), "dport": per_run("dport"),
            "traffic_class": pc.if_else(pa.array(is_scan), "scan", "other"),
            "first_ts": first_us, "last_ts": last_us, "packets": packets, "destinations": destinations,
            "dst_24s": pa.array(dst_24s, mask=np.asarray(src.is_null())),
            "tool": _majority_tool(tool_counts, packets),
            **{f"n_{name}": tool_counts[:, i] for i, name in enumerate(TOOLS)},
        })
        closed = runs.filter(pa.array(~still_open)).sort_by(
            [("first_ts", "ascending"), ("src", "ascending"), ("src6", "ascending"), ("proto", "ascending"),
             ("dport", "ascending"), ("traffic_class", "ascending")])
        return with_address_text(closed, "src", "src6", "src_ip", EVENTS.schema), {
            "open": with_address_text(runs.filter(pa.array(still_open)), "src", "src6", "src_ip", OPEN_SCHEMA),
            **sets,
        }


def _destinations(dst6: pa.ChunkedArray, pairs: np.ndarray, packing: tuple[int, int], ipv6: tuple[np.ndarray, np.ndarray],
                  carried: State, carried_keys: np.ndarray, n: int, still_open: np.ndarray, run_key: np.ndarray,
                  ) -> tuple[np.ndarray, np.ndarray, dict[str, pa.Table]]:
    """Distinct destinations and /24s per run (exact), and the destination sets of the runs left open.

    IPv4: the hour's pairs (``run << width | dst - base``, ``packing`` = (base, width)), sorted once,
    merged with the carried lists (:func:`kernels.merge_destinations`). IPv6 destinations (rare;
    ``dst6`` the hour's column, ``ipv6`` the rows with one and their runs) are rows of (run, high, low)
    words made distinct by one ``np.unique``. The sets are stored by packed key.
    """
    radix_sort(pairs)
    destinations, dst_24s, kept, kept_dst = merge_destinations(pairs, *_carried_lists(carried, carried_keys), n,
                                                               still_open, *packing)
    with_any = np.flatnonzero(kept)
    sets = {"dsts": pa.table({"k": run_key[with_any], "n": kept[with_any]}, schema=DSTS_SCHEMA),
            "dst_lists": pa.table({"dst": kept_dst}, schema=DST_LISTS_SCHEMA)}
    dsts6 = carried.get("dsts6", DSTS6_SCHEMA.empty_table())
    if dst6.null_count < len(dst6) or dsts6.num_rows:
        rows6, runs6 = ipv6
        words = [_words6(runs6, dst6.take(rows6).combine_chunks()),
                 _words6(_carried_runs(dsts6.column("k").to_numpy(), carried_keys), dsts6.column("dst6").combine_chunks())]
        unique6 = np.unique(np.concatenate(words), axis=0)
        run6 = unique6[:, 0].astype(np.int64)
        destinations += np.bincount(run6, minlength=n)
        keep6 = still_open[run6]
        raw = unique6[keep6][:, 1:].astype(">u8").tobytes()
        sets["dsts6"] = pa.table({
            "k": run_key[run6[keep6]],
            "dst6": pa.Array.from_buffers(pa.binary(16), int(keep6.sum()), [None, pa.py_buffer(raw)]),
        }, schema=DSTS6_SCHEMA)
    return destinations, dst_24s, sets


def index_in(keys: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Position of each of ``keys`` in ``table`` (distinct keys), -1 where absent (int64)."""
    if len(table) == 0:
        return np.full(len(keys), -1, dtype=np.int64)
    by = np.argsort(table)
    at = np.minimum(np.searchsorted(table[by], keys), len(table) - 1)
    return np.where(table[by][at] == keys, by[at], -1)


def _carried_lists(carried: State, carried_keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per carried event (``carried_keys`` order), where its destination list starts and its length,
    and the lists' values (:func:`kernels.merge_destinations`' carried arguments, read-only)."""
    dsts = carried.get("dsts", DSTS_SCHEMA.empty_table())
    values = carried.get("dst_lists", DST_LISTS_SCHEMA.empty_table()).column("dst").combine_chunks()
    lengths = dsts.column("n").to_numpy()
    start, count = np.zeros(len(carried_keys), dtype=np.int64), np.zeros(len(carried_keys), dtype=np.int64)
    event = index_in(dsts.column("k").to_numpy(), carried_keys)
    found = event >= 0
    start[event[found]] = (np.cumsum(lengths) - lengths)[found]
    count[event[found]] = lengths[found]
    return read_only(start), read_only(count), read_only(values.to_numpy())


def _carried_runs(dst_keys: np.ndarray, carried_keys: np.ndarray) -> np.ndarray:
    """The run (index of the carried open event) of each carried destination row, found by its key."""
    if len(dst_keys) == 0:
        return np.empty(0, dtype=np.int64)
    starts = np.flatnonzero(np.concatenate([[True], dst_keys[1:] != dst_keys[:-1]]))
    return np.repeat(index_in(dst_keys[starts], carried_keys), np.diff(np.append(starts, len(dst_keys))))


def _words6(runs: np.ndarray, dst6: pa.Array) -> np.ndarray:
    """(run, high word, low word) rows of the IPv6 destinations in ``dst6`` whose run is not -1."""
    valid = np.asarray(dst6.is_valid().to_numpy(zero_copy_only=False), dtype=bool) & (runs >= 0)
    if not valid.any():
        return np.empty((0, 3), dtype=np.uint64)
    return np.column_stack([runs[valid].astype(np.uint64), ipv6_words(dst6.filter(pa.array(valid)))])


def _majority_tool(counts: np.ndarray, packets: np.ndarray) -> pa.Array:
    """The most frequent tool per run (``counts``: a row per run), "no fingerprint" competing; ties go to
    the tool, earlier tools first."""
    best = counts.max(axis=1) if counts.shape[1] else np.zeros(len(packets), dtype=np.int64)
    untagged = packets - counts.sum(axis=1)
    names = np.asarray(TOOLS, dtype=object)[counts.argmax(axis=1)]
    return pa.array(names, pa.string(), mask=(best == 0) | (best < untagged))


_SCAN_BIT_SHIFT, _PORT_SHIFT, _PROTO_SHIFT, _SRC_SHIFT = 0, 1, 18, 26
_V6 = np.uint64(1 << 63)


def packed_keys(columns: Mapping[str, object]) -> np.ndarray:
    """One uint64 per row for (source, proto, dport, scan or other): exact for IPv4, hashed for IPv6.

    ``columns``: Arrow arrays ``src``, ``src6``, ``proto``, ``dport`` and a numpy bool ``is_scan``.
    IPv4: ``src << 26 | proto << 18 | (dport or 65536) << 1 | not scan`` (58 bits). IPv6: a
    multiply-xor hash of the address words and the same fields, with the top bit set so it never
    equals an IPv4 key; two IPv6 keys colliding is a ~n²/2⁶⁴ event. Array code, no DuckDB hash, so
    the carried destination sets stay valid across DuckDB versions.
    """
    src = columns["src"]
    proto = np.asarray(columns["proto"].to_numpy(zero_copy_only=False)).astype(np.uint64)
    dport = pc.fill_null(columns["dport"].cast(pa.int64()), NO_PORT).to_numpy().astype(np.uint64)
    other = (~np.asarray(columns["is_scan"], dtype=bool)).astype(np.uint64)
    fields = (proto << np.uint64(_PROTO_SHIFT)) | (dport << np.uint64(_PORT_SHIFT)) | (other << np.uint64(_SCAN_BIT_SHIFT))
    keys = (pc.fill_null(src, 0).to_numpy().astype(np.uint64) << np.uint64(_SRC_SHIFT)) | fields
    if src.null_count:
        v6 = np.asarray(src.is_null().to_numpy(zero_copy_only=False), dtype=bool)
        words = ipv6_words(columns["src6"].filter(pa.array(v6)))
        with np.errstate(over="ignore"):
            mixed = (words[:, 0] * np.uint64(0x9E3779B97F4A7C15)) ^ (words[:, 1] * np.uint64(0xC2B2AE3D27D4EB4F))
            mixed ^= (fields[v6] + np.uint64(0x165667B19E3779F9)) * np.uint64(0xFF51AFD7ED558CCD)
        keys[v6] = mixed | _V6
    return keys
