"""An open-addressing hash table of 64-bit keys for numba kernels: two words per slot (key, value).

The analysis kernels (``event_runs``, ``series``) count per key over ~10⁶ packets an hour with
~10⁴-10⁵ distinct keys: a table that starts small and doubles stays in cache, and key and value
side by side cost one cache line per probe. Linear probing; ``EMPTY`` marks a free slot.
"""

from __future__ import annotations

import numba
import numpy as np

EMPTY = np.uint64(0xFFFFFFFFFFFFFFFF)  # never a packed key: IPv4 keys use 58 bits, IPv6 ones have bit 63 plus a hash


@numba.njit(cache=True, inline="always")
def slot(slots: np.ndarray, key: np.uint64, mask: np.uint64) -> np.int64:
    """Slot of ``key`` in the open-addressing table (linear probing; key at ``2 * slot``): where it is, or the empty one."""
    h = (key * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(20)
    i = h & mask
    while slots[2 * i] != key and slots[2 * i] != EMPTY:
        i = (i + np.uint64(1)) & mask
    return np.int64(i)


@numba.njit(cache=True, nogil=True)
def grown(slots: np.ndarray) -> np.ndarray:
    """The hash table at twice the size, entries re-inserted (keeps it at most half full)."""
    size = len(slots)  # the new number of slots: two words per slot (key, value)
    mask = np.uint64(size - 1)
    bigger = np.full(2 * size, EMPTY, dtype=np.uint64)
    for i in range(size // 2):
        if slots[2 * i] != EMPTY:
            s = slot(bigger, slots[2 * i], mask)
            bigger[2 * s] = slots[2 * i]
            bigger[2 * s + 1] = slots[2 * i + 1]
    return bigger


@numba.njit(cache=True, inline="always")
def find_or_add(slots: np.ndarray, key: np.uint64, used: int) -> tuple[np.ndarray, np.int64, bool, int]:
    """(table, slot of ``key``, whether it was added, keys in use): adds the key if absent, growing the
    table first when it would be more than half full (the table returned may be a new array)."""
    s = slot(slots, key, np.uint64(len(slots) // 2 - 1))
    if slots[2 * s] == key:
        return slots, s, False, used
    if 2 * (used + 1) > len(slots) // 2:
        slots = grown(slots)
        s = slot(slots, key, np.uint64(len(slots) // 2 - 1))
    slots[2 * s] = key
    return slots, s, True, used + 1


@numba.njit(cache=True, nogil=True)
def new_table(min_slots: int) -> np.ndarray:
    """An empty table of at least ``min_slots`` slots (a power of two, at least 4096)."""
    size = 1 << 12
    while size < min_slots:
        size *= 2
    return np.full(2 * size, EMPTY, dtype=np.uint64)
