"""Write capture blocks as a classic pcap or pcapng file, optionally gzip-compressed.

The simulator writes millions of packets through here, so there is no Python loop per packet:
numpy builds the record headers of many records at once (in the file's byte order), prefix sums
give each record's place in the output, and one compiled kernel interleaves headers with the
packets' bytes. Output is produced in bounded pieces so memory does not grow with the capture.

:func:`open_pcap_writer` / :func:`open_pcapng_writer` stream any number of blocks into one file
(a capture bigger than memory is written block by block); :func:`write_pcap` / :func:`write_pcapng`
write a single block.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import BinaryIO, TypedDict, Unpack

import numba
import numpy as np
from isal import igzip

from iotscope.capture import CaptureBlock

#: Upper bound on the bytes of records assembled in memory before they are written out.
OUTPUT_PIECE_BYTES = 32 << 20

PCAP_MAGIC_US = 0xA1B2C3D4
PCAP_MAGIC_NS = 0xA1B23C4D
PCAPNG_SHB = 0x0A0D0D0A
PCAPNG_IDB = 0x00000001
PCAPNG_EPB = 0x00000006
PCAPNG_BYTE_ORDER_MAGIC = 0x1A2B3C4D
IDB_OPTION_TSRESOL = 9


@numba.njit(cache=True, nogil=True)
def _interleave(out, out_start, prefix, data, offset, caplen, padded, suffix):  # pragma: no cover - compiled
    """Lay out record ``i`` at ``out_start[i]``: prefix row, captured bytes, zero padding, suffix row."""
    n_prefix = prefix.shape[1]
    n_suffix = suffix.shape[1]
    for i in range(out_start.shape[0]):
        o = out_start[i]
        out[o : o + n_prefix] = prefix[i]
        o += n_prefix
        c = caplen[i]
        s = offset[i]
        out[o : o + c] = data[s : s + c]
        out[o + c : o + padded[i]] = 0
        o += padded[i]
        out[o : o + n_suffix] = suffix[i]


def _u32_fields(columns: Sequence[np.ndarray], big_endian: bool) -> np.ndarray:
    """Stack 32-bit columns into per-record header rows of bytes, in the file's byte order."""
    dtype = np.dtype(">u4" if big_endian else "<u4")
    rows = np.empty((len(columns[0]), len(columns)), dtype=dtype)
    for j, column in enumerate(columns):
        rows[:, j] = column
    return rows.view(np.uint8).reshape(len(rows), 4 * len(columns))


#: Records whose headers are built at once: bounds the header arrays' memory for huge blocks.
RECORDS_PER_SLICE = 1 << 20

#: Given a slice of the block's records: their header rows before and after the captured bytes.
HeaderRows = Callable[[slice], tuple[np.ndarray, np.ndarray]]


def _write_records(out: BinaryIO, block: CaptureBlock, headers: HeaderRows, align: int) -> None:
    """Write every record as header + bytes + zero padding to ``align`` + trailer.

    Headers are built a slice of records at a time and output is assembled in pieces of at most
    OUTPUT_PIECE_BYTES (or one record), so memory stays bounded whatever the block's size.
    """
    data = np.ascontiguousarray(block.data, dtype=np.uint8)
    # One buffer reused for every piece: fresh pages would cost a page fault per 4 KiB each time.
    buf = np.empty(0, dtype=np.uint8)
    for first in range(0, len(block), RECORDS_PER_SLICE):
        records = slice(first, min(len(block), first + RECORDS_PER_SLICE))
        prefix, suffix = headers(records)
        caplen = block.caplen[records].astype(np.int64)
        padded = (caplen + (align - 1)) & -align
        offset = block.offset[records].astype(np.int64, copy=False)
        sizes = prefix.shape[1] + padded + suffix.shape[1]
        ends = np.cumsum(sizes)
        done = 0
        while done < len(sizes):
            base = int(ends[done - 1]) if done else 0
            # At least one record per piece, then as many as fit in OUTPUT_PIECE_BYTES.
            upto = max(done + 1, int(np.searchsorted(ends, base + OUTPUT_PIECE_BYTES, side="right")))
            piece = slice(done, upto)
            size = int(ends[upto - 1]) - base
            if size > len(buf):
                buf = np.empty(max(size, min(int(ends[-1]), OUTPUT_PIECE_BYTES)), dtype=np.uint8)
            _interleave(buf, ends[piece] - sizes[piece] - base, prefix[piece], data, offset[piece],
                        caplen[piece], padded[piece], suffix[piece])
            out.write(memoryview(buf)[:size])
            done = upto


def _open_output(path: str | os.PathLike[str], compress: bool | None, compresslevel: int) -> BinaryIO:
    """A binary sink: gzip when asked to, or by default when the name ends in ``.gz``.

    gzip output is made by ISA-L (any gzip reader reads it); ``compresslevel`` is on ISA-L's 0-3
    scale: level 1 compresses captures about as well as zlib's level 1, six times faster, and the
    simulator's throughput matters more than the last percent of size.
    """
    if compress is None:
        compress = str(path).endswith(".gz")
    if compress:
        return igzip.open(path, "wb", compresslevel=compresslevel)  # type: ignore[return-value]
    return open(path, "wb")


class CaptureWriter:
    """One capture file being written: a file header, then the records of every block given to
    :meth:`write`, in order. A context manager; the file is complete once it is closed."""

    align = 1  # record bytes are padded to a multiple of this

    def __init__(self, out: BinaryIO, header: bytes, snaplen: int) -> None:
        self._out = out
        self.snaplen = snaplen
        self.records = 0
        out.write(header)

    def write(self, block: CaptureBlock) -> None:
        """Append ``block``'s records; ValueError if the file cannot hold one of them."""
        self._check(block)
        _write_records(self._out, block, lambda records: self._header_rows(block, records), self.align)
        self.records += len(block)

    def _check(self, block: CaptureBlock) -> None:
        if len(block) and int(block.caplen.max()) > self.snaplen:
            raise ValueError(f"a record's caplen ({int(block.caplen.max())}) exceeds snaplen {self.snaplen}")

    def _header_rows(self, block: CaptureBlock, records: slice) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def close(self) -> None:
        self._out.close()

    def __enter__(self) -> CaptureWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class PcapWriter(CaptureWriter):
    """Classic pcap: one link type for the whole file, as the format has."""

    def __init__(self, out: BinaryIO, *, linktype: int, nanosecond: bool, big_endian: bool, snaplen: int) -> None:
        order = ">" if big_endian else "<"
        magic = PCAP_MAGIC_NS if nanosecond else PCAP_MAGIC_US
        header = np.array([(magic, 2, 4, 0, 0, snaplen, linktype)],
                          dtype=[("magic", order + "u4"), ("major", order + "u2"), ("minor", order + "u2"),
                                 ("zone", order + "i4"), ("sigfigs", order + "u4"), ("snaplen", order + "u4"),
                                 ("linktype", order + "u4")])
        self.linktype = linktype
        self.nanosecond = nanosecond
        self.big_endian = big_endian
        super().__init__(out, header.tobytes(), snaplen)

    def _check(self, block: CaptureBlock) -> None:
        super()._check(block)
        others = np.unique(block.linktype[block.linktype != self.linktype])
        if len(others):
            raise ValueError(f"classic pcap holds one link type ({self.linktype}), the block also has "
                             f"{others.tolist()}")

    def _header_rows(self, block: CaptureBlock, records: slice) -> tuple[np.ndarray, np.ndarray]:
        seconds, micros = np.divmod(block.ts_us[records].astype(np.int64, copy=False), 1_000_000)
        fraction = micros * 1000 if self.nanosecond else micros
        prefix = _u32_fields([seconds, fraction, block.caplen[records], block.wirelen[records]], self.big_endian)
        return prefix, np.empty((len(prefix), 0), dtype=np.uint8)


def _tsresol_units(ts_us: np.ndarray, tsresol_exp10: int, tsresol_exp2: int | None) -> np.ndarray:
    """Timestamps in the interface's units (10^-exp10 s, or 2^-exp2 s), as uint64."""
    ts = ts_us.astype(np.int64, copy=False)
    if tsresol_exp2 is not None:
        seconds, micros = np.divmod(ts, 1_000_000)
        seconds = seconds.astype(np.uint64)
        # Rounded up, so that a reader flooring back to µs gets the same µs (when 2^exp2 >= 10^6).
        scaled = micros.astype(np.uint64) << np.uint64(tsresol_exp2)
        fraction = (scaled + np.uint64(999_999)) // np.uint64(1_000_000)
        return (seconds << np.uint64(tsresol_exp2)) + fraction
    if tsresol_exp10 >= 6:
        return ts.astype(np.uint64) * np.uint64(10 ** (tsresol_exp10 - 6))
    return (ts // 10 ** (6 - tsresol_exp10)).astype(np.uint64)


def _pcapng_block(block_type: int, body: bytes, order: str) -> bytes:
    """One generic pcapng block: type, total length, body padded to 4 bytes, total length again."""
    body = body + b"\0" * (-len(body) % 4)
    length = np.array([12 + len(body)], dtype=order + "u4").tobytes()
    return np.array([block_type], dtype=order + "u4").tobytes() + length + body + length


def _idb_body(linktype: int, snaplen: int, tsresol: int | None, order: str) -> bytes:
    """Interface Description Block body; the ``if_tsresol`` option only when not the default µs."""
    body = np.array([(linktype, 0, snaplen)],
                    dtype=[("lt", order + "u2"), ("res", order + "u2"), ("snap", order + "u4")]).tobytes()
    if tsresol is not None:
        option = np.array([(IDB_OPTION_TSRESOL, 1)], dtype=[("code", order + "u2"), ("len", order + "u2")])
        body += option.tobytes() + bytes([tsresol, 0, 0, 0]) + b"\0\0\0\0"  # value, padding, opt_endofopt
    return body


class PcapngWriter(CaptureWriter):
    """pcapng: one section, one interface per link type (numbered in increasing link-type order), EPBs."""

    align = 4

    def __init__(self, out: BinaryIO, *, linktypes: Sequence[int], tsresol_exp10: int, tsresol_exp2: int | None,
                 big_endian: bool, snaplen: int) -> None:
        order = ">" if big_endian else "<"
        self.linktypes = np.unique(np.asarray(linktypes, dtype=np.int64))
        self.tsresol_exp10 = tsresol_exp10
        self.tsresol_exp2 = tsresol_exp2
        self.big_endian = big_endian
        if tsresol_exp2 is not None:
            tsresol: int | None = 0x80 | tsresol_exp2
        else:
            tsresol = None if tsresol_exp10 == 6 else tsresol_exp10
        shb_body = np.array([(PCAPNG_BYTE_ORDER_MAGIC, 1, 0, -1)],
                            dtype=[("bom", order + "u4"), ("major", order + "u2"), ("minor", order + "u2"),
                                   ("section_length", order + "i8")]).tobytes()
        header = _pcapng_block(PCAPNG_SHB, shb_body, order)
        for linktype in self.linktypes.tolist():
            header += _pcapng_block(PCAPNG_IDB, _idb_body(linktype, snaplen, tsresol, order), order)
        super().__init__(out, header, snaplen)

    def _check(self, block: CaptureBlock) -> None:
        super()._check(block)
        unknown = np.setdiff1d(block.linktype, self.linktypes)
        if len(unknown):
            raise ValueError(
                f"link types {unknown.tolist()} have no interface (the file has {self.linktypes.tolist()})")

    def _header_rows(self, block: CaptureBlock, records: slice) -> tuple[np.ndarray, np.ndarray]:
        caplen = block.caplen[records]
        total = 32 + ((caplen.astype(np.int64) + 3) & ~3)
        units = _tsresol_units(block.ts_us[records], self.tsresol_exp10, self.tsresol_exp2)
        interface = np.searchsorted(self.linktypes, block.linktype[records])
        prefix = _u32_fields([np.full(len(total), PCAPNG_EPB), total, interface, units >> np.uint64(32),
                              units & np.uint64(0xFFFFFFFF), caplen, block.wirelen[records]], self.big_endian)
        return prefix, _u32_fields([total], self.big_endian)


class _FileOptions(TypedDict, total=False):
    """Options both file formats take."""

    big_endian: bool
    snaplen: int
    compress: bool | None
    compresslevel: int


class PcapOptions(_FileOptions, total=False):
    """Options of :func:`open_pcap_writer` that :func:`write_pcap` passes through."""

    nanosecond: bool


class PcapngOptions(_FileOptions, total=False):
    """Options of :func:`open_pcapng_writer` that :func:`write_pcapng` passes through."""

    tsresol_exp10: int
    tsresol_exp2: int | None


def open_pcap_writer(
    path: str | os.PathLike[str],
    *,
    linktype: int = 1,
    nanosecond: bool = False,
    big_endian: bool = False,
    snaplen: int = 262144,
    compress: bool | None = None,
    compresslevel: int = 1,
) -> PcapWriter:
    """A classic pcap file to :meth:`~CaptureWriter.write` blocks into (gzip by ``compress`` or ``.gz``).

    ``nanosecond`` selects the 0xa1b23c4d magic with nanosecond fractions (from µs, so the last three
    digits are 0).
    """
    out = _open_output(path, compress, compresslevel)
    return PcapWriter(out, linktype=linktype, nanosecond=nanosecond, big_endian=big_endian, snaplen=snaplen)


def open_pcapng_writer(
    path: str | os.PathLike[str],
    *,
    linktypes: Sequence[int] = (1,),
    tsresol_exp10: int = 6,
    tsresol_exp2: int | None = None,
    big_endian: bool = False,
    snaplen: int = 262144,
    compress: bool | None = None,
    compresslevel: int = 1,
) -> PcapngWriter:
    """A pcapng file with one interface per link type, to :meth:`~CaptureWriter.write` blocks into.

    Timestamps are stored in units of 10^-``tsresol_exp10`` s, or 2^-``tsresol_exp2`` s when that is
    given (both forms of ``if_tsresol`` exist in the wild, so both must round-trip through readers).
    """
    out = _open_output(path, compress, compresslevel)
    return PcapngWriter(out, linktypes=linktypes, tsresol_exp10=tsresol_exp10, tsresol_exp2=tsresol_exp2,
                        big_endian=big_endian, snaplen=snaplen)


def write_pcap(path: str | os.PathLike[str], block: CaptureBlock, **options: Unpack[PcapOptions]) -> None:
    """Write ``block`` as a classic pcap file; its records must share one link type (ValueError).

    ``options`` are those of :func:`open_pcap_writer` (defaults there), the link type excepted.
    """
    linktypes = np.unique(block.linktype)
    if len(linktypes) > 1:
        raise ValueError(f"classic pcap holds one link type, the block has {len(linktypes)}: {linktypes.tolist()}")
    with open_pcap_writer(path, linktype=int(linktypes[0]) if len(linktypes) else 1, **options) as writer:
        writer.write(block)


def write_pcapng(path: str | os.PathLike[str], block: CaptureBlock, **options: Unpack[PcapngOptions]) -> None:
    """Write ``block`` as one pcapng section: SHB, one IDB per distinct link type, then EPBs.

    ``options`` are those of :func:`open_pcapng_writer` (defaults there), the link types excepted.
    """
    with open_pcapng_writer(path, linktypes=np.unique(block.linktype).tolist(), **options) as writer:
        writer.write(block)


def block_from_frames(
    frames: Sequence[bytes],
    ts_us: Sequence[int] | np.ndarray,
    linktype: int | Sequence[int],
    *,
    wirelen: Sequence[int] | None = None,
) -> CaptureBlock:
    """Build a block from a handful of frames, for hand-made test captures and fixtures.

    ``wirelen`` (default: each frame's length) lets a test describe frames cut by the snap length.
    """
    n = len(frames)
    caplen = np.array([len(f) for f in frames], dtype=np.uint32)
    offset = np.zeros(n, dtype=np.int64)
    if n:
        offset[1:] = np.cumsum(caplen[:-1], dtype=np.int64)
    data = np.frombuffer(b"".join(frames), dtype=np.uint8).copy()
    return CaptureBlock(
        data=data,
        offset=offset,
        caplen=caplen,
        wirelen=caplen.copy() if wirelen is None else np.asarray(wirelen, dtype=np.uint32),
        ts_us=np.asarray(ts_us, dtype=np.int64).reshape(n),
        linktype=np.broadcast_to(np.asarray(linktype, dtype=np.uint16), (n,)).copy(),
    )


__all__ = ["CaptureWriter", "block_from_frames", "open_pcap_writer", "open_pcapng_writer", "write_pcap", "write_pcapng"]
