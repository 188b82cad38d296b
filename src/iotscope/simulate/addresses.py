"""Where simulated darknet sources come from: allocated IPv4 space by registry, never reserved space.

A telescope's world map is only believable if sources sit in address space that is actually in use
and in the regions the traffic really came from. The table below is the IANA IPv4 address space
registry's /8 blocks allocated to (or administered by) each Regional Internet Registry; a source is
drawn by picking a registry by the kind's regional weights, a /8 of that registry uniformly, then an
address in it. Reserved, private, multicast and special-purpose ranges (RFC 6890 and friends) are
rejected, as are addresses ending in .0 or .255 (Corsaro counts those as spoofed), so only the
simulator's explicit noise share ever carries such a source.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence

import numpy as np

#: /8 blocks per RIR, from the IANA IPv4 address space registry (allocated and "administered by").
RIR_SLASH8: Mapping[str, tuple[int, ...]] = {
    "APNIC": (1, 14, 27, 36, 39, 42, 43, 49, 58, 59, 60, 61, 101, 103, 106, *range(110, 127),
              133, 150, 153, 163, 171, 175, 180, 182, 183, 202, 203, 210, 211, *range(218, 224)),
    "ARIN": (23, 24, 50, 63, *range(64, 77), *range(96, 101), 104, 107, 108, 173, 174, 184, 199,
             *range(204, 210), 216),
    "RIPE NCC": (2, 5, 31, 37, 46, 62, *range(77, 96), 109, 141, 145, 151, 176, 178, 185, 188,
                 193, 194, 195, 212, 213, 217),
    "LACNIC": (177, 179, 181, 186, 187, 189, 190, 191, 200, 201),
    "AFRINIC": (41, 102, 105, 154, 196, 197),
}

#: IANA special-purpose, private, shared, benchmarking, documentation, multicast and reserved space.
RESERVED_PREFIXES: tuple[str, ...] = (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
    "192.0.0.0/24", "192.0.2.0/24", "192.31.196.0/24", "192.52.193.0/24", "192.88.99.0/24",
    "192.168.0.0/16", "192.175.48.0/24", "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24",
    "224.0.0.0/4", "240.0.0.0/4",
)


def prefix_bounds(cidr: str) -> tuple[int, int]:
    """``(first address, number of addresses)`` of an IPv4 CIDR; ValueError with a clear message if bad."""
    try:
        net = ipaddress.IPv4Network(cidr, strict=False)
    except ValueError as exc:
        raise ValueError(f"not an IPv4 prefix: {cidr!r} ({exc})") from None
    return int(net.network_address), int(net.num_addresses)


_RESERVED_BOUNDS = tuple(prefix_bounds(p) for p in RESERVED_PREFIXES)


def in_prefixes(addresses: np.ndarray, bounds: Sequence[tuple[int, int]]) -> np.ndarray:
    """Boolean mask: which ``addresses`` (uint32, host order) fall into any ``(first, size)`` range."""
    addresses = addresses.astype(np.int64, copy=False)
    hit = np.zeros(addresses.shape, dtype=bool)
    for first, size in bounds:
        hit |= (addresses >= first) & (addresses < first + size)
    return hit


def reserved_mask(addresses: np.ndarray) -> np.ndarray:
    """Which addresses are reserved, private, multicast or otherwise never a real Internet source."""
    return in_prefixes(addresses, _RESERVED_BOUNDS)


def _slash8_probabilities(region_weights: Mapping[str, float]) -> tuple[np.ndarray, np.ndarray]:
    """Every allocated /8 with its probability: the region's weight split evenly over its blocks."""
    unknown = set(region_weights) - set(RIR_SLASH8)
    if unknown:
        raise ValueError(f"unknown registries {sorted(unknown)}; known: {sorted(RIR_SLASH8)}")
    blocks, weights = [], []
    for rir, weight in region_weights.items():
        slash8s = RIR_SLASH8[rir]
        blocks.extend(slash8s)
        weights.extend([weight / len(slash8s)] * len(slash8s))
    w = np.asarray(weights, dtype=np.float64)
    return np.asarray(blocks, dtype=np.uint32), w / w.sum()


def draw_sources(
    rng: np.random.Generator,
    n: int,
    region_weights: Mapping[str, float],
    exclude: Sequence[tuple[int, int]] = (),
    taken: np.ndarray | None = None,
) -> np.ndarray:
    """``n`` distinct allocated, non-reserved IPv4 sources (uint32) spread over registries by weight.

    ``exclude`` holds extra ``(first, size)`` ranges to avoid (the darknet itself when it lies in
    allocated space); ``taken`` holds addresses already handed to other sources, so that one address
    is one simulated host and the ground truth stays unambiguous.
    """
    slash8, p = _slash8_probabilities(region_weights)
    taken = np.empty(0, dtype=np.uint32) if taken is None else taken
    chosen = np.empty(0, dtype=np.uint32)
    while len(chosen) < n:
        want = n - len(chosen)
        count = want + want // 8 + 16
        high = slash8[rng.choice(len(slash8), size=count, p=p)] << np.uint32(24)
        middle = rng.integers(0, 1 << 16, size=count, dtype=np.uint32) << np.uint32(8)
        low = rng.integers(1, 255, size=count, dtype=np.uint32)  # never .0 or .255
        candidates = high | middle | low
        ok = ~reserved_mask(candidates) & ~in_prefixes(candidates, exclude)
        ok &= ~np.isin(candidates, taken) & ~np.isin(candidates, chosen)
        candidates = candidates[ok]
        _, first = np.unique(candidates, return_index=True)
        chosen = np.concatenate([chosen, candidates[np.sort(first)][:want]])
    return chosen


def draw_reserved(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` addresses from reserved space, for the noise share's spoofed sources."""
    bounds = np.asarray(_RESERVED_BOUNDS, dtype=np.int64)
    which = rng.integers(0, len(bounds), size=n)
    offsets = (rng.random(n) * bounds[which, 1]).astype(np.int64)
    return (bounds[which, 0] + offsets).astype(np.uint32)
