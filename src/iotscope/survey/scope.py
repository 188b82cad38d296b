"""What the survey may contact: authorized ranges, the blocklist, and the one guarded way to connect.

A survey sends connection attempts to other people's devices, so the rule "never outside the
authorized scope" must not depend on every probe remembering to check. This module is the single
place that decides what may be contacted (:meth:`Scope.check`), and
:mod:`iotscope.survey.guarded_connect` the single place that opens the survey's sockets, each
after that check.

Scope file (TOML)::

    blocklist = "optout.txt"          # optional, relative to this file; one CIDR/address a line

    [[authorized]]
    cidr = "198.51.100.0/24"
    owner = "Example ISP"
    authorization = "contract 2026-17, signed 2026-03-01"

    [[authorized]]                    # special-purpose space (RFC 6890) needs an explicit flag
    cidr = "10.20.0.0/16"
    owner = "Example ISP"
    authorization = "internal network, ticket SEC-42"
    special_purpose = true

Special-purpose ranges (loopback, private, link-local, documentation, multicast ...) are excluded
from every authorized range unless an entry *inside* one of them sets ``special_purpose = true``:
a typo such as ``0.0.0.0/0`` can then never silently authorize private or loopback space, and
the flag cannot be set on a range that is mostly public either (that is a load error).

Both files must be regular files; the scope file may have 1 MiB at most, the blocklist
:data:`BLOCKLIST_MAX_BYTES` (see :mod:`iotscope.textfile`).
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass, field
from pathlib import Path

from iotscope.errors import IotscopeError
from iotscope.survey.address_intervals import (
    Interval,
    IntervalIndex,
    network_interval,
    subtract_intervals,
    union_intervals,
)
from iotscope.survey.addresses import (
    SPECIAL_PURPOSE,
    IPAddress,
    IPNetwork,
    fold_mapped,
    parse_address,
    special_purpose_of_family,
)
from iotscope.survey.tomlfile import array_of_tables, entry_table, load_toml, required_string
from iotscope.textfile import read_text_file

#: Cap on a blocklist file: 64 MiB, some three million lines of opt-outs.
BLOCKLIST_MAX_BYTES = 64 << 20
_ENTRY_KEYS = {"cidr", "owner", "authorization", "special_purpose"}
_TOP_LEVEL_KEYS = {"authorized", "blocklist"}


class ScopeError(IotscopeError, ValueError):
    """The scope file or its blocklist is unusable; one line naming the file and the entry."""


class OutOfScopeError(IotscopeError):
    """A target the survey must not contact. Deliberately not an ``OSError``: a probe that
    handles connection failures must not swallow a refusal as if the device were just down."""

    def __init__(self, ip: str, reason: str) -> None:
        super().__init__(f"refusing {ip}: {reason}")
        self.ip = ip
        self.reason = reason


@dataclass(frozen=True, slots=True)
class AuthorizedRange:
    """One ``[[authorized]]`` entry: the range, who owns it and the reference of their consent."""

    network: IPNetwork
    owner: str
    authorization: str
    special_purpose: bool = False


@dataclass(frozen=True)
class Scope:
    """The loaded scope: use :meth:`check` (or the guarded openers) before contacting anything."""

    source: str
    authorized: tuple[AuthorizedRange, ...]
    blocklist: tuple[IPNetwork, ...] = ()
    blocklist_source: str | None = None
    #: Human-readable notes from loading (e.g. special-purpose space excluded from a range).
    warnings: tuple[str, ...] = ()
    _most_specific_first: tuple[AuthorizedRange, ...] = field(init=False, repr=False, compare=False)
    _candidates: IntervalIndex = field(init=False, repr=False, compare=False)
    _targets: IntervalIndex = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        candidates = _authorized_intervals(self.authorized)
        blocked = union_intervals([network_interval(net) for net in self.blocklist])
        ordered = tuple(sorted(self.authorized, key=lambda e: -e.network.prefixlen))
        object.__setattr__(self, "_most_specific_first", ordered)
        object.__setattr__(self, "_candidates", IntervalIndex.build(candidates))
        object.__setattr__(self, "_targets", IntervalIndex.build(subtract_intervals(candidates, blocked)))

    @classmethod
    def load(cls, path: str | Path) -> Scope:
        """Read a scope file (and its blocklist); any problem is a :class:`ScopeError`."""
        return _load(Path(path))

    # -- the rule --------------------------------------------------------------------------------

    def check(self, ip: str | IPAddress) -> AuthorizedRange:
        """The authorized range that covers ``ip``, or :class:`OutOfScopeError` saying why not."""
        address = self._admit(ip)
        special = _SPECIAL.contains(address)
        return next(e for e in self._most_specific_first if address in e.network and (e.special_purpose or not special))

    def _admit(self, ip: str | IPAddress) -> IPAddress:
        """The parsed address, or :class:`OutOfScopeError`; the one implementation of the rule
        (the guarded openers connect to exactly the address returned here)."""
        address = parse_address(ip)
        if address is None:
            raise OutOfScopeError(str(ip), "not an IP address (host names are never resolved)")
        if not self._targets.contains(address):
            raise OutOfScopeError(str(address), self._refusal_reason(address))
        return address

    def admit_host(self, ip: str | IPAddress) -> tuple[socket.AddressFamily, str]:
        """:meth:`_admit` as (family, canonical text to connect to), with a fast lane for dotted
        quads: the sweep's path, where ``ipaddress`` objects would cost more than the connect.
        What :mod:`iotscope.survey.guarded_connect` calls before it creates any socket.

        ``inet_pton`` accepts only strict dotted quads, and the text connected to is re-made
        from the checked 32-bit value, so no other parser can read it as another host.
        """
        if type(ip) is str:
            try:
                packed = socket.inet_pton(socket.AF_INET, ip)
            except OSError:
                packed = None
            if packed is not None and self._targets.contains_value(4, int.from_bytes(packed, "big")):
                return socket.AF_INET, socket.inet_ntoa(packed)
        address = self._admit(ip)  # everything else, and refusals with their reason
        return (socket.AF_INET if address.version == 4 else socket.AF_INET6), str(address)

    def _refusal_reason(self, address: IPAddress) -> str:
        """Why ``address`` is out of scope (the slow path, only taken on refusal)."""
        blocked = next((net for net in self.blocklist if address in net), None)
        if blocked is not None:
            return f"blocklisted by {blocked} in {self.blocklist_source}"
        special = next((net for net in SPECIAL_PURPOSE if address in net), None)
        if special is not None and any(address in entry.network for entry in self.authorized):
            return (
                f"special-purpose range {special} (RFC 6890) needs an [[authorized]] entry "
                f"with special_purpose = true in {self.source}"
            )
        return f"not in any authorized range of {self.source}"

    def require_targets(self) -> None:
        """Raise :class:`ScopeError` saying why, when no address of the scope may be contacted.

        A survey of such a scope would sweep nothing and report nothing, which reads as "no
        vulnerable device" when the scope file is what is wrong (typically a private or loopback
        range authorized without ``special_purpose = true``): better refuse it before it starts."""
        if self.target_count:
            return
        if self.authorized_count == 0:
            ranges = ", ".join(str(entry.network) for entry in self.authorized[:4])
            ranges += " ..." if len(self.authorized) > 4 else ""
            raise ScopeError(
                f"{self.source}: no address to survey: the authorized range(s) {ranges} lie in special-purpose space "
                "(RFC 6890), which is excluded unless the [[authorized]] entry sets special_purpose = true"
            )
        raise ScopeError(
            f"{self.source}: no address to survey: every authorized address is blocklisted by {self.blocklist_source}"
        )

    def is_allowed(self, ip: str | IPAddress) -> bool:
        """Whether :meth:`check` would pass, without building a refusal (cheap on the sweep's path)."""
        address = parse_address(ip)
        return address is not None and self._targets.contains(address)

    def owner_of(self, ip: str | IPAddress) -> str:
        """The owner of the most specific authorized range covering ``ip`` (raises if out of scope)."""
        return self.check(ip).owner

    # -- enumeration, for the sweep's permutation -------------------------------------------------

    @property
    def target_count(self) -> int:
        """How many addresses are in scope (authorized, not blocklisted, special space excluded)."""
        return self._targets.total

    def target_at(self, index: int) -> str:
        """The ``index``-th in-scope address (0 <= index < target_count), without materializing."""
        return self._targets.address_at(index)

    @property
    def authorized_count(self) -> int:
        """Authorized addresses before the blocklist is applied (special-purpose rule applied).

        This index space depends only on the ``[[authorized]]`` entries, so a resumable sweep can
        walk it while opt-outs keep arriving: blocklisted addresses are skipped at dispatch (and
        refused again by the guard), and the positions of everything else stay valid.
        """
        return self._candidates.total

    def authorized_at(self, index: int) -> IPAddress:
        """The ``index``-th address of :attr:`authorized_count`'s index space."""
        return self._candidates.address_object_at(index)

    def authorized_target_at(self, index: int) -> str | None:
        """The ``index``-th address of :attr:`authorized_count`'s index space as text, or None if
        it is blocklisted: the sweep skips those without spending a token (the guard would
        refuse them anyway). Integer work only, no ``ipaddress`` objects (the sweep's hot path)."""
        version, value = self._candidates.value_at(index)
        if not self._targets.contains_value(version, value):
            return None
        if version == 4:
            return socket.inet_ntoa(value.to_bytes(4, "big"))
        return str(ipaddress.IPv6Address(value))

# -- loading ---------------------------------------------------------------------------------------


def _load(path: Path) -> Scope:
    origin = str(path)
    document = load_toml(path, "scope file", ScopeError, _TOP_LEVEL_KEYS)
    entries = array_of_tables(document, "authorized", origin, ScopeError)
    authorized = tuple(_entry(entry, index, origin) for index, entry in enumerate(entries, 1))
    seen: dict[IPNetwork, int] = {}
    for index, entry in enumerate(authorized, 1):
        if entry.network in seen:
            raise ScopeError(
                f"{origin}: [[authorized]] #{index}: {entry.network} is already entry #{seen[entry.network]}"
            )
        seen[entry.network] = index
    blocklist: tuple[IPNetwork, ...] = ()
    blocklist_source = None
    if "blocklist" in document:
        if not isinstance(document["blocklist"], str):
            raise ScopeError(f"{origin}: blocklist must be a path string")
        blocklist_path = path.parent / document["blocklist"]
        blocklist_source = str(blocklist_path)
        blocklist = _read_blocklist(blocklist_path, origin)
    warnings = tuple(_special_purpose_warnings(authorized, origin))
    return Scope(origin, authorized, blocklist, blocklist_source, warnings)


def _entry(entry: object, index: int, origin: str) -> AuthorizedRange:
    where = f"{origin}: [[authorized]] #{index}"
    entry = entry_table(entry, where, _ENTRY_KEYS, ScopeError)
    cidr, owner, authorization = (required_string(entry, key, where, ScopeError)
                                  for key in ("cidr", "owner", "authorization"))
    special_purpose = entry.get("special_purpose", False)
    if not isinstance(special_purpose, bool):
        raise ScopeError(f"{where}: 'special_purpose' must be true or false")
    try:
        network = ipaddress.ip_network(cidr)
    except ValueError as exc:
        raise ScopeError(f"{where}: bad cidr {cidr!r} ({exc})") from None
    network = fold_mapped(network)  # ::ffff:198.51.100.0/120 is 198.51.100.0/24: one spelling per range
    if special_purpose and not any(network.subnet_of(net) for net in special_purpose_of_family(network)):
        raise ScopeError(
            f"{where}: special_purpose = true is only accepted on a range inside one "
            f"special-purpose block (RFC 6890), and {network} is not"
        )
    return AuthorizedRange(network, owner, authorization, special_purpose)


def _read_blocklist(path: Path, origin: str) -> tuple[IPNetwork, ...]:
    text = read_text_file(path, f"blocklist file {path}", ScopeError, origin, max_bytes=BLOCKLIST_MAX_BYTES)
    lines = text.splitlines()
    networks = []
    for number, line in enumerate(lines, 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        try:
            # Host bits are tolerated here (unlike in authorized ranges): over-blocking is safe.
            networks.append(fold_mapped(ipaddress.ip_network(text, strict=False)))
        except ValueError:
            raise ScopeError(f"{path}:{number}: not a CIDR or address: {text!r}") from None
    return tuple(networks)


def _special_purpose_warnings(authorized: tuple[AuthorizedRange, ...], origin: str) -> list[str]:
    warnings = []
    for entry in authorized:
        if entry.special_purpose:
            continue
        overlapping = [net for net in special_purpose_of_family(entry.network) if net.overlaps(entry.network)]
        if overlapping:
            shown = ", ".join(str(net) for net in overlapping[:4]) + (" ..." if len(overlapping) > 4 else "")
            warnings.append(
                f"{origin}: {entry.network} ({entry.owner}) overlaps special-purpose space "
                f"({shown}); those addresses are excluded unless authorized with special_purpose = true"
            )
    return warnings


def _authorized_intervals(authorized: tuple[AuthorizedRange, ...]) -> list[Interval]:
    """Authorized space minus special-purpose blocks, plus what flagged entries add back."""
    plain = union_intervals([network_interval(e.network) for e in authorized if not e.special_purpose])
    flagged = union_intervals([network_interval(e.network) for e in authorized if e.special_purpose])
    special = union_intervals([network_interval(net) for net in SPECIAL_PURPOSE])
    return union_intervals(subtract_intervals(plain, special) + flagged)


_SPECIAL = IntervalIndex.build(union_intervals([network_interval(net) for net in SPECIAL_PURPOSE]))
