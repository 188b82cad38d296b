"""The bytes of a capture file, decompressed when it is gzip, read straight into numpy buffers.

Compression is recognised by the gzip magic (1f 8b), not by the file name: captures get renamed.
A gzip stream that stops early (a copy cut short, a sensor killed mid-write) still yields every byte
that decompressed; the reason it stopped is kept in :attr:`ByteSource.problem` so the reader can
report it as a warning instead of losing the whole file.
"""

from __future__ import annotations

import gzip
import io
import os
import zlib

import numpy as np

GZIP_MAGIC = b"\x1f\x8b"


class ByteSource:
    """A capture file's (decompressed) byte stream, filled into caller-owned buffers."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._raw = io.FileIO(os.fspath(path), "r")
        self.compressed = self._raw.read(2) == GZIP_MAGIC
        self._raw.seek(0)
        self._stream: io.RawIOBase | gzip.GzipFile = (
            gzip.GzipFile(fileobj=self._raw, mode="rb") if self.compressed else self._raw
        )
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
                got = self._read_some(view[filled:])
            except EOFError:
                self.problem = "gzip stream truncated"
                got = 0
            except (gzip.BadGzipFile, zlib.error) as exc:
                self.problem = f"gzip stream corrupt ({exc})"
                got = 0
            if not got:
                self.eof = True
            filled += got
        return filled

    def _read_some(self, view: memoryview) -> int:
        # readinto1 on gzip: one decompression step per call, so an error never discards bytes that
        # already decompressed (a plain read() of many steps would drop them with the exception).
        if self.compressed:
            return self._stream.readinto1(view)  # type: ignore[union-attr]
        return self._stream.readinto(view) or 0

    def close(self) -> None:
        if self.compressed:
            self._stream.close()
        self._raw.close()
