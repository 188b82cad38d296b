"""The compiled kernels of the tagging stage and the passes against plain-Python references: unsorted
times, nulls at a bitmap offset, IPv6 rows, carried events, and more keys than the hash tables' first
size (they must grow)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from iotscope.store.schema import TOOLS, TRAFFIC_CLASSES
from iotscope.telescope.passes.kernels import (
    BUCKET_BITS,
    arrow_buffers,
    count_cells,
    merge_destinations,
    peak_windows,
    radix_sort,
    split_runs,
)
from iotscope.telescope.passes.tagging import BACKSCATTER, SCAN, tag_hour

PAD = 3  # the table is sliced: every column's values and validity bitmap start at an offset


def _hour(rng: np.random.Generator, n: int, space: int, prefix: int) -> pa.Table:
    """``n`` packets (after a slice of ``PAD``) out of time order: ~2% from IPv6 sources to IPv6
    destinations, ports null now and then, tools null mostly, classes and tools dictionary-encoded."""
    m = n + PAD
    v6 = rng.random(m) < 0.02
    src = rng.integers(1, 6_000, m).astype(np.uint32)
    dst = (rng.integers(0, 2**32, m, dtype=np.uint64).astype(np.uint32) & np.uint32(space)) | np.uint32(prefix)
    six = [bytes([0x20, 1, 0xD, 0xB8] + [0] * 10 + [int(a), int(b)]) for a, b in rng.integers(0, 4, (m, 2))]
    traffic = rng.choice(["scan", "scan", "scan", "backscatter", "other"], m)
    tool = rng.choice([None, None, None, *TOOLS], m)
    return pa.table({
        "ts": pa.array(rng.integers(0, 200_000, m), pa.int64()).view(pa.timestamp("us", tz="UTC")),
        "src": pa.array(src, mask=v6), "src6": pa.array([s if x else None for s, x in zip(six, v6)], pa.binary(16)),
        "dst": pa.array(dst, mask=v6), "dst6": pa.array([s[::-1] if x else None for s, x in zip(six, v6)], pa.binary(16)),
        "proto": pa.array(np.full(m, 6, dtype=np.uint8)),
        "dport": pa.array(rng.choice([23, 2323, 80], m).astype(np.uint16), mask=rng.random(m) < 0.05),
        "traffic_class": pa.array(traffic).dictionary_encode().cast(pa.dictionary(pa.int8(), pa.string())),
        "tool": pa.array(tool, pa.string()).dictionary_encode().cast(pa.dictionary(pa.int8(), pa.string())),
    }).slice(PAD)


def _source(row: dict) -> object:
    return row["src"] if row["src"] is not None else row["src6"]


def test_tagging_groups_every_packet_by_source_port_and_class() -> None:
    rows = _hour(np.random.default_rng(5), 20_000, 0x0001F0FF, 0xC6120000).to_pylist()
    tags = tag_hour(_hour(np.random.default_rng(5), 20_000, 0x0001F0FF, 0xC6120000))
    assert tags.traffic.tolist() == [TRAFFIC_CLASSES.index(r["traffic_class"]) for r in rows]
    assert tags.tool.tolist() == [TOOLS.index(r["tool"]) if r["tool"] else -1 for r in rows]
    assert not tags.group.flags.writeable and not tags.t.flags.writeable  # shared by every pass
    want: dict[tuple, list[int]] = {}
    for i, r in enumerate(rows):
        port = None if r["traffic_class"] == "backscatter" else r["dport"]  # the spoofed client's port
        want.setdefault((_source(r), r["proto"], port, r["traffic_class"]), []).append(i)
    got: dict[int, list[int]] = {}
    for i, g in enumerate(tags.group.tolist()):
        got.setdefault(g, []).append(i)
    assert sorted(got.values()) == sorted(want.values()) and tags.groups == len(want) > 4096
    t = tags.t
    for g, members in got.items():
        first, last, packets, *tools = tags.group_sums[g].tolist()
        assert (first, last, packets) == (t[members].min(), t[members].max(), len(members))
        assert tools == [sum(rows[i]["tool"] == name for i in members) for name in TOOLS]
        assert tags.group_first_row[g] in members


@pytest.mark.parametrize(("space", "prefix", "bits"), [
    (0x0001F0FF, 0xC6120000, 17),  # a /15 darknet (198.18.0.0/15): the pairs hold dst - base in 17 bits
    (0xFFFF0FFF, 0x00000000, 32),  # destinations all over IPv4, up to 255.255.255.255: all 32 bits
])
def test_split_and_merge_match_a_python_reference(space: int, prefix: int, bits: int) -> None:
    idle = 1_000
    table = _hour(np.random.default_rng(8), 30_000, space, prefix)
    rows, tags = table.to_pylist(), tag_hour(table)
    v4 = [r["dst"] for r in rows if r["dst"] is not None]
    base, width = min(v4), (max(v4) - min(v4)).bit_length()
    assert width == bits and len(tags.order)  # not in time order
    order = tags.order.tolist()
    # the first 40 groups (not backscatter) continue carried events ending at t = -500
    carried_groups = [g for g in range(tags.groups) if tags.group_class[g] != BACKSCATTER][:40]
    group_run = np.full(tags.groups, -1, dtype=np.int64)
    group_run[carried_groups] = np.arange(40)
    first_row, sums, pairs, rows6, runs6 = split_runs(
        np.full(40, -500, dtype=np.int64), group_run, tags.t, tags.order, tags.traffic, BACKSCATTER, tags.group,
        tags.tool, len(TOOLS), *arrow_buffers(tags.dst, np.uint32), base, width, idle)

    # Reference: walk the packets in time order with a dict.
    current = {g: (i, -500) for i, g in enumerate(carried_groups)}
    runs = 40
    want_packets: dict[int, int] = {}
    want_dsts: dict[int, set[int]] = {}
    want_dsts6: dict[int, set[bytes]] = {}
    want_first_row = {}
    for row in order:
        r = rows[row]
        if r["traffic_class"] == "backscatter":
            continue
        g = int(tags.group[row])
        run, last = current.get(g, (None, None))
        if run is None or tags.t[row] - last > idle:
            run, runs = runs, runs + 1
            want_first_row[run] = row
        current[g] = (run, tags.t[row])
        want_packets[run] = want_packets.get(run, 0) + 1
        if r["dst"] is not None:
            want_dsts.setdefault(run, set()).add(r["dst"])
        else:
            want_dsts6.setdefault(run, set()).add(r["dst6"])
    assert len(first_row) == runs > 2 * 4096  # more runs than the first arrays hold
    assert {r: int(first_row[r]) for r in want_first_row} == want_first_row
    assert {r: int(p) for r, p in enumerate(sums[:, 2]) if p} == want_packets
    assert sums[:, 3:].sum() == ((tags.tool >= 0) & (tags.traffic != BACKSCATTER)).sum()
    got6: dict[int, set[bytes]] = {}
    for row, run in zip(rows6.tolist(), runs6.tolist()):
        got6.setdefault(run, set()).add(rows[row]["dst6"])
    assert got6 == want_dsts6 and got6

    # Carried lists: run 0 already saw two destinations, one of which comes again; run 2 saw one;
    # run 2's list is stored first (the lists are found by their slices, in any order).
    again = min(want_dsts.get(0, {7}))
    carried_dst = np.array([5, *sorted({again, 0xFFFFFFFE})], dtype=np.uint32)  # 0xFFFFFFFE: outside the hour's span
    carried_start, carried_count = np.array([1, 0, 0]), np.array([2, 0, 1])
    radix_sort(pairs)
    keep = np.zeros(runs, dtype=bool)
    keep[:3] = True
    destinations, dst_24s, kept, kept_dst = merge_destinations(pairs, carried_start, carried_count, carried_dst, runs,
                                                               keep, base, width)
    want_dsts.setdefault(0, set()).update({again, 0xFFFFFFFE})
    want_dsts.setdefault(2, set()).add(5)
    assert {r: int(d) for r, d in enumerate(destinations) if d} == {r: len(s) for r, s in want_dsts.items()}
    assert {r: int(d) for r, d in enumerate(dst_24s) if d} == {r: len({d >> 8 for d in s}) for r, s in want_dsts.items()}
    assert kept.tolist() == [len(want_dsts.get(r, ())) if r < 3 else 0 for r in range(runs)]
    assert kept_dst.tolist() == [d for r in range(3) for d in sorted(want_dsts.get(r, ()))]


def test_count_cells_match_a_python_reference() -> None:
    """Per (proto, port, bucket) of the scans with a port: packets and distinct sources, IPv4 and IPv6."""
    table = _hour(np.random.default_rng(11), 30_000, 0x0001F0FF, 0xC6120000)
    rows, tags = table.to_pylist(), tag_hour(table)
    width, base = 100, 0  # ~2,000 buckets: more cells than the first table holds
    cells, packets, sources = count_cells(
        tags.t, tags.order, arrow_buffers(tags.proto, np.uint8)[0], *arrow_buffers(tags.dport, np.uint16),
        tags.traffic, SCAN, tags.group, tags.groups, width, base)
    want: dict[tuple[int, int, int], tuple[int, set]] = {}
    for i, r in enumerate(rows):
        if r["traffic_class"] == "scan" and r["dport"] is not None:
            count, seen = want.get((r["proto"], r["dport"], int(tags.t[i]) // width), (0, set()))
            want[(r["proto"], r["dport"], int(tags.t[i]) // width)] = (count + 1, seen | {_source(r)})
    mask = np.uint64((1 << BUCKET_BITS) - 1)
    got = {(int(c >> np.uint64(16 + BUCKET_BITS)), int((c >> np.uint64(BUCKET_BITS)) & np.uint64(0xFFFF)),
            int(c & mask)): (int(p), int(s)) for c, p, s in zip(cells, packets, sources)}
    assert got == {k: (p, len(s)) for k, (p, s) in want.items()} and len(got) > 1024


def test_radix_sort_equals_numpy_sort_on_every_key_shape() -> None:
    rng = np.random.default_rng(8)
    pairs = (rng.integers(0, 70_000, 200_000).astype(np.uint64) << np.uint64(32)) | (
        np.uint64(0xC6336400) + rng.integers(0, 1 << 10, 200_000).astype(np.uint64))  # a darknet /22: skipped digits
    shapes = {
        "empty": np.empty(0, dtype=np.uint64), "one": np.array([7], dtype=np.uint64),
        "all equal": np.full(1000, 123456789, dtype=np.uint64), "pairs": pairs,
        "full 64 bits": rng.integers(0, np.iinfo(np.uint64).max, 50_000, dtype=np.uint64, endpoint=True),
        "sorted": np.arange(10_000, dtype=np.uint64), "reversed": np.arange(10_000, dtype=np.uint64)[::-1].copy(),
    }
    for name, keys in shapes.items():
        got = keys.copy()
        radix_sort(got)
        assert np.array_equal(got, np.sort(keys)), name


def test_peak_windows_match_a_python_reference() -> None:
    """Buckets with gaps (absent buckets count zero) and windows that must not reach into the previous vector."""
    rng = np.random.default_rng(3)
    span, vectors = 6, 40
    cells = sorted({(int(v), int(b)) for v, b in zip(rng.integers(0, vectors, 3_000), rng.integers(0, 300, 3_000))})
    vector = np.array([v for v, _ in cells], dtype=np.int64)
    bucket = np.array([b for _, b in cells], dtype=np.int64)
    packets = rng.integers(1, 20, len(cells)).astype(np.int64)
    expected = [0] * (vectors + 1)  # one vector more than used: no buckets, peak 0
    for v, b in cells:
        window = sum(int(n) for (w, c), n in zip(cells, packets) if w == v and b - span < c <= b)
        expected[v] = max(expected[v], window)
    assert peak_windows(vector, bucket, packets, vectors + 1, span).tolist() == expected
