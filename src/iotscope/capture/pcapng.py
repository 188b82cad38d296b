"""pcapng files: sections (SHB) of interfaces (IDB) and packets (EPB, SPB, obsolete PB).

The compiled walker runs over packet blocks and skips every block type it does not need (name
resolution, statistics, custom, decryption secrets, ...). It returns to Python only at the rare
section and interface blocks, which change how the following packets are read: byte order,
link type, snap length, timestamp resolution (``if_tsresol``, powers of 10 or of 2) and offset
(``if_tsoffset``). A new section forgets the previous section's interfaces, as the format says.

Simple Packet Blocks carry no timestamp and no interface id: they belong to interface 0, their
captured length is the smaller of the original length, the block's room and interface 0's snap
length, and they take the timestamp of the packet before them in the file (0 if there is none),
so that time stays ordered for everything downstream.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass

import numba
import numpy as np

from iotscope.capture import CaptureError
from iotscope.capture.records import MAX_RECORD_BYTES, Walk, read_u16, read_u32, record_arrays

SHB = 0x0A0D0D0A
IDB = 0x00000001
PB = 0x00000002  # obsolete Packet Block, still written by old tools
SPB = 0x00000003
EPB = 0x00000006
SHB_MAGIC = b"\x0a\x0d\x0d\x0a"
BYTE_ORDER_MAGIC = {b"\x4d\x3c\x2b\x1a": False, b"\x1a\x2b\x3c\x4d": True}  # as in the file -> big-endian
SHB_MIN_LEN = 28
OPTION_END = 0
OPTION_TSRESOL = 9
OPTION_TSOFFSET = 14

WALK_OK = 0
WALK_SPECIAL = 1  # a section or interface block: Python parses it, then walking resumes after it
WALK_BAD_LENGTH = 2
WALK_TRAILER_MISMATCH = 3
WALK_UNKNOWN_INTERFACE = 4
WALK_CAPLEN_BEYOND_BLOCK = 5
WALK_NO_INTERFACE = 6
WALK_SHORT_PACKET_BLOCK = 7

WALK_PROBLEMS = {
    WALK_BAD_LENGTH: "invalid block length {}",
    WALK_TRAILER_MISMATCH: "block trailer says length {}, its header does not",
    WALK_UNKNOWN_INTERFACE: "packet for undefined interface {}",
    WALK_CAPLEN_BEYOND_BLOCK: "captured length {} exceeds its block",
    WALK_NO_INTERFACE: "simple packet block before any interface description",
    WALK_SHORT_PACKET_BLOCK: "packet block of {} bytes is too short",
}


@numba.njit(cache=True, inline="always")
def _units_to_us(units, pow2, exp, scale):  # pragma: no cover - compiled
    """Timestamp units of an interface -> µs, floored."""
    if pow2:
        if exp > 40:  # keep frac * 10^6 within int64; only sub-µs precision is lost
            units >>= exp - 40
            exp = 40
        seconds = units >> exp
        fraction = units - (seconds << exp)
        return seconds * 1_000_000 + ((fraction * 1_000_000) >> exp)
    if exp == 6:  # the default: spare the division (by a divisor unknown at compile time, so slow)
        return units
    if exp > 6:
        return units // scale
    return units * scale


@numba.njit(cache=True, nogil=True)
def _walk(buf, pos, end, big, if_linktype, if_snaplen, if_pow2, if_exp, if_scale, if_offset_us, last_ts,
          fill, offset, caplen, wirelen, ts_us, linktype):  # pragma: no cover - compiled
    """Walk blocks from ``pos``; returns (records, stop, status, detail, timestamp of the last packet).

    With ``fill`` false it only counts; with ``fill`` true it also writes the per-record arrays.
    """
    n = 0
    n_interfaces = if_linktype.shape[0]
    while pos + 8 <= end:
        block_type = read_u32(buf, pos, big)
        if block_type == SHB:  # its length is in the new section's byte order: Python reads it
            return n, pos, WALK_SPECIAL, 0, last_ts
        length = read_u32(buf, pos + 4, big)
        if length < 12 or length & 3 or length > MAX_RECORD_BYTES:
            return n, pos, WALK_BAD_LENGTH, length, last_ts
        if pos + length > end:
            break
        trailer = read_u32(buf, pos + length - 4, big)
        if trailer != length:
            return n, pos, WALK_TRAILER_MISMATCH, trailer, last_ts
        if block_type == EPB or block_type == PB:
            if length < 32:
                return n, pos, WALK_SHORT_PACKET_BLOCK, length, last_ts
            interface = read_u32(buf, pos + 8, big) if block_type == EPB else read_u16(buf, pos + 8, big)
            if interface >= n_interfaces:
                return n, pos, WALK_UNKNOWN_INTERFACE, interface, last_ts
            c = read_u32(buf, pos + 20, big)
            if c > length - 32:
                return n, pos, WALK_CAPLEN_BEYOND_BLOCK, c, last_ts
            units = (read_u32(buf, pos + 12, big) << 32) | read_u32(buf, pos + 16, big)
            last_ts = _units_to_us(units, if_pow2[interface], if_exp[interface], if_scale[interface])
            last_ts += if_offset_us[interface]
            if fill:
                offset[n] = pos + 28
                caplen[n] = c
                wirelen[n] = read_u32(buf, pos + 24, big)
                ts_us[n] = last_ts
                linktype[n] = if_linktype[interface]
            n += 1
        elif block_type == SPB:
            if n_interfaces == 0:
                return n, pos, WALK_NO_INTERFACE, 0, last_ts
            if length < 16:
                return n, pos, WALK_SHORT_PACKET_BLOCK, length, last_ts
            w = read_u32(buf, pos + 8, big)
            c = min(w, length - 16)
            if if_snaplen[0] > 0:
                c = min(c, if_snaplen[0])
            if fill:
                offset[n] = pos + 12
                caplen[n] = c
                wirelen[n] = w
                ts_us[n] = last_ts
                linktype[n] = if_linktype[0]
            n += 1
        elif block_type == IDB:
            return n, pos, WALK_SPECIAL, 0, last_ts
        pos += length
    return n, pos, WALK_OK, 0, last_ts


@dataclass(frozen=True)
class Interface:
    """How to read the packets of one interface (from its IDB)."""

    linktype: int
    snaplen: int
    pow2: bool = False  # timestamp units are 2^-exp s (else 10^-exp s)
    exp: int = 6
    offset_s: int = 0  # if_tsoffset: seconds to add to every timestamp

    @property
    def scale(self) -> int:
        """The power of ten between the interface's units and µs (unused for powers of 2)."""
        return 1 if self.pow2 else 10 ** abs(self.exp - 6)


def _section_header(head: bytes) -> tuple[bool, int]:
    """(big-endian, block length) from the first 12 bytes of a section header; ValueError if invalid."""
    big = BYTE_ORDER_MAGIC.get(head[8:12])
    if big is None:
        raise ValueError(f"section header with invalid byte-order magic 0x{head[8:12].hex()}")
    (length,) = struct.unpack(">I" if big else "<I", head[4:8])
    if length < SHB_MIN_LEN or length % 4 or length > MAX_RECORD_BYTES:
        raise ValueError(f"section header with invalid length {length}")
    return big, length


def _check_section(block: bytes, big: bool) -> None:
    """Version and trailer of a whole section header block; ValueError if unusable."""
    order = ">" if big else "<"
    major, minor = struct.unpack(order + "HH", block[12:16])
    if major != 1:
        raise ValueError(f"unsupported pcapng version {major}.{minor}")
    (trailer,) = struct.unpack(order + "I", block[-4:])
    if trailer != len(block):
        raise ValueError(f"section header trailer says length {trailer}, its header {len(block)}")


def _interface(block: bytes, big: bool) -> Interface:
    """Parse a whole IDB; ValueError if it cannot describe packets."""
    order = ">" if big else "<"
    if len(block) < 20:
        raise ValueError(f"interface description block of {len(block)} bytes is too short")
    linktype, _reserved, snaplen = struct.unpack(order + "HHI", block[8:16])
    pow2, exp, offset_s = False, 6, 0
    p, options_end = 16, len(block) - 4
    while p + 4 <= options_end:
        code, size = struct.unpack(order + "HH", block[p : p + 4])
        value = block[p + 4 : p + 4 + size]
        if code == OPTION_END or len(value) < size:
            break
        if code == OPTION_TSRESOL and size >= 1:
            pow2, exp = bool(value[0] & 0x80), value[0] & 0x7F
            if exp > (62 if pow2 else 18):
                raise ValueError(f"unsupported if_tsresol 0x{value[0]:02x}")
        elif code == OPTION_TSOFFSET and size >= 8:
            (offset_s,) = struct.unpack(order + "q", value[:8])
        p += 4 + size + (-size % 4)
    return Interface(linktype, snaplen, pow2, exp, offset_s)


class PcapngWalker:
    """Finds packets in buffers of a pcapng stream, keeping section and interface state between them."""

    format = "pcapng"
    start = 0  # the first section header is parsed by the walk like any later one

    def __init__(self) -> None:
        self.big_endian = False
        self.last_ts = 0
        self._set_interfaces([])

    @classmethod
    def from_header(cls, peek: Callable[[int], bytes], name: str) -> PcapngWalker:
        """Check the first section header (``peek(n)``: the stream's first n bytes); CaptureError if unusable."""
        head = peek(12)
        if len(head) < 12:
            raise CaptureError(f"{name}: truncated pcapng section header ({len(head)} bytes)")
        try:
            big, length = _section_header(head)
            block = peek(length)
            if len(block) < length:
                raise ValueError(f"truncated section header ({len(block)} of {length} bytes)")
            _check_section(block, big)
        except ValueError as exc:
            raise CaptureError(f"{name}: pcapng {exc}") from None
        return cls()

    def _set_interfaces(self, interfaces: list[Interface]) -> None:
        self.interfaces = interfaces
        self._tables = (
            np.array([i.linktype for i in interfaces], dtype=np.int64),
            np.array([i.snaplen for i in interfaces], dtype=np.int64),
            np.array([i.pow2 for i in interfaces], dtype=np.bool_),
            np.array([i.exp for i in interfaces], dtype=np.int64),
            np.array([i.scale for i in interfaces], dtype=np.int64),
            np.array([i.offset_s * 1_000_000 for i in interfaces], dtype=np.int64),
        )

    def walk(self, buf: np.ndarray, pos: int, end: int) -> Walk:
        """Every whole packet in ``buf[pos:end]``, parsing the section and interface blocks on the way."""
        parts: list[tuple[np.ndarray, ...]] = []
        problem: str | None = None
        while True:
            n, stop, status, detail, last_ts = _walk(buf, pos, end, self.big_endian, *self._tables,
                                                     self.last_ts, False, *record_arrays(0))
            if n:
                arrays = record_arrays(n)
                _walk(buf, pos, stop, self.big_endian, *self._tables, self.last_ts, True, *arrays)
                parts.append(arrays)
            self.last_ts = last_ts
            pos = stop
            if status == WALK_SPECIAL:
                try:
                    after = self._special_block(buf, pos, end)
                except ValueError as exc:
                    problem = str(exc)
                    break
                if after is None:  # not all of it is in the buffer yet
                    break
                pos = after
                continue
            if status != WALK_OK:
                problem = WALK_PROBLEMS[status].format(detail)
            break
        columns = [np.concatenate(c) for c in zip(*parts)] if parts else list(record_arrays(0))
        return Walk(*columns, stop=pos, problem=problem)

    def _special_block(self, buf: np.ndarray, pos: int, end: int) -> int | None:
        """Parse the SHB or IDB at ``pos``; return where the next block starts, None if incomplete."""
        if pos + 12 > end:
            return None
        if bytes(buf[pos : pos + 4]) == SHB_MAGIC:
            big, length = _section_header(bytes(buf[pos : pos + 12]))
            if pos + length > end:
                return None
            _check_section(bytes(buf[pos : pos + length]), big)
            self.big_endian = big
            self._set_interfaces([])
            return pos + length
        # An IDB: the kernel has checked its length and that all of it is in the buffer.
        (length,) = struct.unpack(">I" if self.big_endian else "<I", bytes(buf[pos + 4 : pos + 8]))
        self._set_interfaces([*self.interfaces, _interface(bytes(buf[pos : pos + length]), self.big_endian)])
        return pos + length
