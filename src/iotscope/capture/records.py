"""What a format walker hands back for one buffer, and the byte-level helpers its kernels share.

A walker (:mod:`.pcap`, :mod:`.pcapng`) scans a buffer of capture bytes for whole records and
returns their places and metadata as arrays; the reader turns them into a :class:`CaptureBlock`.
Kernels run twice per buffer: once to count records, once to fill arrays of exactly that size, so
memory stays proportional to the buffer and never to an over-estimate of the record count.

numba's on-disk cache is keyed on the file of the kernel itself, not of the helpers it inlines:
after changing a helper here, touch ``pcap.py`` and ``pcapng.py`` so their kernels recompile.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numba
import numpy as np

#: Largest captured length a record may claim before it is taken for a corrupt header. Big enough
#: for any real link (libpcap's maximum snapshot length is 256 KiB), small enough that a corrupt
#: length cannot make the reader buffer gigabytes.
MAX_CAPLEN = 262144
#: Upper bound for any record or pcapng block, whatever a file header claims.
MAX_RECORD_BYTES = 16 << 20
#: The times a record may carry, in µs since the Unix epoch: from 1970-01-01 up to, not including,
#: 2106-02-07 06:28:16 UTC (2^32 s), the range of classic pcap's unsigned 32-bit seconds. A pcapng
#: time outside it (corrupt, or an absurd ``if_tsoffset``) is skipped as ``bad_timestamp``: every
#: real capture fits, and every time in it has a four-digit year for the store's date partitions.
TS_MIN_US = 0
TS_END_US = (1 << 32) * 1_000_000
#: What a kernel writes for a time it cannot represent (its µs would pass ±2^61): outside the range.
BAD_TS = -(1 << 63)
#: Times are computed within ±2^61 µs (73,000 years), so adding an offset never overflows 64 bits.
TS_LIMIT_US = 1 << 61


@dataclass
class Walk:
    """Whole records found in ``buf[pos:end]``; walking stopped at ``stop``.

    ``stop`` is the first byte not consumed: the start of a record that is not complete in the
    buffer (the reader carries it into the next buffer) or, when ``problem`` is set, of a corrupt one.
    """

    offset: np.ndarray  # int64
    caplen: np.ndarray  # uint32
    wirelen: np.ndarray  # uint32
    ts_us: np.ndarray  # int64
    linktype: np.ndarray  # uint16
    stop: int
    problem: str | None = None
    #: records found but not returned, by reason (e.g. ``interface_limit``)
    skipped: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.offset.shape[0])


def record_arrays(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Empty per-record arrays (offset, caplen, wirelen, ts_us, linktype) for ``n`` records."""
    return (np.empty(n, np.int64), np.empty(n, np.uint32), np.empty(n, np.uint32),
            np.empty(n, np.int64), np.empty(n, np.uint16))


@numba.njit(cache=True, inline="always")
def read_u32(buf: np.ndarray, p: int, big: bool) -> int:  # pragma: no cover - compiled
    """Unsigned 32-bit field at ``p`` in the file's byte order, as int64 (no unsigned arithmetic)."""
    b0 = np.int64(buf[p])
    b1 = np.int64(buf[p + 1])
    b2 = np.int64(buf[p + 2])
    b3 = np.int64(buf[p + 3])
    if big:
        return (b0 << 24) | (b1 << 16) | (b2 << 8) | b3
    return (b3 << 24) | (b2 << 16) | (b1 << 8) | b0


@numba.njit(cache=True, inline="always")
def read_u16(buf: np.ndarray, p: int, big: bool) -> int:  # pragma: no cover - compiled
    """Unsigned 16-bit field at ``p`` in the file's byte order, as int64."""
    if big:
        return (np.int64(buf[p]) << 8) | np.int64(buf[p + 1])
    return (np.int64(buf[p + 1]) << 8) | np.int64(buf[p])
