"""Link layer: where the IP header of a captured frame starts, for every link type we read.

Captures from a telescope come from many setups (a switch port with VLAN tags, a Linux ``any``
interface, a tunnel that hands over bare IP), so the decode kernel first strips whatever link
header the record's LINKTYPE says is there. This module is compiled into the kernel (numba); it
looks only at bytes inside the record and never reads past its end.
"""

from __future__ import annotations

import numba

from iotscope.decode.bigendian import be16

LINKTYPE_NULL = 0  # BSD loopback: 4-byte address family in the writer's byte order
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW_DLT12 = 12  # DLT_RAW as some platforms wrote it into pcap files
LINKTYPE_RAW = 101
LINKTYPE_LOOP = 108  # OpenBSD loopback: like NULL, family in network byte order
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276

ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_IPV6 = 0x86DD
#: 802.1Q, 802.1ad (QinQ outer tag) and the pre-standard 0x9100 outer tag.
VLAN_ETHERTYPES = (0x8100, 0x88A8, 0x9100)
#: Stacked tags beyond this depth are not a network anyone runs; the frame counts as non-IP.
MAX_VLAN_TAGS = 4
#: BSD address-family values for IPv6 differ by OS (NetBSD/OpenBSD 24, FreeBSD 28, macOS 30).
BSD_AF_INET = 2
BSD_AF_INET6 = (24, 28, 30)

# What ``ip_header_start`` returns instead of an offset when a frame carries no usable IP header.
NOT_IP = -1
CUT_SHORT = -2
UNSUPPORTED = -3

# The IP version the link header announces; ANY_VERSION means "read it from the first nibble".
ANY_VERSION = 0


@numba.njit(cache=True, inline="always")
def _after_ethertype(data, p, end, ethertype):  # pragma: no cover - compiled
    """Skip VLAN tags starting at ``p`` (whose type field said ``ethertype``); return (start, version)."""
    depth = 0
    while ethertype in VLAN_ETHERTYPES:
        if depth == MAX_VLAN_TAGS:
            return NOT_IP, 0
        if p + 4 > end:
            return CUT_SHORT, 0
        ethertype = be16(data, p + 2)
        p += 4
        depth += 1
    if ethertype == ETHERTYPE_IPV4:
        return p, 4
    if ethertype == ETHERTYPE_IPV6:
        return p, 6
    return NOT_IP, 0


@numba.njit(cache=True, inline="always")
def _bsd_family_version(data, p):  # pragma: no cover - compiled
    """IP version from a 4-byte BSD address family, in either byte order (the writer's host order)."""
    little = int(data[p]) | (int(data[p + 1]) << 8) | (int(data[p + 2]) << 16) | (int(data[p + 3]) << 24)
    big = (int(data[p]) << 24) | (int(data[p + 1]) << 16) | (int(data[p + 2]) << 8) | int(data[p + 3])
    for family in (little, big):
        if family == BSD_AF_INET:
            return 4
        if family in BSD_AF_INET6:
            return 6
    return 0


@numba.njit(cache=True)
def ip_header_start(data, start, end, linktype):  # pragma: no cover - compiled
    """Offset of the IP header in ``data[start:end]`` and the version the link layer announces.

    Returns ``(offset, version)`` with version 4, 6 or ``ANY_VERSION``; or ``(NOT_IP | CUT_SHORT |
    UNSUPPORTED, 0)`` when the frame is not IP, ends inside its link header, or has a link type we
    do not decode.
    """
    if linktype == LINKTYPE_ETHERNET:
        if start + 14 > end:
            return CUT_SHORT, 0
        return _after_ethertype(data, start + 14, end, be16(data, start + 12))
    if linktype == LINKTYPE_RAW or linktype == LINKTYPE_RAW_DLT12:
        return start, ANY_VERSION
    if linktype == LINKTYPE_IPV4:
        return start, 4
    if linktype == LINKTYPE_IPV6:
        return start, 6
    if linktype == LINKTYPE_LINUX_SLL:
        if start + 16 > end:
            return CUT_SHORT, 0
        return _after_ethertype(data, start + 16, end, be16(data, start + 14))
    if linktype == LINKTYPE_LINUX_SLL2:
        if start + 20 > end:
            return CUT_SHORT, 0
        return _after_ethertype(data, start + 20, end, be16(data, start))
    if linktype == LINKTYPE_NULL or linktype == LINKTYPE_LOOP:
        if start + 4 > end:
            return CUT_SHORT, 0
        version = _bsd_family_version(data, start)
        if version == 0:
            return NOT_IP, 0
        return start + 4, version
    return UNSUPPORTED, 0
