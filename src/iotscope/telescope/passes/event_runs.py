"""The compiled heart of the ``events`` pass: split an hour's packets into runs, count distinct destinations.

Why numba and not sorts: an hour holds ~10⁶ packets but only ~10⁴ event keys, and Mirai bots keep
their events open for the whole capture, so the carried destination sets grow to millions of
entries. Two linear passes replace the sorts and Arrow round trips the pass used to make:

* :func:`split_runs`: one pass over the hour's packets in time order with an open-addressing
  hash table from event key to its current run (the carried open events are inserted first and keep
  their index as run number). A packet starts a new run when its key is new or it comes more than
  ``idle_us`` after the key's previous packet; a gap of exactly ``idle_us`` continues the run.
* :func:`merge_destinations`: per run, a merge of the carried sorted destination set with the
  hour's sorted ``run << 32 | dst`` pairs, counting distinct destinations and /24s exactly and
  writing the merged set of every run that stays open. Carried sets are never re-sorted: they are
  stored in run order (the order of the ``open`` table), sorted within each run.

Runs are numbered carried events first (in ``open`` order), then new runs in order of their first
packet, so the ``open`` table written in run order stays in ``first_ts`` order hour after hour.
"""

from __future__ import annotations

import numba
import numpy as np

from iotscope.telescope.passes.arrow_buffers import valid
from iotscope.telescope.passes.hash_table import find_or_add, new_table


@numba.njit(cache=True, nogil=True)
def split_runs(carried_keys: np.ndarray, carried_last: np.ndarray, t: np.ndarray, order: np.ndarray,
               src: np.ndarray, src_bits: np.ndarray, src_offset: int, keys6: np.ndarray,
               proto: np.ndarray, dport: np.ndarray, dport_bits: np.ndarray, dport_offset: int,
               traffic: np.ndarray, skip_class: int, scan_class: int, tool: np.ndarray, tools: int,
               dst: np.ndarray, dst_bits: np.ndarray, dst_offset: int, idle_us: int):
    """Split the hour's packets into runs; per run its first packet, times, packets, tool counts; the dst pairs.

    ``order``: the packets in time order (ties in input order), or empty when the input is in time
    order. Packets of class ``skip_class`` (backscatter) are left out. A packet's key is
    :func:`events.packed_keys`'s: ``src << 26 | proto << 18 | (dport or 65536) << 1 | not scan``
    for IPv4, ``keys6[row]`` (computed by ``packed_keys``) for IPv6. Columns come as Arrow buffers
    (values, validity bitmap, offset) so that nothing is copied to fill nulls.

    ``carried_keys`` are the keys of the open events carried in, one event per key, whose runs are
    numbered 0 .. len-1. The hash table (key, run per slot, side by side: one cache line per
    probe) starts small and doubles: an hour has far fewer keys than packets, and a table that
    fits in cache is what makes this pass fast. ``pairs`` are ``run << 32 | dst`` of the IPv4
    destinations, unsorted; ``rows6``/``runs6`` the packets with an IPv6 destination and their runs.
    """
    c = len(carried_keys)
    n = len(order) if len(order) else len(t)
    slots = new_table(2 * c + 2)
    first_row = np.full(n + c, -1, dtype=np.int64)
    first_t = np.empty(n + c, dtype=np.int64)
    last_t = np.empty(n + c, dtype=np.int64)
    packets = np.zeros(n + c, dtype=np.int64)
    tool_counts = np.zeros((tools, n + c), dtype=np.int64)
    pairs = np.empty(n, dtype=np.uint64)
    rows6 = np.empty(n, dtype=np.int64)  # packets with an IPv6 destination, and their runs
    runs6 = np.empty(n, dtype=np.int64)
    runs = 0
    used = 0
    w = 0
    w6 = 0
    for i in range(c):
        slots, s, _, used = find_or_add(slots, carried_keys[i], used)
        slots[2 * s + 1] = np.uint64(runs)
        last_t[runs] = carried_last[i]
        first_t[runs] = carried_last[i]  # replaced by the caller with the carried first time
        runs += 1
    for j in range(n):
        row = order[j] if len(order) else j
        if traffic[row] == skip_class:
            continue
        when = t[row]
        if valid(src_bits, src_offset, row):
            port = np.uint64(dport[row]) if valid(dport_bits, dport_offset, row) else np.uint64(65536)
            other = np.uint64(0) if traffic[row] == scan_class else np.uint64(1)
            key = (np.uint64(src[row]) << np.uint64(26)) | (np.uint64(proto[row]) << np.uint64(18)) \
                | (port << np.uint64(1)) | other
        else:
            key = keys6[row]
        slots, s, added, used = find_or_add(slots, key, used)
        if added:
            r = runs
        else:
            r = np.int64(slots[2 * s + 1])
            if when - last_t[r] > idle_us:
                r = runs
        if r == runs:
            slots[2 * s + 1] = np.uint64(r)
            first_row[r] = row
            first_t[r] = when
            runs += 1
        last_t[r] = when
        packets[r] += 1
        if tool[row] >= 0:
            tool_counts[tool[row], r] += 1
        if valid(dst_bits, dst_offset, row):
            pairs[w] = (np.uint64(r) << np.uint64(32)) | np.uint64(dst[row])
            w += 1
        else:
            rows6[w6] = row
            runs6[w6] = r
            w6 += 1
    return (first_row[:runs], first_t[:runs], last_t[:runs], packets[:runs], tool_counts[:, :runs], pairs[:w],
            rows6[:w6], runs6[:w6])


@numba.njit(cache=True, nogil=True)
def merge_destinations(pairs: np.ndarray, carried_run: np.ndarray, carried_dst: np.ndarray, runs: int,
                       keep: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Distinct IPv4 destinations and /24s per run, and the merged sets of the runs to ``keep``.

    ``pairs``: the hour's ``run << 32 | dst``, sorted (duplicates allowed). ``carried_run`` /
    ``carried_dst``: the carried sets, sorted by (run, dst), no duplicates. Returns per-run distinct
    destinations and /24s, and the kept (run, dst) rows in (run, dst) order.
    """
    destinations = np.zeros(runs, dtype=np.int64)
    slash24s = np.zeros(runs, dtype=np.int64)
    out_run = np.empty(len(pairs) + len(carried_dst), dtype=np.int64)
    out_dst = np.empty(len(pairs) + len(carried_dst), dtype=np.uint32)
    p, q, w = 0, 0, 0
    n, c = len(pairs), len(carried_dst)
    for r in range(runs):
        prev = np.int64(-1)
        prev24 = np.int64(-1)
        count = 0
        count24 = 0
        while True:
            has_p = p < n and np.int64(pairs[p] >> np.uint64(32)) == r
            has_q = q < c and carried_run[q] == r
            if not has_p and not has_q:
                break
            if has_p and (not has_q or np.int64(pairs[p] & np.uint64(0xFFFFFFFF)) <= np.int64(carried_dst[q])):
                value = np.int64(pairs[p] & np.uint64(0xFFFFFFFF))
                p += 1
            else:
                value = np.int64(carried_dst[q])
                q += 1
            if value == prev:
                continue
            prev = value
            count += 1
            if value >> 8 != prev24:
                prev24 = value >> 8
                count24 += 1
            if keep[r]:
                out_run[w] = r
                out_dst[w] = np.uint32(value)
                w += 1
        destinations[r] = count
        slash24s[r] = count24
    return destinations, slash24s, out_run[:w], out_dst[:w]
