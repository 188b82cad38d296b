"""STIX 2.1 out and in, with the ``stix2`` library.

Out: one bundle with our ``identity``, the TLP 2.0 ``marking-definition`` the policy names (the
OASIS objects of the TLP 2.0 extension, fixed ids), and per released indicator four objects: the
cyber-observable (``ipv4-addr``, ``ipv6-addr``, ``domain-name``, ``url``), an ``indicator`` with
a STIX pattern (``confidence`` = our score, ``valid_until`` from the decay), an
``observed-data`` (first/last seen, ``number_observed`` = sightings) and a ``sighting`` of the
indicator by us. Survey aggregates become ``note`` objects (no addresses). Object ids are UUIDv5
of their content's key, so exporting twice gives the same ids and a TAXII server or a consumer
de-duplicates them. Values pseudonymized with ``hmac`` have no pattern and are left out.

In: :func:`indicators_from_bundle` takes every ``indicator`` whose pattern compares
``value`` of one of our four types (``[ipv4-addr:value = '198.51.100.7']``, also several joined
by ``OR``), with its sightings, sources and times. A bundle that ``stix2`` cannot parse is refused
as malformed, with one line.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import stix2
import stix2.exceptions

from iotscope.share.errors import ShareError
from iotscope.share.indicators import (
    ROLES,
    Indicator,
    SurveyAggregate,
    canonical_value,
    parse_time,
)
from iotscope.share.scoring import Scored

#: Namespace of our deterministic object ids (uuid5 of "iotscope share").
NAMESPACE = uuid.uuid5(uuid.NAMESPACE_DNS, "share.iotscope.invalid")
#: The OASIS TLP 2.0 extension (cti-stix-common-objects, extension-definition-specifications/tlp-2.0)
#: and its five marking definitions; consumers recognise them by these ids.
TLP2_EXTENSION = "extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d"
TLP2_MARKING_IDS: dict[str, str] = {
    "clear": "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487",
    "green": "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb",
    "amber": "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421",
    "amber+strict": "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003",
    "red": "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1",
}
_OBSERVABLES = {"ipv4-addr": stix2.IPv4Address, "ipv6-addr": stix2.IPv6Address,
                "domain-name": stix2.DomainName, "url": stix2.URL}
_PATTERN_TERM = re.compile(r"(ipv4-addr|ipv6-addr|domain-name|url):value\s*=\s*'((?:[^'\\]|\\.)*)'")


def tlp_marking(level: str) -> stix2.MarkingDefinition:
    """The OASIS TLP 2.0 marking definition of ``level`` (clear, green, amber, amber+strict, red)."""
    return stix2.MarkingDefinition(
        id=TLP2_MARKING_IDS[level], created="2022-10-01T00:00:00.000Z", name=f"TLP:{level.upper()}",
        extensions={TLP2_EXTENSION: {"extension_type": "property-extension", "tlp_2_0": level}},
    )


def _id(kind: str, *parts: str) -> str:
    return f"{kind}--{uuid.uuid5(NAMESPACE, '|'.join((kind, *parts)))}"


def _pattern(type_: str, value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace("'", "\\'")
    return f"[{type_}:value = '{escaped}']"


def _indicator_types(ind: Indicator) -> list[str]:
    if ind.roles & {"c2", "malware_distribution"} or "mirai" in ind.tools:
        return ["malicious-activity"]
    return ["anomalous-activity"]


def _labels(ind: Indicator) -> list[str]:
    """Roles and tools as they are; sources, ports and the release method as ``name:value`` labels,
    which any consumer keeps (custom properties would need a registered extension)."""
    return (sorted(ind.roles | ind.tools) + [f"source:{s}" for s in sorted(ind.sources)]
            + [f"port:{p}" for p in ind.ports] + [f"released-as:{ind.released_as}"])


def _description(ind: Indicator) -> str:
    what = " and ".join(r.replace("_", " ") for r in sorted(ind.roles))
    tools = f" fingerprinted as {', '.join(sorted(ind.tools))}" if ind.tools else ""
    ports = f", ports {', '.join(map(str, ind.ports))}" if ind.ports else ""
    return (f"{what}{tools}: {ind.sightings} sightings by {len(ind.sources)} source(s), "
            f"{ind.packets} packets at our sensors{ports}; value released as {ind.released_as}")


def build_bundle(indicators: list[Scored], aggregates: list[SurveyAggregate], *, tlp: str, at: datetime,
                 identity_name: str) -> tuple[stix2.Bundle, int]:
    """The bundle of released, scored indicators and survey aggregates, and how many indicators had
    no STIX form (hmac pseudonyms)."""
    now = at
    # A fixed version: the same name is the same identity object in every export (consumers de-duplicate).
    since = datetime(2016, 1, 1, tzinfo=UTC)
    identity = stix2.Identity(id=_id("identity", identity_name), name=identity_name, identity_class="organization",
                              created=since, modified=since, description="iotscope telescope operator")
    marking = tlp_marking(tlp)
    common = {"created_by_ref": identity.id, "object_marking_refs": [marking.id]}
    objects: list[Any] = [marking, identity]
    skipped = 0
    for scored in indicators:
        ind, sc = scored.indicator, scored.score
        if ind.released_as == "hmac":
            skipped += 1
            continue
        key = (ind.type, ind.value)
        observable = _OBSERVABLES[ind.type](value=ind.value)
        valid_until = max(sc.valid_until, ind.first_seen + timedelta(seconds=1))
        indicator = stix2.Indicator(
            id=_id("indicator", *key), created=ind.first_seen, modified=max(now, ind.first_seen),
            name=f"{', '.join(sorted(ind.roles))}: {ind.value}", pattern=_pattern(*key), pattern_type="stix",
            valid_from=ind.first_seen, valid_until=valid_until, confidence=round(sc.score),
            indicator_types=_indicator_types(ind), labels=_labels(ind), description=_description(ind),
            **common,
        )
        observed = stix2.ObservedData(
            id=_id("observed-data", *key), created=ind.first_seen, modified=max(now, ind.first_seen),
            first_observed=ind.first_seen, last_observed=ind.last_seen,
            number_observed=max(1, min(ind.sightings, 999_999_999)), object_refs=[observable.id], **common,
        )
        sighting = stix2.Sighting(
            id=_id("sighting", *key), created=ind.first_seen, modified=max(now, ind.first_seen),
            sighting_of_ref=indicator.id, observed_data_refs=[observed.id], where_sighted_refs=[identity.id],
            count=ind.sightings, first_seen=ind.first_seen, last_seen=max(ind.last_seen, ind.first_seen), **common,
        )
        objects += [observable, indicator, observed, sighting]
    for agg in aggregates:
        objects.append(stix2.Note(
            id=_id("note", "survey", agg.protocol, agg.tag, agg.severity), created=agg.first_seen,
            modified=max(now, agg.first_seen), abstract=f"survey: {agg.services} vulnerable {agg.protocol} services",
            content=(f"{agg.services} {agg.protocol} services with {agg.tag} ({agg.severity}) in {agg.owners} "
                     f"authorized networks, observed {agg.first_seen.isoformat()} .. {agg.last_seen.isoformat()}; "
                     "aggregate only, no device addresses"),
            object_refs=[identity.id], **common,
        ))
    return stix2.Bundle(objects=objects), skipped


def bundle_json(bundle: stix2.Bundle) -> str:
    # stix2's pretty=True orders keys with a search per property: minutes for a few thousand objects.
    return json.dumps(json.loads(bundle.serialize()), indent=1) + "\n"


def indicators_from_bundle(data: Any, where: str, default_source: str) -> list[Indicator]:
    """Our indicators from a STIX 2.1 bundle (a parsed JSON value); see the module docstring."""
    if not isinstance(data, dict) or data.get("type") != "bundle" or not isinstance(data.get("objects", []), list):
        raise ShareError(f"{where}: malformed STIX (not a bundle)")
    try:
        bundle = stix2.parse(data, allow_custom=True, version="2.1")
    except (stix2.exceptions.STIXError, ValueError, TypeError, KeyError, AttributeError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ShareError(f"{where}: malformed STIX ({first})") from None
    return objects_to_indicators(list(getattr(bundle, "objects", [])), where, default_source)


def objects_to_indicators(objects: list[Any], where: str, default_source: str) -> list[Indicator]:
    """Indicators (with their sightings) among parsed STIX objects (from a bundle or a TAXII collection)."""
    identities = {o["id"]: o["name"] for o in objects if o["type"] == "identity"}
    sightings: dict[str, list[Any]] = {}
    for o in objects:
        if o["type"] == "sighting":
            sightings.setdefault(o["sighting_of_ref"], []).append(o)
    out = []
    for o in objects:
        if o["type"] != "indicator" or o.get("pattern_type") != "stix":
            continue
        seen = sightings.get(o["id"], [])
        count = sum(s.get("count", 1) for s in seen) or 1
        first = min((s["first_seen"] for s in seen if "first_seen" in s), default=o["valid_from"])
        last = max((s["last_seen"] for s in seen if "last_seen" in s), default=o.get("modified", o["valid_from"]))
        labels = set(o.get("labels", []))
        tagged = {name: [v for k, _, v in (lab.partition(":") for lab in o.get("labels", [])) if k == name]
                  for name in ("source", "port")}  # in label order: ports are listed most-targeted first
        sources = tagged["source"] or [identities.get(o.get("created_by_ref", ""), default_source)]
        roles = labels & set(ROLES) or {"c2"}
        tools = labels & {"mirai", "zmap", "masscan"}
        for type_, raw in _PATTERN_TERM.findall(o["pattern"]):
            value = raw.replace("\\'", "'").replace("\\\\", "\\")
            try:
                value = canonical_value(type_, value)
            except ValueError:
                raise ShareError(f"{where}: malformed STIX ({o['id']}: {value!r} is not a {type_} value)") from None
            out.append(Indicator(
                type=type_, value=value, roles=frozenset(roles), sightings=int(count),
                sources=frozenset(sources), first_seen=_utc(first), last_seen=_utc(last), tools=frozenset(tools),
                ports=tuple(int(p) for p in tagged["port"] if p.isdigit()),
            ))
    return out


def _utc(value: Any) -> datetime:
    return value if isinstance(value, datetime) else parse_time(str(value), "STIX")


def bundle_dict(bundle: stix2.Bundle) -> dict[str, Any]:
    return json.loads(bundle.serialize())
