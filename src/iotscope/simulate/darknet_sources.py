"""Who sends to the darknet: every simulated source drawn at once, as arrays (a :class:`SourcePlan`).

Address, kind, stack traits (TTL, window), activity interval and packet count per source, from
the per-kind profiles below; the packets themselves are drawn later, window by window, by
:mod:`iotscope.simulate.darknet_packets`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from iotscope.simulate.addresses import draw_reserved, draw_sources
from iotscope.simulate.darknet_config import KINDS, DarknetConfig

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

#: The scanning tool whose fingerprint every SYN of a kind carries (``iotscope.telescope.fingerprints``);
#: kinds not listed send no fingerprint (tool null).
TOOL_OF_KIND: Mapping[str, str] = {"mirai": "mirai", "zmap": "zmap", "masscan": "masscan"}


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


def draw_from(rng: np.random.Generator, table: Mapping[int, float], n: int) -> np.ndarray:
    """``n`` values drawn from ``table`` (value -> weight; weights need not sum to 1)."""
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
        port = draw_from(rng, profile.ports, n) if profile.ports else np.zeros(n, dtype=np.int64)
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
        initial = draw_from(rng, {64: 0.6, 128: 0.3, 255: 0.1}, n)
        initial = np.where(style == BACKSCATTER_STYLES.index("icmp_unreachable"),
                           np.where(rng.random(n) < 0.5, 255, 64), initial)
        win = draw_from(rng, {29200: 0.4, 65535: 0.3, 14480: 0.2, 8192: 0.1}, n)
    elif kind == "noise":
        high = style == NOISE_STYLES.index("ttl_high")
        initial = np.where(high, 255, 64)
        hops = np.where(high, rng.integers(1, 50, n), hops)  # arrives with TTL 206..254
        win = rng.integers(0, 65536, n)
    return (initial - hops).astype(np.uint8), win.astype(np.uint16)
