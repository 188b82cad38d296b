"""Decode stage: a block of capture records -> dense column arrays, one compiled pass per block.

Only packets whose IP header decoded become rows; everything else is counted by reason, because a
telescope must be able to say what it did not look at. Columns hold zeros where a field does not
apply (no ports for ICMP, no IPv4 addresses for IPv6); ``l4`` says whether the transport fields are
real, and the store turns that into nulls (``iotscope.store.schema.packet_record_batch``).

IPv6 ``proto`` is the upper-layer protocol found after walking the hop-by-hop (0), routing (43),
fragment (44) and destination-options (60) extension headers; if the chain is cut by the capture it
is the extension header where the walk stopped, ``l4`` is False and ``l4_truncated`` counts it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from iotscope.capture import CaptureBlock
from iotscope.decode.kernel import COUNTER_NAMES, L4_TRUNCATED, decode_records

#: Column name -> dtype of every array in ``DecodedBlock.columns`` (``src6``/``dst6`` are (n, 16)).
COLUMN_DTYPES: dict[str, type] = {
    "ts": np.int64,
    "ip_version": np.uint8,
    "src": np.uint32,
    "dst": np.uint32,
    "src6": np.uint8,
    "dst6": np.uint8,
    "proto": np.uint8,
    "sport": np.uint16,
    "dport": np.uint16,
    "icmp_type": np.uint8,
    "icmp_code": np.uint8,
    "tcp_flags": np.uint8,
    "seq": np.uint32,
    "ip_id": np.uint16,
    "ttl": np.uint8,
    "ip_len": np.uint16,
    "win": np.uint16,
    "l4": np.bool_,
}
_WIDE = ("src6", "dst6")


@dataclass
class DecodedBlock:
    """The decoded packets of one block, and what was left out.

    ``columns``: equal-length arrays (see ``COLUMN_DTYPES``), one row per packet whose IP header
    decoded. ``skipped``: records dropped, by reason (``non_ip``, ``truncated`` before the IP header
    was complete, ``bad_ip_header``, ``unsupported_linktype``). ``l4_truncated``: kept packets whose
    TCP/UDP/ICMP header (or IPv6 extension chain) was cut, so their ``l4`` is False.
    """

    columns: dict[str, np.ndarray]
    skipped: dict[str, int]
    l4_truncated: int

    def __len__(self) -> int:
        return int(self.columns["ts"].shape[0])


def decode_block(block: CaptureBlock) -> DecodedBlock:
    """Decode every record of ``block`` in one compiled pass; never raises on malformed packets."""
    n = len(block)
    columns = {
        name: np.zeros((n, 16), dtype) if name in _WIDE else np.empty(n, dtype)
        for name, dtype in COLUMN_DTYPES.items()
    }
    counters = np.zeros(len(COUNTER_NAMES), np.int64)
    kept = decode_records(
        np.ascontiguousarray(block.data, dtype=np.uint8),
        np.ascontiguousarray(block.offset, dtype=np.int64),
        np.ascontiguousarray(block.caplen, dtype=np.uint32),
        np.ascontiguousarray(block.ts_us, dtype=np.int64),
        np.ascontiguousarray(block.linktype, dtype=np.uint16),
        **columns,
        counters=counters,
    )
    skipped = {name: int(counters[i]) for i, name in enumerate(COUNTER_NAMES) if i != L4_TRUNCATED}
    return DecodedBlock(
        columns={name: array[:kept] for name, array in columns.items()},
        skipped=skipped,
        l4_truncated=int(counters[L4_TRUNCATED]),
    )


__all__ = ["COLUMN_DTYPES", "DecodedBlock", "decode_block"]
