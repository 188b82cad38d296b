"""Turn columns of packet fields into Ethernet frames with correct checksums, all packets at once.

Millions of simulated packets must become bytes in seconds, so frames are never assembled one by one:
each packet belongs to a *layout* (a fixed frame shape: bare TCP SYN, Linux SYN with options, UDP with
a given payload, ICMP echo, ICMP unreachable quoting a packet ...). Packets of one layout are a numpy
structured array with big-endian fields laid directly over the output buffer, so filling a field is
one array assignment and the buffer is the frame bytes. Checksums (IPv4 header, TCP/UDP with the
pseudo-header, ICMP, and the IPv4 header quoted inside ICMP errors) are one's-complement sums over
the rows of that buffer. The resulting :class:`CaptureBlock` keeps records in timestamp order through
its offsets, even though the bytes are grouped by layout.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from iotscope.capture import CaptureBlock
from iotscope.ip_protocols import PROTO_ICMP, PROTO_TCP, PROTO_UDP

LINKTYPE_ETHERNET = 1
SENSOR_MAC = bytes.fromhex("020000000001")  # locally administered: the telescope's sensor port
ROUTER_MAC = bytes.fromhex("020000000002")  # the upstream router delivering darknet traffic
ETH_HEADER = 14
IP_HEADER = 20
DONT_FRAGMENT = 0x4000

_ETH_IP = [
    ("eth_dst", "u1", (6,)), ("eth_src", "u1", (6,)), ("ethertype", ">u2"),
    ("ver_ihl", "u1"), ("tos", "u1"), ("tot_len", ">u2"), ("ip_id", ">u2"), ("frag", ">u2"),
    ("ttl", "u1"), ("proto", "u1"), ("ip_csum", ">u2"), ("src", ">u4"), ("dst", ">u4"),
]
_TCP = [
    ("sport", ">u2"), ("dport", ">u2"), ("seq", ">u4"), ("ack", ">u4"), ("off_flags", ">u2"),
    ("win", ">u2"), ("l4_csum", ">u2"), ("urg", ">u2"),
]

#: SYN options of common stacks: masscan/backscatter SYN-ACK (MSS only), Windows, Linux (with timestamps).
MSS_OPTION = bytes.fromhex("020405b4")
WINDOWS_SYN_OPTIONS = bytes.fromhex("020405b4010303080101" "0402")
LINUX_OPTIONS_HEAD = bytes.fromhex("020405b404020" "80a")  # MSS 1460, SACK permitted, TS kind/len
LINUX_OPTIONS_TAIL = bytes.fromhex("01030307")  # NOP, window scale 7

ICMP_ECHO_DATA = bytes(range(0x10, 0x48))  # 56 bytes, the iputils ping pattern


@dataclass(frozen=True)
class Layout:
    """One frame shape: its record dtype, transport, and the constant bytes every such frame carries."""

    name: str
    dtype: np.dtype
    transport: str  # "tcp", "udp", "icmp_echo" or "icmp_error"
    constants: tuple[tuple[str, bytes], ...] = ()

    @property
    def length(self) -> int:
        return self.dtype.itemsize


def _tcp_layout(name: str, options: list[tuple], constants: tuple[tuple[str, bytes], ...] = ()) -> Layout:
    return Layout(name, np.dtype(_ETH_IP + _TCP + options), "tcp", constants)


def _udp_layout(port: int, payload: bytes) -> Layout:
    fields = _ETH_IP + [("sport", ">u2"), ("dport", ">u2"), ("udp_len", ">u2"), ("l4_csum", ">u2"),
                        ("payload", "u1", (len(payload),))]
    return Layout(f"udp_{port}", np.dtype(fields), "udp", (("payload", payload),))


#: Payloads of the UDP probes seen in darknets, one well-formed request per service.
UDP_PROBE_PAYLOADS: dict[int, bytes] = {
    53: bytes.fromhex("a1b2000000010000000000000776657273696f6e0462696e640000100003"),  # version.bind TXT CH
    123: bytes.fromhex("1700032a") + bytes(4),  # NTP mode 7 MON_GETLIST_1 (monlist)
    161: bytes.fromhex("302902010004067075626c6963a01c0204313233340201000201003"
                       "00e300c06082b060102010101000500"),  # SNMPv1 get sysDescr.0, community public
    1900: b'M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: "ssdp:discover"\r\nMX: 1\r\nST: ssdp:all\r\n\r\n',
    5060: (b"OPTIONS sip:100@invalid SIP/2.0\r\nVia: SIP/2.0/UDP 0.0.0.0:5060;branch=z9hG4bK-1\r\n"
           b"Max-Forwards: 70\r\nTo: <sip:100@invalid>\r\nFrom: <sip:100@invalid>;tag=1\r\n"
           b"Call-ID: 1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"),
    137: (bytes.fromhex("80f00010000100000000000020") + b"CKAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
          + bytes.fromhex("0000210001")),  # NetBIOS NBSTAT query for "*"
    11211: bytes.fromhex("0001000000010000") + b"stats\r\n",  # memcached UDP frame header + stats
}

LAYOUTS: tuple[Layout, ...] = (
    _tcp_layout("tcp_bare", []),
    _tcp_layout("tcp_mss", [("options", "u1", (4,))], (("options", MSS_OPTION),)),
    _tcp_layout("tcp_windows", [("options", "u1", (12,))], (("options", WINDOWS_SYN_OPTIONS),)),
    _tcp_layout("tcp_linux", [("opt_head", "u1", (8,)), ("tsval", ">u4"), ("tsecr", ">u4"), ("opt_tail", "u1", (4,))],
                (("opt_head", LINUX_OPTIONS_HEAD), ("opt_tail", LINUX_OPTIONS_TAIL))),
    Layout("icmp_echo", np.dtype(_ETH_IP + [("icmp_type", "u1"), ("icmp_code", "u1"), ("l4_csum", ">u2"),
                                            ("echo_id", ">u2"), ("echo_seq", ">u2"),
                                            ("payload", "u1", (len(ICMP_ECHO_DATA),))]),
           "icmp_echo", (("payload", ICMP_ECHO_DATA),)),
    Layout("icmp_error", np.dtype(_ETH_IP + [
        ("icmp_type", "u1"), ("icmp_code", "u1"), ("l4_csum", ">u2"), ("unused", ">u4"),
        ("q_ver_ihl", "u1"), ("q_tos", "u1"), ("q_tot_len", ">u2"), ("q_id", ">u2"), ("q_frag", ">u2"),
        ("q_ttl", "u1"), ("q_proto", "u1"), ("q_csum", ">u2"), ("q_src", ">u4"), ("q_dst", ">u4"),
        ("q_sport", ">u2"), ("q_dport", ">u2"), ("q_word", ">u4")]), "icmp_error"),
    *(_udp_layout(port, payload) for port, payload in UDP_PROBE_PAYLOADS.items()),
)
LAYOUT_CODE: dict[str, int] = {layout.name: code for code, layout in enumerate(LAYOUTS)}
LAYOUT_LENGTHS = np.array([layout.length for layout in LAYOUTS], dtype=np.int64)


@dataclass
class PacketFields:
    """Per-packet header fields, one array each, all the same length and in capture order.

    ``layout`` is an index into :data:`LAYOUTS` and decides which fields matter: TCP uses ports,
    ``seq``, ``ack``, ``tcp_flags`` and ``win``; UDP the ports; ICMP echo takes its identifier and
    sequence number from the high and low halves of ``seq``; ICMP errors quote the packet that
    provoked them, sent from ``dst`` to ``src`` with protocol ``quote_proto``, ports ``sport`` ->
    ``dport`` and TCP sequence number ``seq``.
    """

    ts_us: np.ndarray  # int64
    layout: np.ndarray  # uint8
    src: np.ndarray  # uint32
    dst: np.ndarray  # uint32
    ttl: np.ndarray  # uint8
    ip_id: np.ndarray  # uint16
    dont_fragment: np.ndarray  # bool
    sport: np.ndarray  # uint16
    dport: np.ndarray  # uint16
    seq: np.ndarray  # uint32
    ack: np.ndarray  # uint32
    tcp_flags: np.ndarray  # uint8
    win: np.ndarray  # uint16
    icmp_type: np.ndarray  # uint8
    icmp_code: np.ndarray  # uint8
    quote_proto: np.ndarray  # uint8

    def __len__(self) -> int:
        return int(self.ts_us.shape[0])


def _word_sum(rows: np.ndarray, start: int, stop: int) -> np.ndarray:
    """Sum of the big-endian 16-bit words in ``rows[:, start:stop]`` (an odd tail byte padded with 0)."""
    even = stop - (stop - start) % 2
    total = rows[:, start:even].view(">u2").sum(axis=1, dtype=np.uint64)
    if even != stop:
        total += rows[:, even].astype(np.uint64) << np.uint64(8)
    return total


def _fold(total: np.ndarray) -> np.ndarray:
    """The Internet checksum of a one's-complement sum: fold carries, then complement."""
    for _ in range(3):
        total = (total & np.uint64(0xFFFF)) + (total >> np.uint64(16))
    return (~total & np.uint64(0xFFFF)).astype(np.uint16)


def _pseudo_header_sum(src: np.ndarray, dst: np.ndarray, proto: int, length: int) -> np.ndarray:
    s = src.astype(np.uint64)
    d = dst.astype(np.uint64)
    mask = np.uint64(0xFFFF)
    return (s >> np.uint64(16)) + (s & mask) + (d >> np.uint64(16)) + (d & mask) + np.uint64(proto + length)


_PROTO = {"tcp": PROTO_TCP, "udp": PROTO_UDP, "icmp_echo": PROTO_ICMP, "icmp_error": PROTO_ICMP}


def _fill(rec: np.ndarray, rows: np.ndarray, layout: Layout, f: PacketFields, idx: np.ndarray) -> None:
    """Write every header field of the packets ``idx`` (all of ``layout``) into their records."""
    rec["eth_dst"] = np.frombuffer(SENSOR_MAC, dtype=np.uint8)
    rec["eth_src"] = np.frombuffer(ROUTER_MAC, dtype=np.uint8)
    rec["ethertype"] = 0x0800
    rec["ver_ihl"] = 0x45
    rec["tot_len"] = layout.length - ETH_HEADER
    rec["ip_id"] = f.ip_id[idx]
    rec["frag"] = np.where(f.dont_fragment[idx], DONT_FRAGMENT, 0)
    rec["ttl"] = f.ttl[idx]
    rec["proto"] = _PROTO[layout.transport]
    src, dst = f.src[idx], f.dst[idx]
    rec["src"] = src
    rec["dst"] = dst
    for name, value in layout.constants:
        rec[name] = np.frombuffer(value, dtype=np.uint8)
    l4_start = ETH_HEADER + IP_HEADER
    l4_length = layout.length - l4_start
    if layout.transport == "tcp":
        rec["sport"] = f.sport[idx]
        rec["dport"] = f.dport[idx]
        rec["seq"] = f.seq[idx]
        rec["ack"] = f.ack[idx]
        rec["off_flags"] = ((l4_length // 4) << 12) | f.tcp_flags[idx].astype(np.uint16)
        rec["win"] = f.win[idx]
        if "tsval" in layout.dtype.names:
            rec["tsval"] = (f.ts_us[idx] // 1000).astype(np.uint32)  # a 1 kHz TCP timestamp clock
        rec["l4_csum"] = _fold(_pseudo_header_sum(src, dst, 6, l4_length) + _word_sum(rows, l4_start, layout.length))
    elif layout.transport == "udp":
        rec["sport"] = f.sport[idx]
        rec["dport"] = f.dport[idx]
        rec["udp_len"] = l4_length
        checksum = _fold(_pseudo_header_sum(src, dst, 17, l4_length) + _word_sum(rows, l4_start, layout.length))
        rec["l4_csum"] = np.where(checksum == 0, 0xFFFF, checksum)  # 0 means "no checksum" in UDP
    elif layout.transport == "icmp_echo":
        rec["icmp_type"] = f.icmp_type[idx]
        rec["icmp_code"] = f.icmp_code[idx]
        seq = f.seq[idx]
        rec["echo_id"] = seq >> 16
        rec["echo_seq"] = seq & 0xFFFF
        rec["l4_csum"] = _fold(_word_sum(rows, l4_start, layout.length))
    else:
        _fill_quoted(rec, rows, f, idx, l4_start)
    rec["ip_csum"] = _fold(_word_sum(rows, ETH_HEADER, ETH_HEADER + IP_HEADER))


def _fill_quoted(rec: np.ndarray, rows: np.ndarray, f: PacketFields, idx: np.ndarray, l4_start: int) -> None:
    """ICMP error: the IPv4 header and first 8 bytes of the (spoofed) packet that reached the victim."""
    rec["icmp_type"] = f.icmp_type[idx]
    rec["icmp_code"] = f.icmp_code[idx]
    proto = f.quote_proto[idx]
    tcp = proto == PROTO_TCP
    seq = f.seq[idx]
    quoted_length = np.where(tcp, 40, 36)  # a bare SYN, or a UDP datagram with 8 bytes of data
    rec["q_ver_ihl"] = 0x45
    rec["q_tot_len"] = quoted_length
    rec["q_id"] = seq >> 16
    rec["q_ttl"] = 32 + (seq & 0x1F)  # what was left of the flood packet's TTL at the victim
    rec["q_proto"] = proto
    rec["q_src"] = f.dst[idx]
    rec["q_dst"] = f.src[idx]
    rec["q_sport"] = f.sport[idx]
    rec["q_dport"] = f.dport[idx]
    rec["q_word"] = np.where(tcp, seq, (quoted_length - IP_HEADER).astype(np.uint32) << 16)
    quote = l4_start + 8
    rec["q_csum"] = _fold(_word_sum(rows, quote, quote + IP_HEADER))
    rec["l4_csum"] = _fold(_word_sum(rows, l4_start, rows.shape[1]))


def build_block(f: PacketFields) -> CaptureBlock:
    """Frames for every packet in ``f``, as one Ethernet :class:`CaptureBlock` in ``f``'s order."""
    n = len(f)
    counts = np.bincount(f.layout, minlength=len(LAYOUTS))
    group_bytes = counts * LAYOUT_LENGTHS
    bases = np.concatenate([[0], np.cumsum(group_bytes)[:-1]])
    data = np.zeros(int(group_bytes.sum()), dtype=np.uint8)
    offset = np.empty(n, dtype=np.int64)
    order = np.argsort(f.layout, kind="stable")
    first = 0
    for code, layout in enumerate(LAYOUTS):
        k = int(counts[code])
        if k == 0:
            continue
        idx = order[first:first + k]
        first += k
        base = int(bases[code])
        offset[idx] = base + np.arange(k, dtype=np.int64) * layout.length
        rec = np.ndarray((k,), dtype=layout.dtype, buffer=data, offset=base)
        rows = data[base:base + k * layout.length].reshape(k, layout.length)
        _fill(rec, rows, layout, f, idx)
    caplen = LAYOUT_LENGTHS[f.layout].astype(np.uint32)
    return CaptureBlock(
        data=data,
        offset=offset,
        caplen=caplen,
        wirelen=caplen.copy(),
        ts_us=f.ts_us,
        linktype=np.full(n, LINKTYPE_ETHERNET, dtype=np.uint16),
    )
