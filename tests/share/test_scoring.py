"""The documented score: its worked examples, monotonicity, the half-life and valid_until."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from iotscope.share.errors import ShareError
from iotscope.share.indicators import Indicator
from iotscope.share.scoring import ScoringConfig, evidence, score

T0 = datetime(2026, 3, 1, tzinfo=UTC)
CONFIG = ScoringConfig()


def ind(sources: int = 1, sightings: int = 1, last: datetime = T0) -> Indicator:
    return Indicator("ipv4-addr", "192.0.2.1", frozenset({"scanner"}), sightings,
                     frozenset(f"s{i}" for i in range(sources)), last - timedelta(hours=1), last)


def test_worked_examples_of_the_docstring() -> None:
    assert round(100 * evidence(1, 1, CONFIG)) == 52
    assert round(100 * evidence(1, 10**9, CONFIG)) == 75
    assert round(100 * evidence(2, 1, CONFIG)) == 76
    assert round(100 * evidence(3, 10, CONFIG)) == 91


@given(st.integers(1, 20), st.integers(1, 10_000))
def test_in_range_and_monotonic(k: int, n: int) -> None:
    e = evidence(k, n, CONFIG)
    assert 0 <= e < 1
    assert evidence(k + 1, n, CONFIG) > e
    assert evidence(k, n + 1, CONFIG) >= e
    # A second independent source outweighs any number of extra sightings by one source.
    assert evidence(k + 1, 1, CONFIG) > evidence(k, 10**9, CONFIG)


def test_half_life_decay_and_valid_until() -> None:
    config = ScoringConfig(half_life=timedelta(days=2))
    i = ind(sources=2, sightings=30)
    fresh = score(i, T0, config)
    assert fresh.score == pytest.approx(100 * fresh.evidence)
    assert score(i, T0 + timedelta(days=2), config).score == pytest.approx(fresh.score / 2)
    assert score(i, T0 + timedelta(days=6), config).score == pytest.approx(fresh.score / 8)
    # valid_until: exactly where the decayed score reaches min_score.
    assert score(i, fresh.valid_until, config).score == pytest.approx(config.min_score)
    assert score(i, T0 - timedelta(days=1), config).score == pytest.approx(fresh.score)  # no future boost
    longer = score(i, T0, ScoringConfig(half_life=timedelta(days=4)))
    assert abs((longer.valid_until - T0) - 2 * (fresh.valid_until - T0)) < timedelta(seconds=1)


def test_weak_evidence_expires_at_once() -> None:
    s = score(ind(), T0, ScoringConfig(min_score=60))
    assert s.valid_until == T0 and s.score < 60


@pytest.mark.parametrize("kwargs", [{"source_reliability": 1.0}, {"sightings_weight": -0.1},
                                    {"half_life": timedelta(0)}, {"min_score": 0}, {"sightings_scale": 0}])
def test_bad_constants_are_refused(kwargs: dict) -> None:
    with pytest.raises(ShareError):
        ScoringConfig(**kwargs)
