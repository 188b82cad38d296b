"""The compiled kernels of the analysis passes (numba), with the helpers they inline, in one module.

One module on purpose (as ``decode/kernel.py``): numba's on-disk cache (``cache=True``) is
invalidated only when the file defining the cached function changes, so a helper inlined from
another module could change while the cached kernels keep the old machine code.

* **Arrow buffers.** Kernels read a column's values buffer and test its validity bitmap
  (:func:`arrow_buffers`, :func:`valid`) instead of getting null-filled numpy copies.
* **Hash table.** Open addressing of 64-bit keys, two words per slot (key, value) so a probe costs
  one cache line, linear probing, starting at 4,096 slots and doubling at half full: an hour has
  ~10⁶ packets but ~10⁴-10⁵ keys, and a table that stays in cache is what makes the passes fast.
  A packet whose key is there does one :func:`lookup` (no array returned: see :func:`add`).
* **tagging** (:func:`source_port_groups`, :func:`gather_codes`): every packet's *source group*, one
  per (IPv4 source, protocol, port, class), numbered in order of first packet, with per group its
  first row, first/last time, packets and tool counts: one hash table of the packed key, the one
  hash of the hour (``passes.tagging``); the passes below work over group numbers.
* **events** (:func:`split_runs`, :func:`merge_destinations`): split an hour's packets into runs
  in one pass in time order (a group is one event key: ``group_run`` maps it to its current run,
  carried open events first, keeping their index as run number; a packet starts a new run when its
  group has none or it comes more than ``idle_us`` after the run's last packet; a gap of exactly
  ``idle_us`` continues the run), then per run merge the carried sorted destination set with the
  hour's sorted ``run << width | dst - base`` pairs (``base``/``width``: the lowest destination of
  the hour and the bits of the span above it, so a /15 darknet's pairs use ~35 bits, not ~50: one
  radix pass fewer), counting distinct destinations and /24s exactly. The pairs are sorted by
  :func:`radix_sort`. A carried set is one sorted list per event, found by its slice (start,
  count), so the sets are merged, never re-sorted, in whatever order the events were stored.
  Runs are numbered carried events first (in ``open`` order), then new runs in order of their
  first packet, so the ``open`` table written in run order stays in ``first_ts`` order hour after hour.
* **port_series** (:func:`count_cells`): packets per (protocol, port, bucket) cell; distinct sources
  as distinct scan groups, each counted once per bucket (walking in time order, a group's bucket
  never goes back): no set of (cell, source) pairs.
* **attacks** (:func:`peak_windows`): the busiest rate window of each attack vector, two pointers over
  its sorted rate buckets (the vectors themselves are cut by a numpy sort in ``attacks``).
"""

from __future__ import annotations

import numba
import numpy as np
import pyarrow as pa

EMPTY = np.uint64(0xFFFFFFFFFFFFFFFF)  # a free hash slot: never an IPv4 key (58 bits); an IPv6 key (bit 63 + hash) equal to it is a 2^-63 event
RADIX_BITS = 11  # radix_sort's digit: 2,048 counters (16 KB) stay in L1; ~50-bit pair keys take 5 passes or fewer
#: The port in the packed keys of a packet with none (null, or backscatter's in ``source_hours``): past 65535.
NO_PORT = 65536
BUCKET_BITS = 22  # port_series cells: bucket numbers relative to the hour's first (< 3600: buckets >= 1 s divide the hour)


def read_only(array: np.ndarray) -> np.ndarray:
    """``array`` as a read-only view: what every kernel argument from Arrow is.

    Why: numba compiles (or loads from its cache) a kernel per argument type, and a writable array
    is another type than a read-only one. Arrow hands out either (a view of a Parquet page, a copy
    of an empty column), so without this an hour with nulls and one without, or the first hour
    (nothing carried) and the next, would each load their own machine code.
    """
    view = array.view()
    view.flags.writeable = False
    return view


_NO_BITS = read_only(np.empty(0, np.uint8))


def arrow_buffers(array: pa.Array, dtype: type) -> tuple[np.ndarray, np.ndarray, int]:
    """(values, validity bitmap, bit offset) of a fixed-width Arrow array; values under nulls are arbitrary.

    The bitmap is empty when the array has no nulls (see :func:`valid`). Both are read-only
    (:func:`read_only`).
    """
    validity, data = array.buffers()[:2]
    values = np.frombuffer(data, dtype=dtype)[array.offset:array.offset + len(array)] if data is not None \
        else np.empty(0, dtype=dtype)
    bits = np.frombuffer(validity, dtype=np.uint8) if validity is not None and array.null_count else _NO_BITS
    return read_only(values), read_only(bits), array.offset


@numba.njit(cache=True, inline="always")
def valid(bits: np.ndarray, offset: int, i: int) -> bool:
    """Whether value ``i`` is not null, from :func:`arrow_buffers`' bitmap (empty: no nulls)."""
    if len(bits) == 0:
        return True
    j = offset + i
    return (bits[j >> 3] >> (j & 7)) & 1 == 1


@numba.njit(cache=True, inline="always")
def slot(slots: np.ndarray, key: np.uint64, mask: np.uint64) -> np.int64:
    """Slot of ``key`` in the open-addressing table (linear probing; key at ``2 * slot``): where it is, or the empty one.

    The hash folds the key's high bits into its low ones before the multiply and takes the product's
    upper half: the packed keys hold the source address in bits 27-58, which the middle bits of a
    plain product ignore (the groups of sources sharing their low bits then cluster: the busiest
    bench hour's grouping took 78 ms instead of 59).
    """
    h = ((key ^ (key >> np.uint64(29))) * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(32)
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
def lookup(slots: np.ndarray, key: np.uint64) -> np.int64:
    """Slot of ``key`` in the table: where it is, or where it would go (``slots[2 * s] == EMPTY``)."""
    return slot(slots, key, np.uint64(len(slots) // 2 - 1))


@numba.njit(cache=True, inline="always")
def add(slots: np.ndarray, key: np.uint64, used: int) -> tuple[np.ndarray, np.int64]:
    """(table, slot) after adding the absent ``key`` to a table of ``used`` keys: the table is grown
    first when it would be more than half full, so the one returned may be a new array.

    Why apart from :func:`lookup`: a function returning an array costs a reference count update,
    ~10 ns; only the packets of a new key pay it, not every packet.
    """
    if 2 * (used + 1) > len(slots) // 2:
        slots = grown(slots)
    s = lookup(slots, key)
    slots[2 * s] = key
    return slots, s


@numba.njit(cache=True, nogil=True)
def new_table(min_slots: int) -> np.ndarray:
    """An empty table of at least ``min_slots`` slots (a power of two, at least 4096)."""
    size = 1 << 12
    while size < min_slots:
        size *= 2
    return np.full(2 * size, EMPTY, dtype=np.uint64)


@numba.njit(cache=True, nogil=True)
def gather_codes(lookup: np.ndarray, indices: np.ndarray, bits: np.ndarray, offset: int) -> np.ndarray:
    """``lookup[index]`` of each dictionary index (``arrow_buffers`` of the indices), -1 for a null (int8)."""
    codes = np.empty(len(indices), dtype=np.int8)
    for i in range(len(indices)):
        codes[i] = lookup[indices[i]] if valid(bits, offset, i) else -1
    return codes


@numba.njit(cache=True, nogil=True)
def grown_rows(rows: np.ndarray, fill: int) -> np.ndarray:
    """``rows`` (a 1-d or 2-d array filled up to its length) at twice its length, the new part ``fill``."""
    more = np.full_like(rows, fill)
    return np.concatenate((rows, more))


@numba.njit(cache=True, nogil=True)
def split_runs(carried_last: np.ndarray, group_run: np.ndarray, t: np.ndarray, order: np.ndarray,
               traffic: np.ndarray, skip_class: int, group: np.ndarray, tool: np.ndarray, tools: int,
               dst: np.ndarray, dst_bits: np.ndarray, dst_offset: int, dst_base: int, dst_width: int,
               idle_us: int):
    """Split the hour's packets into runs by source group; per run its first row and sums; the dst pairs.

    ``order``: the packets in time order (ties in input order), or empty when the input is in time
    order. Packets of class ``skip_class`` (backscatter) are left out. ``group`` is each packet's
    source group (``passes.tagging``), one per event key; ``group_run`` the run each group continues
    (a carried event's index, or -1), updated in place. The carried events are runs 0 .. len - 1,
    ending at ``carried_last``. A packet starts a new run when its group has none or it comes more
    than ``idle_us`` after the run's last packet.

    Returns per run its first row (-1 for a carried run) and ``[first µs, last µs, packets, packets
    of each tool]`` (side by side: one cache line per packet; the carried runs' first time and
    counts are the caller's to add), ``pairs`` = ``run << dst_width | dst - dst_base`` of the IPv4
    destinations (unsorted), and ``rows6``/``runs6``: the packets with an IPv6 destination, and their runs.
    """
    c = len(carried_last)
    n = len(order) if len(order) else len(t)
    first_row = np.full(c + 4096, -1, dtype=np.int64)
    sums = np.zeros((c + 4096, 3 + tools), dtype=np.int64)
    pairs = np.empty(n, dtype=np.uint64)
    rows6 = np.empty(16, dtype=np.int64)
    runs6 = np.empty(16, dtype=np.int64)
    for i in range(c):
        sums[i, 0] = carried_last[i]  # replaced by the caller with the carried first time
        sums[i, 1] = carried_last[i]
    runs = c
    w = 0
    w6 = 0
    for j in range(n):
        row = order[j] if len(order) else j
        if traffic[row] == skip_class:
            continue
        when = t[row]
        g = group[row]
        r = group_run[g]
        if r < 0 or when - sums[r, 1] > idle_us:
            r = runs
            runs += 1
            if r == len(first_row):
                first_row = grown_rows(first_row, -1)
                sums = grown_rows(sums, 0)
            group_run[g] = r
            first_row[r] = row
            sums[r, 0] = when
        sums[r, 1] = when
        sums[r, 2] += 1
        if tool[row] >= 0:
            sums[r, 3 + tool[row]] += 1
        if valid(dst_bits, dst_offset, row):
            pairs[w] = (np.uint64(r) << np.uint64(dst_width)) | (np.uint64(dst[row]) - np.uint64(dst_base))
            w += 1
        else:
            if w6 == len(rows6):
                rows6 = grown_rows(rows6, 0)
                runs6 = grown_rows(runs6, 0)
            rows6[w6] = row
            runs6[w6] = r
            w6 += 1
    return first_row[:runs], sums[:runs], pairs[:w], rows6[:w6], runs6[:w6]


@numba.njit(cache=True, nogil=True)
def radix_sort(keys: np.ndarray) -> None:
    """Sort ``keys`` (uint64) in place: LSD radix sort over the bits the largest key uses.

    Why not ``np.sort``: the events' pairs (10⁵-10⁶ an hour) use ~35 of 64 bits (see
    :func:`split_runs`), so it takes 4 passes over them (a digit that is the same in every key is
    skipped); measured about twice as fast as numpy's sort on these keys.
    """
    n = len(keys)
    if n < 2:
        return
    top = keys.max()
    bits = 0
    while bits < 64 and (top >> np.uint64(bits)) != 0:
        bits += 1
    mask = np.uint64((1 << RADIX_BITS) - 1)
    src, dst = keys, np.empty_like(keys)
    swapped = False
    for shift in range(0, bits, RADIX_BITS):
        by = np.uint64(shift)
        starts = np.zeros(1 << RADIX_BITS, dtype=np.int64)
        for i in range(n):
            starts[(src[i] >> by) & mask] += 1
        if starts.max() == n:  # the same digit in every key: this pass would move nothing
            continue
        total = 0
        for d in range(1 << RADIX_BITS):
            count = starts[d]
            starts[d] = total
            total += count
        for i in range(n):
            d = (src[i] >> by) & mask
            dst[starts[d]] = src[i]
            starts[d] += 1
        src, dst = dst, src
        swapped = not swapped
    if swapped:
        keys[:] = src


@numba.njit(cache=True, nogil=True)
def merge_destinations(pairs: np.ndarray, carried_start: np.ndarray, carried_count: np.ndarray,
                       carried_dst: np.ndarray, runs: int, keep: np.ndarray, dst_base: int, dst_width: int,
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Distinct IPv4 destinations and /24s per run, and the merged sets of the runs to ``keep``.

    ``pairs``: the hour's ``run << dst_width | dst - dst_base``, sorted (duplicates allowed). The
    carried set of run ``r`` (the carried runs come first) is ``carried_dst[carried_start[r]:][:carried_count[r]]``,
    sorted, no duplicates; runs past ``len(carried_start)`` carry none. Returns per-run distinct
    destinations and /24s, the size of each kept run's merged set (0 for the others) and the sets
    themselves, one after the other in run order, each sorted.
    """
    destinations = np.zeros(runs, dtype=np.int64)
    slash24s = np.zeros(runs, dtype=np.int64)
    kept = np.zeros(runs, dtype=np.int64)
    out_dst = np.empty(len(pairs) + len(carried_dst), dtype=np.uint32)
    p, w = 0, 0
    n = len(pairs)
    shift, mask, base = np.uint64(dst_width), np.uint64((1 << dst_width) - 1), np.int64(dst_base)
    for r in range(runs):
        q, c = np.int64(0), np.int64(0)
        if r < len(carried_start):
            q, c = carried_start[r], carried_start[r] + carried_count[r]
        prev = np.int64(-1)
        prev24 = np.int64(-1)
        count = 0
        count24 = 0
        while True:
            has_p = p < n and np.int64(pairs[p] >> shift) == r
            has_q = q < c
            if not has_p and not has_q:
                break
            if has_p and (not has_q or base + np.int64(pairs[p] & mask) <= np.int64(carried_dst[q])):
                value = base + np.int64(pairs[p] & mask)
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
                out_dst[w] = np.uint32(value)
                w += 1
        destinations[r] = count
        slash24s[r] = count24
        if keep[r]:
            kept[r] = count
    return destinations, slash24s, kept, out_dst[:w]


@numba.njit(cache=True, nogil=True)
def count_cells(t: np.ndarray, order: np.ndarray, proto: np.ndarray, dport: np.ndarray, dport_bits: np.ndarray,
                dport_offset: int, traffic: np.ndarray, scan_class: int, group: np.ndarray, groups: int,
                width: int, base: int):
    """Per (proto, port, bucket) cell of the scans with a port: packets and distinct sources.

    A cell is ``proto << 38 | port << 22 | bucket - base`` (``BUCKET_BITS`` = 22); cells are numbered
    in order of first packet (one small hash table). A scan's source group (``passes.tagging``) is one
    source toward one (proto, port), so a cell's distinct sources are its distinct groups: walking
    the packets in time order (``order``, or the input order when empty), a group's bucket never
    goes back, so a group counts once per bucket, when its bucket changes; only then is the cell
    looked up (the group's cell is kept until its bucket changes). Returns the cells, their packets
    and their sources.
    """
    n = len(order) if len(order) else len(t)
    cells = new_table(1024)
    cell_key = np.empty(1024, dtype=np.uint64)
    packets = np.zeros(1024, dtype=np.int64)
    sources = np.zeros(1024, dtype=np.int64)
    group_bucket = np.full(groups, -1, dtype=np.int64)  # the bucket of each group's latest packet
    group_cell = np.empty(groups, dtype=np.int64)  # and its cell
    used_cells = 0
    for j in range(n):
        i = order[j] if len(order) else j
        if traffic[i] != scan_class or not valid(dport_bits, dport_offset, i):
            continue
        bucket = t[i] // width - base
        g = group[i]
        if group_bucket[g] == bucket:  # the group's cell, counted already
            packets[group_cell[g]] += 1
            continue
        key = (np.uint64(proto[i]) << np.uint64(16 + BUCKET_BITS)) | (np.uint64(dport[i]) << np.uint64(BUCKET_BITS)) \
            | np.uint64(bucket)
        s = lookup(cells, key)
        if cells[2 * s] != key:
            cells, s = add(cells, key, used_cells)
            used_cells += 1
            if used_cells > len(cell_key):
                cell_key = grown_rows(cell_key, 0)
                packets = grown_rows(packets, 0)
                sources = grown_rows(sources, 0)
            cells[2 * s + 1] = np.uint64(used_cells - 1)
            cell_key[used_cells - 1] = key
        c = np.int64(cells[2 * s + 1])
        group_bucket[g], group_cell[g] = bucket, c
        packets[c] += 1
        sources[c] += 1
    return cell_key[:used_cells], packets[:used_cells], sources[:used_cells]


@numba.njit(cache=True, nogil=True)
def source_port_groups(t: np.ndarray, src: np.ndarray, src_bits: np.ndarray, src_offset: int, proto: np.ndarray,
                       dport: np.ndarray, dport_bits: np.ndarray, dport_offset: int, traffic: np.ndarray,
                       portless_class: int, tool: np.ndarray, tools: int):
    """Group the hour's IPv4-source packets by (source, protocol, port, class): each packet's group, and
    per group its first row, times, packets and tools.

    The key is ``src << 27 | proto << 19 | port << 2 | class`` (59 bits) with ``port`` ``NO_PORT`` when
    null or when the class is ``portless_class`` (backscatter: its port is the spoofed client's).
    Groups are numbered in order of first packet. Returns ``group`` per packet (-1 for a packet with an
    IPv6 source), per group the first row and a row of ``[first µs, last µs, packets, packets of each
    tool]`` (side by side: one cache line per packet), and the rows with an IPv6 source (left to the
    caller: rare, grouped by ``np.unique``).
    """
    n = len(t)
    slots = new_table(1024)
    group = np.empty(n, dtype=np.int32)
    first_row = np.empty(1024, dtype=np.int64)
    sums = np.zeros((1024, 3 + tools), dtype=np.int64)
    rows6 = np.empty(16, dtype=np.int64)
    used = 0
    w6 = 0
    for i in range(n):
        if not valid(src_bits, src_offset, i):
            group[i] = -1
            if w6 == len(rows6):
                rows6 = grown_rows(rows6, 0)
            rows6[w6] = i
            w6 += 1
            continue
        port = np.uint64(dport[i]) if traffic[i] != portless_class and valid(dport_bits, dport_offset, i) \
            else np.uint64(NO_PORT)
        key = (np.uint64(src[i]) << np.uint64(27)) | (np.uint64(proto[i]) << np.uint64(19)) | (port << np.uint64(2)) \
            | np.uint64(traffic[i])
        s = lookup(slots, key)
        when = t[i]
        if slots[2 * s] != key:
            slots, s = add(slots, key, used)
            used += 1
            g = used - 1
            if g == len(sums):
                sums = grown_rows(sums, 0)
                first_row = grown_rows(first_row, 0)
            slots[2 * s + 1] = np.uint64(g)
            first_row[g] = i
            sums[g, 0] = when
            sums[g, 1] = when
        else:
            g = np.int64(slots[2 * s + 1])
            sums[g, 0] = min(sums[g, 0], when)
            sums[g, 1] = max(sums[g, 1], when)
        group[i] = g
        sums[g, 2] += 1
        if tool[i] >= 0:
            sums[g, 3 + tool[i]] += 1
    return group, first_row[:used], sums[:used], rows6[:w6]


@numba.njit(cache=True, nogil=True)
def peak_windows(vector: np.ndarray, bucket: np.ndarray, packets: np.ndarray, vectors: int, span: int) -> np.ndarray:
    """Per attack vector, the most packets in ``span`` consecutive rate buckets (corsaro3's ``calculate_maximum_ppm``).

    ``vector``/``bucket``/``packets``: one row per (vector, bucket), sorted by (vector, bucket),
    buckets distinct within a vector. A window ends at each bucket and reaches ``span - 1`` buckets
    back (absent buckets count zero), found with two pointers in one pass.
    """
    peak = np.zeros(vectors, dtype=np.int64)
    start = 0
    total = 0
    for i in range(len(bucket)):
        if i > 0 and vector[i] != vector[i - 1]:
            start = i
            total = 0
        total += packets[i]
        while bucket[start] <= bucket[i] - span:
            total -= packets[start]
            start += 1
        peak[vector[i]] = max(peak[vector[i]], total)
    return peak
