"""Everything shareable about a store, in one call: our indicators merged with imported feeds,
released by the policy and scored. The CLI and every exporter start here."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from iotscope.share.anonymize import AnonymizationKey, load_key
from iotscope.share.errors import ShareError
from iotscope.share.feeds import read_feed
from iotscope.share.indicators import (
    SurveyAggregate,
    dos_victim_indicators,
    merge_indicators,
    scanner_indicators,
    survey_aggregates,
)
from iotscope.share.policy import Policy
from iotscope.share.release import release
from iotscope.share.scoring import Scored, ScoringConfig, score
from iotscope.share.stix import build_bundle, bundle_dict


@dataclass(frozen=True)
class Shareable:
    """What leaves the machine: released, scored indicators (best first) and survey aggregates."""

    indicators: list[Scored]
    aggregates: list[SurveyAggregate]
    withheld: dict[str, int]
    policy: Policy
    at: datetime


def stix_bundle(shareable: Shareable, identity_name: str) -> tuple[dict[str, Any], int]:
    """``shareable`` as a STIX 2.1 bundle (a JSON value) and how many indicators had no STIX form."""
    bundle, skipped = build_bundle(shareable.indicators, shareable.aggregates, tlp=shareable.policy.tlp,
                                   at=shareable.at, identity_name=identity_name)
    return bundle_dict(bundle), skipped


def require_store(store_dir: Path) -> None:
    if not (store_dir / "state.sqlite").is_file():
        raise ShareError(f"{store_dir}: not an iotscope store (run `iotscope ingest ... --store {store_dir}` first)")


def policy_key(policy: Policy, key_file: Path | None) -> AnonymizationKey | None:
    """The key the policy needs (``key_file`` first, then the policy's ``key``), None if it needs none."""
    if not policy.needs_key():
        return None
    path = key_file or policy.key_file
    if path is None:
        raise ShareError(f"{policy.source}: the policy uses cryptopan/hmac and needs a key "
                         "(--key FILE or `key = ...` in the policy; create one with `iotscope share keygen`)")
    return load_key(path)


def collect(store_dir: Path, *, sensor: str, feeds: list[Path], policy: Policy, key: AnonymizationKey | None,
            at: datetime, scoring: ScoringConfig) -> Shareable:
    """Read the store and the feeds, merge per (type, value), apply the policy, score at ``at``."""
    require_store(store_dir)
    groups = [scanner_indicators(store_dir, sensor), dos_victim_indicators(store_dir, sensor)]
    groups += [read_feed(path) for path in feeds]
    released = release(merge_indicators(groups), policy, key)
    scored = [Scored(ind, score(ind, at, scoring)) for ind in released.indicators]
    scored.sort(key=lambda s: (-s.score.score, s.indicator.key))
    return Shareable(scored, survey_aggregates(store_dir), released.withheld, policy, at)
