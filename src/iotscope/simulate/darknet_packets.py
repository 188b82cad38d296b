"""The darknet capture itself: a :class:`~iotscope.simulate.darknet_sources.SourcePlan` turned into
packets, one bounded time window at a time, all numpy array code.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from iotscope.capture import CaptureBlock
from iotscope.ip_protocols import PROTO_TCP, PROTO_UDP
from iotscope.simulate.darknet_config import KINDS, DarknetConfig
from iotscope.simulate.darknet_sources import BACKSCATTER_STYLES, NOISE_STYLES, PROFILES, SourcePlan, draw_from
from iotscope.simulate.darknet_truth import SourceExtent
from iotscope.simulate.frames import LAYOUT_CODE, UDP_PROBE_PAYLOADS, PacketFields, build_block

#: Packets generated and written per time window. This bounds memory: a window costs a few hundred
#: bytes per packet at its peak (5M or 10M packets peak at about 0.55 GB RSS).
CHUNK_PACKETS = 1_000_000

_UDP_SERVICES = (53, 123, 27015, 3074)  # services whose floods are UDP, answered by port unreachable

TCP_FIN, TCP_SYN, TCP_RST, TCP_PSH, TCP_ACK, TCP_URG = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20


def generate_blocks(config: DarknetConfig, plan: SourcePlan,
                    extent: SourceExtent | None = None) -> Iterator[CaptureBlock]:
    """The capture, window by window, as Ethernet blocks in timestamp order (at least one block)."""
    darknet = config.validate()
    rng = np.random.default_rng([config.seed, 1])
    edges = _window_edges(config.duration_us, int(plan.packets.sum()))
    for lo, hi, counts in zip(edges[:-1], edges[1:], _window_counts(rng, plan, edges), strict=True):
        sid = np.repeat(np.arange(len(plan), dtype=np.int64), counts)
        begin = np.maximum(plan.start, lo)[sid]
        span = np.minimum(plan.end, hi)[sid] - begin
        ts = begin + (rng.random(len(sid)) * span).astype(np.int64)
        if extent is not None:
            extent.update(sid, ts, counts)
        order = np.argsort(ts, kind="stable")
        sid, ts = sid[order], ts[order] + config.start_us
        yield build_block(_packet_fields(rng, plan, sid, ts, darknet))


def _window_counts(rng: np.random.Generator, plan: SourcePlan, edges: np.ndarray) -> Iterator[np.ndarray]:
    """Packets of each source in each time window, window by window (a multinomial split by overlap).

    Drawn as a chain of binomials so that only one window's counts exist at a time.
    """
    remaining = plan.packets.copy()
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        begin = np.maximum(plan.start, lo)
        overlap = np.clip(np.minimum(plan.end, hi) - begin, 0, None)
        rest = np.clip(plan.end - begin, 0, None)
        p = np.divide(overlap, rest, out=np.zeros(len(plan), dtype=np.float64), where=rest > 0)
        counts = rng.binomial(remaining, np.clip(p, 0.0, 1.0))
        remaining -= counts
        yield counts


def _packet_fields(rng: np.random.Generator, plan: SourcePlan, sid: np.ndarray, ts: np.ndarray,
                   darknet: tuple[int, int]) -> PacketFields:
    """Header fields of every packet in a window, by the behaviour of the source that sends it."""
    n = len(sid)
    darknet_first, darknet_size = darknet
    kind = plan.kind[sid]
    style = plan.style[sid]
    dst = (darknet_first + rng.integers(0, darknet_size, n)).astype(np.uint32)
    f = PacketFields(
        ts_us=ts,
        layout=np.full(n, LAYOUT_CODE["tcp_bare"], dtype=np.uint8),
        src=plan.src[sid],
        dst=dst,
        ttl=plan.ttl[sid],
        ip_id=rng.integers(0, 65536, n, dtype=np.uint16),
        dont_fragment=np.zeros(n, dtype=bool),
        sport=rng.integers(32768, 61000, n, dtype=np.uint16),  # Linux ephemeral range
        dport=plan.port[sid],
        seq=rng.integers(0, 1 << 32, n, dtype=np.uint32),
        ack=np.zeros(n, dtype=np.uint32),
        tcp_flags=np.full(n, TCP_SYN, dtype=np.uint8),
        win=plan.win[sid],
        icmp_type=np.zeros(n, dtype=np.uint8),
        icmp_code=np.zeros(n, dtype=np.uint8),
        quote_proto=np.zeros(n, dtype=np.uint8),
    )
    is_kind = {k: kind == code for code, k in enumerate(KINDS)}
    own_sport = plan.own_sport[sid]

    m = is_kind["mirai"]
    f.seq[m] = f.dst[m]
    f.dport[m] = np.where(rng.random(int(m.sum())) < 0.1, 2323, 23)
    f.dport[m & plan.telnet_only[sid]] = 23
    f.sport[m] = own_sport[m]

    f.ip_id[is_kind["zmap"]] = 54321

    m = is_kind["masscan"]
    f.dport[m] = draw_from(rng, PROFILES["masscan"].ports, int(m.sum()))
    f.sport[m] = own_sport[m]
    f.ip_id[m] = (f.dst[m] ^ f.dport[m] ^ f.seq[m]) & 0xFFFF

    m = is_kind["iot_worm"] | is_kind["ssh_scanner"]
    f.layout[m] = LAYOUT_CODE["tcp_linux"]
    f.dont_fragment[m] = True

    m = is_kind["pc_scanner"]
    f.layout[m] = LAYOUT_CODE["tcp_windows"]
    f.dont_fragment[m] = True
    f.sport[m] = rng.integers(49152, 65536, int(m.sum()), dtype=np.uint16)  # Windows ephemeral range

    _backscatter_fields(rng, f, is_kind["backscatter_victim"], style)

    m = is_kind["udp_prober"]
    for port in UDP_PROBE_PAYLOADS:
        f.layout[m & (f.dport == port)] = LAYOUT_CODE[f"udp_{port}"]

    m = is_kind["icmp_prober"]
    f.layout[m] = LAYOUT_CODE["icmp_echo"]
    f.icmp_type[m] = 8
    f.dont_fragment[m] = True
    f.seq[m] = (own_sport[m].astype(np.uint32) << 16) | (f.seq[m] & 0xFFFF)  # ping id fixed per source

    _noise_fields(rng, f, is_kind["noise"], style)
    return f


def _backscatter_fields(rng: np.random.Generator, f: PacketFields, m: np.ndarray, style: np.ndarray) -> None:
    """Victims' replies to spoofed floods: from the attacked service port to the spoofed address."""
    service = f.dport[m].copy()
    f.sport[m] = service
    f.dport[m] = rng.integers(1024, 65536, int(m.sum()), dtype=np.uint16)  # the spoofed source port
    f.dont_fragment[m] = True
    synack = m & (style == BACKSCATTER_STYLES.index("synack"))
    rst = m & (style == BACKSCATTER_STYLES.index("rst"))
    # SYN-ACK victims also reset some half-open connections when their backlog overflows.
    overflow = synack & (rng.random(len(m)) < 0.1)
    synack &= ~overflow
    rst |= overflow
    f.layout[synack] = LAYOUT_CODE["tcp_mss"]
    f.tcp_flags[synack] = TCP_SYN | TCP_ACK
    f.ack[synack] = rng.integers(1, 1 << 32, int(synack.sum()), dtype=np.uint32)
    with_ack = rst & (rng.random(len(m)) < 0.7)
    f.tcp_flags[rst] = np.where(with_ack[rst], TCP_RST | TCP_ACK, TCP_RST)
    f.ack[with_ack] = rng.integers(1, 1 << 32, int(with_ack.sum()), dtype=np.uint32)
    f.seq[with_ack] = 0
    f.win[rst] = 0
    icmp = m & (style == BACKSCATTER_STYLES.index("icmp_unreachable"))
    udp_flood = np.isin(f.sport, _UDP_SERVICES)
    f.layout[icmp] = LAYOUT_CODE["icmp_error"]
    f.icmp_type[icmp] = 3
    f.icmp_code[icmp] = np.where(udp_flood[icmp], 3, np.where(rng.random(int(icmp.sum())) < 0.5, 13, 1))
    f.quote_proto[icmp] = np.where(udp_flood[icmp], PROTO_UDP, PROTO_TCP)
    # The quoted packet went from the spoofed darknet address to the service: swap the ports back.
    f.sport[icmp], f.dport[icmp] = f.dport[icmp], service[icmp[m]]
    f.dont_fragment[icmp] = False


def _noise_fields(rng: np.random.Generator, f: PacketFields, m: np.ndarray, style: np.ndarray) -> None:
    """What telescope noise filters are for: odd flags, port 0, TTL >= 200, spoofed and looped sources."""
    def styled(name: str) -> np.ndarray:
        return m & (style == NOISE_STYLES.index(name))

    f.dport[m] = rng.choice(np.array([23, 80, 443, 8080, 22], dtype=np.uint16), int(m.sum()))
    f.dport[styled("port_zero")] = 0
    f.tcp_flags[styled("xmas")] = TCP_FIN | TCP_PSH | TCP_URG
    f.tcp_flags[styled("null_scan")] = 0
    f.tcp_flags[styled("syn_fin")] = TCP_SYN | TCP_FIN
    looped = styled("src_is_dst")
    f.dst[looped] = f.src[looped]


def _window_edges(duration: int, packets: int) -> np.ndarray:
    windows = max(1, -(-packets // CHUNK_PACKETS))
    return np.linspace(0, duration, windows + 1).astype(np.int64)
