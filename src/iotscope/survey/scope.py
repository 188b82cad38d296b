"""What the survey may contact: authorized ranges, the blocklist, and the one guarded way to connect.

A survey sends connection attempts to other people's devices, so the rule "never outside the
authorized scope" must not depend on every probe remembering to check. This module is the single
place that opens sockets for the survey: :func:`open_guarded_socket` and
:func:`open_guarded_connection` call :meth:`Scope.check` before a socket even exists, and every
sender (sweep, probes) goes through them.

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
:data:`BLOCKLIST_MAX_BYTES` (see :mod:`iotscope.survey.textfile`).
"""

from __future__ import annotations

import asyncio
import bisect
import errno
import ipaddress
import os
import socket
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from iotscope.errors import IotscopeError
from iotscope.survey.textfile import read_text_file

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Cap on a blocklist file: 64 MiB, some three million lines of opt-outs.
BLOCKLIST_MAX_BYTES = 64 << 20

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
    _candidates: _IntervalIndex = field(init=False, repr=False, compare=False)
    _targets: _IntervalIndex = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        candidates = _authorized_intervals(self.authorized)
        blocked = _union([_interval(net) for net in self.blocklist])
        ordered = tuple(sorted(self.authorized, key=lambda e: -e.network.prefixlen))
        object.__setattr__(self, "_most_specific_first", ordered)
        object.__setattr__(self, "_candidates", _IntervalIndex.build(candidates))
        object.__setattr__(self, "_targets", _IntervalIndex.build(_subtract(candidates, blocked)))

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
        address = _parse_address(ip)
        if address is None:
            raise OutOfScopeError(str(ip), "not an IP address (host names are never resolved)")
        if not self._targets.contains(address):
            raise OutOfScopeError(str(address), self._refusal_reason(address))
        return address

    def _admit_host(self, ip: str | IPAddress) -> tuple[socket.AddressFamily, str]:
        """:meth:`_admit` as (family, canonical text to connect to), with a fast lane for dotted
        quads: the sweep's path, where ``ipaddress`` objects would cost more than the connect.

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
        address = _parse_address(ip)
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


def start_guarded_connect(scope: Scope, ip: str | IPAddress, port: int) -> tuple[socket.socket, int]:
    """Begin a non-blocking TCP connect to ``ip:port``: the socket and ``connect_ex``'s errno
    (0 connected, ``EINPROGRESS`` pending: wait until writable and read ``SO_ERROR``).

    The building block of both openers below and of the sweep's connect engine, which polls
    thousands of these with one epoll instead of one asyncio future each. The scope check comes
    before the socket exists; the socket connects to the canonical form of the checked address,
    so no other parser (``inet_aton`` accepting ``127.1``, a resolver) can reinterpret it.
    """
    family, host = scope._admit_host(ip)
    if not 0 < port < 65536:
        raise ValueError(f"port {port} is not a TCP port")
    sock = socket.socket(family, socket.SOCK_STREAM | socket.SOCK_NONBLOCK)  # one syscall, not two
    try:
        return sock, sock.connect_ex((host, port))
    except BaseException:
        sock.close()
        raise


def guarded_source_address(scope: Scope, ip: str | IPAddress) -> str:
    """The local address the kernel would use to reach ``ip`` (the ``scanner`` field of evidence
    for targets this process did not connect to itself, e.g. imported from masscan).

    A connected UDP socket only consults the routing table: nothing is sent. The target is still
    checked first, like every socket of the survey.
    """
    family, host = scope._admit_host(ip)
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        probe.connect((host, 9))  # discard port; UDP connect sends no packet
        return probe.getsockname()[0]


async def open_guarded_socket(
    scope: Scope, ip: str | IPAddress, port: int, *, timeout: float
) -> socket.socket:
    """A connected non-blocking TCP socket to ``ip:port`` (for ``asyncssh.connect(sock=...)``).

    Raises :class:`OutOfScopeError` (before any socket exists), ``TimeoutError`` or ``OSError``.
    """
    sock, error = start_guarded_connect(scope, ip, port)
    try:
        if error == errno.EINPROGRESS:
            loop = asyncio.get_running_loop()
            writable = loop.create_future()
            loop.add_writer(sock.fileno(), lambda: writable.done() or writable.set_result(None))
            try:
                async with asyncio.timeout(timeout):
                    await writable
            finally:
                loop.remove_writer(sock.fileno())
            error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if error:
            raise OSError(error, os.strerror(error))
    except BaseException:
        sock.close()
        raise
    return sock


async def open_guarded_connection(
    scope: Scope, ip: str | IPAddress, port: int, *, timeout: float, limit: int = 2**16
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Asyncio streams to ``ip:port`` through :func:`open_guarded_socket` (same checks).

    ``limit`` is the stream reader's buffer cap, for probes that bound what a device may send.
    """
    sock = await open_guarded_socket(scope, ip, port, timeout=timeout)
    try:
        return await asyncio.open_connection(sock=sock, limit=limit)
    except BaseException:
        sock.close()
        raise


# -- loading ---------------------------------------------------------------------------------------


def _load(path: Path) -> Scope:
    origin = str(path)
    text = read_text_file(path, "scope file", ScopeError)
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScopeError(f"{origin}: not valid TOML ({exc})") from None
    unknown = set(document) - _TOP_LEVEL_KEYS
    if unknown:
        raise ScopeError(f"{origin}: unknown top-level key(s) {', '.join(sorted(unknown))}")
    entries = document.get("authorized")
    if not isinstance(entries, list) or not entries:
        raise ScopeError(f"{origin}: expected one or more [[authorized]] tables")
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
    if not isinstance(entry, dict):
        raise ScopeError(f"{where}: expected a table")
    unknown = set(entry) - _ENTRY_KEYS
    if unknown:
        raise ScopeError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    for key in ("cidr", "owner", "authorization"):
        if key not in entry:
            raise ScopeError(f"{where}: missing {key!r}")
        if not isinstance(entry[key], str) or not entry[key].strip():
            raise ScopeError(f"{where}: {key!r} must be a non-empty string")
    special_purpose = entry.get("special_purpose", False)
    if not isinstance(special_purpose, bool):
        raise ScopeError(f"{where}: 'special_purpose' must be true or false")
    cidr = entry["cidr"].strip()
    try:
        network = ipaddress.ip_network(cidr)
    except ValueError as exc:
        raise ScopeError(f"{where}: bad cidr {cidr!r} ({exc})") from None
    network = _fold_mapped(network)  # ::ffff:198.51.100.0/120 is 198.51.100.0/24: one spelling per range
    if special_purpose and not any(network.subnet_of(net) for net in _same_family(network)):
        raise ScopeError(
            f"{where}: special_purpose = true is only accepted on a range inside one "
            f"special-purpose block (RFC 6890), and {network} is not"
        )
    return AuthorizedRange(network, entry["owner"].strip(), entry["authorization"].strip(), special_purpose)


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
            networks.append(_fold_mapped(ipaddress.ip_network(text, strict=False)))
        except ValueError:
            raise ScopeError(f"{path}:{number}: not a CIDR or address: {text!r}") from None
    return tuple(networks)


def _special_purpose_warnings(authorized: tuple[AuthorizedRange, ...], origin: str) -> list[str]:
    warnings = []
    for entry in authorized:
        if entry.special_purpose:
            continue
        overlapping = [net for net in _same_family(entry.network) if net.overlaps(entry.network)]
        if overlapping:
            shown = ", ".join(str(net) for net in overlapping[:4]) + (" ..." if len(overlapping) > 4 else "")
            warnings.append(
                f"{origin}: {entry.network} ({entry.owner}) overlaps special-purpose space "
                f"({shown}); those addresses are excluded unless authorized with special_purpose = true"
            )
    return warnings


def _fold_mapped(network: IPNetwork) -> IPNetwork:
    """An IPv4-mapped IPv6 network as the IPv4 network it denotes (checks fold addresses too)."""
    if network.version == 6 and network.subnet_of(_IPV4_MAPPED):
        return ipaddress.IPv4Network((int(network.network_address) & 0xFFFFFFFF, network.prefixlen - 96))
    return network


def _same_family(network: IPNetwork) -> list[IPNetwork]:
    return [net for net in SPECIAL_PURPOSE if net.version == network.version]


def canonical_address(ip: str | IPAddress) -> str:
    """The one spelling of an address that the survey stores, de-duplicates and reports.

    ``127.0.0.97``, ``::ffff:127.0.0.97``, ``::ffff:7f00:61`` and ``0:0:0:0:0:FFFF:7f00:61`` are one
    host (an IPv4-mapped IPv6 address reaches the IPv4 host), so they must be one target and one
    row: the IPv4 dotted quad for those, RFC 5952 compressed lower-case text for other IPv6.
    Raises ``ValueError`` for anything that is not a literal address (see :func:`_parse_address`).
    """
    address = _parse_address(ip)
    if address is None:
        raise ValueError(f"not an IP address: {ip!r}")
    return str(address)


def _parse_address(ip: str | IPAddress) -> IPAddress | None:
    """The address ``ip`` denotes, IPv4-mapped IPv6 folded to IPv4 (it reaches the IPv4 host)."""
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


# -- the in-scope address set as disjoint integer intervals ---------------------------------------

Interval = tuple[int, int, int]  # (version, first, last) inclusive


@dataclass(frozen=True)
class _IntervalIndex:
    """In-scope addresses as sorted disjoint intervals with cumulative counts: ``address_at`` is a
    binary search, so a /8 or an IPv6 /64 costs a few intervals, not millions of addresses."""

    intervals: tuple[Interval, ...]
    starts: tuple[int, ...]  # cumulative count before each interval
    total: int
    #: Per IP version, the sorted firsts and lasts as plain ints: a membership test is one bisect.
    firsts: dict[int, list[int]] = field(default_factory=dict)
    lasts: dict[int, list[int]] = field(default_factory=dict)

    @classmethod
    def build(cls, allowed: list[Interval]) -> _IntervalIndex:
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


def _authorized_intervals(authorized: tuple[AuthorizedRange, ...]) -> list[Interval]:
    """Authorized space minus special-purpose blocks, plus what flagged entries add back."""
    plain = _union([_interval(e.network) for e in authorized if not e.special_purpose])
    flagged = _union([_interval(e.network) for e in authorized if e.special_purpose])
    special = _union([_interval(net) for net in SPECIAL_PURPOSE])
    return _union(_subtract(plain, special) + flagged)


def _interval(network: IPNetwork) -> Interval:
    return (network.version, int(network.network_address), int(network.broadcast_address))


def _union(intervals: list[Interval]) -> list[Interval]:
    merged: list[Interval] = []
    for version, first, last in sorted(intervals):
        if merged and merged[-1][0] == version and first <= merged[-1][2] + 1:
            merged[-1] = (version, merged[-1][1], max(merged[-1][2], last))
        else:
            merged.append((version, first, last))
    return merged


def _subtract(keep: list[Interval], remove: list[Interval]) -> list[Interval]:
    """``keep`` minus ``remove``; both sorted and disjoint (as :func:`_union` returns them)."""
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


_SPECIAL = _IntervalIndex.build(_union([_interval(net) for net in SPECIAL_PURPOSE]))
