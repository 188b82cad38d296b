"""What may leave the operator's machine, and in what form: the sharing policy (TOML).

Each *field* (a kind of address we release) gets one method::

    raw         the real value
    cryptopan   prefix-preserving pseudonym (keyed; subnets and counts survive)
    truncate24  the /24 (IPv6: /48) network the address is in
    truncate16  the /16 (IPv6: /32)
    hmac        a keyed hash (links records, reveals nothing else; no STIX pattern, no blocklist)
    drop        not released

``rules.never_raw`` lists fields that must never be released raw. A policy that asks for
``raw`` on such a field is refused as a whole, naming the rule, rather than silently
anonymized: the operator wrote two contradicting lines and must choose. The shipped default
(``share/data/default_policy.toml``) releases scanners and imported feeds raw (a blocklist
needs them; a scanner's address is already public to everyone it scans) and DoS victims only as
their /24 (a victim is not an attacker), and never a surveyed device.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from iotscope.share.errors import ShareError
from iotscope.textfile import read_text_file

METHODS: tuple[str, ...] = ("raw", "cryptopan", "truncate24", "truncate16", "hmac", "drop")
#: Fields and the methods each accepts: a domain has no prefix to preserve or truncate.
FIELDS: dict[str, tuple[str, ...]] = {
    "scanner": METHODS,
    "dos_victim": METHODS,
    "imported_address": METHODS,
    "imported_domain": ("raw", "hmac", "drop"),
    # Survey findings leave only as aggregates for now; a per-device release needs its own review.
    "survey_device": ("drop",),
}
#: From least to most protective: when an indicator belongs to several fields (an address that
#: scanned us and is in a C&C feed), the most protective of their methods applies.
STRICTNESS: tuple[str, ...] = ("raw", "cryptopan", "truncate24", "truncate16", "hmac", "drop")
TLP_LEVELS: tuple[str, ...] = ("clear", "green", "amber", "amber+strict", "red")


class PolicyError(ShareError):
    """An unusable or self-contradicting policy file."""


@dataclass(frozen=True)
class Policy:
    """A validated policy: one method per field, the TLP level, and the key file if one is named."""

    fields: dict[str, str]
    never_raw: tuple[str, ...]
    tlp: str
    key_file: Path | None
    source: str  # where it was read from, for messages

    def method(self, field_names: set[str]) -> str:
        """The method for an indicator in all of ``field_names``: the most protective of theirs."""
        return max((self.fields[f] for f in field_names), key=STRICTNESS.index, default="drop")

    def needs_key(self) -> bool:
        return any(m in ("cryptopan", "hmac") for m in self.fields.values())


def default_policy() -> Policy:
    text = resources.files("iotscope.share").joinpath("data/default_policy.toml").read_text()
    return parse_policy(text, "built-in default policy")


def load_policy(path: Path | None) -> Policy:
    """The policy in ``path`` (a regular file of at most 1 MiB, see :mod:`iotscope.textfile`), or the shipped
    default when None."""
    if path is None:
        return default_policy()
    return parse_policy(read_text_file(Path(path), "policy", PolicyError), str(path))


def parse_policy(text: str, source: str) -> Policy:
    """Validate a policy; unknown fields, methods or keys, and a raw release ``never_raw`` forbids,
    are refused with one line naming the setting."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"{source}: not valid TOML ({exc})") from None
    unknown = set(data) - {"fields", "rules", "tlp", "key"}
    if unknown:
        raise PolicyError(f"{source}: unknown setting(s) {', '.join(sorted(unknown))}")
    fields = dict(data.get("fields", {}))
    for name, method in fields.items():
        if name not in FIELDS:
            raise PolicyError(f"{source}: unknown field fields.{name} (known: {', '.join(FIELDS)})")
        if method not in FIELDS[name]:
            raise PolicyError(f"{source}: fields.{name} = {method!r} is not allowed (use one of {', '.join(FIELDS[name])})")
    missing = [name for name in FIELDS if name not in fields]
    if missing:
        raise PolicyError(f"{source}: fields.{missing[0]} is not set (every field needs a method)")
    rules = data.get("rules", {})
    if set(rules) - {"never_raw"}:
        raise PolicyError(f"{source}: unknown rule(s) {', '.join(sorted(set(rules) - {'never_raw'}))}")
    never_raw = tuple(rules.get("never_raw", ()))
    for name in never_raw:
        if name not in FIELDS:
            raise PolicyError(f"{source}: rules.never_raw names unknown field {name!r}")
        if fields[name] == "raw":
            raise PolicyError(f"{source}: refused: rule rules.never_raw forbids releasing {name} raw, "
                              f"but fields.{name} = \"raw\"")
    tlp = str(data.get("tlp", "green")).lower()
    if tlp not in TLP_LEVELS:
        raise PolicyError(f"{source}: tlp = {tlp!r} is not a TLP 2.0 level ({', '.join(TLP_LEVELS)})")
    key = data.get("key")
    return Policy(fields=fields, never_raw=never_raw, tlp=tlp,
                  key_file=Path(key).expanduser() if key else None, source=source)
