"""Which source addresses a caller may see: everything (no ``--orgs``) or one organization's networks.

Why in SQL: a listing filtered after the fact would page wrongly and could leak through counts;
the condition is part of every query that returns addresses, so an organization's pages, cursors
and totals only ever contain rows inside its own networks.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from iotscope.notify.orgs import OrgCatalog

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class AddressScope:
    """The networks a caller may see; ``networks=None`` means every address (the operator)."""

    networks: tuple[IPNetwork, ...] | None = None

    @property
    def unrestricted(self) -> bool:
        return self.networks is None

    def contains(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        return self.networks is None or any(address in network for network in self.networks)

    def sql(self, v4: str, v6: str) -> tuple[str, list[Any]]:
        """A condition on the address columns ``v4`` (uint32) and ``v6`` (16 bytes) and its parameters.

        Each network is a range: ``BETWEEN`` on the integer, or on the fixed-width bytes (which sort
        as the addresses do).
        """
        if self.networks is None:
            return "TRUE", []
        terms: list[str] = []
        params: list[Any] = []
        for network in self.networks:
            first, last = network.network_address, network.broadcast_address
            if network.version == 4:
                terms.append(f"{v4} BETWEEN ? AND ?")
                params += [int(first), int(last)]
            else:
                terms.append(f"{v6} BETWEEN ? AND ?")
                params += [first.packed, last.packed]
        return "(" + (" OR ".join(terms) or "FALSE") + ")", params


#: The operator's scope: every address.
EVERYTHING = AddressScope()


#: No organization's networks: what a caller without a token sees of addresses when ``--orgs`` is given.
NOTHING = AddressScope(())


@dataclass(frozen=True)
class Caller:
    """Who is asking: ``name`` binds cursors and cached answers; ``sees_addresses`` is False for the
    public (``--orgs`` given, no token), who gets aggregates only."""

    name: str
    scope: AddressScope
    sees_addresses: bool = True


class Unauthorized(Exception):
    """A token was presented and is not any organization's (or an address listing was asked for
    without one): the web layer answers 401."""


OPERATOR = Caller("", EVERYTHING)
PUBLIC = Caller("\0public", NOTHING, sees_addresses=False)


def identify(orgs: OrgCatalog | None, authorization: str | None) -> Caller:
    """The caller behind an ``Authorization`` header.

    Without an orgs file the server is the operator's own (bound to loopback by default) and shows
    everything. With one, ``Bearer TOKEN`` must hash (SHA-256) to an organization's ``token_sha256``:
    every organization's digest is compared, in constant time, so the answer's timing says nothing
    about which digest came close. No header: the public.
    """
    if orgs is None:
        return OPERATOR
    if authorization is None:
        return PUBLIC
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Authorization: expected 'Bearer TOKEN'")
    digest = hashlib.sha256(token.strip().encode()).hexdigest()
    found = None
    for org in orgs.orgs:
        if org.token_sha256 is not None and hmac.compare_digest(digest, org.token_sha256):
            found = org
    if found is None:
        raise Unauthorized("the token is not valid")
    return Caller(found.name, AddressScope(tuple(found.networks)))


def require_addresses(caller: Caller) -> None:
    """Refuse the public a listing of addresses (401: present an organization's token)."""
    if not caller.sees_addresses:
        raise Unauthorized("this endpoint lists addresses: present your organization's token (Authorization: Bearer)")


def caller_of(request: Request) -> Caller:
    """The caller of ``request`` under the server's orgs file (``app.state.orgs``, None without ``--orgs``)."""
    return identify(request.app.state.orgs, request.headers.get("authorization"))
