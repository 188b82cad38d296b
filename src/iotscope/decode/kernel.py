"""The decode kernel: one compiled pass over every record of a block, filling column arrays.

A telescope sees millions of packets per hour, so per-packet Python is out of the question: this
loop runs in numba over the block's byte buffer and writes each kept packet's fields into
preallocated numpy arrays (zeros where a field does not apply). Every read is bounds-checked
against the record's captured length and the buffer's size, so no input can make it read out of
bounds; what cannot be decoded is counted by reason instead.

The link layer, IP and transport parts live in this one module on purpose: numba's on-disk cache
(``cache=True``) is invalidated only when the file defining the cached function changes, so a kernel
split over several modules would keep running stale compiled code after an edit to a helper.
"""

from __future__ import annotations

import numba
import numpy as np

from iotscope.ip_protocols import PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP

# ---- network-byte-order reads (callers check bounds; results widened to int64) -----------------


@numba.njit(cache=True, inline="always")
def be16(data, p):  # pragma: no cover - compiled
    return (int(data[p]) << 8) | int(data[p + 1])


@numba.njit(cache=True, inline="always")
def be32(data, p):  # pragma: no cover - compiled
    return (int(data[p]) << 24) | (int(data[p + 1]) << 16) | (int(data[p + 2]) << 8) | int(data[p + 3])


# ---- link layer: where the IP header starts, for every link type we read ----------------------
# Telescope captures come from a switch port with VLAN tags, a Linux ``any`` interface, a tunnel
# handing over bare IP..., so the kernel first strips whatever link header the LINKTYPE says is there.

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


# ---- IP and transport ----------------------------------------------------------------------------

# Indexes into the kernel's counter array.
NON_IP = 0
TRUNCATED = 1
BAD_IP_HEADER = 2
UNSUPPORTED_LINKTYPE = 3
L4_TRUNCATED = 4
#: Names of the counters, in index order; the first four are records dropped, the last is kept.
COUNTER_NAMES = ("non_ip", "truncated", "bad_ip_header", "unsupported_linktype", "l4_truncated")

#: IPv6 extension headers walked to reach the upper-layer protocol (RFC 8200 section 4.1).
IPV6_HOP_BY_HOP = 0
IPV6_ROUTING = 43
IPV6_FRAGMENT = 44
IPV6_DEST_OPTS = 60
#: A chain longer than this is not real traffic; the packet keeps the extension header as proto.
MAX_IPV6_EXT_HEADERS = 8

#: Fixed header bytes that must be captured before the transport fields count as decoded.
TCP_HEADER = 20
UDP_HEADER = 8
ICMP_HEADER = 8


@numba.njit(cache=True, inline="always")
def _ipv6_upper_layer(data, p, limit, nh):  # pragma: no cover - compiled
    """Walk IPv6 extension headers from ``p``; return (upper protocol, its offset, first fragment?, complete?).

    ``complete`` is False when the chain is cut by the capture or the payload length, or is absurdly
    long; the protocol returned is then the extension header where the walk stopped.
    """
    first_fragment = True
    for _ in range(MAX_IPV6_EXT_HEADERS):
        if nh == IPV6_FRAGMENT:
            if p + 8 > limit:
                return nh, p, first_fragment, False
            if (be16(data, p + 2) >> 3) != 0:
                first_fragment = False
            nh = int(data[p])
            p += 8
        elif nh == IPV6_HOP_BY_HOP or nh == IPV6_ROUTING or nh == IPV6_DEST_OPTS:
            if p + 2 > limit:
                return nh, p, first_fragment, False
            length = (int(data[p + 1]) + 1) * 8
            nh = int(data[p])
            p += length
        else:
            return nh, p, first_fragment, True
    is_ext = nh == IPV6_FRAGMENT or nh == IPV6_HOP_BY_HOP or nh == IPV6_ROUTING or nh == IPV6_DEST_OPTS
    return nh, p, first_fragment, not is_ext


@numba.njit(cache=True, nogil=True)
def decode_records(
    data, offset, caplen, ts_us, linktype,
    ts, ip_version, src, dst, src6, dst6, proto, sport, dport, icmp_type, icmp_code,
    tcp_flags, seq, ip_id, ttl, ip_len, win, l4, counters,
):  # pragma: no cover - compiled
    """Decode every record into row ``k`` of the output arrays; return the number of rows kept.

    ``src6``/``dst6`` must arrive zeroed (only IPv6 rows are written); every other output is written
    for each kept row. ``counters`` (int64, len(COUNTER_NAMES)) is incremented by reason.
    """
    size = data.shape[0]
    k = 0
    for i in range(offset.shape[0]):
        start = offset[i]
        if start < 0 or start > size:
            counters[TRUNCATED] += 1
            continue
        end = min(start + np.int64(caplen[i]), size)

        ip, version = ip_header_start(data, start, end, linktype[i])
        if ip < 0:
            if ip == NOT_IP:
                counters[NON_IP] += 1
            elif ip == CUT_SHORT:
                counters[TRUNCATED] += 1
            elif ip == UNSUPPORTED:
                counters[UNSUPPORTED_LINKTYPE] += 1
            continue
        if ip >= end:
            counters[TRUNCATED] += 1
            continue
        nibble = int(data[ip]) >> 4
        if version == ANY_VERSION:
            version = nibble
        if nibble != version or (version != 4 and version != 6):
            counters[BAD_IP_HEADER] += 1
            continue

        # IP header: fields common to the row, and [l4_start, l4_limit) for the transport header.
        first_fragment = True
        if version == 4:
            if ip + 20 > end:
                counters[TRUNCATED] += 1
                continue
            header_len = (int(data[ip]) & 0x0F) * 4
            total_len = be16(data, ip + 2)
            if header_len < 20 or total_len < header_len:
                counters[BAD_IP_HEADER] += 1
                continue
            if ip + header_len > end:
                counters[TRUNCATED] += 1
                continue
            first_fragment = (be16(data, ip + 6) & 0x1FFF) == 0
            upper = int(data[ip + 9])
            l4_start = ip + header_len
            l4_limit = min(end, ip + total_len)
            src[k] = be32(data, ip + 12)
            dst[k] = be32(data, ip + 16)
            ip_id[k] = be16(data, ip + 4)
            ttl[k] = data[ip + 8]
            ip_len[k] = total_len
        else:
            if ip + 40 > end:
                counters[TRUNCATED] += 1
                continue
            payload_len = be16(data, ip + 4)
            l4_limit = min(end, ip + 40 + payload_len)
            upper, l4_start, first_fragment, complete = _ipv6_upper_layer(data, ip + 40, l4_limit, int(data[ip + 6]))
            if not complete:
                counters[L4_TRUNCATED] += 1
            for j in range(16):
                src6[k, j] = data[ip + 8 + j]
                dst6[k, j] = data[ip + 24 + j]
            src[k] = 0
            dst[k] = 0
            ip_id[k] = 0
            ttl[k] = data[ip + 7]
            ip_len[k] = min(payload_len + 40, 0xFFFF)

        ts[k] = ts_us[i]
        ip_version[k] = version
        proto[k] = upper
        sport[k] = 0
        dport[k] = 0
        icmp_type[k] = 0
        icmp_code[k] = 0
        tcp_flags[k] = 0
        seq[k] = 0
        win[k] = 0
        decoded = False
        if first_fragment:
            avail = l4_limit - l4_start
            if upper == PROTO_TCP:
                if avail >= TCP_HEADER:
                    sport[k] = be16(data, l4_start)
                    dport[k] = be16(data, l4_start + 2)
                    seq[k] = be32(data, l4_start + 4)
                    tcp_flags[k] = data[l4_start + 13]
                    win[k] = be16(data, l4_start + 14)
                    decoded = True
                else:
                    counters[L4_TRUNCATED] += 1
            elif upper == PROTO_UDP:
                if avail >= UDP_HEADER:
                    sport[k] = be16(data, l4_start)
                    dport[k] = be16(data, l4_start + 2)
                    decoded = True
                else:
                    counters[L4_TRUNCATED] += 1
            elif upper == PROTO_ICMP or upper == PROTO_ICMPV6:
                if avail >= ICMP_HEADER:
                    icmp_type[k] = data[l4_start]
                    icmp_code[k] = data[l4_start + 1]
                    decoded = True
                else:
                    counters[L4_TRUNCATED] += 1
        l4[k] = decoded
        k += 1
    return k
