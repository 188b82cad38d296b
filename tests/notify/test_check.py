"""``iotscope check ADDRESS --store``: darknet evidence, survey findings and advice for one address."""

from __future__ import annotations

import ipaddress
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from iotscope.survey.findings import FindingsDataset, make_finding
from iotscope.survey.journal import SurveyJournal
from iotscope.survey.probes import ProbeResult
from iotscope.survey.scope import AuthorizedRange
from tests.notify.conftest import Darknet


def check(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "iotscope", "check", *args], capture_output=True, text=True,
                          check=False, timeout=120)


def add_finding(store: Path, ip: str, status: str, when: datetime, survey_id: str) -> None:
    authorized = AuthorizedRange(ipaddress.ip_network(f"{ip}/32"), "Example ISP", "contract 1", False)
    finding = make_finding(ts=when, survey_id=survey_id, scanner="192.0.2.250", ip=ip, port=23, authorized=authorized,
                           result=ProbeResult("telnet", status, "mirai-01" if status == "vulnerable" else None,
                                              "login:", "BusyBox", "shell"))
    with SurveyJournal(store) as journal:
        journal.create(survey_id, "key", 1, "1/1", [23], "scope.toml")
        paths = FindingsDataset(store).publish(survey_id, [finding])
        journal.commit_findings(survey_id, paths, [(finding.ip, finding.port)])
        journal.finish(survey_id)


def test_a_mirai_bot_with_a_default_password(darknet: Darknet) -> None:
    bot = darknet.sources("mirai", 1)[0]
    add_finding(darknet.store, bot["ip"], "vulnerable", datetime(2026, 11, 1, tzinfo=UTC), "S1")
    before = sorted(p.name for p in darknet.store.iterdir())
    result = json.loads(check(bot["ip"], "--store", str(darknet.store), "--json").stdout)
    (seen,) = result["darknet"]
    assert seen["role"] == "scan" and seen["tool"] == "mirai" and seen["packets"] == bot["packets"]
    assert seen["first_seen"] == bot["first_ts"].isoformat() and 23 in seen["ports"]
    (found,) = result["vulnerable"]
    assert found["port"] == 23 and found["credential_id"] == "mirai-01"
    assert any("change its password" in line for line in result["advice"])
    assert sorted(p.name for p in darknet.store.iterdir()) == before  # a reader: nothing written
    # fixed since: a later survey's conclusive observation wins
    add_finding(darknet.store, bot["ip"], "not_vulnerable", datetime(2026, 11, 2, tzinfo=UTC), "S2")
    assert json.loads(check(bot["ip"], "--store", str(darknet.store), "--json").stdout)["vulnerable"] == []
    text = check(bot["ip"], "--store", str(darknet.store)).stdout
    assert "scanning (likely infected)" in text and "tool mirai" in text and "no service with a default password" in text


def test_an_address_never_seen_and_bad_input(darknet: Darknet) -> None:
    quiet = check("192.0.2.77", "--store", str(darknet.store))
    assert quiet.returncode == 0 and "darknet: not seen" in quiet.stdout and "advice: nothing to do" in quiet.stdout
    bot = darknet.sources("mirai", 1)[0]
    # the capture is from 2016: "the last 30 days" does not include it
    assert "not seen in the last 30 days" in check(bot["ip"], "--store", str(darknet.store), "--days", "30").stdout
    bad = check("not-an-address", "--store", str(darknet.store))
    assert bad.returncode == 2 and "not an IP address" in bad.stderr and "Traceback" not in bad.stderr
    empty = check("192.0.2.1", "--store", str(darknet.store / "nowhere"))
    assert empty.returncode == 2 and "not an iotscope store" in empty.stderr
