"""IANA IP protocol numbers (the IPv4 ``protocol`` / IPv6 ``next header`` field) and their names.

One definition for every stage that writes, reads or names the ``proto`` column: the simulator
that builds packets, the passes that classify them, the alerts that name them. A number spelled
out in several modules drifts (ICMPv6 was missing from some name tables); here it cannot.
"""

from __future__ import annotations

from collections.abc import Mapping

PROTO_ICMP = 1
PROTO_TCP = 6
PROTO_UDP = 17
PROTO_ICMPV6 = 58

#: Lower-case names, as reports, alerts and the API print them.
PROTOCOL_NAMES: Mapping[int, str] = {PROTO_ICMP: "icmp", PROTO_TCP: "tcp", PROTO_UDP: "udp", PROTO_ICMPV6: "icmpv6"}
