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

_EMPTY = np.uint64(0xFFFFFFFFFFFFFFFF)  # never a packed key: IPv4 keys use 58 bits, IPv6 ones have bit 63 plus a hash


@numba.njit(cache=True, inline="always")
def _slot(table: np.ndarray, key: np.uint64, mask: np.uint64) -> np.int64:
    """Slot of ``key`` in the open-addressing ``table`` (linear probing): where it is, or the empty slot to use."""
    h = (key * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(20)
    i = h & mask
    while table[i] != key and table[i] != _EMPTY:
        i = (i + np.uint64(1)) & mask
    return np.int64(i)


@numba.njit(cache=True, nogil=True)
def _grown(table: np.ndarray, current: np.ndarray, last: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The hash table at twice the size, entries re-inserted (keeps it at most half full)."""
    size = 2 * len(table)
    mask = np.uint64(size - 1)
    new_table = np.full(size, _EMPTY, dtype=np.uint64)
    new_current = np.empty(size, dtype=np.int64)
    new_last = np.empty(size, dtype=np.int64)
    for i in range(len(table)):
        if table[i] != _EMPTY:
            s = _slot(new_table, table[i], mask)
            new_table[s] = table[i]
            new_current[s] = current[i]
            new_last[s] = last[i]
    return new_table, new_current, new_last


@numba.njit(cache=True, nogil=True)
def split_runs(carried_keys: np.ndarray, carried_last: np.ndarray, keys: np.ndarray, t: np.ndarray,
               order: np.ndarray, idle_us: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Run of every packet, and per run its first packet (-1: a carried event's run), first and last time.

    ``order`` lists the packets to split in time order (ties in input order); packets not in it get
    run -1. ``carried_keys`` are the keys of the open events carried in, one event per key, whose
    runs are numbered 0 .. len-1. The hash table starts small and doubles: an hour has far fewer keys
    than packets, and a table that fits in cache is what makes this pass fast.
    """
    n, c = len(keys), len(carried_keys)
    size = 1 << 12
    while size < 2 * c + 2:
        size *= 2
    mask = np.uint64(size - 1)
    table = np.full(size, _EMPTY, dtype=np.uint64)
    current = np.empty(size, dtype=np.int64)  # the key's current run
    last = np.empty(size, dtype=np.int64)  # the key's latest packet time
    run_of = np.full(n, -1, dtype=np.int64)
    first_row = np.full(len(order) + c, -1, dtype=np.int64)
    first_t = np.empty(len(order) + c, dtype=np.int64)
    last_t = np.empty(len(order) + c, dtype=np.int64)
    runs = 0
    used = 0
    for i in range(c):
        s = _slot(table, carried_keys[i], mask)
        table[s] = carried_keys[i]
        current[s] = runs
        last[s] = carried_last[i]
        last_t[runs] = carried_last[i]
        first_t[runs] = carried_last[i]  # replaced by the caller with the carried first time
        runs += 1
        used += 1
    for j in range(len(order)):
        row = order[j]
        key, when = keys[row], t[row]
        s = _slot(table, key, mask)
        if table[s] == _EMPTY:
            if 2 * (used + 1) > size:
                table, current, last = _grown(table, current, last)
                size = len(table)
                mask = np.uint64(size - 1)
                s = _slot(table, key, mask)
            used += 1
        if table[s] == _EMPTY or when - last[s] > idle_us:
            table[s] = key
            current[s] = runs
            first_row[runs] = row
            first_t[runs] = when
            runs += 1
        r = current[s]
        run_of[row] = r
        last[s] = when
        last_t[r] = when
    return run_of, first_row[:runs], first_t[:runs], last_t[:runs]


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
