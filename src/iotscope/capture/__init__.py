"""Capture stage: raw capture bytes -> blocks of packet records, never one Python call per packet.

Every reader (classic pcap, pcapng, either gzip-compressed) yields :class:`CaptureBlock` objects:
one large byte buffer plus per-record arrays that say where each packet's captured bytes lie in it.
The decode stage turns a block into columns; nothing downstream sees the file format.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from iotscope.errors import IotscopeError


class CaptureError(IotscopeError):
    """The input is not a readable capture (wrong magic, unsupported version, corrupt header).

    The message is one line meant for the user; the CLI prints it and exits with code 2.
    """


@dataclass(frozen=True)
class CaptureBlock:
    """A run of consecutive packet records from one capture.

    All arrays have the same length (the number of records). ``data[offset[i]:offset[i]+caplen[i]]``
    are the captured bytes of record ``i``, starting at its link-layer header.
    """

    data: np.ndarray  # uint8, the buffer holding the records' bytes
    offset: np.ndarray  # int64, start of each record's captured bytes in ``data``
    caplen: np.ndarray  # uint32, captured length
    wirelen: np.ndarray  # uint32, original length on the wire
    ts_us: np.ndarray  # int64, microseconds since the Unix epoch, UTC
    linktype: np.ndarray  # uint16, LINKTYPE_* of the interface the record came from

    def __len__(self) -> int:
        return int(self.offset.shape[0])


@dataclass
class CaptureStats:
    """What a reader saw, for the ingest summary: records, bytes, and anything it had to skip."""

    format: str = ""  # "pcap" or "pcapng"
    compressed: bool = False
    records: int = 0
    bytes_read: int = 0
    torn_tail_bytes: int = 0  # bytes of an incomplete last record (a torn file), 0 when whole
    #: records not handed out, by reason: ``bad_timestamp``, ``interface_limit``, and ``corrupt_record``
    #: (1 when reading stopped at a corrupt record; what follows it is not read)
    skipped: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


# Re-exported last: the reader imports the contract classes above from this module.
from iotscope.capture.reader import CaptureReader, open_capture  # noqa: E402

__all__ = ["CaptureBlock", "CaptureError", "CaptureReader", "CaptureStats", "open_capture"]
