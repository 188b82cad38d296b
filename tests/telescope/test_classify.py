"""flag_class and traffic_class: every rule of docs/classes.md, one case at a time and vectorized."""

from __future__ import annotations

import numpy as np
import pytest

from iotscope.store.schema import FLAG_CLASSES, TRAFFIC_CLASSES
from iotscope.telescope.classify import flag_class, traffic_class

FIN, SYN, RST, PSH, ACK, URG, ECE, CWR = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80
TCP, UDP, ICMP, ICMPV6, GRE = 6, 17, 1, 58, 47

# (proto, tcp_flags, icmp_type, l4) -> (flag_class, traffic_class)
CASES = [
    ((TCP, SYN, 0, True), ("syn", "scan")),
    ((TCP, SYN | ECE | CWR, 0, True), ("syn", "scan")),  # ECN-setup SYN
    ((TCP, SYN | PSH, 0, True), ("syn", "scan")),
    ((TCP, SYN | ACK, 0, True), ("synack", "backscatter")),
    ((TCP, SYN | ACK | ECE, 0, True), ("synack", "backscatter")),
    ((TCP, SYN | ACK | FIN, 0, True), ("tcp_other", "other")),
    ((TCP, RST, 0, True), ("rst", "backscatter")),
    ((TCP, RST | ACK, 0, True), ("rst", "backscatter")),
    ((TCP, SYN | RST, 0, True), ("tcp_other", "backscatter")),
    ((TCP, FIN | RST, 0, True), ("tcp_other", "backscatter")),
    ((TCP, FIN, 0, True), ("fin", "other")),
    ((TCP, FIN | ACK, 0, True), ("fin", "other")),
    ((TCP, FIN | PSH | ACK, 0, True), ("fin", "other")),
    ((TCP, PSH, 0, True), ("push", "other")),
    ((TCP, PSH | ACK, 0, True), ("push", "other")),
    ((TCP, PSH | ACK | URG, 0, True), ("push", "other")),
    ((TCP, ACK, 0, True), ("ack", "other")),
    ((TCP, ACK | CWR, 0, True), ("ack", "other")),
    ((TCP, ACK | URG, 0, True), ("tcp_other", "other")),
    ((TCP, 0, 0, True), ("tcp_other", "other")),  # NULL scan
    ((TCP, FIN | PSH | URG, 0, True), ("tcp_other", "other")),  # XMAS scan
    ((TCP, SYN | FIN, 0, True), ("tcp_other", "other")),
    ((TCP, SYN | URG, 0, True), ("tcp_other", "scan")),
    ((TCP, URG, 0, True), ("tcp_other", "other")),
    ((TCP, SYN, 0, False), ("tcp_other", "other")),  # fragment / cut header: flags unknown
    ((TCP, SYN | ACK, 0, False), ("tcp_other", "other")),
    ((UDP, 0, 0, True), ("udp", "scan")),
    ((UDP, 0, 0, False), ("udp", "scan")),
    ((ICMP, 0, 8, True), ("icmp", "scan")),
    ((ICMP, 0, 13, True), ("icmp", "scan")),
    ((ICMP, 0, 17, True), ("icmp", "scan")),
    ((ICMP, 0, 0, True), ("icmp", "backscatter")),
    ((ICMP, 0, 3, True), ("icmp", "backscatter")),
    ((ICMP, 0, 4, True), ("icmp", "backscatter")),
    ((ICMP, 0, 5, True), ("icmp", "backscatter")),
    ((ICMP, 0, 11, True), ("icmp", "backscatter")),
    ((ICMP, 0, 12, True), ("icmp", "backscatter")),
    ((ICMP, 0, 14, True), ("icmp", "backscatter")),
    ((ICMP, 0, 16, True), ("icmp", "backscatter")),
    ((ICMP, 0, 18, True), ("icmp", "backscatter")),
    ((ICMP, 0, 9, True), ("icmp", "other")),  # router advertisement
    ((ICMP, 0, 128, True), ("icmp", "other")),  # an ICMPv6 type number means nothing in ICMP
    ((ICMP, 0, 3, False), ("icmp", "other")),
    ((ICMPV6, 0, 128, True), ("icmp", "scan")),
    ((ICMPV6, 0, 1, True), ("icmp", "backscatter")),
    ((ICMPV6, 0, 2, True), ("icmp", "backscatter")),
    ((ICMPV6, 0, 3, True), ("icmp", "backscatter")),
    ((ICMPV6, 0, 4, True), ("icmp", "backscatter")),
    ((ICMPV6, 0, 129, True), ("icmp", "backscatter")),
    ((ICMPV6, 0, 135, True), ("icmp", "other")),  # neighbor solicitation
    ((ICMPV6, 0, 8, True), ("icmp", "other")),  # an ICMP type number means nothing in ICMPv6
    ((GRE, 0, 0, False), ("other", "other")),
    ((0, 0, 0, False), ("other", "other")),  # IPv6 hop-by-hop chain cut short
    ((255, 2, 8, True), ("other", "other")),  # stray transport values do not leak into other protocols
]


def _classify(rows: list[tuple[int, int, int, bool]]) -> tuple[list[str], list[str]]:
    columns = list(zip(*rows, strict=True))
    proto, flags, icmp_type = (np.array(col, dtype=np.uint8) for col in columns[:3])
    l4 = np.array(columns[3], dtype=bool)
    flag_codes = flag_class(proto, flags, icmp_type, l4)
    traffic_codes = traffic_class(proto, flags, icmp_type, l4)
    assert flag_codes.dtype == np.int8 and traffic_codes.dtype == np.int8
    return [FLAG_CLASSES[c] for c in flag_codes], [TRAFFIC_CLASSES[c] for c in traffic_codes]


@pytest.mark.parametrize(("row", "expected"), CASES, ids=[f"{r[0]}-{r[1]:#04x}-{r[2]}-{r[3]}" for r, _ in CASES])
def test_each_rule(row: tuple[int, int, int, bool], expected: tuple[str, str]) -> None:
    flags, traffic = _classify([row])
    assert (flags[0], traffic[0]) == expected


def test_vectorized_over_a_block_equals_one_at_a_time() -> None:
    rng = np.random.default_rng(3)
    rows = [CASES[i][0] for i in rng.integers(0, len(CASES), 5000)]
    flags, traffic = _classify(rows)
    expected = dict(CASES)
    assert list(zip(flags, traffic)) == [expected[r] for r in rows]


def test_every_tcp_flag_byte_has_exactly_the_documented_class() -> None:
    """All 256 flag bytes: the class follows from FIN/SYN/RST/PSH/ACK/URG alone (ECE/CWR ignored)."""
    flags = np.arange(256, dtype=np.uint8)
    codes = flag_class(np.full(256, TCP, np.uint8), flags, np.zeros(256, np.uint8), np.ones(256, bool))
    np.testing.assert_array_equal(codes, codes[flags & 0x3F])
    names = [FLAG_CLASSES[c] for c in codes]
    assert names.count("syn") == 2 * 4  # SYN with or without PSH, times the 4 ECE/CWR combinations
    assert {FLAG_CLASSES[codes[b]] for b in range(256) if b & URG and not b & ACK} == {"tcp_other"}


def test_empty_input() -> None:
    empty = np.empty(0, np.uint8)
    assert flag_class(empty, empty, empty, np.empty(0, bool)).shape == (0,)
    assert traffic_class(empty, empty, empty, np.empty(0, bool)).shape == (0,)
