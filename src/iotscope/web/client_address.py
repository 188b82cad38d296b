"""Whose address a request comes from: the connection's peer, or a trusted proxy's ``X-Forwarded-For``.

Why so strict: the self-check shows what the darknet saw of *the requester's own* address, so the
address must be one the requester cannot choose. ``X-Forwarded-For`` is anyone's to write; it is
read only when the connection comes from a proxy the operator named (``--trusted-proxy``), and
then from the right: the first address not itself a trusted proxy is the client (entries further
left were written by the client and are ignored).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from iotscope.errors import IotscopeError

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class ClientAddressError(IotscopeError):
    """A ``--trusted-proxy`` that is not an address or network, or a trusted proxy's header that
    names no address."""


def trusted_networks(values: Iterable[str]) -> tuple[IPNetwork, ...]:
    """``--trusted-proxy`` values (addresses or CIDR networks) as networks."""
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError:
            raise ClientAddressError(f"--trusted-proxy {value}: not an IP address or network") from None
    return tuple(networks)


def client_address(peer: str, forwarded_for: str | None, trusted: tuple[IPNetwork, ...]) -> str:
    """The requester's address for a connection from ``peer`` carrying ``forwarded_for``."""
    def is_trusted(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        return any(address in network for network in trusted)

    current = ipaddress.ip_address(peer)
    if not forwarded_for or not is_trusted(current):
        return str(current)
    for entry in reversed(forwarded_for.split(",")):
        try:
            current = ipaddress.ip_address(entry.strip())
        except ValueError:
            raise ClientAddressError(f"X-Forwarded-For from trusted proxy {peer}: {entry.strip()!r} is not an address") from None
        if not is_trusted(current):
            break
    return str(current)
