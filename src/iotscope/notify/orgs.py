"""``orgs.toml``: the organizations that get alerts and notices, their networks and contacts.

An alert names infected hosts, a notice names vulnerable devices: sent to the wrong organization
it leaks one network's weaknesses to another. So the file is validated like a survey scope, and
every address belongs to at most one organization (overlapping networks are an error, not a
tie-break). Format::

    [sender]                          # who sends (X-ARF "reporter" and "sender", mail From)
    org = "Example CSIRT"
    email = "csirt@example.org"
    domain = "example.org"

    [[org]]
    name = "City of Example"          # unique; shown in mails, used as the org's key
    email = ["soc@city.example"]      # one address or a list; every one receives the mail
    networks = ["192.0.2.0/24", "2001:db8:1::/48"]   # CIDRs, IPv4 and IPv6, no host bits
    language = "ja"                   # ja or en: the language of its mails and notices
    token_sha256 = "9f86d0...0f00a08" # optional: SHA-256 (hex) of its API token (web API, later)

The file must be a regular file of at most 1 MiB (:mod:`iotscope.textfile`). Every
problem is one :class:`~iotscope.notify.errors.NotifyError` naming the file, the entry and the key.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from iotscope.notify.errors import NotifyError
from iotscope.survey.addresses import IPNetwork, canonical_address, fold_mapped
from iotscope.survey.tomlfile import array_of_tables, entry_table, load_toml, required_string

LANGUAGES = ("ja", "en")
_ORG_KEYS = {"name", "email", "networks", "language", "token_sha256"}
_SENDER_KEYS = {"org", "email", "domain"}
_TOP_LEVEL_KEYS = {"sender", "org"}
#: Deliberately strict: one address, no display name, no spaces or line breaks (a header
#: injection must be impossible), a dotted domain.
_EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
_DOMAIN = re.compile(r"^[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
_TOKEN = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True, slots=True)
class Sender:
    """Who the mails come from; the X-ARF ``reporter``/``sender`` contact."""

    org: str
    email: str
    domain: str


@dataclass(frozen=True, slots=True)
class Org:
    """One ``[[org]]`` entry."""

    name: str
    emails: tuple[str, ...]
    networks: tuple[IPNetwork, ...]
    language: str
    token_sha256: str | None = None

    def contains(self, ip: str) -> bool:
        """Whether the address ``ip`` is inside one of this organization's networks."""
        address = ipaddress.ip_address(canonical_address(ip))
        return any(address in network for network in self.networks)


@dataclass(frozen=True)
class OrgCatalog:
    """The loaded file: the sender, the organizations in file order, and a content digest that
    names this version of the catalog in the alert history."""

    source: str
    sender: Sender
    orgs: tuple[Org, ...]
    digest: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "digest", hashlib.sha256(self.to_json().encode()).hexdigest())

    @classmethod
    def load(cls, path: str | Path) -> OrgCatalog:
        """Read and validate an orgs file; any problem is a :class:`NotifyError`."""
        return _load(Path(path))

    def by_name(self, name: str) -> Org:
        for org in self.orgs:
            if org.name == name:
                return org
        raise NotifyError(f"{self.source}: no organization named {name!r}")

    def owner_of(self, ip: str) -> Org | None:
        """The organization whose network covers ``ip`` (at most one: overlaps are refused)."""
        return next((org for org in self.orgs if org.contains(ip)), None)

    def to_json(self) -> str:
        """The catalog as canonical JSON (what the database stores as one version)."""
        return json.dumps({
            "sender": {"org": self.sender.org, "email": self.sender.email, "domain": self.sender.domain},
            "orgs": [{
                "name": o.name, "emails": list(o.emails), "networks": [str(n) for n in o.networks],
                "language": o.language, "token_sha256": o.token_sha256,
            } for o in self.orgs],
        }, sort_keys=True, ensure_ascii=False)


def _load(path: Path) -> OrgCatalog:
    origin = str(path)
    document = load_toml(path, "orgs file", NotifyError, _TOP_LEVEL_KEYS)
    sender = _sender(document.get("sender"), origin)
    entries = array_of_tables(document, "org", origin, NotifyError)
    orgs = tuple(_org(entry, index, origin) for index, entry in enumerate(entries, 1))
    names: dict[str, int] = {}
    for index, org in enumerate(orgs, 1):
        if org.name in names:
            raise NotifyError(f"{origin}: [[org]] #{index}: name {org.name!r} is already [[org]] #{names[org.name]}")
        names[org.name] = index
    _check_overlaps(orgs, origin)
    return OrgCatalog(origin, sender, orgs)


def _sender(table: object, origin: str) -> Sender:
    where = f"{origin}: [sender]"
    if not isinstance(table, dict):
        raise NotifyError(f"{where}: missing (org, email and domain of who sends the alerts)")
    entry_table(table, where, _SENDER_KEYS, NotifyError)
    values = {key: required_string(table, key, where, NotifyError) for key in ("org", "email", "domain")}
    if not _EMAIL.match(values["email"]):
        raise NotifyError(f"{where}: 'email' {values['email']!r} is not one plain address (name@domain)")
    if not _DOMAIN.match(values["domain"]):
        raise NotifyError(f"{where}: 'domain' {values['domain']!r} is not a domain name")
    return Sender(**values)


def _org(entry: object, index: int, origin: str) -> Org:
    where = f"{origin}: [[org]] #{index}"
    entry = entry_table(entry, where, _ORG_KEYS, NotifyError)
    name = required_string(entry, "name", where, NotifyError)
    where = f"{where} ({name})"
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise NotifyError(f"{where}: 'name' must be one line of printable text")
    emails = _emails(entry.get("email"), where)
    networks = _networks(entry.get("networks"), where)
    language = required_string(entry, "language", where, NotifyError)
    if language not in LANGUAGES:
        raise NotifyError(f"{where}: 'language' must be one of {', '.join(LANGUAGES)}, not {language!r}")
    token = entry.get("token_sha256")
    if token is not None and (not isinstance(token, str) or not _TOKEN.match(token)):
        raise NotifyError(f"{where}: 'token_sha256' must be 64 lower-case hex digits (the SHA-256 of the token)")
    return Org(name, emails, networks, language, token)


def _emails(value: object, where: str) -> tuple[str, ...]:
    if value is None:
        raise NotifyError(f"{where}: missing 'email'")
    emails = [value] if isinstance(value, str) else value
    if not isinstance(emails, list) or not emails or not all(isinstance(e, str) for e in emails):
        raise NotifyError(f"{where}: 'email' must be an address or a non-empty list of addresses")
    for email in emails:
        if not _EMAIL.match(email):
            raise NotifyError(f"{where}: 'email' {email!r} is not one plain address (name@domain)")
    return tuple(dict.fromkeys(emails))


def _networks(value: object, where: str) -> tuple[IPNetwork, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise NotifyError(f"{where}: 'networks' must be a non-empty list of CIDR strings")
    networks = []
    for text in value:
        try:
            network = ipaddress.ip_network(text.strip())
        except ValueError as exc:
            problem = "has host bits set" if "host bits" in str(exc) else f"is not a CIDR ({exc})"
            raise NotifyError(f"{where}: network {text!r} {problem}") from None
        networks.append(fold_mapped(network))  # one spelling per range
    return tuple(networks)


def _check_overlaps(orgs: tuple[Org, ...], origin: str) -> None:
    """Refuse any two networks that share an address, within one organization or across two.

    Sorted by (version, first address), a network overlaps some earlier one exactly when it starts
    before the furthest end seen so far: one pass, whatever the number of networks."""
    spans = sorted(
        (n.version, int(n.network_address), int(n.broadcast_address), str(n), org.name)
        for org in orgs for n in org.networks
    )
    furthest: tuple[int, int, str, str] | None = None  # (version, last, network, org)
    for version, first, last, text, name in spans:
        if furthest is not None and furthest[0] == version and first <= furthest[1]:
            other, other_org = furthest[2], furthest[3]
            whose = "the same organization" if other_org == name else f"{other_org!r}"
            raise NotifyError(f"{origin}: network {text} of {name!r} overlaps {other} of {whose}; "
                              "an address must belong to one organization")
        if furthest is None or furthest[0] != version or last > furthest[1]:
            furthest = (version, last, text, name)
