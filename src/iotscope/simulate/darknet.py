"""Synthetic darknet traffic: what a network telescope on a /15 receives, with its ground truth.

The telescope half needs big, realistic captures to test and benchmark against, and tests need to
know which source is which. :func:`simulate_darknet` writes both: a capture (pcap or pcapng, gzip
by name) and ``<capture>.truth.parquet`` with one row per simulated source.

Traffic mix (share of packets, roughly NICTER 2016: about 2/3 of darknet packets target IoT):

============================  =====  ==========================================================
kind                          share  what the packets look like
============================  =====  ==========================================================
``mirai``                     0.50   TCP SYN, seq = destination address, dport 23 / 2323 in 9:1,
                                     per-bot fixed sport and window, random IP ID, TTL 64 - hops
``iot_worm``                  0.16   SYN from a Linux stack to 5555 (ADB), 7547 (TR-069),
                                     37215 (Huawei HG532), 52869 (Realtek), 8080, 81
``ssh_scanner``               0.04   Linux SYN to 22 (brute-force bots)
``zmap``                      0.05   SYN, IP ID 54321, window 65535, TTL 255 - hops, one port per
                                     campaign (443, 80, 22, 23, 8080, 7547)
``masscan``                   0.04   SYN, IP ID = (dst ^ dport ^ seq) & 0xffff, window 1024,
                                     TTL 255 - hops, fixed sport, ports drawn from a top-ports list
``pc_scanner``                0.06   Windows SYN (TTL 128 - hops, window 8192, MSS/WS/SACK
                                     options) to 445, 3389, 1433, 3306, 6379
``backscatter_victim``        0.06   DoS victims answering spoofed floods: SYN-ACK (+ some
                                     RST-ACK), RST / RST-ACK, or ICMP unreachable (type 3) quoting
                                     the spoofed packet; sport = attacked service; each victim is an
                                     episode of minutes with hundreds to thousands of packets
``udp_prober``                0.04   well-formed UDP requests to 53, 123, 161, 1900, 5060, 137,
                                     11211
``icmp_prober``               0.03   ICMP echo requests (ping payload)
``noise``                     0.02   TTL >= 200, port 0, XMAS / NULL / SYN+FIN flags, reserved
                                     (spoofed) sources, source = destination
============================  =====  ==========================================================

ZMap and masscan really send with TTL 255, so their packets arrive with TTL >= 200 like the noise
share's; telling them apart takes their fingerprints, which is the point of having both.

Sources live in allocated address space, weighted by registry toward where each kind really came
from (Mirai: Asia and Latin America; research scanners: North America and Europe), see
:mod:`iotscope.simulate.addresses`. Each source is active over an interval of the run and its packets
arrive uniformly within it (a Poisson process, conditioned on its packet count); with ``outbreak``
most Mirai bots are infected during the run at an exponentially growing rate and stay active, so the
distinct sources on 2323/TCP grow hour by hour as before the 2016 Dyn attack. Everything is drawn
from one seeded generator: the same config gives the same bytes.

The capture is generated in time windows of at most :data:`CHUNK_PACKETS` packets, so memory stays
bounded whatever the packet count; within a window all work is numpy array code.

Ground truth (``<capture>.truth.parquet``, one row per source that sent a packet), what the
analysis passes are tested against:

================  ==================  ==========================================================
column            type                meaning
================  ==================  ==========================================================
``src``           uint32              the source address (host byte order, like ``packets.src``)
``kind``          dictionary string   one of :data:`KINDS`
``style``         dictionary string   backscatter style or noise style, else ``""``
``proto``         uint8               the protocol its packets carry (ICMP for unreachable
                                      backscatter and ping probers)
``dport``         uint16, null        targeted port (Mirai: 23, 1 in 10 packets go to 2323);
                                      null when it varies per packet
``sport``         uint16, null        a backscatter victim's attacked service port
``first_ts``,     timestamp[us, UTC]  first and last packet the source sent
``last_ts``
``packets``       uint64              packets it sent
``tool``          dictionary string   ``mirai``, ``zmap`` or ``masscan`` when every SYN of the
                                      source carries that tool's fingerprint, else null (what
                                      the ``tool`` column says by majority, see
                                      ``iotscope.telescope.fingerprints``)
``episode_start``, timestamp[us, UTC] a backscatter victim's DoS episode: its packets arrive
``episode_end``   , null              uniformly in ``[start, end)``; null for other kinds
``peak_60s``      uint32, null        a victim's most packets in any 60 s ``[t, t + 60 s)``;
                                      with ``packets`` and the episode's length this says
                                      whether it passes the ``attacks`` thresholds
================  ==================  ==========================================================

Schema metadata: ``darknet``, ``seed``, ``hours``, ``outbreak``, ``start`` and, with ``outbreak``,
``outbreak_start`` (ISO 8601) and ``outbreak_start_us`` (epoch µs): the first infection, which is
the run's start unless :attr:`DarknetConfig.outbreak_start` places it later.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from iotscope.capture import CaptureBlock
from iotscope.errors import IotscopeError
from iotscope.simulate.addresses import draw_reserved, draw_sources, prefix_bounds
from iotscope.simulate.capture_file import write_blocks
from iotscope.simulate.frames import LAYOUT_CODE, UDP_PROBE_PAYLOADS, PacketFields, build_block

#: Packets generated and written per time window. This bounds memory: a window costs a few hundred
#: bytes per packet at its peak (5M or 10M packets peak at about 0.55 GB RSS).
CHUNK_PACKETS = 1_000_000

DEFAULT_DARKNET = "198.18.0.0/15"
DEFAULT_START = datetime(2016, 9, 1, tzinfo=UTC)

KINDS: tuple[str, ...] = (
    "mirai", "iot_worm", "ssh_scanner", "zmap", "masscan", "pc_scanner",
    "backscatter_victim", "udp_prober", "icmp_prober", "noise",
)
DEFAULT_MIX: Mapping[str, float] = {
    "mirai": 0.50, "iot_worm": 0.16, "ssh_scanner": 0.04, "zmap": 0.05, "masscan": 0.04,
    "pc_scanner": 0.06, "backscatter_victim": 0.06, "udp_prober": 0.04, "icmp_prober": 0.03,
    "noise": 0.02,
}

_IOT_REGIONS = {"APNIC": 0.42, "LACNIC": 0.25, "RIPE NCC": 0.20, "ARIN": 0.08, "AFRINIC": 0.05}
_RESEARCH_REGIONS = {"ARIN": 0.60, "RIPE NCC": 0.30, "APNIC": 0.10}
_SERVER_REGIONS = {"ARIN": 0.45, "RIPE NCC": 0.30, "APNIC": 0.20, "LACNIC": 0.05}
_GENERIC_REGIONS = {"APNIC": 0.40, "RIPE NCC": 0.28, "ARIN": 0.20, "LACNIC": 0.08, "AFRINIC": 0.04}


@dataclass(frozen=True)
class KindProfile:
    """How one kind of source behaves: how much each source sends, from where, to which ports.

    ``packets_per_source`` is per hour of activity for long-lived sources (bots) and per campaign or
    episode for ``campaign`` kinds (research scans, DoS episodes), whose intervals are drawn apart.
    """

    packets_per_source: float
    regions: Mapping[str, float]
    min_sources: int = 1
    min_packets: int = 1  # packets every source of the kind sends at least (when the share allows)
    campaign: bool = False
    ports: Mapping[int, float] = field(default_factory=dict)


PROFILES: Mapping[str, KindProfile] = {
    "mirai": KindProfile(25, _IOT_REGIONS, min_sources=3),
    "iot_worm": KindProfile(20, _IOT_REGIONS, ports={5555: .25, 7547: .25, 37215: .15, 52869: .10, 8080: .15, 81: .10}),
    "ssh_scanner": KindProfile(30, {"APNIC": 0.50, "RIPE NCC": 0.25, "ARIN": 0.15, "LACNIC": 0.07, "AFRINIC": 0.03},
                               ports={22: 1.0}),
    "zmap": KindProfile(20_000, _RESEARCH_REGIONS, min_sources=2, campaign=True,
                        ports={443: .30, 80: .30, 22: .15, 23: .10, 8080: .10, 7547: .05}),
    "masscan": KindProfile(10_000, _RESEARCH_REGIONS, min_sources=2, campaign=True,
                           ports={80: .2, 443: .2, 8080: .1, 22: .1, 3389: .1, 5900: .1, 8443: .05, 21: .05,
                                  25: .05, 110: .05}),
    "pc_scanner": KindProfile(12, _GENERIC_REGIONS, ports={445: .45, 3389: .25, 1433: .15, 3306: .08, 6379: .07}),
    "backscatter_victim": KindProfile(8_000, _SERVER_REGIONS, min_sources=3, min_packets=30, campaign=True,
                                      ports={80: .40, 443: .25, 53: .15, 22: .05, 25: .05, 27015: .05, 3074: .05}),
    "udp_prober": KindProfile(10, _GENERIC_REGIONS,
                              ports={53: .25, 123: .20, 161: .15, 1900: .15, 5060: .10, 137: .10, 11211: .05}),
    "icmp_prober": KindProfile(8, _GENERIC_REGIONS),
    "noise": KindProfile(6, _GENERIC_REGIONS, min_sources=7),
}

#: Sub-types (``style``) of backscatter victims and of noise sources.
BACKSCATTER_STYLES: tuple[str, ...] = ("synack", "rst", "icmp_unreachable")
NOISE_STYLES: tuple[str, ...] = ("ttl_high", "port_zero", "xmas", "null_scan", "syn_fin", "reserved_source",
                                 "src_is_dst")
_UDP_SERVICES = (53, 123, 27015, 3074)  # services whose floods are UDP, answered by port unreachable

TCP_FIN, TCP_SYN, TCP_RST, TCP_PSH, TCP_ACK, TCP_URG = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20

#: The scanning tool whose fingerprint every SYN of a kind carries (``iotscope.telescope.fingerprints``);
#: kinds not listed send no fingerprint (tool null).
TOOL_OF_KIND: Mapping[str, str] = {"mirai": "mirai", "zmap": "zmap", "masscan": "masscan"}


class SimulationError(IotscopeError, ValueError):
    """A simulation was asked for with impossible settings; the message is one line for the user."""


@dataclass(frozen=True)
class DarknetConfig:
    """What to simulate. The defaults give a reproducible hour toward the RFC 2544 benchmarking /15."""

    packets: int = 1_000_000
    hours: float = 1.0
    seed: int = 0
    darknet: str = DEFAULT_DARKNET
    start: datetime = DEFAULT_START
    outbreak: bool = False
    mix: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_MIX))
    outbreak_growth: float = 30.0  # how many times more new Mirai infections per second at the end than at the start
    #: Fraction of the run before the first infection of the outbreak (0 <= x < 1). ``None`` (the
    #: default, and what every earlier capture used) is 0: infections begin with the run, so there
    #: is no pre-outbreak baseline to detect a change against; set it (e.g. 0.5) for a run with one.
    #: A dated outbreak is the 2016 one: the bots active before it scan 23/TCP only (Mirai's
    #: predecessors), the outbreak's bots add 2323/TCP (1 in 10 SYNs), so 2323 rises from almost nothing.
    outbreak_start: float | None = None

    def validate(self) -> tuple[int, int]:
        """Check every setting; return the darknet's ``(first address, size)``."""
        if self.packets < 0:
            raise SimulationError(f"packets must be >= 0, got {self.packets}")
        if not self.hours > 0:
            raise SimulationError(f"hours must be > 0, got {self.hours}")
        unknown = set(self.mix) - set(KINDS)
        if unknown:
            raise SimulationError(f"unknown traffic kinds {sorted(unknown)}; known: {', '.join(KINDS)}")
        if any(share < 0 for share in self.mix.values()) or sum(self.mix.values()) <= 0:
            raise SimulationError("traffic mix shares must be >= 0 and not all 0")
        if self.outbreak_growth < 1:
            raise SimulationError(f"outbreak_growth must be >= 1, got {self.outbreak_growth}")
        if self.outbreak_start is not None and not 0 <= self.outbreak_start < 1:
            raise SimulationError(f"outbreak_start must be in [0, 1), got {self.outbreak_start}")
        try:
            return prefix_bounds(self.darknet)
        except ValueError as exc:
            raise SimulationError(f"bad darknet prefix: {exc}") from None

    @property
    def start_us(self) -> int:
        start = self.start if self.start.tzinfo else self.start.replace(tzinfo=UTC)
        return int(round(start.timestamp() * 1_000_000))

    @property
    def duration_us(self) -> int:
        return max(1, int(round(self.hours * 3600e6)))

    @property
    def outbreak_onset_us(self) -> int:
        """µs after the run's start when the outbreak's first bot is infected (0 without ``outbreak_start``)."""
        return int(round((self.outbreak_start or 0.0) * self.duration_us))

    @property
    def outbreak_start_us(self) -> int | None:
        """Epoch µs of the outbreak's first infection, ``None`` when ``outbreak`` is off."""
        return self.start_us + self.outbreak_onset_us if self.outbreak else None


@dataclass
class SourcePlan:
    """Every simulated source, one array element each: who it is and when it sends how much."""

    src: np.ndarray  # uint32
    kind: np.ndarray  # uint8, index into KINDS
    style: np.ndarray  # uint8, index into BACKSCATTER_STYLES / NOISE_STYLES, else 0
    port: np.ndarray  # uint16, targeted dport (scanners) or attacked service port (backscatter); 0 = varies
    own_sport: np.ndarray  # uint16, a source port fixed for the source's lifetime (Mirai, masscan, ping id)
    win: np.ndarray  # uint16, TCP window
    ttl: np.ndarray  # uint8, TTL as it arrives at the darknet
    start: np.ndarray  # int64, µs after the run's start
    end: np.ndarray  # int64, exclusive
    packets: np.ndarray  # int64
    telnet_only: np.ndarray  # bool: a Mirai bot that scans 23 only (pre-outbreak bots of a dated outbreak)

    def __len__(self) -> int:
        return int(self.src.shape[0])


@dataclass
class SimulationResult:
    """What :func:`simulate_darknet` wrote, with the counts the CLI summary shows."""

    path: Path
    truth_path: Path
    packets: int
    file_bytes: int
    seconds: float
    packets_by_kind: dict[str, int]
    sources_by_kind: dict[str, int]


def _split_packets(total: int, mix: Mapping[str, float]) -> dict[str, int]:
    """Integer packets per kind that add up to ``total`` exactly (largest remainders)."""
    kinds = [k for k in KINDS if mix.get(k, 0) > 0]
    shares = np.array([mix[k] for k in kinds], dtype=np.float64)
    exact = shares / shares.sum() * total
    counts = np.floor(exact).astype(np.int64)
    counts[np.argsort(-(exact - counts), kind="stable")[: total - int(counts.sum())]] += 1
    return dict(zip(kinds, counts.tolist(), strict=True))


def _activity(rng: np.random.Generator, n: int, profile: KindProfile, duration: int,
              outbreak_growth: float | None, onset: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Start and end (µs into the run) of each source's activity, and whether the outbreak infected it.

    Bots are long-lived: they may have started before the run and may outlive it, and their number
    stays level over the run. Campaigns (scans,
    DoS episodes) are bounded: a research scan takes a good part of the run, a DoS episode 2-20
    minutes. With ``outbreak_growth`` (Mirai in an outbreak) 70% of bots are infected during the run
    at an exponentially growing rate and keep scanning until its end; infections begin ``onset`` µs
    into the run (0: with the run).
    """
    minimum = min(60_000_000, duration // 2 + 1)
    infected = np.zeros(n, dtype=bool)
    if profile.campaign and profile.packets_per_source >= 10_000:  # research scan campaigns
        length = rng.uniform(0.15, 0.6, n) * duration
        start = rng.uniform(0, 1, n) * (duration - length)
    elif profile.campaign:  # DoS episodes
        length = np.minimum(rng.uniform(120e6, 1200e6, n), 0.9 * duration)
        start = rng.uniform(0, 1, n) * (duration - length)
    else:
        # A stationary population: with mean lifetime L, a share L / (L + T) of the sources seen
        # during the run is already active at its start (with an exponential residual lifetime).
        mean_life = 0.8 * duration
        running = rng.random(n) < mean_life / (mean_life + duration)
        start = np.where(running, 0.0, rng.uniform(0, duration, n))
        length = rng.exponential(mean_life, n)
        if outbreak_growth is not None:
            infected = rng.random(n) < 0.7
            g = np.log(outbreak_growth)
            span = duration - onset
            infection = onset + (span * np.log1p(rng.random(n) * np.expm1(g)) / g if g > 0 else rng.random(n) * span)
            start = np.where(infected, infection, start)
            length = np.where(infected, duration, length)
    start = np.clip(start, 0, duration - minimum)
    end = np.clip(start + length, start + minimum, duration)
    return start.astype(np.int64), end.astype(np.int64), infected


def _allocate(rng: np.random.Generator, total: int, weights: np.ndarray, floor: int) -> np.ndarray:
    """Split ``total`` packets over sources in proportion to ``weights``, each getting >= ``floor``."""
    n = len(weights)
    floor = min(floor, total // n)
    return floor + rng.multinomial(total - floor * n, weights / weights.sum()).astype(np.int64)


def _choice(rng: np.random.Generator, table: Mapping[int, float], n: int) -> np.ndarray:
    values = np.fromiter(table.keys(), dtype=np.int64)
    p = np.fromiter(table.values(), dtype=np.float64)
    return values[rng.choice(len(values), size=n, p=p / p.sum())]


def plan_sources(config: DarknetConfig) -> SourcePlan:
    """Draw every source of the run: address, kind, behaviour, activity interval and packet count."""
    darknet_first, darknet_size = config.validate()
    rng = np.random.default_rng(config.seed)
    duration = config.duration_us
    hours = config.hours
    parts: list[dict[str, np.ndarray]] = []
    taken = np.empty(0, dtype=np.uint32)
    for kind, kind_packets in _split_packets(config.packets, config.mix).items():
        if kind_packets == 0:
            continue
        profile = PROFILES[kind]
        per_source = profile.packets_per_source * (1 if profile.campaign else hours)
        n = int(np.clip(round(kind_packets / per_source), profile.min_sources, kind_packets))
        n = max(1, min(n, max(1, kind_packets // profile.min_packets)))
        growth = config.outbreak_growth if (config.outbreak and kind == "mirai") else None
        start, end, infected = _activity(rng, n, profile, duration, growth, config.outbreak_onset_us)
        # With a dated outbreak, the bots already there scan Telnet on 23 only, like Mirai's
        # predecessors (Bashlite/Gafgyt) did: 2323 is the outbreak's novelty, as in 2016.
        telnet_only = (~infected) if (growth is not None and config.outbreak_start is not None) else infected & False
        weights = rng.lognormal(0.0, 0.8, n) * (1.0 if profile.campaign else (end - start))
        packets = _allocate(rng, kind_packets, weights, profile.min_packets)
        style = np.zeros(n, dtype=np.uint8)
        if kind == "backscatter_victim":
            style = rng.choice(len(BACKSCATTER_STYLES), size=n, p=[0.5, 0.3, 0.2]).astype(np.uint8)
        elif kind == "noise":
            style = (np.arange(n) % len(NOISE_STYLES)).astype(np.uint8)  # every style present
        src = draw_sources(rng, n, profile.regions, exclude=[(darknet_first, darknet_size)], taken=taken)
        if kind == "noise":
            spoofed = style == NOISE_STYLES.index("reserved_source")
            src[spoofed] = draw_reserved(rng, int(spoofed.sum()))
            looped = style == NOISE_STYLES.index("src_is_dst")
            src[looped] = darknet_first + rng.integers(0, darknet_size, int(looped.sum()))
        taken = np.concatenate([taken, src])
        port = _choice(rng, profile.ports, n) if profile.ports else np.zeros(n, dtype=np.int64)
        if kind == "masscan":
            port[:] = 0  # each packet draws its port from the profile's list
        ttl, win = _stack_traits(rng, kind, style, n)
        parts.append({
            "src": src, "kind": np.full(n, KINDS.index(kind), dtype=np.uint8), "style": style,
            "port": port.astype(np.uint16), "own_sport": rng.integers(1024, 65536, n).astype(np.uint16),
            "win": win, "ttl": ttl, "start": start, "end": end, "packets": packets, "telnet_only": telnet_only,
        })
    if not parts:
        return SourcePlan(*(np.empty(0, dtype=t) for t in
                            (np.uint32, np.uint8, np.uint8, np.uint16, np.uint16, np.uint16, np.uint8,
                             np.int64, np.int64, np.int64, np.bool_)))
    return SourcePlan(**{name: np.concatenate([p[name] for p in parts]) for name in parts[0]})


def _stack_traits(rng: np.random.Generator, kind: str, style: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Arriving TTL (initial TTL of the sender's stack minus 6-24 hops) and TCP window per source."""
    hops = rng.integers(6, 25, n)
    initial = np.full(n, 64)
    win = np.full(n, 29200)
    if kind == "mirai":
        win = rng.integers(0, 65536, n)  # Mirai draws its window once, at scanner start
    elif kind in ("zmap", "masscan"):
        initial[:] = 255
        win[:] = 65535 if kind == "zmap" else 1024
    elif kind in ("iot_worm", "ssh_scanner"):
        win = np.where(rng.random(n) < 0.7, 29200, 14600)
    elif kind == "pc_scanner":
        initial[:] = 128
        win = np.where(rng.random(n) < 0.6, 8192, 64240)
    elif kind == "backscatter_victim":
        initial = _choice(rng, {64: 0.6, 128: 0.3, 255: 0.1}, n)
        initial = np.where(style == BACKSCATTER_STYLES.index("icmp_unreachable"),
                           np.where(rng.random(n) < 0.5, 255, 64), initial)
        win = _choice(rng, {29200: 0.4, 65535: 0.3, 14480: 0.2, 8192: 0.1}, n)
    elif kind == "noise":
        high = style == NOISE_STYLES.index("ttl_high")
        initial = np.where(high, 255, 64)
        hops = np.where(high, rng.integers(1, 50, n), hops)  # arrives with TTL 206..254
        win = rng.integers(0, 65536, n)
    return (initial - hops).astype(np.uint8), win.astype(np.uint16)


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
    f.dport[m] = _choice(rng, PROFILES["masscan"].ports, int(m.sum()))
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
    f.quote_proto[icmp] = np.where(udp_flood[icmp], 17, 6)
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


#: Attack window of Corsaro3's dos plugin (and of the ``attacks`` pass): packets in some 60 s.
PEAK_WINDOW_US = 60_000_000


@dataclass
class SourceExtent:
    """First and last packet time per source, accumulated over windows (for the ground truth).

    With ``tracked`` (a mask over sources), the packet times of those sources are kept too, so that
    :meth:`peak` can count their busiest window afterwards; the simulator tracks backscatter victims
    only (6% of packets by default, 8 bytes each).
    """

    first: np.ndarray
    last: np.ndarray
    tracked: np.ndarray | None = None
    _sids: list[np.ndarray] = field(default_factory=list)
    _times: list[np.ndarray] = field(default_factory=list)

    @classmethod
    def empty(cls, sources: int, tracked: np.ndarray | None = None) -> SourceExtent:
        return cls(first=np.full(sources, np.iinfo(np.int64).max), last=np.full(sources, -1), tracked=tracked)

    def update(self, sid_sorted: np.ndarray, ts: np.ndarray, counts: np.ndarray) -> None:
        present = np.flatnonzero(counts)
        if len(present) == 0:
            return
        starts = np.concatenate([[0], np.cumsum(counts[present])[:-1]])
        self.first[present] = np.minimum(self.first[present], np.minimum.reduceat(ts, starts))
        self.last[present] = np.maximum(self.last[present], np.maximum.reduceat(ts, starts))
        if self.tracked is not None:
            keep = self.tracked[sid_sorted]
            self._sids.append(sid_sorted[keep])
            self._times.append(ts[keep])

    def peak(self, window_us: int = PEAK_WINDOW_US) -> np.ndarray:
        """Most packets of each tracked source in any ``[t, t + window_us)`` (0 for untracked sources)."""
        peak = np.zeros(len(self.first), dtype=np.int64)
        if not self._sids:
            return peak
        sid = np.concatenate(self._sids)
        ts = np.concatenate(self._times)
        order = np.lexsort((ts, sid))
        sid, ts = sid[order], ts[order]
        # One int64 key per (source, time) (times are µs into the run, >= 0), so that one
        # searchsorted finds every packet's window end for all sources at once.
        shift = int(ts.max() + window_us).bit_length()
        if int(sid.max()).bit_length() + shift > 62:
            raise SimulationError("run too long to count attack peaks")
        key = (sid.astype(np.int64) << shift) + ts
        inside = np.searchsorted(key, key + window_us, side="left") - np.arange(len(key))
        np.maximum.at(peak, sid, inside)
        return peak


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


def truth_path(capture: Path) -> Path:
    """Where the ground truth of ``capture`` goes: next to it, ``<capture name>.truth.parquet``."""
    return capture.with_name(capture.name + ".truth.parquet")


def truth_table(config: DarknetConfig, plan: SourcePlan, extent: SourceExtent) -> pa.Table:
    """One row per source that sent at least one packet: what it is and what it did."""
    sent = plan.packets > 0
    kind = plan.kind[sent]
    style_names = np.array(["", *BACKSCATTER_STYLES, *NOISE_STYLES], dtype=object)
    style_index = np.where(kind == KINDS.index("backscatter_victim"), 1 + plan.style[sent],
                           np.where(kind == KINDS.index("noise"), 1 + len(BACKSCATTER_STYLES) + plan.style[sent], 0))
    proto = np.full(len(kind), 6, dtype=np.uint8)
    proto[kind == KINDS.index("udp_prober")] = 17
    proto[kind == KINDS.index("icmp_prober")] = 1
    backscatter = kind == KINDS.index("backscatter_victim")
    proto[backscatter & (plan.style[sent] == BACKSCATTER_STYLES.index("icmp_unreachable"))] = 1
    port = plan.port[sent]
    mirai = kind == KINDS.index("mirai")
    dport = np.where(mirai, 23, port)
    no_dport = backscatter | (kind == KINDS.index("icmp_prober")) | (kind == KINDS.index("masscan"))
    ts_type = pa.timestamp("us", tz="UTC")
    tool_names = np.array([TOOL_OF_KIND.get(k) for k in KINDS], dtype=object)[kind]
    episode_start = plan.start[sent] + config.start_us
    episode_end = plan.end[sent] + config.start_us
    peak = extent.peak()[sent]
    metadata = {
        "iotscope.simulator": "darknet",
        "darknet": config.darknet, "seed": str(config.seed), "hours": str(config.hours),
        "outbreak": str(config.outbreak), "start": config.start.isoformat(),
        "notes": "dport: targeted port (mirai: 23, and 1 in 10 packets to 2323; null when it varies); "
                 "sport: the attacked service of a backscatter victim; tool: the fingerprint its SYNs carry; "
                 "episode_*: a backscatter victim's DoS episode (packets uniform within it), "
                 "peak_60s: its most packets in any 60 s",
    }
    if config.outbreak_start_us is not None:
        metadata["outbreak_start"] = datetime.fromtimestamp(config.outbreak_start_us / 1e6, tz=UTC).isoformat()
        metadata["outbreak_start_us"] = str(config.outbreak_start_us)
    return pa.table({
        "src": pa.array(plan.src[sent], type=pa.uint32()),
        "kind": pa.array(np.array(KINDS, dtype=object)[kind], type=pa.string()).dictionary_encode(),
        "style": pa.array(style_names[style_index], type=pa.string()).dictionary_encode(),
        "proto": pa.array(proto, type=pa.uint8()),
        "dport": pa.array(dport.astype(np.uint16), type=pa.uint16(), mask=no_dport),
        "sport": pa.array(port.astype(np.uint16), type=pa.uint16(), mask=~backscatter),
        "first_ts": pa.array(extent.first[sent], type=ts_type),
        "last_ts": pa.array(extent.last[sent], type=ts_type),
        "packets": pa.array(plan.packets[sent].astype(np.uint64), type=pa.uint64()),
        "tool": pa.array(tool_names, type=pa.string()).dictionary_encode(),
        "episode_start": pa.array(episode_start, type=ts_type, mask=~backscatter),
        "episode_end": pa.array(episode_end, type=ts_type, mask=~backscatter),
        "peak_60s": pa.array(peak.astype(np.uint32), type=pa.uint32(), mask=~backscatter),
    }, metadata=metadata)


def simulate_darknet(config: DarknetConfig, out: Path | str,
                     progress: Callable[[int], None] | None = None) -> SimulationResult:
    """Simulate ``config`` into the capture ``out`` (.pcap/.pcapng, optionally .gz) and its ground truth.

    ``progress`` is called with the number of packets written so far after each window.
    Raises :class:`SimulationError` for impossible settings, before anything is written.
    """
    began = time.perf_counter()
    out = Path(out)
    config.validate()
    if not out.parent.is_dir():
        raise SimulationError(f"output directory does not exist: {out.parent}")
    plan = plan_sources(config)
    extent = SourceExtent.empty(len(plan), tracked=plan.kind == KINDS.index("backscatter_victim"))
    written = 0

    def counted() -> Iterator[CaptureBlock]:
        nonlocal written
        for block in generate_blocks(config, plan, extent):
            yield block
            written += len(block)
            if progress is not None:
                progress(written)

    write_blocks(out, counted())
    extent.first += config.start_us
    extent.last += config.start_us
    truth = truth_path(out)
    pq.write_table(truth_table(config, plan, extent), truth)
    by_kind = np.bincount(plan.kind, weights=plan.packets, minlength=len(KINDS)).astype(np.int64)
    sources = np.bincount(plan.kind[plan.packets > 0], minlength=len(KINDS))
    return SimulationResult(
        path=out,
        truth_path=truth,
        packets=written,
        file_bytes=out.stat().st_size,
        seconds=time.perf_counter() - began,
        packets_by_kind={k: int(by_kind[i]) for i, k in enumerate(KINDS) if by_kind[i]},
        sources_by_kind={k: int(sources[i]) for i, k in enumerate(KINDS) if sources[i]},
    )
