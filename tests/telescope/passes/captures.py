"""Hand-built darknet captures for the pass tests: real pcap files written by iotscope's writer."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from iotscope.capture.writer import block_from_frames, write_pcap
from tests.decode.pcaps import ETH_IPV4, ETH_IPV6, ethernet, icmp, ipv4, ipv6, tcp, udp

LINKTYPE_ETHERNET = 1
SYN, ACK, RST = 0x02, 0x10, 0x04
DARKNET = "198.18.0.0/15"


def at(text: str) -> int:
    """µs since the epoch of an ISO time, UTC ("2016-09-01T10:59:00")."""
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1_000_000)


def seconds(s: float) -> int:
    return round(s * 1_000_000)


def syn(src: str, dst: str, dport: int, seq: int = 1) -> bytes:
    return ethernet(ipv4(src, dst, tcp(40000, dport, SYN, seq=seq), 6), ETH_IPV4)


def syn6(src: str, dst: str, dport: int) -> bytes:
    return ethernet(ipv6(src, dst, tcp(40000, dport, SYN, seq=1), 6), ETH_IPV6)


def synack(victim: str, dst: str, service: int, client_port: int = 5555) -> bytes:
    """A DoS victim's reply (from its attacked ``service``) to a spoofed darknet address."""
    return ethernet(ipv4(victim, dst, tcp(service, client_port, SYN | ACK, seq=7), 6), ETH_IPV4)


def synack6(victim: str, dst: str, service: int, client_port: int = 5555) -> bytes:
    """An IPv6 DoS victim's reply (from its attacked ``service``) to a spoofed darknet address."""
    return ethernet(ipv6(victim, dst, tcp(service, client_port, SYN | ACK, seq=7), 6), ETH_IPV6)


def unreachable(sender: str, dst: str) -> bytes:
    return ethernet(ipv4(sender, dst, icmp(3, 1, b"\x00" * 32), 1), ETH_IPV4)


def udp_probe(src: str, dst: str, dport: int) -> bytes:
    return ethernet(ipv4(src, dst, udp(5353, dport, b"x"), 17), ETH_IPV4)


def darknet_address(i: int) -> str:
    """The i-th address of the darknet 198.18.0.0/15."""
    return f"198.{18 + (i >> 16 & 1)}.{i >> 8 & 255}.{i & 255}"


def write_capture(path: Path, packets: list[tuple[int, bytes]]) -> Path:
    """A pcap of (µs timestamp, Ethernet frame) pairs, in time order."""
    packets = sorted(packets, key=lambda p: p[0])
    block = block_from_frames([f for _, f in packets], [t for t, _ in packets], LINKTYPE_ETHERNET)
    write_pcap(path, block)
    return path


def iotscope(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "iotscope", *args], check=False, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"iotscope {args} exited {result.returncode}: {result.stderr}")
    return result
