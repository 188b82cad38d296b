"""Applying the policy: indicators as they may leave the machine, and what was held back.

Every exporter (STIX, TAXII push, blocklists, MISP) takes its indicators from :func:`release`,
so no path out of the machine can skip the policy. Values are anonymized per field (see
:mod:`iotscope.share.policy`), then merged again: two victims in one /24 become one released
indicator with both one's sightings.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from dataclasses import dataclass, replace

from iotscope.share.anonymize import (
    TRUNCATION_PREFIX,
    AnonymizationKey,
    CryptoPAn,
    keyed_hash,
)
from iotscope.share.errors import ShareError
from iotscope.share.indicators import Indicator, merge_indicators
from iotscope.share.policy import Policy


@dataclass(frozen=True)
class Released:
    indicators: list[Indicator]
    #: Indicators not released, per method that held them back ("drop").
    withheld: dict[str, int]


def policy_fields(indicator: Indicator) -> set[str]:
    """The policy fields an indicator belongs to, from its roles and type."""
    address = indicator.type in ("ipv4-addr", "ipv6-addr")
    fields = set()
    for role in indicator.roles:
        if role in ("scanner", "dos_victim"):
            fields.add(role)
        else:
            fields.add("imported_address" if address else "imported_domain")
    return fields


def _network_text(value: str, method: str, cryptopan: CryptoPAn | None) -> str:
    network = ipaddress.ip_network(value, strict=False)
    if method in TRUNCATION_PREFIX:
        prefix = min(TRUNCATION_PREFIX[method][network.version], network.prefixlen)
        return str(network.supernet(new_prefix=prefix))
    assert cryptopan is not None
    mapped = cryptopan.anonymize_text(str(network.network_address))
    if network.num_addresses == 1:
        return mapped
    # Prefix preservation maps a network onto a network of the same length.
    return str(ipaddress.ip_network(f"{mapped}/{network.prefixlen}", strict=False))


def release(indicators: list[Indicator], policy: Policy, key: AnonymizationKey | None) -> Released:
    """The indicators the policy lets out, each value in its released form (``released_as``)."""
    if policy.needs_key() and key is None:
        raise ShareError(f"{policy.source}: the policy uses cryptopan/hmac and needs a key "
                         "(--key FILE or `key = ...` in the policy; create one with `iotscope share keygen`)")
    cryptopan = CryptoPAn(key) if key is not None and "cryptopan" in policy.fields.values() else None
    out: list[Indicator] = []
    withheld: Counter[str] = Counter()
    for ind in indicators:
        method = policy.method(policy_fields(ind))
        if method == "drop":
            withheld["drop"] += 1
            continue
        if method == "raw":
            out.append(ind)
        elif method == "hmac":
            assert key is not None
            out.append(replace(ind, value=keyed_hash(key, ind.value), released_as="hmac"))
        elif ind.type in ("ipv4-addr", "ipv6-addr"):
            out.append(replace(ind, value=_network_text(ind.value, method, cryptopan), released_as=method))
        else:  # the policy parser allows only raw/hmac/drop for domains
            raise ShareError(f"{policy.source}: method {method} cannot apply to {ind.type} values")
    return Released(merge_indicators([out]), dict(withheld))
