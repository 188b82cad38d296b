"""The ``packets`` table: one row per decoded IP packet seen by the telescope.

This module is the single definition of the column names and types; the decode stage fills the
columns, the telescope stage adds the two classes, and every writer and query uses this schema.
See docs/schema.md for the meaning of each column.
"""

from __future__ import annotations

import pyarrow as pa

#: NICTER's legend for the live map, in this order; ``flag_class`` stores these names.
FLAG_CLASSES: tuple[str, ...] = (
    "syn", "synack", "ack", "fin", "rst", "push", "tcp_other", "udp", "icmp", "other",
)
#: What unsolicited darknet traffic is, by the rule in ``iotscope.telescope.classify``.
TRAFFIC_CLASSES: tuple[str, ...] = ("scan", "backscatter", "other")

PACKET_SCHEMA = pa.schema(
    [
        pa.field("ts", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("ip_version", pa.uint8(), nullable=False),
        pa.field("src", pa.uint32()),  # IPv4 source, host byte order; null for IPv6
        pa.field("dst", pa.uint32()),
        pa.field("src6", pa.binary(16)),  # IPv6 source, network byte order; null for IPv4
        pa.field("dst6", pa.binary(16)),
        pa.field("proto", pa.uint8(), nullable=False),  # IPv4 protocol / IPv6 next header
        pa.field("sport", pa.uint16()),  # TCP/UDP only, else null
        pa.field("dport", pa.uint16()),
        pa.field("icmp_type", pa.uint8()),  # ICMP/ICMPv6 only, else null
        pa.field("icmp_code", pa.uint8()),
        pa.field("tcp_flags", pa.uint8()),  # TCP only: FIN=1 SYN=2 RST=4 PSH=8 ACK=16 URG=32 ECE=64 CWR=128
        pa.field("seq", pa.uint32()),  # TCP only
        pa.field("ip_id", pa.uint16()),  # IPv4 only
        pa.field("ttl", pa.uint8(), nullable=False),  # IPv4 TTL / IPv6 hop limit
        pa.field("ip_len", pa.uint16(), nullable=False),  # IPv4 total length / IPv6 payload length + 40
        pa.field("win", pa.uint16()),  # TCP only
        pa.field("flag_class", pa.dictionary(pa.int8(), pa.string()), nullable=False),
        pa.field("traffic_class", pa.dictionary(pa.int8(), pa.string()), nullable=False),
    ]
)
