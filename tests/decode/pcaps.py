"""Test helpers: hand-built frames, real pcap files (dpkt's writer), and tshark's view of them.

tshark is the independent decoder every decode test compares against; dpkt writes and reads the
files so that these tests do not depend on iotscope's own capture reader.
"""

from __future__ import annotations

import socket
import struct
import subprocess
from pathlib import Path

import dpkt
import numpy as np

from iotscope.capture import CaptureBlock
from iotscope.capture.writer import block_from_frames
from iotscope.decode import DecodedBlock, decode_block

MAC_A, MAC_B = b"\x02\x00\x00\x00\x00\x01", b"\x02\x00\x00\x00\x00\x02"
ETH_IPV4, ETH_IPV6, ETH_ARP = 0x0800, 0x86DD, 0x0806


def ipv4(src: str, dst: str, payload: dpkt.Packet | bytes, proto: int, **fields) -> bytes:
    """An IPv4 packet (checksums computed by dpkt); ``fields`` go to ``dpkt.ip.IP``."""
    packet = dpkt.ip.IP(src=socket.inet_aton(src), dst=socket.inet_aton(dst), p=proto, data=payload, **fields)
    return bytes(packet)


def ipv6(src: str, dst: str, payload: bytes, next_header: int, hlim: int = 64) -> bytes:
    """An IPv6 packet: fixed header built by hand (dpkt rewrites ``nxt`` when given extension headers)."""
    header = struct.pack(">IHBB", 6 << 28, len(payload), next_header, hlim)
    return header + socket.inet_pton(socket.AF_INET6, src) + socket.inet_pton(socket.AF_INET6, dst) + payload


def tcp(sport: int, dport: int, flags: int, seq: int = 0, win: int = 1024, opts: bytes = b"") -> bytes:
    return bytes(dpkt.tcp.TCP(sport=sport, dport=dport, flags=flags, seq=seq, win=win, opts=opts,
                              off=5 + len(opts) // 4))


def udp(sport: int, dport: int, payload: bytes = b"") -> bytes:
    return bytes(dpkt.udp.UDP(sport=sport, dport=dport, data=payload, ulen=8 + len(payload)))


def icmp(type_: int, code: int, payload: bytes = b"\x00\x01\x00\x01") -> bytes:
    return bytes(dpkt.icmp.ICMP(type=type_, code=code, data=payload))


def ethernet(payload: bytes, ethertype: int, vlan_tags: tuple[tuple[int, int], ...] = ()) -> bytes:
    """Ethernet II; ``vlan_tags`` are (TPID, VLAN id) pairs, outermost first."""
    tags = b"".join(struct.pack(">HH", tpid, vid) for tpid, vid in vlan_tags)
    return MAC_B + MAC_A + tags + struct.pack(">H", ethertype) + payload


def sll(payload: bytes, protocol: int) -> bytes:
    """Linux cooked capture v1: type, ARPHRD, address length, 8-byte address, protocol."""
    return struct.pack(">HHH8sH", 0, 1, 6, MAC_A + b"\0\0", protocol) + payload


def sll2(payload: bytes, protocol: int) -> bytes:
    """Linux cooked capture v2: protocol, reserved, ifindex, ARPHRD, type, address length, address."""
    return struct.pack(">HHIHBB8s", protocol, 0, 2, 1, 0, 6, MAC_A + b"\0\0") + payload


def write_pcap(path: Path, frames: list[bytes], linktype: int) -> Path:
    with open(path, "wb") as f:
        writer = dpkt.pcap.Writer(f, snaplen=65535, linktype=linktype)
        for i, frame in enumerate(frames):
            writer.writepkt(frame, ts=1_700_000_000 + i / 1000)
    return path


def read_block(path: Path) -> CaptureBlock:
    """The file's records as one block, read by dpkt (not by iotscope's reader)."""
    with open(path, "rb") as f:
        reader = dpkt.pcap.Reader(f)
        linktype = reader.datalink()
        records = list(reader)
    ts = [round(t * 1_000_000) for t, _ in records]
    return block_from_frames([bytes(b) for _, b in records], ts, linktype)


def decode_file(path: Path) -> DecodedBlock:
    return decode_block(read_block(path))


TSHARK_FIELDS = (
    "ip.version", "ip.src", "ip.dst", "ip.proto", "ip.id", "ip.ttl", "ip.len",
    "ipv6.src", "ipv6.dst", "ipv6.hlim", "ipv6.plen",
    "tcp.srcport", "tcp.dstport", "tcp.flags", "tcp.seq_raw", "tcp.window_size_value",
    "udp.srcport", "udp.dstport", "icmp.type", "icmp.code", "icmpv6.type", "icmpv6.code",
)


def tshark_frames(path: Path) -> list[dict[str, str]]:
    """tshark's first occurrence of each field in ``TSHARK_FIELDS``, one dict per frame ('' = absent).

    Reassembly is off so that a lone fragment is dissected as it is, like the kernel does.
    """
    cmd = ["tshark", "-n", "-r", str(path), "-o", "ip.defragment:FALSE", "-o", "ipv6.defragment:FALSE",
           "-T", "fields", "-E", "separator=/t", "-E", "occurrence=f"]
    for field in TSHARK_FIELDS:
        cmd += ["-e", field]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return [dict(zip(TSHARK_FIELDS, line.split("\t"))) for line in out.splitlines()]


def _num(text: str, base: int = 10) -> int:
    return int(text, base) if text else 0


def expected_row(frame: dict[str, str], l4: bool) -> dict[str, object]:
    """The kernel's columns for a frame, derived from tshark's fields (transport only when ``l4``)."""
    if frame["ip.src"]:
        row: dict[str, object] = {
            "ip_version": 4,
            "src": int.from_bytes(socket.inet_aton(frame["ip.src"]), "big"),
            "dst": int.from_bytes(socket.inet_aton(frame["ip.dst"]), "big"),
            "src6": bytes(16), "dst6": bytes(16),
            "proto": _num(frame["ip.proto"]), "ip_id": _num(frame["ip.id"], 16),
            "ttl": _num(frame["ip.ttl"]), "ip_len": _num(frame["ip.len"]),
        }
    else:
        row = {
            "ip_version": 6, "src": 0, "dst": 0,
            "src6": socket.inet_pton(socket.AF_INET6, frame["ipv6.src"]),
            "dst6": socket.inet_pton(socket.AF_INET6, frame["ipv6.dst"]),
            "proto": 6 if frame["tcp.srcport"] else 17 if frame["udp.srcport"] else 58 if frame["icmpv6.type"] else -1,
            "ip_id": 0, "ttl": _num(frame["ipv6.hlim"]), "ip_len": _num(frame["ipv6.plen"]) + 40,
        }
    transport = dict.fromkeys(("sport", "dport", "icmp_type", "icmp_code", "tcp_flags", "seq", "win"), 0)
    if l4:
        proto = row["proto"]
        if proto == 6:
            transport.update(
                sport=_num(frame["tcp.srcport"]), dport=_num(frame["tcp.dstport"]),
                tcp_flags=_num(frame["tcp.flags"], 16) & 0xFF, seq=_num(frame["tcp.seq_raw"]),
                win=_num(frame["tcp.window_size_value"]),
            )
        elif proto == 17:
            transport.update(sport=_num(frame["udp.srcport"]), dport=_num(frame["udp.dstport"]))
        elif proto == 1:
            transport.update(icmp_type=_num(frame["icmp.type"]), icmp_code=_num(frame["icmp.code"]))
        elif proto == 58:
            transport.update(icmp_type=_num(frame["icmpv6.type"]), icmp_code=_num(frame["icmpv6.code"]))
    row.update(transport)
    row["l4"] = l4
    return row


def decoded_row(decoded: DecodedBlock, k: int) -> dict[str, object]:
    """Row ``k`` of the decoded columns as plain Python values, keyed like ``expected_row``."""
    row: dict[str, object] = {}
    for name, column in decoded.columns.items():
        if name == "ts":
            continue
        value = column[k]
        row[name] = bytes(value) if isinstance(value, np.ndarray) else value.item()
    return row


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


class Case:
    """One hand-built frame and what the kernel must do with it.

    ``skip``: the reason it is dropped; otherwise it is kept with ``l4`` as given, and its fields must
    equal tshark's (``override`` replaces expectations tshark cannot give, e.g. the upper-layer
    protocol of an IPv6 fragment that tshark leaves undissected).
    """

    def __init__(self, name: str, frame: bytes, *, l4: bool = True, skip: str | None = None, **override: object):
        self.name, self.frame, self.l4, self.skip, self.override = name, frame, l4, skip, override


def check_cases(tmp_path: Path, linktype: int, cases: list[Case]) -> DecodedBlock:
    """Write the cases to one pcap, decode it, and compare every kept row field by field with tshark."""
    path = write_pcap(tmp_path / f"linktype{linktype}.pcap", [c.frame for c in cases], linktype)
    decoded = decode_file(path)
    frames = tshark_frames(path)
    assert len(frames) == len(cases)
    kept = [(c, f) for c, f in zip(cases, frames) if c.skip is None]
    assert len(decoded) == len(kept), [c.name for c, _ in kept]
    for k, (case, frame) in enumerate(kept):
        expected = {**expected_row(frame, case.l4), **case.override}
        assert decoded_row(decoded, k) == expected, case.name
    reasons = {reason: sum(c.skip == reason for c in cases) for reason in decoded.skipped}
    assert decoded.skipped == reasons
    return decoded
