"""How much to trust an indicator now: a score in [0, 100] and the time it stops being worth acting on.

The formula (docs/share.md has the same text, ``tests/share/test_scoring.py`` checks each property):

    evidence   = 1 - (1 - r) ** k  *  (1 - w * (1 - exp(-n / n0)))
    score(t)   = 100 * evidence * 2 ** (-(t - last_seen) / h)
    valid_until = last_seen + h * log2(100 * evidence / s_min)     (last_seen when 100 * evidence <= s_min)

- ``k`` independent sources (our sensors and imported feeds, by name), each right with probability
  ``r`` (``source_reliability``, default 0.5); ``n`` sightings summed over the sources, which
  add evidence that saturates at weight ``w`` (``sightings_weight``, default 0.5) with scale
  ``n0`` (``sightings_scale``, default 10). The pieces combine as a noisy-OR: the chance that
  at least one of them is right if they are independent. So a second independent source counts
  more than many more sightings by one source (one sensor that sees a host every hour is still
  one sensor): k=1, n=1 gives 52; k=1, n -> inf gives 75; k=2, n=1 gives 76; k=3, n=10 gives 91.
- Recency: the score halves every ``h`` (``half_life``, default 7 days) since the last sighting;
  infected IoT devices are cleaned or re-addressed (DHCP) within days, so a stale address is
  more likely to block an innocent subscriber than the bot.
- ``valid_until`` is when the decayed score falls to ``s_min`` (``min_score``, default 10): after
  it a consumer should drop the indicator (STIX ``valid_until``, nftables element timeout).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from iotscope.share.errors import ShareError
from iotscope.share.indicators import Indicator


@dataclass(frozen=True)
class ScoringConfig:
    """The constants of the formula above; validated so that every score stays in [0, 100]."""

    source_reliability: float = 0.5
    sightings_weight: float = 0.5
    sightings_scale: float = 10.0
    half_life: timedelta = timedelta(days=7)
    min_score: float = 10.0

    def __post_init__(self) -> None:
        if not 0 < self.source_reliability < 1:
            raise ShareError(f"source reliability must be in (0, 1), got {self.source_reliability}")
        if not 0 <= self.sightings_weight < 1:
            raise ShareError(f"sightings weight must be in [0, 1), got {self.sightings_weight}")
        if not self.sightings_scale > 0:
            raise ShareError(f"sightings scale must be > 0, got {self.sightings_scale}")
        if not self.half_life > timedelta(0):
            raise ShareError(f"half-life must be > 0, got {self.half_life}")
        if not 0 < self.min_score < 100:
            raise ShareError(f"minimum score must be in (0, 100), got {self.min_score}")


@dataclass(frozen=True)
class Score:
    score: float  # at the time asked for, in [0, 100]
    evidence: float  # in [0, 1): before decay
    valid_until: datetime


@dataclass(frozen=True)
class Scored:
    indicator: Indicator
    score: Score


def evidence(sources: int, sightings: int, config: ScoringConfig) -> float:
    """Noisy-OR of ``sources`` independent sources and the saturating sightings term."""
    sources = max(sources, 1)
    sightings_term = config.sightings_weight * (1 - math.exp(-max(sightings, 0) / config.sightings_scale))
    return 1 - (1 - config.source_reliability) ** sources * (1 - sightings_term)


def score(indicator: Indicator, at: datetime, config: ScoringConfig) -> Score:
    """The indicator's score at ``at`` and its ``valid_until`` (see the module docstring)."""
    base = evidence(len(indicator.sources), indicator.sightings, config)
    age = max((at - indicator.last_seen).total_seconds(), 0.0)
    half_life = config.half_life.total_seconds()
    now_score = 100 * base * 2 ** (-age / half_life)
    ratio = 100 * base / config.min_score
    lifetime = half_life * math.log2(ratio) if ratio > 1 else 0.0
    return Score(score=now_score, evidence=base, valid_until=indicator.last_seen + timedelta(seconds=lifetime))
