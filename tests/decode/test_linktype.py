"""Every link type the kernel reads, checked against tshark on real pcap files."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from iotscope.capture.writer import block_from_frames
from iotscope.decode import decode_block
from tests.decode.pcaps import (
    ETH_ARP, ETH_IPV4, ETH_IPV6, Case, check_cases, ethernet, icmp, ipv4, ipv6, sll, sll2, tcp, udp,
)

V4_SYN = ipv4("198.51.100.7", "203.0.113.9", tcp(40000, 23, 0x02, seq=0xCB007109), 6, id=0x1234, ttl=51)
V4_UDP = ipv4("192.0.2.1", "203.0.113.200", udp(5353, 161, b"probe"), 17, ttl=9)
V6_UDP = ipv6("2001:db8::1", "2001:db8:ffff::2", udp(1234, 53, b"q"), 17, hlim=33)
V6_SYNACK = ipv6("2001:db8::7", "2001:db8::8", tcp(80, 51000, 0x12, seq=77, win=28960), 6)
V6_ECHO = ipv6("2001:db8::9", "2001:db8::a", icmp(128, 0), 58)
ARP = bytes(28)


def test_ethernet_with_vlan_and_qinq_tags(tmp_path: Path) -> None:
    check_cases(tmp_path, 1, [
        Case("untagged", ethernet(V4_SYN, ETH_IPV4)),
        Case("802.1Q", ethernet(V4_UDP, ETH_IPV4, ((0x8100, 100),))),
        Case("QinQ 802.1ad", ethernet(V6_UDP, ETH_IPV6, ((0x88A8, 10), (0x8100, 20)))),
        Case("three tags 0x9100", ethernet(V4_SYN, ETH_IPV4, ((0x9100, 1), (0x8100, 2), (0x8100, 3)))),
        Case("four tags", ethernet(V6_SYNACK, ETH_IPV6, ((0x88A8, 1), (0x8100, 2), (0x8100, 3), (0x8100, 4)))),
        Case("five tags", ethernet(V4_SYN, ETH_IPV4, ((0x8100, 1),) * 5), skip="non_ip"),
        Case("tag cut", ethernet(b"", 0x8100)[:16], skip="truncated"),
        Case("ARP", ethernet(ARP, ETH_ARP), skip="non_ip"),
        Case("802.3 LLC length field", ethernet(b"\x42\x42\x03" + bytes(40), 43), skip="non_ip"),
        Case("padded to 60 bytes", ethernet(V4_SYN, ETH_IPV4) + bytes(6)),
        Case("shorter than a header", ethernet(b"", ETH_IPV4)[:9], skip="truncated"),
        Case("zero length", b"", skip="truncated"),
    ])


def test_linux_cooked_sll(tmp_path: Path) -> None:
    check_cases(tmp_path, 113, [
        Case("IPv4", sll(V4_SYN, ETH_IPV4)),
        Case("IPv6", sll(V6_UDP, ETH_IPV6)),
        Case("VLAN inside", sll(struct.pack(">HH", 5, ETH_IPV4) + V4_UDP, 0x8100)),
        Case("ARP", sll(ARP, ETH_ARP), skip="non_ip"),
        Case("cut header", sll(V4_SYN, ETH_IPV4)[:12], skip="truncated"),
    ])


def test_linux_cooked_sll2(tmp_path: Path) -> None:
    check_cases(tmp_path, 276, [
        Case("IPv4", sll2(V4_UDP, ETH_IPV4)),
        Case("IPv6", sll2(V6_ECHO, ETH_IPV6)),
        Case("ARP", sll2(ARP, ETH_ARP), skip="non_ip"),
        Case("cut header", sll2(V4_SYN, ETH_IPV4)[:19], skip="truncated"),
    ])


def test_raw_ip_101(tmp_path: Path) -> None:
    check_cases(tmp_path, 101, [
        Case("IPv4", V4_SYN),
        Case("IPv6", V6_SYNACK),
        Case("version 5", b"\x55" + V4_SYN[1:], skip="bad_ip_header"),
        Case("empty", b"", skip="truncated"),
    ])


def test_raw_ip_12(tmp_path: Path) -> None:
    check_cases(tmp_path, 12, [Case("IPv4", V4_UDP), Case("IPv6", V6_UDP)])


def test_ipv4_and_ipv6_link_types(tmp_path: Path) -> None:
    check_cases(tmp_path, 228, [Case("IPv4", V4_SYN), Case("IPv6 on an IPv4 link", V6_UDP, skip="bad_ip_header")])
    check_cases(tmp_path, 229, [Case("IPv6", V6_ECHO), Case("IPv4 on an IPv6 link", V4_UDP, skip="bad_ip_header")])


def test_bsd_loopback_in_either_byte_order(tmp_path: Path) -> None:
    check_cases(tmp_path, 0, [
        Case("AF_INET little-endian", struct.pack("<I", 2) + V4_SYN),
        Case("AF_INET big-endian", struct.pack(">I", 2) + V4_UDP),
        Case("AF_INET6 macOS", struct.pack("<I", 30) + V6_UDP),
        Case("AF_INET6 FreeBSD", struct.pack("<I", 28) + V6_SYNACK),
        Case("AF_INET6 NetBSD big-endian", struct.pack(">I", 24) + V6_ECHO),
        Case("AF_APPLETALK", struct.pack("<I", 16) + V4_SYN, skip="non_ip"),
        Case("cut family", b"\x02\x00", skip="truncated"),
    ])


def test_openbsd_loop(tmp_path: Path) -> None:
    check_cases(tmp_path, 108, [
        Case("AF_INET", struct.pack(">I", 2) + V4_SYN),
        Case("AF_INET6", struct.pack(">I", 24) + V6_UDP),
    ])


def test_unsupported_link_type_is_counted() -> None:
    block = block_from_frames([ethernet(V4_SYN, ETH_IPV4), V4_SYN], [1, 2], [105, 101])  # 105: 802.11
    decoded = decode_block(block)
    assert decoded.skipped["unsupported_linktype"] == 1
    assert len(decoded) == 1 and decoded.columns["dport"].tolist() == [23]
    assert np.array_equal(decoded.columns["ts"], [2])
