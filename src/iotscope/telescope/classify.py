"""Per-packet classes: NICTER's flag legend and what a darknet packet is (scan, backscatter, other).

A darknet has no services, so everything it receives is either someone probing (a scan), a victim
answering packets an attacker sent with a spoofed darknet source (backscatter, Moore et al. 2006,
"Inferring Internet Denial-of-Service Activity"), or noise. Both classes are decided from
``proto``, the TCP flag byte, the ICMP type and ``l4`` (transport header decoded) by lookup tables
built once at import, so a block of millions of packets is classified with a few numpy gathers.

flag_class (codes index ``FLAG_CLASSES``), for TCP with ``l4``, first matching rule wins, looking at
FIN, SYN, RST, PSH, ACK and URG only (ECE/CWR are ECN and do not change what a segment is):

==========  ===========================================================================
class       rule
==========  ===========================================================================
tcp_other   URG without ACK (URG only means something on a synchronized connection, which
            always carries ACK; this is a crafted probe such as nmap's XMAS FIN+PSH+URG)
synack      SYN and ACK, no FIN, no RST
syn         SYN, no ACK, no FIN, no RST
rst         RST, no SYN, no FIN
fin         FIN, no SYN, no RST
push        PSH, no SYN, no FIN, no RST
ack         ACK and nothing else
tcp_other   anything else: NULL, SYN+FIN, SYN+RST, FIN+RST, URG+ACK alone, ...
==========  ===========================================================================

TCP without ``l4`` (a non-first fragment, a cut header) is ``tcp_other``; UDP is ``udp``; ICMP and
ICMPv6 (58) are ``icmp`` (with or without ``l4``); every other protocol is ``other``.

traffic_class (codes index ``TRAFFIC_CLASSES``):

* backscatter: TCP with RST (any), TCP SYN+ACK without FIN/RST; ICMP types 0 echo reply,
  3 unreachable, 4 source quench, 5 redirect, 11 time exceeded, 12 parameter problem,
  14 timestamp reply, 16 information reply, 18 address mask reply; ICMPv6 types 1 unreachable,
  2 packet too big, 3 time exceeded, 4 parameter problem, 129 echo reply.
* scan: TCP SYN without ACK/RST/FIN; UDP (with or without ``l4``); ICMP types 8 echo request,
  13 timestamp request, 17 address mask request; ICMPv6 128 echo request.
* other: the rest, e.g. TCP ACK-only, FIN, PSH, NULL, XMAS, TCP/ICMP without ``l4``, other
  ICMP types, other protocols.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from iotscope.ip_protocols import PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP
from iotscope.store.schema import FLAG_CLASSES, TRAFFIC_CLASSES

FIN, SYN, RST, PSH, ACK, URG = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
#: The flag bits the classes look at; ECE (0x40) and CWR (0x80) are ignored.
CLASSIFIED_FLAGS = FIN | SYN | RST | PSH | ACK | URG

FLAG = {name: np.int8(code) for code, name in enumerate(FLAG_CLASSES)}
TRAFFIC = {name: np.int8(code) for code, name in enumerate(TRAFFIC_CLASSES)}

#: ICMP types by traffic class, per protocol (IPv4 ICMP, ICMPv6); all other types are "other".
ICMP_TYPES: dict[int, dict[str, tuple[int, ...]]] = {
    PROTO_ICMP: {"backscatter": (0, 3, 4, 5, 11, 12, 14, 16, 18), "scan": (8, 13, 17)},
    PROTO_ICMPV6: {"backscatter": (1, 2, 3, 4, 129), "scan": (128,)},
}


def _tcp_flag_class(bits: int) -> str:
    """The flag_class of a TCP segment with these flag bits (the table in the module docstring)."""
    if bits & URG and not bits & ACK:
        return "tcp_other"
    if bits & SYN and bits & ACK and not bits & (FIN | RST):
        return "synack"
    if bits & SYN and not bits & (ACK | FIN | RST):
        return "syn"
    if bits & RST and not bits & (SYN | FIN):
        return "rst"
    if bits & FIN and not bits & (SYN | RST):
        return "fin"
    if bits & PSH and not bits & (SYN | FIN | RST):
        return "push"
    if bits == ACK:
        return "ack"
    return "tcp_other"


def _tcp_traffic_class(bits: int) -> str:
    """The traffic_class of a TCP segment with these flag bits."""
    if bits & RST or (bits & SYN and bits & ACK and not bits & FIN):
        return "backscatter"
    if bits & SYN and not bits & (ACK | RST | FIN):
        return "scan"
    return "other"


def _table(rule: Callable[[int], str], names: dict[str, np.int8], size: int) -> np.ndarray:
    return np.array([names[rule(i)] for i in range(size)], dtype=np.int8)


#: flag_class / traffic_class of a TCP segment with l4, indexed by ``tcp_flags & CLASSIFIED_FLAGS``.
TCP_FLAG_CLASS = _table(_tcp_flag_class, FLAG, CLASSIFIED_FLAGS + 1)
TCP_TRAFFIC_CLASS = _table(_tcp_traffic_class, TRAFFIC, CLASSIFIED_FLAGS + 1)

#: flag_class by protocol number, for everything but TCP with l4.
PROTO_FLAG_CLASS = np.full(256, FLAG["other"], dtype=np.int8)
PROTO_FLAG_CLASS[PROTO_TCP] = FLAG["tcp_other"]
PROTO_FLAG_CLASS[PROTO_UDP] = FLAG["udp"]
PROTO_FLAG_CLASS[PROTO_ICMP] = FLAG["icmp"]
PROTO_FLAG_CLASS[PROTO_ICMPV6] = FLAG["icmp"]

#: traffic_class by protocol number, for everything but TCP and ICMP with l4.
PROTO_TRAFFIC_CLASS = np.full(256, TRAFFIC["other"], dtype=np.int8)
PROTO_TRAFFIC_CLASS[PROTO_UDP] = TRAFFIC["scan"]



def _icmp_traffic_table() -> np.ndarray:
    table = np.full((2, 256), TRAFFIC["other"], dtype=np.int8)
    for row, proto in enumerate((PROTO_ICMP, PROTO_ICMPV6)):
        for name, types in ICMP_TYPES[proto].items():
            table[row, list(types)] = TRAFFIC[name]
    return table


#: traffic_class of an ICMP (row 0) or ICMPv6 (row 1) message with l4, indexed by type.
ICMP_TRAFFIC_CLASS = _icmp_traffic_table()


def flag_class(proto: np.ndarray, tcp_flags: np.ndarray, icmp_type: np.ndarray, l4: np.ndarray) -> np.ndarray:
    """NICTER flag-legend codes (int8, indexing ``FLAG_CLASSES``) by the rules in the module docstring.

    ``icmp_type`` is unused (the legend has one ICMP class) but taken so both classifiers share a
    signature.
    """
    proto = np.asarray(proto)
    tcp = (proto == PROTO_TCP) & np.asarray(l4, dtype=bool)
    codes = PROTO_FLAG_CLASS[proto]
    codes[tcp] = TCP_FLAG_CLASS[np.asarray(tcp_flags)[tcp] & CLASSIFIED_FLAGS]
    return codes


def traffic_class(proto: np.ndarray, tcp_flags: np.ndarray, icmp_type: np.ndarray, l4: np.ndarray) -> np.ndarray:
    """scan / backscatter / other codes (int8, indexing ``TRAFFIC_CLASSES``), rules in the module docstring."""
    proto = np.asarray(proto)
    l4 = np.asarray(l4, dtype=bool)
    codes = PROTO_TRAFFIC_CLASS[proto]
    tcp = (proto == PROTO_TCP) & l4
    codes[tcp] = TCP_TRAFFIC_CLASS[np.asarray(tcp_flags)[tcp] & CLASSIFIED_FLAGS]
    icmp = ((proto == PROTO_ICMP) | (proto == PROTO_ICMPV6)) & l4
    codes[icmp] = ICMP_TRAFFIC_CLASS[(proto[icmp] == PROTO_ICMPV6).astype(np.intp), np.asarray(icmp_type)[icmp]]
    return codes


__all__ = ["FLAG_CLASSES", "TRAFFIC_CLASSES", "flag_class", "traffic_class"]
