"""Randomized: thousands of seeded random-but-valid packets, every field compared with tshark."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from iotscope.decode import DecodedBlock
from tests.decode.pcaps import (
    ETH_IPV4, ETH_IPV6, decode_file, decoded_row, ethernet, expected_row, icmp, ipv4, ipv6, tcp,
    tshark_frames, udp, write_pcap,
)

N_PACKETS = 3000
#: Destination ports without a tunnel dissector in tshark (VXLAN, GTP, Teredo would add inner headers).
DPORTS = (23, 2323, 22, 80, 443, 5555, 7547, 37215, 52869, 8080, 445, 3389, 161, 1900, 123)
ICMP_TYPES = (0, 3, 4, 5, 8, 11, 12, 13, 14, 17, 18, 30)
ICMPV6_TYPES = (1, 2, 3, 4, 128, 129, 135, 136)
IP_OPTIONS = (b"", b"", b"", b"\x94\x04\x00\x00", b"\x01\x01\x01\x00", b"\x07\x07\x04" + bytes(5))


def _v4_address(rng: np.random.Generator) -> tuple[str, int]:
    value = int(rng.integers(0x01000000, 0xDF000000))
    return ".".join(str((value >> s) & 0xFF) for s in (24, 16, 8, 0)), value


def _v6_address(rng: np.random.Generator) -> str:
    groups = rng.integers(0, 0x10000, 7)
    return "2001:" + ":".join(f"{int(g):x}" for g in groups)


def _transport(rng: np.random.Generator, proto: int, seq: int) -> bytes:
    sport, dport = int(rng.integers(1024, 65536)), int(rng.choice(DPORTS))
    if proto == 6:
        opts = b"\x02\x04\x05\xb4" * int(rng.integers(0, 3))
        flags = 0x02 if rng.random() < 0.5 else int(rng.integers(0, 256))  # half are scanners' SYNs
        return tcp(sport, dport, flags, seq=seq, win=int(rng.integers(0, 65536)), opts=opts)
    if proto == 17:
        return udp(sport, dport, rng.bytes(int(rng.integers(0, 30))))
    types = ICMP_TYPES if proto == 1 else ICMPV6_TYPES
    return icmp(int(rng.choice(types)), int(rng.integers(0, 16)), rng.bytes(8))


def random_frames(seed: int, n: int) -> list[bytes]:
    """Ethernet frames: IPv4 (some with options, some VLAN-tagged) and IPv6; TCP, UDP, ICMP(v6).

    A third of IPv4 TCP packets carry Mirai's fingerprint (sequence number = destination address).
    """
    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(n):
        tags = ((0x8100, int(rng.integers(1, 4095))),) if rng.random() < 0.2 else ()
        if rng.random() < 0.75:
            proto = int(rng.choice((6, 6, 6, 17, 1)))
            src, _ = _v4_address(rng)
            dst, dst_value = _v4_address(rng)
            seq = dst_value if rng.random() < 0.33 else int(rng.integers(0, 2**32))
            opts = IP_OPTIONS[int(rng.integers(0, len(IP_OPTIONS)))]
            packet = ipv4(src, dst, _transport(rng, proto, seq), proto, hl=5 + len(opts) // 4, opts=opts,
                          id=int(rng.integers(0, 65536)), ttl=int(rng.integers(1, 256)))
            frames.append(ethernet(packet, ETH_IPV4, tags))
        else:
            proto = int(rng.choice((6, 17, 58)))
            payload = _transport(rng, proto, int(rng.integers(0, 2**32)))
            packet = ipv6(_v6_address(rng), _v6_address(rng), payload, proto, hlim=int(rng.integers(0, 256)))
            frames.append(ethernet(packet, ETH_IPV6, tags))
    return frames


@pytest.fixture(scope="module")
def random_capture(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, DecodedBlock]:
    path = write_pcap(tmp_path_factory.mktemp("random") / "random.pcap", random_frames(7, N_PACKETS), 1)
    return path, decode_file(path)


def test_every_field_matches_tshark(random_capture: tuple[Path, DecodedBlock]) -> None:
    path, decoded = random_capture
    frames = tshark_frames(path)
    assert len(decoded) == len(frames) == N_PACKETS
    assert sum(decoded.skipped.values()) == 0 and decoded.l4_truncated == 0
    mismatches = [k for k, frame in enumerate(frames) if decoded_row(decoded, k) != expected_row(frame, True)]
    assert not mismatches, (mismatches[:5], decoded_row(decoded, mismatches[0]), expected_row(frames[mismatches[0]], True))


def test_mirai_fingerprint_count_matches_tshark_filter(random_capture: tuple[Path, DecodedBlock]) -> None:
    path, decoded = random_capture
    columns = decoded.columns
    syn_only = (columns["tcp_flags"] & 0x17) == 0x02
    ours = int(np.count_nonzero(columns["l4"] & (columns["proto"] == 6) & syn_only & (columns["seq"] == columns["dst"])
                                & (columns["ip_version"] == 4)))
    cmd = ["tshark", "-n", "-r", str(path), "-Y", "tcp.flags & 0x17 == 0x02 && ip[16:4] == tcp[4:4]"]
    theirs = len(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.splitlines())
    assert ours == theirs
    assert ours > 100  # the generator planted enough of them for the count to mean something
