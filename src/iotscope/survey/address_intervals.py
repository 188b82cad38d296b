"""A set of IP addresses as sorted disjoint integer intervals, countable and indexable.

The survey's scope is "authorized ranges minus special-purpose space minus the blocklist", and the
sweep must walk it by index (``address_at``) without materializing it: an IPv4 /8 or an IPv6 /64
costs a few intervals here, not millions of addresses. Pure integer work, no sockets.
"""

from __future__ import annotations

import bisect
import ipaddress
from dataclasses import dataclass, field

from iotscope.survey.addresses import IPAddress, IPNetwork

Interval = tuple[int, int, int]  # (version, first, last) inclusive


@dataclass(frozen=True)
class IntervalIndex:
    """Addresses as sorted disjoint intervals with cumulative counts: ``address_at`` is a
    binary search, so a /8 or an IPv6 /64 costs a few intervals, not millions of addresses."""

    intervals: tuple[Interval, ...]
    starts: tuple[int, ...]  # cumulative count before each interval
    total: int
    #: Per IP version, the sorted firsts and lasts as plain ints: a membership test is one bisect.
    firsts: dict[int, list[int]] = field(default_factory=dict)
    lasts: dict[int, list[int]] = field(default_factory=dict)

    @classmethod
    def build(cls, allowed: list[Interval]) -> IntervalIndex:
        starts, total = [], 0
        firsts: dict[int, list[int]] = {4: [], 6: []}
        lasts: dict[int, list[int]] = {4: [], 6: []}
        for version, first, last in allowed:
            starts.append(total)
            total += last - first + 1
            firsts[version].append(first)
            lasts[version].append(last)
        return cls(tuple(allowed), tuple(starts), total, firsts, lasts)

    def contains(self, address: IPAddress) -> bool:
        return self.contains_value(address.version, int(address))

    def contains_value(self, version: int, value: int) -> bool:
        slot = bisect.bisect_right(self.firsts[version], value) - 1
        return slot >= 0 and value <= self.lasts[version][slot]

    def value_at(self, index: int) -> tuple[int, int]:
        """(IP version, address as an int) of the ``index``-th address."""
        if not 0 <= index < self.total:
            raise IndexError(f"target index {index} outside 0..{self.total - 1}")
        slot = bisect.bisect_right(self.starts, index) - 1
        version, first, _ = self.intervals[slot]
        return version, first + index - self.starts[slot]

    def address_at(self, index: int) -> str:
        return str(self.address_object_at(index))

    def address_object_at(self, index: int) -> IPAddress:
        version, value = self.value_at(index)
        return ipaddress.IPv4Address(value) if version == 4 else ipaddress.IPv6Address(value)


def network_interval(network: IPNetwork) -> Interval:
    """``network`` as one inclusive interval of integers, tagged with its IP version."""
    return (network.version, int(network.network_address), int(network.broadcast_address))


def union_intervals(intervals: list[Interval]) -> list[Interval]:
    """Sorted, disjoint intervals covering the same addresses (touching ones merged): what
    :func:`subtract_intervals` and :meth:`IntervalIndex.build` expect."""
    merged: list[Interval] = []
    for version, first, last in sorted(intervals):
        if merged and merged[-1][0] == version and first <= merged[-1][2] + 1:
            merged[-1] = (version, merged[-1][1], max(merged[-1][2], last))
        else:
            merged.append((version, first, last))
    return merged


def subtract_intervals(keep: list[Interval], remove: list[Interval]) -> list[Interval]:
    """``keep`` minus ``remove``; both sorted and disjoint (as :func:`union_intervals` returns them)."""
    result = []
    for version, first, last in keep:
        cursor = first
        for r_version, r_first, r_last in remove:
            if r_version != version or r_last < cursor or r_first > last:
                continue
            if r_first > cursor:
                result.append((version, cursor, r_first - 1))
            cursor = max(cursor, r_last + 1)
            if cursor > last:
                break
        if cursor <= last:
            result.append((version, cursor, last))
    return result
