"""Open a capture of any supported kind and read it as a sequence of :class:`CaptureBlock`.

The format is decided by the file's magic, never by its name: classic pcap or pcapng, either of
them gzip-compressed. Everything that makes a file unusable (not a capture, unsupported version,
header cut short) raises :class:`CaptureError` when it is opened, so a caller can refuse a file
before it touches any store. Once records have been handed out, trouble further on (a torn last
record, a corrupt header, a cut-off gzip stream) never raises: reading stops there, every whole
record before it is kept, and :attr:`CaptureReader.stats` says what happened, so no data is lost.

Memory stays near two buffers of ``block_bytes`` (the block being consumed and the next one being
filled) whatever the size of the file; a record cut by a buffer's end is carried into the next one.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from types import TracebackType
from typing import Protocol

import numpy as np

from iotscope.capture import CaptureBlock, CaptureError, CaptureStats
from iotscope.capture.pcap import MAGICS as PCAP_MAGICS
from iotscope.capture.pcap import MODIFIED_PCAP_MAGICS, PcapWalker
from iotscope.capture.pcapng import SHB_MAGIC, PcapngWalker
from iotscope.capture.records import Walk
from iotscope.capture.source import ByteSource

DEFAULT_BLOCK_BYTES = 32 << 20


class RecordWalker(Protocol):
    """A format's record finder (see :mod:`.pcap`, :mod:`.pcapng`)."""

    format: str
    start: int

    def walk(self, buf: np.ndarray, pos: int, end: int) -> Walk: ...


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
        stats, source, walker = self.stats, self._source, self._walker
        carry = np.frombuffer(self._head, dtype=np.uint8)
        self._head = b""
        stats.bytes_read = len(carry)
        pos = walker.start
        base = 0  # stream offset of the buffer's first byte, for messages
        while True:
            buf = np.empty(len(carry) + self.block_bytes, dtype=np.uint8)
            buf[: len(carry)] = carry
            end = len(carry) + source.readinto(buf[len(carry) :])
            stats.bytes_read += end - len(carry)
            walk = walker.walk(buf, pos, end)
            if len(walk):
                stats.records += len(walk)
                yield CaptureBlock(buf[:end], walk.offset, walk.caplen, walk.wirelen, walk.ts_us, walk.linktype)
            if walk.problem is not None:
                stats.warnings.append(
                    f"{self.name}: corrupt record at byte {base + walk.stop} after {stats.records} whole records"
                    f" ({walk.problem}); stopped reading there")
                return
            if source.eof:
                self._finish(end - walk.stop)
                return
            # Whatever follows the last whole record starts the next buffer.
            carry = buf[walk.stop : end].copy()
            base += walk.stop
            pos = 0
            del buf

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

    def close(self) -> None:
        self._source.close()

    def __enter__(self) -> CaptureReader:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def open_capture(path: str | os.PathLike[str], *, block_bytes: int = DEFAULT_BLOCK_BYTES) -> CaptureReader:
    """Open a pcap or pcapng file (optionally gzip-compressed); CaptureError if it is not one."""
    return CaptureReader(path, block_bytes)
