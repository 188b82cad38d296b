"""The bytes of a capture file, decompressed when it is gzip, read straight into numpy buffers.

Compression is recognised by the gzip magic (1f 8b), not by the file name: captures get renamed.
Decompression uses ISA-L (the ``isal`` package, about three times zlib's speed, which matters
when the whole ingest budget is a few seconds per million packets) through a decompressor object
fed by hand rather than a ``GzipFile``: that way a stream that stops early (a copy cut short, a
sensor killed mid-write) still yields every byte that decompressed, and the reason it stopped is
kept in :attr:`ByteSource.problem` for the reader to report as a warning instead of losing the file.
"""

from __future__ import annotations

import io
import os

import numpy as np
from isal import isal_zlib

GZIP_MAGIC = b"\x1f\x8b"
GZIP_WBITS = 31  # gzip header and trailer, maximum window
COMPRESSED_READ_BYTES = 1 << 20


class _GzipStream:
    """A gzip file's members, one after another, decompressed into caller-owned views.

    Corrupt data raises ``isal_zlib.error``; a stream that ends inside a member raises EOFError,
    in both cases only once every byte decompressed before that point has been returned.
    """

    def __init__(self, raw: io.FileIO) -> None:
        self._raw = raw
        self._member = isal_zlib.decompressobj(wbits=GZIP_WBITS)
        self._input = b""  # compressed bytes read but not yet given to the decompressor

    def readinto(self, view: memoryview) -> int:
        """Decompress up to ``len(view)`` bytes into ``view``; 0 only at the clean end of the stream."""
        while True:
            if self._member.eof:
                rest = (self._member.unused_data + self._input).lstrip(b"\0")  # zero padding is allowed
                if not rest:
                    rest = self._raw.read(COMPRESSED_READ_BYTES).lstrip(b"\0")
                    if not rest:
                        return 0
                self._member = isal_zlib.decompressobj(wbits=GZIP_WBITS)  # the next member
                self._input = rest
            if not self._input:
                self._input = self._raw.read(COMPRESSED_READ_BYTES)
                if not self._input:
                    raise EOFError("gzip stream truncated")
            out = self._member.decompress(self._input, len(view))
            self._input = self._member.unconsumed_tail
            if out:
                view[: len(out)] = out
                return len(out)


class ByteSource:
    """A capture file's (decompressed) byte stream, filled into caller-owned buffers."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._raw = io.FileIO(os.fspath(path), "r")
        self.compressed = self._raw.read(2) == GZIP_MAGIC
        self._raw.seek(0)
        self._stream: io.FileIO | _GzipStream = _GzipStream(self._raw) if self.compressed else self._raw
        self.eof = False
        #: Why the stream ended before its natural end (truncated or corrupt gzip), else None.
        self.problem: str | None = None

    @property
    def position(self) -> int:
        """Bytes of the file itself (compressed, if it is) consumed so far: for progress bars."""
        return self._raw.tell()

    def readinto(self, buf: np.ndarray) -> int:
        """Fill ``buf`` (uint8) as far as the stream allows; fewer bytes only at the end of the stream."""
        view = memoryview(buf).cast("B")
        filled = 0
        while filled < len(view) and not self.eof:
            try:
                got = self._stream.readinto(view[filled:]) or 0
            except EOFError as exc:
                self.problem, got = str(exc), 0
            except isal_zlib.error as exc:
                self.problem, got = f"gzip stream corrupt ({exc})", 0
            if not got:
                self.eof = True
            filled += got
        return filled

    def close(self) -> None:
        self._raw.close()
