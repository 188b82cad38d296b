"""Reports: one Shadowserver-style file per owner, latest state per service, errors kept apart."""

from __future__ import annotations

import csv
import ipaddress
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from iotscope.survey.findings import FindingsDataset, make_finding
from iotscope.survey.journal import SurveyJournal
from iotscope.survey.probes import ProbeResult
from iotscope.survey.report import REPORT_FIELDS, ReportError, export_report
from iotscope.survey.scope import AuthorizedRange

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
ISP = AuthorizedRange(ipaddress.ip_network("192.0.2.0/25"), "Example ISP", "contract 17", True)
EVIL = AuthorizedRange(ipaddress.ip_network("192.0.2.128/25"), "=cmd|' /C calc'!A0", "ticket 9", True)


def add_survey(store: Path, survey_id: str, rows: list[tuple]) -> None:
    findings = []
    for ip, port, protocol, status, credential, ts, authorized in rows:
        result = None if protocol is None else ProbeResult(protocol, status, credential, "banner", "BusyBox", "detail")
        findings.append(make_finding(ts=ts, survey_id=survey_id, scanner="192.0.2.250", ip=ip, port=port, authorized=authorized, result=result))
    with SurveyJournal(store) as journal:
        journal.create(survey_id, "key", 1, "1/1", [23], "scope.toml")
        paths = FindingsDataset(store).publish(survey_id, findings)
        journal.commit_findings(survey_id, paths, [(f.ip, f.port) for f in findings])
        journal.finish(survey_id)


@pytest.fixture
def store(tmp_path: Path) -> Path:
    root = tmp_path / "store"
    add_survey(root, "S1", [
        ("192.0.2.9", 23, "telnet", "vulnerable", "mirai-01", T0, ISP),
        ("192.0.2.10", 80, "http", "vulnerable", None, T0, ISP),
        ("192.0.2.11", 21, "ftp", "vulnerable", None, T0, ISP),
        ("192.0.2.12", 22, "ssh", "not_vulnerable", None, T0, ISP),
        ("192.0.2.13", 2323, None, "error", None, T0, ISP),
        ("192.0.2.200", 23, "telnet", "vulnerable", "mirai-02", T0, EVIL),
    ])
    # A day later the telnet device at .9 was fixed.
    add_survey(root, "S2", [("192.0.2.9", 23, "telnet", "not_vulnerable", None, T0 + timedelta(days=1), ISP)])
    return root


def read_csv(path: Path) -> list[dict]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_csv_per_owner_with_latest_state(store: Path, tmp_path: Path) -> None:
    result = export_report(store, tmp_path / "out")
    assert {owner: rows for owner, (_, rows) in result.owners.items()} == {"Example ISP": 2, "=cmd|' /C calc'!A0": 1}
    isp = read_csv(tmp_path / "out" / "example-isp.csv")
    assert list(isp[0]) == list(REPORT_FIELDS)
    assert [(r["ip"], r["port"], r["tag"], r["severity"]) for r in isp] == [
        ("192.0.2.10", "80", "no-authentication", "high"),
        ("192.0.2.11", "21", "anonymous-ftp", "medium"),
    ]
    assert isp[0]["timestamp"] == "2026-03-01T12:00:00Z" and isp[0]["hostname"] == ""
    assert isp[0]["authorization"] == "contract 17" and isp[0]["survey_id"] == "S1"
    evil = read_csv(tmp_path / "out" / "cmd-c-calc-a0.csv")
    assert evil[0]["owner"].startswith("'=")  # a spreadsheet shows it, never runs it
    errors = read_csv(tmp_path / "out" / "errors.csv")
    assert [(r["ip"], r["tag"]) for r in errors] == [("192.0.2.13", "unidentified-service")]
    assert result.severities == {"high": 1, "medium": 1, "critical": 1} and result.services == 6


def test_one_survey_and_json(store: Path, tmp_path: Path) -> None:
    export_report(store, tmp_path / "out", survey_id="S1", fmt="json")
    rows = json.loads((tmp_path / "out" / "example-isp.json").read_text())
    assert [r["ip"] for r in rows] == ["192.0.2.9", "192.0.2.10", "192.0.2.11"]  # critical first
    assert rows[0]["hostname"] is None and rows[0]["credential_id"] == "mirai-01" and rows[0]["port"] == 23
    assert set(rows[0]) == set(REPORT_FIELDS)


def test_bad_requests(store: Path, tmp_path: Path) -> None:
    with pytest.raises(ReportError, match="no survey 'S9' \\(latest: S1, S2\\)"):
        export_report(store, tmp_path / "out", survey_id="S9")
    with pytest.raises(ReportError, match="no survey in this store"):
        export_report(tmp_path / "empty", tmp_path / "out")
    with pytest.raises(ReportError, match="unknown format"):
        export_report(store, tmp_path / "out", fmt="xml")
    (tmp_path / "file").write_text("")
    with pytest.raises(ReportError, match="cannot create output directory"):
        export_report(store, tmp_path / "file" / "out")
