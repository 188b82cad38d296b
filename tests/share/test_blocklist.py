"""Blocklists loaded by their consumers: nftables (``nft -f`` in a network namespace) and BIND's named-checkzone."""

from __future__ import annotations

import csv
import io
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from iotscope.share.blocklist import render, select
from iotscope.share.indicators import Indicator
from iotscope.share.scoring import Score, Scored
from tests.share.cli import iotscope, one_line_error

AT = "2016-09-01T03:00:00+00:00"
T0 = datetime(2016, 9, 1, 3, tzinfo=UTC)
FEED = """value,role,first_seen,last_seen,sightings,source
203.0.113.50,c2,2016-08-31T00:00:00Z,2016-09-01T01:00:00Z,40,abuse-feed
2001:db8:66::/48,malware_distribution,2016-08-31T00:00:00Z,2016-09-01T01:00:00Z,40,abuse-feed
cnc.bad.example,c2,2016-08-31T00:00:00Z,2016-09-01T01:00:00Z,40,abuse-feed
xn--80ak6aa92e.example,malware_distribution,2016-08-31T00:00:00Z,2016-09-01T01:00:00Z,40,abuse-feed
"""


@pytest.fixture(scope="module")
def feed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("feed") / "abuse.csv"
    path.write_text(FEED)
    return path


@pytest.fixture
def netns() -> Iterator[str]:
    """A network namespace of this test (its nftables ruleset is its own), deleted afterwards."""
    if shutil.which("nft") is None or os.geteuid() != 0:
        pytest.skip("needs root and nftables (apt-get install nftables)")
    name = f"iotscope-bl-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def scored(value: str, type_: str, roles: set[str], score: float, valid_for: timedelta, released: str = "raw") -> Scored:
    ind = Indicator(type_, value, frozenset(roles), 1, frozenset({"s"}), T0 - timedelta(hours=1), T0, released_as=released)
    return Scored(ind, Score(score, score / 100, T0 + valid_for))


def test_selection_rules() -> None:
    day = timedelta(days=1)
    items = [
        scored("192.0.2.1", "ipv4-addr", {"scanner"}, 80, day),
        scored("192.0.2.2", "ipv4-addr", {"scanner"}, 20, day),  # below the minimum
        scored("192.0.2.3", "ipv4-addr", {"dos_victim"}, 90, day),  # a victim, not an attacker
        scored("192.0.2.4", "ipv4-addr", {"scanner"}, 90, -day),  # expired
        scored("10.9.8.7", "ipv4-addr", {"scanner"}, 90, day, "cryptopan"),  # a pseudonym names no real host
        scored("198.51.100.0/24", "ipv4-addr", {"scanner", "dos_victim"}, 90, day, "truncate24"),
    ]
    got = select(items, 50, T0)
    assert [e.value for e in got] == ["192.0.2.1", "198.51.100.0/24"]
    assert got[0].timeout_s == 86400 and got[1].roles == ("scanner",)


def test_nftables_set_loads_in_a_namespace_with_timeouts(darknet_store: tuple[Path, Path], feed: Path,
                                                        tmp_path: Path, netns: str) -> None:
    out = tmp_path / "block.nft"
    result = iotscope("share", "blocklist", "--store", darknet_store[0], "--min-score", "50", "--format", "nftables",
                      "--out", out, "--feed", feed, "--at", AT)
    assert result.returncode == 0, result.stderr
    text = out.read_text()
    assert "203.0.113.50 timeout" in text and "2001:db8:66::/48 timeout" in text
    for _ in range(2):  # loading twice replaces the table (the file deletes and recreates it)
        load = subprocess.run(["ip", "netns", "exec", netns, "nft", "-f", str(out)], check=False, capture_output=True,
                              text=True)
        assert load.returncode == 0, load.stderr
    listed = subprocess.run(["ip", "netns", "exec", netns, "nft", "list", "table", "inet", "iotscope_blocklist"],
                            capture_output=True, text=True, check=True).stdout
    v4 = re.findall(r"(\d+\.\d+\.\d+\.\d+) timeout (\S+) expires", listed)
    assert ("203.0.113.50" in {a for a, _ in v4}) and "2001:db8:66::/48 timeout" in listed
    assert len(v4) == text.count(" timeout ") - 1  # every v4 element of the file, with its timeout (one v6)
    assert "ip saddr @blocklist_v4 drop" in listed
    # nothing of this namespace leaked into the host's ruleset
    host = subprocess.run(["nft", "list", "tables"], check=False, capture_output=True, text=True).stdout
    assert "iotscope_blocklist" not in host


def test_rpz_zone_passes_named_checkzone(darknet_store: tuple[Path, Path], feed: Path, tmp_path: Path) -> None:
    if shutil.which("named-checkzone") is None:
        pytest.skip("needs named-checkzone (apt-get install bind9-utils)")
    out = tmp_path / "rpz.zone"
    result = iotscope("share", "blocklist", "--store", darknet_store[0], "--min-score", "50", "--format", "rpz",
                      "--out", out, "--feed", feed, "--at", AT)
    assert result.returncode == 0, result.stderr
    text = out.read_text()
    assert "cnc.bad.example CNAME .\n*.cnc.bad.example CNAME ." in text and "xn--80ak6aa92e.example CNAME ." in text
    check = subprocess.run(["named-checkzone", "rpz.iotscope", str(out)], check=False, capture_output=True,
                           text=True)
    assert check.returncode == 0 and check.stdout.strip().endswith("OK"), check.stdout + check.stderr


def test_csv_and_plain(darknet_store: tuple[Path, Path], feed: Path) -> None:
    result = iotscope("share", "blocklist", "--store", darknet_store[0], "--min-score", "50", "--format", "csv",
                      "--feed", feed, "--at", AT)
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert rows and all(float(r["score"]) >= 50 for r in rows)
    assert {"203.0.113.50", "cnc.bad.example"} <= {r["value"] for r in rows}
    assert not any(r["roles"] == "dos_victim" for r in rows)
    plain = iotscope("share", "blocklist", "--store", darknet_store[0], "--min-score", "50", "--feed", feed, "--at", AT)
    assert plain.stdout.split() == [r["value"] for r in rows]
    # A higher bar lists fewer; 100 lists nothing.
    assert iotscope("share", "blocklist", "--store", darknet_store[0], "--min-score", "100", "--at", AT).stdout == ""


def test_bad_format_and_score(darknet_store: tuple[Path, Path]) -> None:
    assert "unknown --format" in one_line_error(iotscope("share", "blocklist", "--store", darknet_store[0],
                                                         "--format", "iptables"))
    assert "--min-score" in one_line_error(iotscope("share", "blocklist", "--store", darknet_store[0],
                                                    "--min-score", "101"))
    assert render([], "plain", T0) == ""
