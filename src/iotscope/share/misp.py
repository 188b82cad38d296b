"""MISP event JSON: the same released, scored indicators for a MISP instance's import.

One event (``info``, ``date``, TLP tag, ``analysis`` 2 = completed) with one attribute per
indicator: ``ip-src`` for scanners (they send to us), ``ip-dst`` for C&C and malware sites
(clients connect to them), ``domain`` / ``url`` for names; ``to_ids`` true only for attackers;
``first_seen``/``last_seen`` and the score in the comment. Survey aggregates are the event's
``comment``-type attributes (text, no addresses).
"""

from __future__ import annotations

import uuid
from typing import Any

from iotscope.share.collect import Shareable
from iotscope.share.indicators import MALICIOUS_ROLES, Indicator
from iotscope.share.stix import NAMESPACE

_DISTRIBUTION = {"clear": 3, "green": 2, "amber": 1, "amber+strict": 0, "red": 0}  # all, connected, community, org


def _attribute_type(ind: Indicator) -> str:
    if ind.type in ("ipv4-addr", "ipv6-addr"):
        return "ip-src" if ind.roles & {"scanner", "dos_victim"} else "ip-dst"
    return "domain" if ind.type == "domain-name" else "url"


def misp_event(shareable: Shareable, identity_name: str) -> tuple[dict[str, Any], int]:
    """The MISP event, and how many indicators had no MISP form (hmac pseudonyms)."""
    attributes = []
    skipped = 0
    for scored in shareable.indicators:
        ind, sc = scored.indicator, scored.score
        if ind.released_as == "hmac":
            skipped += 1
            continue
        attributes.append({
            "uuid": str(uuid.uuid5(NAMESPACE, f"misp|{ind.type}|{ind.value}")),
            "type": _attribute_type(ind), "category": "Network activity", "value": ind.value,
            "to_ids": bool(ind.roles & MALICIOUS_ROLES),
            "first_seen": ind.first_seen.isoformat(), "last_seen": ind.last_seen.isoformat(),
            "comment": (f"{', '.join(sorted(ind.roles | ind.tools))}; score {sc.score:.0f}, valid until "
                        f"{sc.valid_until.isoformat()}; {ind.sightings} sightings by {len(ind.sources)} source(s); "
                        f"released as {ind.released_as}"),
            "Tag": [{"name": f"iotscope:role=\"{role}\""} for role in sorted(ind.roles)],
        })
    for agg in shareable.aggregates:
        attributes.append({
            "type": "comment", "category": "Other", "to_ids": False,
            "value": f"survey: {agg.services} {agg.protocol} services with {agg.tag} ({agg.severity}) "
                     f"in {agg.owners} networks",
        })
    event = {
        "Event": {
            "uuid": str(uuid.uuid5(NAMESPACE, f"misp-event|{identity_name}|{shareable.at.date()}")),
            "info": f"iotscope darknet indicators from {identity_name}, {shareable.at.date()}",
            "date": shareable.at.date().isoformat(),
            "threat_level_id": "3", "analysis": "2",
            "distribution": str(_DISTRIBUTION[shareable.policy.tlp]),
            "Orgc": {"name": identity_name},
            "Tag": [{"name": f"tlp:{shareable.policy.tlp}"}],
            "Attribute": attributes,
        }
    }
    return event, skipped
