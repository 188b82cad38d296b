"""What an emulated fleet is: devices on loopback addresses, their services, and the ground truth.

The survey is judged by whether it finds exactly the vulnerable services of a fleet, so the fleet
description is data (a frozen :class:`FleetSpec`) from which both the running servers and the
ground truth are derived: the two cannot disagree. :func:`default_fleet` builds a realistic mix
deterministically from a seed. Every address must lie in 127.0.0.0/8: a fleet that listened on a
routable address would be a set of default-password devices exposed to the network.
"""

from __future__ import annotations

import ipaddress
import json
import random
import string
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from iotscope.errors import IotscopeError
from iotscope.simulate.devices.banners import PROFILES, PROFILES_BY_NAME, Profile
from iotscope.simulate.devices.http_device import HTTP_AUTH_SCHEMES
from iotscope.simulate.devices.misbehaviour import HOSTILE_BEHAVIOURS, TARPIT_BEHAVIOURS
from iotscope.survey.credentials import Credential, attempt_order, load_builtin

LOOPBACK = ipaddress.ip_network("127.0.0.0/8")
PROTOCOLS = ("telnet", "ssh", "http", "ftp")
KINDS = ("default-credential", "hardened", "no-password", "tarpit", "hostile")
#: ``login``: the service behaves like the real thing; anything else is a tarpit/hostile behaviour.
LOGIN = "login"

#: Kinds in the order devices are dealt: the first five devices are one of each kind, and every
#: 20 devices hold 8 default-credential, 5 hardened, 3 no-password, 2 tarpit and 2 hostile ones.
_KIND_CYCLE = (
    "default-credential", "hardened", "no-password", "tarpit", "hostile",
    "default-credential", "hardened", "default-credential", "no-password", "default-credential",
    "hardened", "default-credential", "tarpit", "default-credential", "hardened",
    "no-password", "default-credential", "hostile", "hardened", "default-credential",
)
#: Which services a device runs, dealt in turn within each kind, so a handful of devices of one
#: kind already covers every protocol.
_SERVICE_SETS = (
    ("telnet", "http"),
    ("ssh", "http"),
    ("telnet", "ftp"),
    ("telnet", "ssh", "http", "ftp"),
    ("http",),
    ("telnet",),
)
#: Ports dealt in turn per protocol: the survey must identify services by handshake, so standard
#: and non-standard ports are mixed (Mirai also scanned 2323; DVRs often serve HTTP on 81/8080).
_PORTS = {
    "telnet": (23, 2323, 23, 8023),
    "ssh": (22, 2222),
    "http": (80, 8080, 80, 81),
    "ftp": (21, 2121),
}
_STRONG_ALPHABET = string.ascii_letters + string.digits + "!#%+-.=?@^_~"


class FleetError(IotscopeError, ValueError):
    """A fleet that must not or cannot run (address outside 127/8, port clash); one line."""


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    """One listening service of a device.

    ``username is None`` means the service asks for nothing (open shell, open admin page).
    For FTP, ``anonymous`` says whether the ``anonymous`` user is let in; ``username``/``password``
    are the device's own account. ``credential_id`` names the built-in pair the account uses when
    that pair is a known default (it is what the survey must report).
    """

    port: int
    protocol: str
    behaviour: str = LOGIN
    username: str | None = None
    password: str | None = None
    credential_id: str | None = None
    anonymous: bool = False
    http_auth: str = "basic"
    lockout_after: int | None = None

    @property
    def vulnerable(self) -> bool:
        """True when a survey should report this service (a default pair, no login, anonymous FTP)."""
        if self.behaviour != LOGIN:
            return False
        if self.protocol == "ftp":
            return self.anonymous
        return self.username is None or self.credential_id is not None


@dataclass(frozen=True, slots=True)
class DeviceSpec:
    ip: str
    kind: str
    profile: str
    services: tuple[ServiceSpec, ...]


@dataclass(frozen=True)
class FleetSpec:
    """A whole fleet, plus the timings its services use (tests shorten them)."""

    devices: tuple[DeviceSpec, ...]
    seed: int | None = None
    #: Seconds a service waits for the client before hanging up.
    idle_timeout: float = 30.0
    #: Seconds between bytes of a dripping tarpit.
    drip_interval: float = 1.0
    #: Seconds a telnet login waits before "Login incorrect" (BusyBox waits 3; 0 keeps runs fast).
    fail_delay: float = 0.0
    lockout_window: float = 60.0
    lockout_seconds: float = 300.0

    def __post_init__(self) -> None:
        seen: set[tuple[str, int]] = set()
        for device in self.devices:
            check_loopback(device.ip)
            if device.kind not in KINDS:
                raise FleetError(f"device {device.ip}: unknown kind {device.kind!r}")
            if device.profile not in PROFILES_BY_NAME:
                raise FleetError(f"device {device.ip}: unknown profile {device.profile!r}")
            for service in device.services:
                _check_service(device.ip, service)
                if (device.ip, service.port) in seen:
                    raise FleetError(f"two services on {device.ip}:{service.port}")
                seen.add((device.ip, service.port))

    def profile_of(self, device: DeviceSpec) -> Profile:
        return PROFILES_BY_NAME[device.profile]

    def ground_truth(self) -> list[dict[str, object]]:
        """One row per service: what a correct survey reports about it.

        ``expected`` is ``finding`` (vulnerable: report it with ``credential_id``, which is
        ``None`` for open services and anonymous FTP), ``none`` (hardened: never report) or
        ``error`` (tarpit/hostile: the survey must give up within its timeouts, no finding).
        """
        rows = []
        for device in self.devices:
            profile = self.profile_of(device)
            for service in device.services:
                expected = (
                    "finding" if service.vulnerable
                    else "none" if service.behaviour == LOGIN
                    else "error"
                )
                rows.append({
                    "ip": device.ip,
                    "port": service.port,
                    "protocol": service.protocol,
                    "kind": device.kind,
                    "behaviour": service.behaviour,
                    "vendor": profile.vendor,
                    "profile": profile.name,
                    "vulnerable": service.vulnerable,
                    "credential_id": service.credential_id if service.vulnerable else None,
                    "expected": expected,
                    "lockout_after": service.lockout_after,
                })
        return rows


def check_loopback(ip: str) -> ipaddress.IPv4Address:
    """Refuse any address outside 127.0.0.0/8 (the fleet runs default-password services)."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        raise FleetError(f"{ip!r} is not an IP address") from None
    if address not in LOOPBACK:
        raise FleetError(f"refusing to bind {ip}: emulated devices only run inside 127.0.0.0/8")
    return address


def loopback_network(bind: str) -> ipaddress.IPv4Network:
    """Parse a bind range such as ``127.0.0.0/24`` and refuse anything not inside 127.0.0.0/8."""
    try:
        network = ipaddress.ip_network(bind, strict=False)
    except ValueError:
        raise FleetError(f"{bind!r} is not a CIDR range (expected e.g. 127.0.0.0/24)") from None
    if network.version != 4 or not network.subnet_of(LOOPBACK):
        raise FleetError(f"refusing to bind {bind}: emulated devices only run inside 127.0.0.0/8")
    return network


def default_fleet(
    bind: str = "127.0.0.0/24",
    count: int = 20,
    seed: int = 0,
    *,
    credentials: Sequence[Credential] | None = None,
    lockout_after: int | None = 10,
    **timings: float,
) -> FleetSpec:
    """A realistic mixed fleet of ``count`` devices in ``bind``, the same for the same seed.

    Vulnerable devices use pairs from ``credentials`` (default: the survey's built-in list, so the
    ids match what the survey records): half the time their vendor's own factory default, else one
    of Mirai's pairs (any pair of a list without Mirai weights). Hardened devices keep the vendor's account name with a random strong password and lock
    after ``lockout_after`` failures within the spec's ``lockout_window`` (``None``: never lock).
    ``timings`` are :class:`FleetSpec` fields (``idle_timeout``, ``drip_interval``, ...).
    127.0.0.1 is never used: the machine's own daemons listen there.
    """
    network = loopback_network(bind)
    if count < 1:
        raise FleetError(f"count must be at least 1, not {count}")
    pool = attempt_order(list(credentials if credentials is not None else load_builtin()))
    if not pool:
        raise FleetError("no credentials to give vulnerable devices")
    rng = random.Random(seed)
    ips = _pick_addresses(network, count, rng)
    kind_counts = dict.fromkeys(KINDS, 0)
    devices = []
    for index, ip in enumerate(ips):
        kind = _KIND_CYCLE[index % len(_KIND_CYCLE)]
        nth_of_kind = kind_counts[kind]
        kind_counts[kind] += 1
        profile = PROFILES[rng.randrange(len(PROFILES))]
        protocols = _SERVICE_SETS[nth_of_kind % len(_SERVICE_SETS)]
        services = tuple(
            _service(kind, protocol, _PORTS[protocol][index % len(_PORTS[protocol])], profile,
                     nth_of_kind, pool, rng, lockout_after)
            for protocol in protocols
        )
        devices.append(DeviceSpec(ip=ip, kind=kind, profile=profile.name, services=services))
    return FleetSpec(devices=tuple(devices), seed=seed, **timings)


def write_ground_truth(rows: list[dict[str, object]], path: str | Path) -> Path:
    """Write the ground truth as JSON (``.json``) or Parquet (``.parquet``), open formats both."""
    path = Path(path)
    if path.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows), path)
    elif path.suffix == ".json":
        path.write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")
    else:
        raise FleetError(f"{path}: ground truth file must end in .json or .parquet")
    return path


def _pick_addresses(network: ipaddress.IPv4Network, count: int, rng: random.Random) -> list[str]:
    first, size = int(network.network_address), network.num_addresses
    candidates = range(1, size - 1) if network.prefixlen <= 30 else range(size)
    localhost = int(ipaddress.ip_address("127.0.0.1")) - first
    usable = len(candidates) - (localhost in candidates)
    if count > usable:
        raise FleetError(f"{network} has room for {usable} devices, not {count}")
    chosen = rng.sample(candidates, count + (localhost in candidates))
    offsets = sorted(offset for offset in chosen if offset != localhost)[:count]
    return [str(ipaddress.ip_address(first + offset)) for offset in offsets]


def _service(
    kind: str,
    protocol: str,
    port: int,
    profile: Profile,
    nth_of_kind: int,
    pool: list[Credential],
    rng: random.Random,
    lockout_after: int | None,
) -> ServiceSpec:
    http_auth = "digest" if profile.vendor == "Hikvision" or nth_of_kind % 2 else "basic"
    base = ServiceSpec(port=port, protocol=protocol, http_auth=http_auth)
    strong = {"username": profile.admin_user, "password": _strong_password(rng, pool)}
    if kind == "tarpit":
        return replace(base, behaviour=rng.choice(TARPIT_BEHAVIOURS), **strong)
    if kind == "hostile":
        return replace(base, behaviour=rng.choice(HOSTILE_BEHAVIOURS[protocol]), **strong)
    if kind == "hardened":
        return replace(base, lockout_after=lockout_after, **strong)
    if protocol == "ftp":  # the FTP probe checks anonymous login only; the own account is strong
        return replace(base, anonymous=True, **strong)
    if kind == "no-password":
        return base
    credential = _default_credential(profile, pool, rng)
    return replace(
        base, username=credential.username, password=credential.password,
        credential_id=credential.id,
    )


def _default_credential(profile: Profile, pool: list[Credential], rng: random.Random) -> Credential:
    """The vendor's own default half the time, else a pair devices in the wild were found on:
    one of Mirai's (those with a Mirai weight), not any of the ~680 of the corpus (most of which
    a real device population seldom uses), or any pair of a list without weights."""
    vendor_default = next((c for c in pool if c.id == profile.default_credential_id), None)
    if vendor_default is not None and rng.random() < 0.5:
        return vendor_default
    common = [c for c in pool if c.weight is not None] or pool
    return common[rng.randrange(len(common))]


def _strong_password(rng: random.Random, pool: list[Credential]) -> str:
    known = {credential.password for credential in pool}
    while True:
        password = "".join(rng.choice(_STRONG_ALPHABET) for _ in range(16))
        if password not in known:
            return password


def _check_service(ip: str, service: ServiceSpec) -> None:
    where = f"service {ip}:{service.port}"
    if not 0 < service.port < 65536:
        raise FleetError(f"{where}: port must be 1..65535")
    if service.protocol not in PROTOCOLS:
        raise FleetError(f"{where}: unknown protocol {service.protocol!r}")
    allowed = (LOGIN, *TARPIT_BEHAVIOURS, *HOSTILE_BEHAVIOURS[service.protocol])
    if service.behaviour not in allowed:
        raise FleetError(f"{where}: {service.protocol} cannot behave as {service.behaviour!r}")
    if service.http_auth not in HTTP_AUTH_SCHEMES:
        raise FleetError(f"{where}: unknown HTTP auth {service.http_auth!r}")
    if (service.username is None) != (service.password is None):
        raise FleetError(f"{where}: give both username and password, or neither (open service)")
