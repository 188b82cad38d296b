"""The policy applied to indicators and through the CLI: refusals, pseudonyms, the key never exported."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from iotscope.share.anonymize import AnonymizationKey, CryptoPAn
from iotscope.share.errors import ShareError
from iotscope.share.feeds import read_csv_feed
from iotscope.share.indicators import Indicator
from iotscope.share.policy import parse_policy
from iotscope.share.release import release
from tests.share.cli import iotscope, one_line_error

T0 = datetime(2016, 9, 1, tzinfo=UTC)
KEY = AnonymizationKey(bytes(range(32)))
POLICY = """
[fields]
scanner = "cryptopan"
dos_victim = "truncate24"
imported_address = "raw"
imported_domain = "hmac"
survey_device = "drop"
[rules]
never_raw = ["dos_victim", "scanner"]
"""


def ind(value: str, roles: set[str], type_: str = "ipv4-addr") -> Indicator:
    return Indicator(type_, value, frozenset(roles), 2, frozenset({"s"}), T0, T0 + timedelta(hours=1))


def test_release_per_field() -> None:
    p = parse_policy(POLICY, "t")
    out = release([ind("192.0.2.1", {"scanner"}), ind("198.51.100.7", {"dos_victim"}),
                   ind("198.51.100.9", {"dos_victim"}), ind("203.0.113.5", {"c2"}),
                   ind("203.0.113.6", {"c2", "scanner"}), ind("bad.example", {"c2"}, "domain-name")], p, KEY)
    got = {(i.released_as, i.value): i for i in out.indicators}
    assert ("cryptopan", CryptoPAn(KEY).anonymize_text("192.0.2.1")) in got
    victims = got[("truncate24", "198.51.100.0/24")]
    assert victims.sightings == 4  # two victims in one /24 merge after release
    assert ("raw", "203.0.113.5") in got
    assert ("cryptopan", CryptoPAn(KEY).anonymize_text("203.0.113.6")) in got  # the stricter field wins
    assert any(r == "hmac" and len(v) == 32 for r, v in got)
    assert not any("192.0.2.1" == v or "bad.example" == v for _, v in got)


def test_release_without_a_key_is_refused() -> None:
    with pytest.raises(ShareError, match="needs a key"):
        release([ind("192.0.2.1", {"scanner"})], parse_policy(POLICY, "t"), None)


def test_csv_feed_errors(tmp_path: Path) -> None:
    bad = tmp_path / "f.csv"
    for text, message in [("ip\n1.2.3.4\n", "'value' column"), ("value\nnot an address!\n", "f.csv:2"),
                          ("value,role\n1.2.3.4,friend\n", "unknown role"),
                          ("value,first_seen\n1.2.3.4,yesterday\n", "ISO 8601")]:
        bad.write_text(text)
        with pytest.raises(ShareError, match=message):
            read_csv_feed(bad)


def test_cli_refuses_a_policy_that_releases_raw_what_a_rule_forbids(darknet_store: tuple[Path, Path],
                                                                     tmp_path: Path) -> None:
    policy = tmp_path / "p.toml"
    policy.write_text(POLICY.replace('dos_victim = "truncate24"', 'dos_victim = "raw"'))
    out = tmp_path / "never.json"
    for command in (["export"], ["blocklist"]):
        err = one_line_error(iotscope("share", *command, "--store", darknet_store[0], "--policy", policy, "--out", out))
        assert "rules.never_raw forbids releasing dos_victim raw" in err
    assert not out.exists()


def test_cli_export_with_cryptopan_never_contains_the_key_or_real_scanners(darknet_store: tuple[Path, Path],
                                                                          tmp_path: Path) -> None:
    key = tmp_path / "share.key"
    assert iotscope("share", "keygen", "--key", key).returncode == 0
    assert os.stat(key).st_mode & 0o777 == 0o600
    policy = tmp_path / "p.toml"
    policy.write_text(POLICY)
    missing = one_line_error(iotscope("share", "export", "--store", darknet_store[0], "--policy", policy))
    assert "needs a key" in missing
    runs = []
    for _ in range(2):
        result = iotscope("share", "export", "--store", darknet_store[0], "--policy", policy, "--key", key,
                          "--at", "2016-09-01T03:00:00+00:00")
        assert result.returncode == 0, result.stderr
        runs.append(result.stdout)
    # same key -> same mapping and the same object ids across runs (a bundle's own id is per message)
    assert json.loads(runs[0])["objects"] == json.loads(runs[1])["objects"]
    secret = key.read_text().strip()
    assert secret not in runs[0] and bytes.fromhex(secret).hex().upper() not in runs[0]
    from iotscope.share.indicators import scanner_indicators
    real = {i.value for i in scanner_indicators(darknet_store[0], "x")}
    patterns = [o["pattern"] for o in json.loads(runs[0])["objects"] if o["type"] == "indicator"]
    assert patterns and not any(f"'{value}'" in p for p in patterns for value in list(real)[:200])
    os.chmod(key, 0o644)
    assert "group/others" in one_line_error(iotscope("share", "export", "--store", darknet_store[0],
                                                     "--policy", policy, "--key", key))


def test_not_a_store(tmp_path: Path) -> None:
    assert "not an iotscope store" in one_line_error(iotscope("share", "export", "--store", tmp_path / "nope"))
