"""The measured anonymization report on a real store, per method."""

from __future__ import annotations

from pathlib import Path

import pytest

from iotscope.share.anonymity import anonymity_report
from iotscope.share.anonymize import AnonymizationKey
from iotscope.share.policy import parse_policy

KEY = AnonymizationKey(bytes(range(32)))


def policy(method: str):
    return parse_policy(f"""
[fields]
scanner = "{method}"
dos_victim = "drop"
imported_address = "raw"
imported_domain = "raw"
survey_device = "drop"
""", "test")


@pytest.mark.parametrize("method", ["raw", "cryptopan", "hmac", "truncate24", "truncate16"])
def test_report_per_method(darknet_store: tuple[Path, Path], method: str) -> None:
    r = anonymity_report(darknet_store[0], policy(method), KEY)
    assert r["released_records"] > 10_000 and r["distinct_sources"] > 1000
    # Ports and tools are released as they are: every share survives exactly.
    assert r["port_share_max_difference"] == 0 and r["tool_share_max_difference"] == 0
    # Random darknet sources: nearly every one is alone in its /24 (what /24 truncation cannot hide).
    assert r["unique_in_24"] > 0.95
    if method in ("raw", "cryptopan", "hmac"):  # one pseudonym per host: linkable, k = 1
        assert r["k_anonymity"] == 1 and r["sources_with_k1"] == 1.0
        assert r["distinct_sources_after"] == r["distinct_sources"]
    if method in ("raw", "cryptopan"):  # prefix preservation keeps the /24 structure
        assert r["distinct_24s_after"] == r["distinct_24s_before"]
    if method == "truncate16":
        assert r["distinct_sources_after"] < r["distinct_sources"] and r["median_k"] >= 1
        assert r["sources_with_k1"] < 1.0


def test_dropped_field_releases_nothing(darknet_store: tuple[Path, Path]) -> None:
    assert anonymity_report(darknet_store[0], policy("drop"), KEY)["released_records"] == 0
