"""The ``packets`` table: one row per decoded IP packet seen by the telescope.

This module is the single definition of the column names and types; the decode stage fills the
columns, the telescope stage adds the two classes, and every writer and query uses this schema.
See docs/schema.md for the meaning of each column.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from iotscope.ip_protocols import PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP

#: NICTER's legend for the live map, in this order; ``flag_class`` stores these names.
FLAG_CLASSES: tuple[str, ...] = (
    "syn", "synack", "ack", "fin", "rst", "push", "tcp_other", "udp", "icmp", "other",
)
#: What unsolicited darknet traffic is, by the rule in ``iotscope.telescope.classify``.
TRAFFIC_CLASSES: tuple[str, ...] = ("scan", "backscatter", "other")
#: Scanning tools recognised by their header fingerprints (``iotscope.telescope.fingerprints``).
TOOLS: tuple[str, ...] = ("mirai", "zmap", "masscan")

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
        pa.field("tool", pa.dictionary(pa.int8(), pa.string())),  # null: no tool fingerprint matched
    ]
)

_IPV4, _IPV6 = 4, 6


def _nullable(values: np.ndarray, valid: np.ndarray, type_: pa.DataType) -> pa.Array:
    """An Arrow array of ``values`` with nulls where ``valid`` is False (zero-copy when all valid)."""
    if valid.all():
        return pa.array(values, type=type_)
    return pa.array(values, type=type_, mask=~valid)


def _ipv6_column(addresses: np.ndarray, valid: np.ndarray) -> pa.Array:
    """Pack an (n, 16) uint8 array into fixed_size_binary(16), null where ``valid`` is False."""
    n = addresses.shape[0]
    if not valid.any():
        return pa.nulls(n, pa.binary(16))  # the common all-IPv4 block: no 32 bytes a row to copy
    buffers = [None, pa.py_buffer(np.ascontiguousarray(addresses, dtype=np.uint8).tobytes())]
    if not valid.all():
        buffers[0] = pa.array(valid, type=pa.bool_()).buffers()[1]
    return pa.Array.from_buffers(pa.binary(16), n, buffers)


def _classes(codes: np.ndarray, names: tuple[str, ...]) -> pa.DictionaryArray:
    """Dictionary-encode class codes; a negative code (no class) becomes null."""
    valid = codes >= 0
    indices = pa.array(codes, type=pa.int8()) if valid.all() else pa.array(codes, type=pa.int8(), mask=~valid)
    return pa.DictionaryArray.from_arrays(indices, pa.array(names, type=pa.string()))


def packet_record_batch(
    columns: dict[str, np.ndarray], flag_class: np.ndarray, traffic_class: np.ndarray, tool: np.ndarray
) -> pa.RecordBatch:
    """Build a ``PACKET_SCHEMA`` batch from the decode stage's dense arrays and the class codes.

    ``tool`` codes index ``TOOLS``, -1 where no fingerprint matched (stored as null).

    The decode kernel fills every column for every packet (zeros where a field does not apply);
    nullness is decided here, in one place, from ``ip_version``, ``proto`` and ``l4`` (transport
    header fully captured), so that a query never mistakes "no port" for port 0.
    """
    version = columns["ip_version"]
    proto = columns["proto"]
    l4 = columns["l4"].astype(bool, copy=False)
    v4 = version == _IPV4
    v6 = ~v4
    tcp = l4 & (proto == PROTO_TCP)
    ported = tcp | (l4 & (proto == PROTO_UDP))
    icmp = l4 & ((proto == PROTO_ICMP) | (proto == PROTO_ICMPV6))
    arrays = [
        pa.array(columns["ts"], type=pa.int64()).view(pa.timestamp("us", tz="UTC")),
        pa.array(version, type=pa.uint8()),
        _nullable(columns["src"], v4, pa.uint32()),
        _nullable(columns["dst"], v4, pa.uint32()),
        _ipv6_column(columns["src6"], v6),
        _ipv6_column(columns["dst6"], v6),
        pa.array(proto, type=pa.uint8()),
        _nullable(columns["sport"], ported, pa.uint16()),
        _nullable(columns["dport"], ported, pa.uint16()),
        _nullable(columns["icmp_type"], icmp, pa.uint8()),
        _nullable(columns["icmp_code"], icmp, pa.uint8()),
        _nullable(columns["tcp_flags"], tcp, pa.uint8()),
        _nullable(columns["seq"], tcp, pa.uint32()),
        _nullable(columns["ip_id"], v4, pa.uint16()),
        pa.array(columns["ttl"], type=pa.uint8()),
        pa.array(columns["ip_len"], type=pa.uint16()),
        _nullable(columns["win"], tcp, pa.uint16()),
        _classes(flag_class, FLAG_CLASSES),
        _classes(traffic_class, TRAFFIC_CLASSES),
        _classes(tool, TOOLS),
    ]
    return pa.RecordBatch.from_arrays(arrays, schema=PACKET_SCHEMA)
