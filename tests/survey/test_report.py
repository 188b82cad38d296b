"""Reports: one Shadowserver-style file per owner, latest state per service, errors kept apart."""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import ipaddress
import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from iotscope.simulate.devices.fleet import ServiceSpec
from iotscope.survey.credentials import load_builtin
from iotscope.survey.findings import FindingsDataset, make_finding
from iotscope.survey.journal import SurveyJournal
from iotscope.survey.probes import ProbeLimits, ProbeResult
from iotscope.survey.report import REPORT_FIELDS, ReportError, export_report
from iotscope.survey.run import SurveySummary, run_survey
from iotscope.survey.scope import AuthorizedRange, Scope
from tests.survey.conftest import write_scope
from tests.survey.one_device import start_device

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


# -- latest observation per service, over real survey runs (issue 6 item 9) ---------------------

FAST_LIMITS = ProbeLimits(
    connect_timeout=1.0, read_timeout=1.0, deadline=8.0, greeting_timeout=0.5, attempt_delay=0.0, prompt_settle=0.02,
)


def run(scope: Scope, store: Path, ports: list[int], credentials=None, **options) -> SurveySummary:
    return asyncio.run(run_survey(
        scope, store=store, credentials=credentials or load_builtin(), ports=ports, rate=2000, limits=FAST_LIMITS,
        workers=1, **options,
    ))


def test_a_service_closed_or_hardened_since_is_no_longer_reported(tmp_path: Path) -> None:
    telnet_pair, http_pair = load_builtin()[0], load_builtin()[1]
    ip, device = start_device([
        ServiceSpec(2323, "telnet", username=telnet_pair.username, password=telnet_pair.password, credential_id=telnet_pair.id),
        ServiceSpec(8080, "http", username=http_pair.username, password=http_pair.password, credential_id=http_pair.id),
    ])
    scope = Scope.load(write_scope(tmp_path / "scope.toml", [f"{ip}/32"], owner="Loopback ISP"))
    store, out = tmp_path / "store", tmp_path / "out"
    try:
        first = run(scope, store, [2323, 8080])
    finally:
        device.stop()
    assert {(f.port, f.status) for f in first.findings} == {(2323, "vulnerable"), (8080, "vulnerable")}
    assert export_report(store, out).owners["Loopback ISP"][1] == 2

    # The owner turned telnet off and gave the web interface a strong password.
    _, device = start_device([ServiceSpec(8080, "http", username=http_pair.username, password="k3Q!x9-strong-Zp")], ip=ip)
    try:
        # A list it exhausts: "not vulnerable" is a verdict only then (a capped list is incomplete).
        second = run(scope, store, [2323, 8080], credentials=load_builtin()[:20])
    finally:
        device.stop()
    assert {(f.port, f.status) for f in second.findings} == {(8080, "not_vulnerable")}

    result = export_report(store, out)  # the same directory: the old file must not survive either
    assert result.owners.get("Loopback ISP", (None, 0))[1] == 0
    assert read_csv(out / "loopback-isp.csv") == []
    assert result.severities == {}
    # History stays in the dataset, and a report of the first survey alone still shows what it saw.
    with SurveyJournal(store) as journal:
        history = FindingsDataset(store).read(journal.findings_files()).to_pylist()
    assert sorted((r["survey_id"] == second.survey_id, r["port"], r["status"]) for r in history) == [
        (False, 2323, "vulnerable"), (False, 8080, "vulnerable"), (True, 2323, "closed"), (True, 8080, "not_vulnerable"),
    ]
    assert export_report(store, tmp_path / "first", survey_id=first.survey_id).owners["Loopback ISP"][1] == 2


# -- one device, one row, whatever the spelling (issue 6 item 10) -------------------------------


def test_one_device_under_several_spellings_is_probed_and_reported_once(tmp_path: Path) -> None:
    pair = load_builtin()[0]
    ip, device = start_device([
        ServiceSpec(2323, "telnet", username=pair.username, password=pair.password, credential_id=pair.id),
    ])
    a, b, c, d = (int(part) for part in ip.split("."))
    spellings = [ip, f"::ffff:{ip}", f"::ffff:{a << 8 | b:x}:{c << 8 | d:x}", f"0:0:0:0:0:FFFF:{ip}"]
    (tmp_path / "scan.csv").write_text("saddr,sport\n" + "".join(f"{s},2323\n" for s in spellings))
    scope = Scope.load(write_scope(tmp_path / "scope.toml", [f"{ip}/32"]))
    try:
        summary = run(scope, tmp_path / "store", [2323], l4_file=tmp_path / "scan.csv")
        connections = sum(s["connections"] for s in device.stats())
    finally:
        device.stop()
    assert [(f.ip, f.status) for f in summary.findings] == [(ip, "vulnerable")]
    assert connections <= 2  # identification + the login, once: not once per spelling
    result = export_report(tmp_path / "store", tmp_path / "out")
    assert [(r["ip"], r["port"]) for r in read_csv(result.owners["iotscope test fleet"][0])] == [(ip, "2323")]


def test_report_folds_spellings_of_findings_already_stored(tmp_path: Path) -> None:
    store = tmp_path / "store"
    base = make_finding(
        ts=T0, survey_id="S1", scanner=None, ip="192.0.2.9", port=23, authorized=ISP,
        result=ProbeResult("telnet", "vulnerable", "mirai-01"),
    )
    later = [dataclasses.replace(base, ip=spelling, ts=T0 + timedelta(hours=n), status="not_vulnerable", severity="info")
             for n, spelling in enumerate(["::ffff:192.0.2.9", "::ffff:c000:209"], 1)]
    with SurveyJournal(store) as journal:
        journal.create("S1", "key", 1, "1/1", [23], "scope.toml")
        paths = FindingsDataset(store).publish("S1", [base, *later])  # as an older version stored them
        journal.commit_findings("S1", paths, [("192.0.2.9", 23)])
    result = export_report(store, tmp_path / "out")
    assert result.services == 1 and result.severities == {}


# -- reports are readers (issue 6 item 11, survey part) -----------------------------------------


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {p.relative_to(root).as_posix(): (p.stat().st_mtime_ns, p.stat().st_size) for p in root.rglob("*")}


def test_report_never_writes_the_store(store: Path, tmp_path: Path) -> None:
    before = snapshot(store)
    export_report(store, tmp_path / "out")
    assert snapshot(store) == before


def _read_only_report(store: Path, out: Path) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "iotscope", "survey", "report", "--store", str(store), "--out", str(out)]
    if os.geteuid() != 0:
        store.chmod(0o500)
        try:
            return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        finally:
            store.chmod(0o700)
    # chmod binds no root: a read-only bind mount of the store, in a mount namespace of our own.
    script = 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && touch "$1/probe" 2>/dev/null && exit 99; shift; exec "$@"'
    return subprocess.run(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh", str(store), *command],
        capture_output=True, text=True, timeout=120, check=False,
    )


def test_report_from_a_read_only_store(store: Path, tmp_path: Path) -> None:
    before = snapshot(store)
    done = _read_only_report(store, tmp_path / "out")
    assert done.returncode != 99, "the store was not read-only"
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert len(read_csv(tmp_path / "out" / "example-isp.csv")) == 2
    assert snapshot(store) == before


def test_report_while_a_survey_writes_sees_committed_findings_and_creates_nothing(store: Path, tmp_path: Path) -> None:
    with SurveyJournal(store) as writer:  # a running survey: WAL mode, its -wal and -shm files exist
        writer.create("S3", "key", 1, "1/1", [23], "scope.toml")
        finding = make_finding(ts=T0 + timedelta(days=2), survey_id="S3", scanner=None, ip="192.0.2.10", port=80,
                               authorized=ISP, result=ProbeResult("http", "not_vulnerable"))
        writer.commit_findings("S3", FindingsDataset(store).publish("S3", [finding]), [("192.0.2.10", 80)])
        files_before = sorted(p.name for p in store.iterdir())
        assert "survey_state.sqlite-wal" in files_before
        result = export_report(store, tmp_path / "out")
        assert sorted(p.name for p in store.iterdir()) == files_before
    assert result.owners["Example ISP"][1] == 1  # .10 fixed by S3, committed but not yet checkpointed


def test_a_later_timeout_alone_does_not_clear_a_finding(store: Path, tmp_path: Path) -> None:
    add_survey(store, "S3", [("192.0.2.10", 80, None, "error", None, T0 + timedelta(days=2), ISP)])
    result = export_report(store, tmp_path / "out")
    isp = read_csv(tmp_path / "out" / "example-isp.csv")
    assert ("192.0.2.10", "2026-03-01T12:00:00Z") in [(r["ip"], r["timestamp"]) for r in isp]  # last conclusive state
    assert [(r["ip"], r["survey_id"]) for r in read_csv(result.errors_file)] == [("192.0.2.10", "S3"), ("192.0.2.13", "S1")]
