"""IP addresses as the survey spells and classifies them: one canonical text per host, and the
special-purpose space (RFC 6890) that no authorized range covers by accident.

Kept apart from :mod:`iotscope.survey.scope` because these rules are used wherever addresses are
stored or compared (findings, reports, notify's organization lookups), not only where the scope
decides what may be contacted.
"""

from __future__ import annotations

import ipaddress
import socket

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: The IANA special-purpose address registries (RFC 6890 and later updates), both families.
SPECIAL_PURPOSE: tuple[IPNetwork, ...] = tuple(
    ipaddress.ip_network(cidr)
    for cidr in (
        "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
        "172.16.0.0/12", "192.0.0.0/24", "192.0.2.0/24", "192.31.196.0/24", "192.52.193.0/24",
        "192.88.99.0/24", "192.168.0.0/16", "192.175.48.0/24", "198.18.0.0/15",
        "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4", "255.255.255.255/32",
        "::/128", "::1/128", "::ffff:0:0/96", "64:ff9b::/96", "64:ff9b:1::/48", "100::/64",
        "2001::/23", "2001:db8::/32", "2002::/16", "3fff::/20", "fc00::/7", "fe80::/10", "ff00::/8",
    )
)

_IPV4_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")


def fold_mapped(network: IPNetwork) -> IPNetwork:
    """An IPv4-mapped IPv6 network as the IPv4 network it denotes (checks fold addresses too)."""
    if network.version == 6 and network.subnet_of(_IPV4_MAPPED):
        return ipaddress.IPv4Network((int(network.network_address) & 0xFFFFFFFF, network.prefixlen - 96))
    return network


def special_purpose_of_family(network: IPNetwork) -> list[IPNetwork]:
    """The special-purpose blocks of ``network``'s IP version (``subnet_of`` refuses mixed versions)."""
    return [net for net in SPECIAL_PURPOSE if net.version == network.version]


def canonical_address(ip: str | IPAddress) -> str:
    """The one spelling of an address that the survey stores, de-duplicates and reports.

    ``127.0.0.97``, ``::ffff:127.0.0.97``, ``::ffff:7f00:61`` and ``0:0:0:0:0:FFFF:7f00:61`` are one
    host (an IPv4-mapped IPv6 address reaches the IPv4 host), so they must be one target and one
    row: the IPv4 dotted quad for those, RFC 5952 compressed lower-case text for other IPv6.
    Raises ``ValueError`` for anything that is not a literal address (see :func:`parse_address`).
    """
    address = parse_address(ip)
    if address is None:
        raise ValueError(f"not an IP address: {ip!r}")
    return str(address)


def parse_address(ip: str | IPAddress) -> IPAddress | None:
    """The address ``ip`` denotes, IPv4-mapped IPv6 folded to IPv4 (it reaches the IPv4 host);
    None for anything else (host names are never resolved, zone indexes name no host)."""
    if isinstance(ip, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        address = ip
    else:
        try:
            # inet_pton first: strict dotted quad (no "127.1", no hex), and 10x faster than
            # ipaddress's parser on the sweep's hot path; everything else goes to ipaddress.
            address = ipaddress.IPv4Address(socket.inet_pton(socket.AF_INET, ip))
        except (OSError, TypeError, ValueError):
            try:
                address = ipaddress.ip_address(ip)
            except ValueError:
                return None
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id is not None:
            return None  # a zone index names an interface, not a host: never in scope
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
    return address

