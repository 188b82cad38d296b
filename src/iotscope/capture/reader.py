"""Open a capture of any supported kind and read it as a sequence of :class:`CaptureBlock`.

The format is decided by the file's magic, never by its name: classic pcap or pcapng, either of
them gzip-compressed. Everything that makes a file unusable (not a capture, unsupported version,
header cut short) raises :class:`CaptureError` when it is opened, so a caller can refuse a file
before it touches any store. Once records have been handed out, trouble further on (a torn last
record, a corrupt header, a cut-off gzip stream) never raises: reading stops there, every whole
record before it is kept, and :attr:`CaptureReader.stats` says what happened, so no data is lost.
A single record the store could not hold (a time outside ``TS_MIN_US`` .. ``TS_END_US``, a pcapng
interface beyond ``MAX_INTERFACES``) is left out by a mask over the block's arrays and counted in
``stats.skipped``; the records around it are kept.

For a gzip file a background thread decompresses the next buffer and walks its records while the
caller works on the current block: ISA-L and the numba walkers release the GIL, so with two cores
decompression costs the caller little. A plain file is read in the caller's thread: the operating
system already reads ahead, and copying from its cache is cheap. Memory stays near two buffers of
``block_bytes`` for a plain file and three for a gzip one (the caller's block, the one it asks for
next, the one being filled) whatever the size of the file; a record cut by a buffer's end is
carried into the next buffer.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol

import numpy as np

from iotscope.capture import CaptureBlock, CaptureError, CaptureStats
from iotscope.capture.pcap import MAGICS as PCAP_MAGICS
from iotscope.capture.pcap import MODIFIED_PCAP_MAGICS, PcapWalker
from iotscope.capture.pcapng import MAX_INTERFACES, SHB_MAGIC, PcapngWalker
from iotscope.capture.records import TS_END_US, TS_MIN_US, Walk
from iotscope.capture.source import ByteSource

DEFAULT_BLOCK_BYTES = 32 << 20
TS_RANGE_TEXT = (f"{np.datetime64(TS_MIN_US, 'us').astype('datetime64[D]')} .."
                 f" {np.datetime64(TS_END_US, 'us').astype('datetime64[D]')} UTC")


class RecordWalker(Protocol):
    """A format's record finder (see :mod:`.pcap`, :mod:`.pcapng`)."""

    format: str
    start: int

    def walk(self, buf: np.ndarray, pos: int, end: int) -> Walk: ...


@dataclass
class _Buffer:
    """One buffer of the stream and the records found in it."""

    data: np.ndarray  # the buffer's valid bytes
    walk: Walk
    base: int  # stream offset of data[0], for messages
    fresh: int  # bytes read from the stream into it (the rest was carried over)
    last: bool  # the stream has ended, or walking found corruption: nothing follows


class CaptureReader:
    """An open capture file: iterate :meth:`blocks` (once), then look at :attr:`stats`. A context manager.

    ``stats.bytes_read`` counts bytes of the capture itself (after decompression); :attr:`position`
    counts bytes of the file, for progress against its size.
    """

    def __init__(self, path: str | os.PathLike[str], block_bytes: int = DEFAULT_BLOCK_BYTES) -> None:
        if block_bytes <= 0:
            raise ValueError(f"block_bytes must be positive, got {block_bytes}")
        self.name = os.fspath(path)
        self.block_bytes = block_bytes
        try:
            self._source = ByteSource(path)
        except FileNotFoundError:
            raise CaptureError(f"{self.name}: no such file") from None
        except OSError as exc:
            raise CaptureError(f"{self.name}: cannot read ({exc.strerror or exc})") from None
        self._head = b""  # the stream's first bytes, read to recognise the format; records start in it
        self._started = False
        try:
            self._walker = self._recognise()
        except BaseException:
            self._source.close()
            raise
        self.stats = CaptureStats(format=self._walker.format, compressed=self._source.compressed)
        self._readahead = (ThreadPoolExecutor(max_workers=1, thread_name_prefix="capture-readahead")
                           if self._source.compressed else None)

    @property
    def position(self) -> int:
        """Bytes of the file consumed so far (compressed bytes for a gzip file): for progress."""
        return self._source.position

    def _peek(self, n: int) -> bytes:
        """The stream's first ``n`` bytes (fewer if it is shorter), read once and kept."""
        if len(self._head) < n:
            more = np.empty(n - len(self._head), dtype=np.uint8)
            got = self._source.readinto(more)
            self._head += more[:got].tobytes()
        return self._head[:n]

    def _recognise(self) -> RecordWalker:
        magic = self._peek(4)
        problem = self._source.problem
        if len(magic) < 4:
            if problem:
                raise CaptureError(f"{self.name}: not a readable capture ({problem})")
            if not magic:
                raise self._refusal("empty file, not a capture")
            raise self._refusal(f"too short to be a capture ({len(magic)} bytes)")
        if magic in PCAP_MAGICS:
            return PcapWalker.from_header(self._peek(24), self.name)
        if magic == SHB_MAGIC:
            return PcapngWalker.from_header(self._peek, self.name)
        if magic in MODIFIED_PCAP_MAGICS:
            raise self._refusal(f"unsupported pcap variant (modified pcap, magic 0x{magic.hex()})")
        raise self._refusal(f"not a pcap or pcapng capture (magic 0x{magic.hex()})")

    def _refusal(self, reason: str) -> CaptureError:
        inside = " (after gzip decompression)" if self._source.compressed else ""
        return CaptureError(f"{self.name}: {reason}{inside}")

    def blocks(self) -> Iterator[CaptureBlock]:
        """The capture's records, one block per buffer of about ``block_bytes``; empty blocks skipped."""
        if self._started:
            raise RuntimeError("a capture's blocks can be read once; open it again to re-read")
        self._started = True
        stats = self.stats
        head = np.frombuffer(self._head, dtype=np.uint8)
        self._head = b""
        stats.bytes_read = len(head)
        buffer = self._fill(head, self._walker.start, 0)
        while True:
            walk = buffer.walk
            following: Future[_Buffer] | None = None
            if not buffer.last:
                # Whatever follows the last whole record starts the next buffer.
                carry = (buffer.data[walk.stop :].copy(), 0, buffer.base + walk.stop)
                if self._readahead is not None:
                    following = self._readahead.submit(self._fill, *carry)
            stats.bytes_read += buffer.fresh
            stats.records += len(walk) + sum(walk.skipped.values())
            _add_counts(stats.skipped, walk.skipped)
            block = _in_time_range(buffer.data, walk, stats.skipped)
            if len(block):
                yield block
            if walk.problem is not None:
                stats.warnings.append(
                    f"{self.name}: corrupt record at byte {buffer.base + walk.stop} after {stats.records}"
                    f" whole records ({walk.problem}); stopped reading there")
                _add_counts(stats.skipped, {"corrupt_record": 1})
                self._note_skips()
                return
            if buffer.last:
                self._finish(len(buffer.data) - walk.stop)
                return
            buffer = following.result() if following is not None else self._fill(*carry)

    def _fill(self, carry: np.ndarray, pos: int, base: int) -> _Buffer:
        """Read the next buffer after ``carry`` and find its records (on the readahead thread for gzip)."""
        buf = np.empty(len(carry) + self.block_bytes, dtype=np.uint8)
        buf[: len(carry)] = carry
        end = len(carry) + self._source.readinto(buf[len(carry) :])
        walk = self._walker.walk(buf, pos, end)
        last = self._source.eof or walk.problem is not None
        return _Buffer(buf[:end], walk, base, end - len(carry), last)

    def _finish(self, tail: int) -> None:
        """At the end of the stream: report a torn last record and a stream that ended early."""
        stats = self.stats
        if tail:
            stats.torn_tail_bytes = tail
            stats.warnings.append(
                f"{self.name}: last record torn after {stats.records} whole records ({tail} bytes dropped)")
        if self._source.problem:
            stats.warnings.append(
                f"{self.name}: {self._source.problem} after {stats.bytes_read} bytes of capture data;"
                " kept every whole record before it")
        self._note_skips()

    def _note_skips(self) -> None:
        """One warning per kind of record skipped while reading (corrupt records have their own)."""
        skipped = self.stats.skipped
        if skipped.get("bad_timestamp"):
            self.stats.warnings.append(f"{self.name}: {skipped['bad_timestamp']:,} records with a time outside"
                                       f" {TS_RANGE_TEXT} skipped")
        if skipped.get("interface_limit"):
            self.stats.warnings.append(
                f"{self.name}: {skipped['interface_limit']:,} records on interfaces beyond the first"
                f" {MAX_INTERFACES:,} of a section skipped")

    def close(self) -> None:
        """Stop reading ahead (waiting for a read under way), then close the file."""
        if self._readahead is not None:
            self._readahead.shutdown(wait=True, cancel_futures=True)
        self._source.close()

    def __enter__(self) -> CaptureReader:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def _add_counts(into: dict[str, int], counts: dict[str, int]) -> None:
    for reason, n in counts.items():
        into[reason] = into.get(reason, 0) + n


def _in_time_range(data: np.ndarray, walk: Walk, skipped: dict[str, int]) -> CaptureBlock:
    """The walk's records as a block, without those whose time is outside [TS_MIN_US, TS_END_US).

    One mask over the arrays: a record the store cannot date is dropped and counted (``bad_timestamp``),
    never allowed to abort the capture it is in.
    """
    keep = (walk.ts_us >= TS_MIN_US) & (walk.ts_us < TS_END_US)
    columns = (walk.offset, walk.caplen, walk.wirelen, walk.ts_us, walk.linktype)
    bad = len(keep) - int(np.count_nonzero(keep))
    if bad:
        _add_counts(skipped, {"bad_timestamp": bad})
        columns = tuple(c[keep] for c in columns)
    return CaptureBlock(data, *columns)


def open_capture(path: str | os.PathLike[str], *, block_bytes: int = DEFAULT_BLOCK_BYTES) -> CaptureReader:
    """Open a pcap or pcapng file (optionally gzip-compressed); CaptureError if it is not one."""
    return CaptureReader(path, block_bytes)
