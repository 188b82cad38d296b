"""IP and transport decoding edge cases vs tshark, plus inputs built to break a careless kernel."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from iotscope.capture import CaptureBlock
from iotscope.capture.writer import block_from_frames
from iotscope.decode import COLUMN_DTYPES, decode_block
from tests.decode.pcaps import (
    ETH_IPV4, ETH_IPV6, Case, check_cases, ethernet, icmp, ipv4, ipv6, random_frames, tcp, udp,
)

MSS_SACK_WSCALE = b"\x02\x04\x05\xb4\x04\x02\x01\x03\x03\x07"  # 10 bytes of options + 2 NOPs below
ROUTER_ALERT = b"\x94\x04\x00\x00"
SRC, DST = "198.51.100.20", "203.0.113.77"


def v4(payload: bytes, proto: int, **fields) -> bytes:
    return ethernet(ipv4(SRC, DST, payload, proto, **fields), ETH_IPV4)


def v6(payload: bytes, next_header: int) -> bytes:
    return ethernet(ipv6("2001:db8:1::5", "2001:db8:2::6", payload, next_header, hlim=200), ETH_IPV6)


def hop_by_hop(next_header: int) -> bytes:
    return struct.pack(">BB", next_header, 0) + b"\x01\x04\x00\x00\x00\x00"  # PadN option, 8 bytes


def fragment_header(next_header: int, offset_units: int, more: bool) -> bytes:
    return struct.pack(">BBHI", next_header, 0, (offset_units << 3) | more, 0xABCD)


def test_ipv4_and_transport_edge_cases(tmp_path: Path) -> None:
    syn = tcp(61000, 2323, 0x02, seq=0x0A0B0C0D, win=14600, opts=MSS_SACK_WSCALE + b"\x01\x01")
    whole = v4(tcp(1, 2, 0x18, seq=5), 6)
    decoded = check_cases(tmp_path, 1, [
        Case("TCP with options", v4(syn, 6, id=54321, ttl=250)),
        Case("IP options + UDP", v4(udp(137, 137, b"x" * 11), 17, hl=6, opts=ROUTER_ALERT)),
        Case("IP options (40 bytes) + TCP", v4(tcp(7, 8, 0x14), 6, hl=15, opts=b"\x01" * 39 + b"\x00")),
        Case("ICMP echo request", v4(icmp(8, 0), 1)),
        Case("ICMP unreachable quoting TCP", v4(icmp(3, 3, b"\0" * 4 + ipv4(DST, SRC, tcp(23, 9, 2), 6)), 1)),
        Case("first fragment", v4(tcp(100, 200, 0x02, seq=9), 6, mf=1)),
        Case("later fragment", v4(b"\xff" * 24, 6, offset=185), l4=False),
        Case("GRE", v4(b"\0\0\x08\x00" + b"z" * 8, 47), l4=False),
        Case("cut in TCP header", whole[: 14 + 20 + 10], l4=False),
        Case("cut in UDP header", v4(udp(1, 2), 17)[: 14 + 20 + 5], l4=False),
        Case("cut in IP header", whole[: 14 + 12], skip="truncated"),
        Case("cut in IP options", v4(udp(1, 2), 17, hl=6, opts=ROUTER_ALERT)[: 14 + 22], skip="truncated"),
        Case("IHL 4", whole[:14] + b"\x44" + whole[15:], skip="bad_ip_header"),
        Case("version 6 behind IPv4 ethertype", whole[:14] + b"\x65" + whole[15:], skip="bad_ip_header"),
        Case("total length < header", whole[:16] + b"\x00\x13" + whole[18:], skip="bad_ip_header"),
        Case("odd-length padding", whole + b"\0" * 7),
    ])
    assert decoded.l4_truncated == 2
    assert decoded.columns["tcp_flags"][0] == 0x02


def test_ipv6_extension_headers_and_icmpv6(tmp_path: Path) -> None:
    decoded = check_cases(tmp_path, 1, [
        Case("hop-by-hop then TCP", v6(hop_by_hop(6) + tcp(5555, 23, 0x02, seq=123456), 0)),
        Case("hop-by-hop, dest-opts then UDP", v6(hop_by_hop(60) + hop_by_hop(17) + udp(9, 10, b"hi"), 0)),
        Case("ICMPv6 echo request", v6(icmp(128, 0), 58)),
        Case("ICMPv6 unreachable", v6(icmp(1, 4, bytes(4) + bytes(48)), 58)),
        Case("first fragment", v6(fragment_header(6, 0, True) + tcp(1, 2, 0x04), 44)),
        Case("later fragment", v6(fragment_header(6, 100, False) + b"\xee" * 16, 44), l4=False, proto=6),
        Case("hop-by-hop cut", v6(hop_by_hop(6) + tcp(1, 2, 2), 0)[: 14 + 40 + 1], l4=False, proto=0),
        Case("TCP cut", v6(tcp(1, 2, 2), 6)[: 14 + 40 + 19], l4=False),
        Case("no next header", v6(b"", 59), l4=False, proto=59),
        Case("cut in IPv6 header", v6(b"", 59)[: 14 + 39], skip="truncated"),
    ])
    assert decoded.l4_truncated == 2


def test_columns_have_the_documented_types() -> None:
    decoded = decode_block(block_from_frames([v4(tcp(1, 2, 2), 6), v6(udp(1, 2), 17)], [10, 20], 1))
    assert set(decoded.columns) == set(COLUMN_DTYPES)
    for name, column in decoded.columns.items():
        assert column.dtype == COLUMN_DTYPES[name], name
        assert column.shape == ((2, 16) if name in ("src6", "dst6") else (2,)), name
    assert decoded.columns["ip_version"].tolist() == [4, 6]
    assert decoded.columns["ts"].tolist() == [10, 20]


def test_empty_block() -> None:
    decoded = decode_block(block_from_frames([], [], 1))
    assert len(decoded) == 0 and sum(decoded.skipped.values()) == 0


def test_records_pointing_outside_the_buffer_are_truncated_not_read() -> None:
    frame = v4(tcp(1, 2, 2), 6)
    data = np.frombuffer(frame, np.uint8).copy()
    block = CaptureBlock(
        data=data,
        offset=np.array([0, 0, len(frame) - 30, len(frame) + 5, -1], np.int64),
        caplen=np.array([len(frame), 10**6, 10**6, 60, 60], np.uint32),  # caplen beyond the buffer
        wirelen=np.full(5, 60, np.uint32),
        ts_us=np.arange(5, dtype=np.int64),
        linktype=np.ones(5, np.uint16),
    )
    decoded = decode_block(block)
    assert len(decoded) == 2 and decoded.columns["l4"].all()
    assert decoded.skipped["truncated"] + decoded.skipped["bad_ip_header"] + decoded.skipped["non_ip"] == 3


@pytest.mark.parametrize("linktype", [0, 1, 12, 101, 113, 228, 229, 276])
def test_random_bytes_never_crash_and_every_record_is_accounted_for(linktype: int) -> None:
    rng = np.random.default_rng(linktype)
    n = 20_000
    lengths = rng.integers(0, 120, n)
    frames = [rng.integers(0, 256, int(k), dtype=np.uint8).tobytes() for k in lengths]
    # Make many frames look like IP at the link layer so the IP and transport paths get fuzzed too.
    prefix = {1: ethernet(b"", ETH_IPV4), 113: bytes(14) + b"\x08\x00", 276: b"\x86\xdd" + bytes(18), 0: b"\2\0\0\0"}
    frames = [prefix.get(linktype, b"") + f if i % 2 else f for i, f in enumerate(frames)]
    decoded = decode_block(block_from_frames(frames, np.arange(n), linktype))
    assert len(decoded) + sum(decoded.skipped.values()) == n
    assert decoded.skipped["unsupported_linktype"] == 0
    assert set(np.unique(decoded.columns["ip_version"])) <= {4, 6}


def test_every_cut_of_valid_frames_agrees_with_the_whole_frame() -> None:
    """Cut 150 random valid frames at every length: a prefix either is dropped as ``truncated`` or
    gives exactly the whole frame's IP fields, and its transport fields too whenever ``l4`` is set;
    and keeping (and ``l4``) never flips back as the cut grows."""
    frames = random_frames(11, 150)
    whole = decode_block(block_from_frames(frames, np.arange(len(frames)), 1))
    cuts = [(i, n) for i, f in enumerate(frames) for n in range(len(f) + 1)]
    block = block_from_frames([frames[i][:n] for i, n in cuts], np.array([i for i, _ in cuts]), 1)
    decoded = decode_block(block)
    assert decoded.skipped["non_ip"] == decoded.skipped["bad_ip_header"] == 0
    assert len(decoded) + decoded.skipped["truncated"] == len(cuts)

    ip_fields = ("ip_version", "src", "dst", "src6", "dst6", "proto", "ip_id", "ttl", "ip_len")
    transport = ("sport", "dport", "icmp_type", "icmp_code", "tcp_flags", "seq", "win")
    frame_of_row = decoded.columns["ts"]  # the ts of each cut is the index of its frame
    for name in ip_fields:
        np.testing.assert_array_equal(decoded.columns[name], whole.columns[name][frame_of_row], err_msg=name)
    l4 = decoded.columns["l4"]
    for name in transport:
        np.testing.assert_array_equal(decoded.columns[name][l4], whole.columns[name][frame_of_row[l4]], err_msg=name)
        assert not decoded.columns[name][~l4].any(), name
    # Per frame, the cuts with l4 are the longest ones (a suffix of its kept rows, in length order).
    kept_per_frame = np.bincount(frame_of_row, minlength=len(frames))
    l4_per_frame = np.bincount(frame_of_row[l4], minlength=len(frames))
    assert (l4_per_frame > 0).all()
    for i in range(len(frames)):
        rows, without_l4 = l4[frame_of_row == i], kept_per_frame[i] - l4_per_frame[i]
        assert rows[without_l4:].all() and not rows[:without_l4].any()
    # Every frame is TCP, UDP or ICMP, so every kept row without l4 had its transport header cut.
    assert decoded.l4_truncated == int(np.count_nonzero(~l4))
