"""The compiled kernels of the events pass against a plain-Python reference: unsorted times, nulls at a bitmap offset,
carried events, and more keys than the hash table's first size (it must grow)."""

from __future__ import annotations

import numpy as np
import pytest
import pyarrow as pa
import pyarrow.compute as pc

from iotscope.store.schema import TRAFFIC_CLASSES
from iotscope.telescope.passes.events import packed_keys
from iotscope.telescope.passes.kernels import (
    arrow_buffers,
    merge_destinations,
    peak_windows,
    radix_sort,
    split_runs,
)

SCAN, BACKSCATTER = TRAFFIC_CLASSES.index("scan"), TRAFFIC_CLASSES.index("backscatter")


@pytest.mark.parametrize(("space", "prefix", "bits"), [
    (0x0001F0FF, 0xC6120000, 17),  # a /15 darknet (198.18.0.0/15): the pairs hold dst - base in 17 bits
    (0xFFFF0FFF, 0x00000000, 32),  # destinations all over IPv4, up to 255.255.255.255: all 32 bits
])
def test_split_and_merge_match_a_python_reference(space: int, prefix: int, bits: int) -> None:
    rng = np.random.default_rng(8)
    n, idle = 30_000, 1_000
    pad = 3  # sliced arrays: values and validity bitmaps start at a bit offset
    src = pa.array(rng.integers(1, 6_000, n + pad).astype(np.uint32))[pad:]
    dport_values = rng.choice([23, 2323, 80], n + pad).astype(np.uint16)
    dport = pa.array(dport_values, mask=rng.random(n + pad) < 0.05)[pad:]
    proto = pa.array(np.full(n + pad, 6, dtype=np.uint8))[pad:]
    dst = pa.array((rng.integers(0, 2**32, n + pad, dtype=np.uint64).astype(np.uint32) & np.uint32(space))
                   | np.uint32(prefix))[pad:]
    base = int(pc.min(dst).as_py())
    width = (int(pc.max(dst).as_py()) - base).bit_length()
    assert width == bits
    traffic = rng.choice([SCAN, SCAN, SCAN, BACKSCATTER, TRAFFIC_CLASSES.index("other")], n).astype(np.int8)
    tool = rng.integers(-1, 3, n).astype(np.int8)
    t = rng.integers(0, 200_000, n).astype(np.int64)  # not in time order
    order = np.argsort(t, kind="stable")
    columns = {"src": src, "src6": pa.nulls(n, pa.binary(16)), "proto": proto, "dport": dport,
               "is_scan": traffic == SCAN}
    keys = packed_keys(columns)
    carried_rows = np.flatnonzero(traffic != BACKSCATTER)[:40]  # these keys' events are carried in
    carried_keys = np.unique(keys[carried_rows])
    carried_last = np.full(len(carried_keys), -500, dtype=np.int64)

    first_row, _, _, packets, tool_counts, pairs, rows6, runs6 = split_runs(
        carried_keys, carried_last, t, order, *arrow_buffers(src, np.uint32), np.empty(0, np.uint64),
        arrow_buffers(proto, np.uint8)[0], *arrow_buffers(dport, np.uint16), traffic, BACKSCATTER, SCAN,
        tool, 3, *arrow_buffers(dst, np.uint32), base, width, idle)

    # Reference: walk the packets in time order with a dict.
    current = {int(k): (i, -500) for i, k in enumerate(carried_keys)}
    runs = len(carried_keys)
    want_packets: dict[int, int] = {}
    want_dsts: dict[int, set[int]] = {}
    want_first_row = {}
    for row in order:
        if traffic[row] == BACKSCATTER:
            continue
        k = int(keys[row])
        run, last = current.get(k, (None, None))
        if run is None or t[row] - last > idle:
            run, runs = runs, runs + 1
            want_first_row[run] = row
        current[k] = (run, t[row])
        want_packets[run] = want_packets.get(run, 0) + 1
        want_dsts.setdefault(run, set()).add(int(dst[int(row)].as_py()))
    assert len(first_row) == runs > 2 * 4096  # more keys than the first table holds
    assert {r: int(first_row[r]) for r in want_first_row} == want_first_row
    assert {r: int(p) for r, p in enumerate(packets) if p} == want_packets
    assert tool_counts.sum() == ((tool >= 0) & (traffic != BACKSCATTER)).sum()
    assert len(rows6) == len(runs6) == 0

    # Carried sets: run 0 already saw two destinations, one of which comes again.
    again = min(want_dsts.get(0, {7}))
    carried_run = np.array([0, 0], dtype=np.int64)
    carried_dst = np.array(sorted({again, 0xFFFFFFFE}), dtype=np.uint32)  # one outside the hour's span
    pairs.sort()
    keep = np.zeros(runs, dtype=bool)
    keep[:3] = True
    destinations, dst_24s, kept_run, kept_dst = merge_destinations(pairs, carried_run, carried_dst, runs, keep,
                                                                   base, width)
    want_dsts.setdefault(0, set()).update(int(d) for d in carried_dst)
    assert {r: int(d) for r, d in enumerate(destinations) if d} == {r: len(s) for r, s in want_dsts.items()}
    assert {r: int(d) for r, d in enumerate(dst_24s) if d} == {r: len({d >> 8 for d in s}) for r, s in want_dsts.items()}
    assert list(zip(kept_run.tolist(), kept_dst.tolist(), strict=True)) == [
        (r, d) for r in range(3) for d in sorted(want_dsts.get(r, ()))]


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
