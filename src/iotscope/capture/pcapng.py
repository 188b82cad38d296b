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

Times are computed in unsigned 64-bit arithmetic and any that leaves ±2^61 µs becomes ``BAD_TS``,
so a corrupt count or an absurd ``if_tsoffset`` can neither crash the reader nor wrap around into a
plausible time; the reader then skips records outside the store's range (``bad_timestamp``).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass

import numba
import numpy as np

from iotscope.capture import CaptureError
from iotscope.capture.records import BAD_TS, MAX_RECORD_BYTES, TS_LIMIT_US, Walk, read_u16, read_u32, record_arrays

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

#: Interfaces kept per section. pcapng's interface id is 32-bit, and each IDB costs a return to
#: Python; a real capture has a handful. Packets of interfaces described beyond this are skipped and
#: counted (``interface_limit``), so a hostile file cannot make the reader's tables or time grow.
MAX_INTERFACES = 65_536
#: ``if_tsoffset`` beyond this (2^61 µs, 73,000 years) puts every time out of range anyway: it is
#: clamped so that adding it to a time cannot overflow 64 bits.
MAX_OFFSET_S = TS_LIMIT_US // 1_000_000

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
def _units_to_us(high, low, pow2, exp, scale):  # pragma: no cover - compiled
    """An interface's 64-bit timestamp (two unsigned 32-bit words) -> µs, floored; BAD_TS past ±2^61 µs.

    Unsigned 64-bit arithmetic throughout: a corrupt or extreme count must not wrap around into a
    plausible time (2^58 + t seconds, times 10^6, is t seconds again in 64 bits).
    """
    units = (np.uint64(high) << np.uint64(32)) | np.uint64(low)
    if pow2:
        if exp > 40:  # keep fraction * 10^6 within 64 bits; only sub-µs precision is lost
            units >>= np.uint64(exp - 40)
            exp = 40
        shift = np.uint64(exp)
        seconds = units >> shift
        if seconds >= np.uint64(TS_LIMIT_US // 1_000_000):
            return BAD_TS
        fraction = units - (seconds << shift)
        us = seconds * np.uint64(1_000_000) + ((fraction * np.uint64(1_000_000)) >> shift)
    elif exp == 6:  # the default: spare the division (by a divisor unknown at compile time, so slow)
        us = units
    elif exp > 6:
        us = units // np.uint64(scale)
    else:
        if units >= np.uint64(TS_LIMIT_US) // np.uint64(scale):
            return BAD_TS
        us = units * np.uint64(scale)
    if us >= np.uint64(TS_LIMIT_US):
        return BAD_TS
    return np.int64(us)


@numba.njit(cache=True, nogil=True)
def _walk(buf, pos, end, big, if_linktype, if_snaplen, if_pow2, if_exp, if_scale, if_offset_us, n_described,
          last_ts, fill, offset, caplen, wirelen, ts_us, linktype):  # pragma: no cover - compiled
    """Walk blocks from ``pos``; returns (records, stop, status, detail, timestamp of the last packet,
    packets skipped because their interface is beyond the tables: described, but past the cap).

    With ``fill`` false it only counts; with ``fill`` true it also writes the per-record arrays.
    """
    n = 0
    beyond_cap = 0
    n_interfaces = if_linktype.shape[0]
    while pos + 8 <= end:
        block_type = read_u32(buf, pos, big)
        if block_type == SHB:  # its length is in the new section's byte order: Python reads it
            return n, pos, WALK_SPECIAL, 0, last_ts, beyond_cap
        length = read_u32(buf, pos + 4, big)
        if length < 12 or length & 3 or length > MAX_RECORD_BYTES:
            return n, pos, WALK_BAD_LENGTH, length, last_ts, beyond_cap
        if pos + length > end:
            break
        trailer = read_u32(buf, pos + length - 4, big)
        if trailer != length:
            return n, pos, WALK_TRAILER_MISMATCH, trailer, last_ts, beyond_cap
        if block_type == EPB or block_type == PB:
            if length < 32:
                return n, pos, WALK_SHORT_PACKET_BLOCK, length, last_ts, beyond_cap
            interface = read_u32(buf, pos + 8, big) if block_type == EPB else read_u16(buf, pos + 8, big)
            if interface >= n_interfaces:
                if interface >= n_described:
                    return n, pos, WALK_UNKNOWN_INTERFACE, interface, last_ts, beyond_cap
                beyond_cap += 1
                pos += length
                continue
            c = read_u32(buf, pos + 20, big)
            if c > length - 32:
                return n, pos, WALK_CAPLEN_BEYOND_BLOCK, c, last_ts, beyond_cap
            last_ts = _units_to_us(read_u32(buf, pos + 12, big), read_u32(buf, pos + 16, big),
                                   if_pow2[interface], if_exp[interface], if_scale[interface])
            if last_ts != BAD_TS:  # both within ±2^61: the sum cannot overflow
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
                return n, pos, WALK_NO_INTERFACE, 0, last_ts, beyond_cap
            if length < 16:
                return n, pos, WALK_SHORT_PACKET_BLOCK, length, last_ts, beyond_cap
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
            return n, pos, WALK_SPECIAL, 0, last_ts, beyond_cap
        pos += length
    return n, pos, WALK_OK, 0, last_ts, beyond_cap


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


class InterfaceTable:
    """The current section's interfaces as the arrays the kernel reads, grown by doubling.

    Appending an interface costs O(1) amortized, so a section of many IDBs is read in linear time
    (rebuilding the arrays on every IDB made it quadratic). At most ``MAX_INTERFACES`` are kept; the
    ones described after them are only counted, and their packets are skipped as ``interface_limit``.
    """

    _DTYPES = (np.int64, np.int64, np.bool_, np.int64, np.int64, np.int64)

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        """A new section: forget every interface."""
        self.kept = 0
        self.described = 0
        self._arrays = tuple(np.empty(8, dtype) for dtype in self._DTYPES)

    def add(self, interface: Interface) -> None:
        self.described += 1
        if self.kept == MAX_INTERFACES:
            return
        if self.kept == len(self._arrays[0]):
            self._arrays = tuple(np.concatenate((a, np.empty_like(a))) for a in self._arrays)
        offset_s = min(max(interface.offset_s, -MAX_OFFSET_S), MAX_OFFSET_S)
        row = (interface.linktype, interface.snaplen, interface.pow2, interface.exp, interface.scale,
               offset_s * 1_000_000)
        for array, value in zip(self._arrays, row):
            array[self.kept] = value
        self.kept += 1

    def arrays(self) -> tuple[np.ndarray, ...]:
        """(link type, snap length, 2^-n units, exponent, power-of-ten scale, offset µs) per kept interface."""
        return tuple(a[: self.kept] for a in self._arrays)


class PcapngWalker:
    """Finds packets in buffers of a pcapng stream, keeping section and interface state between them."""

    format = "pcapng"
    start = 0  # the first section header is parsed by the walk like any later one

    def __init__(self) -> None:
        self.big_endian = False
        self.last_ts = 0
        self.interfaces = InterfaceTable()

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

    def walk(self, buf: np.ndarray, pos: int, end: int) -> Walk:
        """Every whole packet in ``buf[pos:end]``, parsing the section and interface blocks on the way."""
        parts: list[tuple[np.ndarray, ...]] = []
        problem: str | None = None
        beyond_cap = 0
        while True:
            state = (self.big_endian, *self.interfaces.arrays(), self.interfaces.described, self.last_ts)
            n, stop, status, detail, last_ts, skipped = _walk(buf, pos, end, *state, False, *record_arrays(0))
            if n:
                arrays = record_arrays(n)
                _walk(buf, pos, stop, *state, True, *arrays)
                parts.append(arrays)
            self.last_ts = last_ts
            beyond_cap += skipped
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
        skipped = {"interface_limit": beyond_cap} if beyond_cap else {}
        return Walk(*columns, stop=pos, problem=problem, skipped=skipped)

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
            self.interfaces.clear()
            return pos + length
        # An IDB: the kernel has checked its length and that all of it is in the buffer.
        (length,) = struct.unpack(">I" if self.big_endian else "<I", bytes(buf[pos + 4 : pos + 8]))
        self.interfaces.add(_interface(bytes(buf[pos : pos + length]), self.big_endian))
        return pos + length
