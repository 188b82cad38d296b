"""Classic pcap (libpcap) files: the 24-byte global header, then 16-byte record headers + bytes.

Both byte orders and both timestamp flavours (0xa1b2c3d4 microseconds, 0xa1b23c4d nanoseconds)
are read; nanoseconds are floored to microseconds, the store's resolution.
"""

from __future__ import annotations

import struct

import numba
import numpy as np

from iotscope.capture import CaptureError
from iotscope.capture.records import MAX_CAPLEN, MAX_RECORD_BYTES, Walk, read_u32, record_arrays

GLOBAL_HEADER_LEN = 24
RECORD_HEADER_LEN = 16

#: The first four bytes as they appear in the file -> (big-endian, nanosecond timestamps).
MAGICS: dict[bytes, tuple[bool, bool]] = {
    b"\xd4\xc3\xb2\xa1": (False, False),
    b"\xa1\xb2\xc3\xd4": (True, False),
    b"\x4d\x3c\xb2\xa1": (False, True),
    b"\xa1\xb2\x3c\x4d": (True, True),
}
#: Alexey Kuznetzov's "modified pcap" (24-byte record headers): recognisably a pcap, not supported.
MODIFIED_PCAP_MAGICS = (b"\x34\xcd\xb2\xa1", b"\xa1\xb2\xcd\x34")

WALK_OK = 0
WALK_CAPLEN_LIMIT = 1


@numba.njit(cache=True, nogil=True)
def _walk(buf, pos, end, big, nano, max_caplen, fill, offset, caplen, wirelen, ts_us):  # pragma: no cover
    """Walk record headers from ``pos``; returns (records, stop, status, detail).

    With ``fill`` false it only counts; with ``fill`` true it also writes the per-record arrays.
    """
    n = 0
    while pos + 16 <= end:
        c = read_u32(buf, pos + 8, big)
        if c > max_caplen:
            return n, pos, WALK_CAPLEN_LIMIT, c
        if pos + 16 + c > end:
            break
        if fill:
            fraction = read_u32(buf, pos + 4, big)
            if nano:
                fraction //= 1000
            ts_us[n] = read_u32(buf, pos, big) * 1_000_000 + fraction
            offset[n] = pos + 16
            caplen[n] = c
            wirelen[n] = read_u32(buf, pos + 12, big)
        n += 1
        pos += 16 + c
    return n, pos, WALK_OK, 0


class PcapWalker:
    """Finds whole records in buffers of a classic pcap file, after its global header."""

    format = "pcap"
    start = GLOBAL_HEADER_LEN  # where records begin in the stream

    def __init__(self, big_endian: bool, nanosecond: bool, snaplen: int, linktype: int) -> None:
        self.big_endian = big_endian
        self.nanosecond = nanosecond
        self.snaplen = snaplen
        self.linktype = linktype
        # A header's snaplen may legitimately exceed 256 KiB (some link types); honour it, within reason.
        self.max_caplen = max(MAX_CAPLEN, min(snaplen, MAX_RECORD_BYTES))

    @classmethod
    def from_header(cls, head: bytes, name: str) -> PcapWalker:
        """Parse the global header (``head`` holds the stream's first bytes); CaptureError if unusable."""
        if len(head) < GLOBAL_HEADER_LEN:
            raise CaptureError(f"{name}: truncated pcap global header ({len(head)} of {GLOBAL_HEADER_LEN} bytes)")
        big, nano = MAGICS[head[:4]]
        major, minor, _zone, _sigfigs, snaplen, linktype = struct.unpack(
            (">" if big else "<") + "HHiIII", head[4:GLOBAL_HEADER_LEN])
        if major != 2:
            raise CaptureError(f"{name}: unsupported pcap version {major}.{minor}")
        # The upper bits of the link-type field carry FCS information; the link type is the low 16.
        return cls(big, nano, snaplen, linktype & 0xFFFF)

    def walk(self, buf: np.ndarray, pos: int, end: int) -> Walk:
        """Every whole record in ``buf[pos:end]``."""
        args = (self.big_endian, self.nanosecond, self.max_caplen)
        n, stop, status, detail = _walk(buf, pos, end, *args, False, *record_arrays(0)[:4])
        offset, caplen, wirelen, ts_us, _ = record_arrays(n)
        if n:
            _walk(buf, pos, stop, *args, True, offset, caplen, wirelen, ts_us)
        problem = None
        if status == WALK_CAPLEN_LIMIT:
            problem = f"caplen {detail} exceeds the limit {self.max_caplen}"
        linktype = np.full(n, self.linktype, dtype=np.uint16)
        return Walk(offset, caplen, wirelen, ts_us, linktype, stop, problem)
