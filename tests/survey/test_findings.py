"""Findings: severity/tag rules, sanitizing, and the atomic Parquet dataset."""

from __future__ import annotations

import asyncio
import ipaddress
import os
import stat
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from iotscope.simulate.devices.fleet import ServiceSpec
from iotscope.survey.credentials import load_builtin
from iotscope.survey.findings import (
    FINDINGS_SCHEMA,
    Finding,
    FindingsDataset,
    classify,
    closed_findings,
    make_finding,
    sanitize,
    to_table,
)
from iotscope.survey.probes import ProbeLimits, ProbeResult
from iotscope.survey.report import export_report
from iotscope.survey.run import run_survey
from iotscope.survey.scope import AuthorizedRange, Scope
from tests.survey.conftest import write_scope
from tests.survey.one_device import start_device

RANGE = AuthorizedRange(ipaddress.ip_network("127.0.0.0/24"), "Loopback ISP", "ticket 7", True)


@pytest.mark.parametrize(
    ("protocol", "status", "credential", "expected"),
    [
        ("telnet", "vulnerable", "mirai-01", ("critical", "default-credentials")),
        ("telnet", "vulnerable", None, ("critical", "no-authentication")),
        ("ssh", "vulnerable", "vendor-x", ("critical", "default-credentials")),
        ("http", "vulnerable", "mirai-02", ("high", "default-credentials")),
        ("http", "vulnerable", None, ("high", "no-authentication")),
        ("ftp", "vulnerable", None, ("medium", "anonymous-ftp")),
        ("ftp", "vulnerable", "mirai-03", ("high", "default-credentials")),
        ("ssh", "not_vulnerable", None, ("info", "credentials-rejected")),
        ("telnet", "error", None, ("info", "probe-error")),
        ("telnet", "incomplete", None, ("info", "incomplete")),
        ("http", "closed", None, ("info", "port-closed")),
    ],
)
def test_classify(protocol: str, status: str, credential: str | None, expected: tuple[str, str]) -> None:
    assert classify(protocol, status, credential) == expected


def test_sanitize_keeps_one_printable_line() -> None:
    hostile = "\x1b[2J\x00login:\r\n" + "A" * 5000
    clean = sanitize(hostile)
    assert clean.isprintable() and "\n" not in clean and len(clean) == 256 and clean.startswith("[2J login:")


def finding(ip: str, ts: datetime, status: str = "vulnerable", credential: str | None = "mirai-01"):
    result = ProbeResult("telnet", status, credential, "BusyBox v1.19.4 \x07built-in shell", "BusyBox 1.19.4", "shell after login", 3)
    return make_finding(ts=ts, survey_id="S1", scanner="127.0.0.1", ip=ip, port=23, authorized=RANGE, result=result)


def test_finding_rows_carry_evidence_but_no_plaintext() -> None:
    row = finding("127.0.0.9", datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc))
    assert (row.severity, row.tag, row.credential_id) == ("critical", "default-credentials", "mirai-01")
    assert row.banner == "BusyBox v1.19.4 built-in shell"
    assert (row.owner, row.authorization, row.scanner) == ("Loopback ISP", "ticket 7", "127.0.0.1")
    unknown = make_finding(ts=row.ts, survey_id="S1", scanner=None, ip="127.0.0.9", port=2323, authorized=RANGE, result=None)
    assert (unknown.protocol, unknown.status, unknown.tag) == ("unknown", "error", "unidentified-service")


def test_publish_partitions_by_date_and_reads_back(tmp_path: Path) -> None:
    dataset = FindingsDataset(tmp_path)
    rows = [
        finding("127.0.0.9", datetime(2026, 1, 1, 23, 59, 59, tzinfo=timezone.utc)),
        finding("127.0.0.10", datetime(2026, 1, 2, 0, 0, 1, tzinfo=timezone.utc)),
    ]
    paths = dataset.publish("S1", rows)
    assert [p.split("/")[1] for p in paths] == ["date=2026-01-01", "date=2026-01-02"]
    assert all((tmp_path / p).is_file() for p in paths)
    assert not list((tmp_path / "findings" / ".staging").iterdir())
    assert pq.read_schema(tmp_path / paths[0]).equals(FINDINGS_SCHEMA)
    table = dataset.read(paths)
    assert table.column("ip").to_pylist() == ["127.0.0.9", "127.0.0.10"]
    assert str(table.schema.field("ts").type) == "timestamp[us, tz=UTC]"


def test_remove_uncommitted_only_touches_that_survey(tmp_path: Path) -> None:
    dataset = FindingsDataset(tmp_path)
    ts = datetime(2026, 1, 1, tzinfo=timezone.utc)
    kept = dataset.publish("S1", [finding("127.0.0.9", ts)])
    orphan = dataset.publish("S1", [finding("127.0.0.10", ts)])
    other = dataset.publish("S2", [finding("127.0.0.11", ts)])
    assert dataset.remove_uncommitted("S1", kept) == 1
    assert (tmp_path / kept[0]).exists() and not (tmp_path / orphan[0]).exists() and (tmp_path / other[0]).exists()


def test_survey_evidence_is_private_whatever_the_umask(tmp_path: Path) -> None:
    """Issue 6 item 15: findings, survey state and reports are 0600 in 0700 directories."""
    pair = load_builtin()[0]
    ip, device = start_device([
        ServiceSpec(2323, "telnet", username=pair.username, password=pair.password, credential_id=pair.id),
    ])
    scope = Scope.load(write_scope(tmp_path / "scope.toml", [f"{ip}/32"]))
    store = tmp_path / "store"
    limits = ProbeLimits(connect_timeout=1.0, read_timeout=1.0, deadline=8.0, attempt_delay=0.0, prompt_settle=0.02)
    old_umask = os.umask(0o002)  # permissive, as on many desktops
    try:
        summary = asyncio.run(run_survey(
            scope, store=store, credentials=load_builtin(), ports=[2323], rate=2000, limits=limits, workers=1,
        ))
        export_report(store, tmp_path / "out")
    finally:
        os.umask(old_umask)
        device.stop()
    assert summary.vulnerable, "the run found the device"
    modes = {
        path.relative_to(tmp_path).as_posix(): stat.S_IMODE(path.stat().st_mode)
        for root in (store, tmp_path / "out") for path in [root, *root.rglob("*")]
    }
    assert any(name.endswith(".parquet") for name in modes) and "store/survey_state.sqlite" in modes
    assert "out/iotscope-test-fleet.csv" in modes
    loose = {name: oct(mode) for name, mode in modes.items() if mode != (0o700 if (tmp_path / name).is_dir() else 0o600)}
    assert loose == {}


def test_closed_findings_cover_only_what_the_sweep_saw_and_only_once(tmp_path: Path) -> None:
    scope = Scope.load(write_scope(tmp_path / "scope.toml", ["127.0.0.0/24"], blocklist=["127.0.0.7"]))
    t0 = datetime(2026, 3, 1, tzinfo=timezone.utc)

    def seen(ip: str, port: int, status: str = "vulnerable") -> Finding:
        return make_finding(ts=t0, survey_id="S1", scanner=None, ip=ip, port=port, authorized=RANGE,
                            result=ProbeResult("telnet", status, "mirai-01" if status == "vulnerable" else None))

    history = to_table([
        seen("127.0.0.5", 23),  # closed now
        seen("127.0.0.6", 23),  # still open
        seen("127.0.0.7", 23),  # blocklisted since: not swept, nothing known
        seen("127.0.0.8", 2323),  # port not in this sweep
        seen("::ffff:127.0.0.9", 23, "not_vulnerable"),  # stored spelled another way, closed now
    ])
    later = datetime(2026, 4, 1, tzinfo=timezone.utc)
    closed = closed_findings(history, ts=later, survey_id="S2", scope=scope, ports=[23], still_open={("127.0.0.6", 23)})
    assert sorted((f.ip, f.port, f.status, f.tag, f.severity) for f in closed) == [
        ("127.0.0.5", 23, "closed", "port-closed", "info"), ("127.0.0.9", 23, "closed", "port-closed", "info"),
    ]
    assert all(f.owner == "iotscope test fleet" and f.ts == later for f in closed)
    # A resumed run that repeats the step adds nothing: the latest observation is already "closed".
    again = closed_findings(pa.concat_tables([history, to_table(closed)]), ts=later, survey_id="S2", scope=scope,
                            ports=[23], still_open={("127.0.0.6", 23)})
    assert again == []


def test_finding_time_is_when_the_probe_confirmed_it(tmp_path: Path) -> None:
    """Issue 7 item 4: a finding's ``ts`` is when the probe reached its verdict (here after four
    paced attempts, >= 1.5 s into the survey), not when the survey or the probe began."""
    pair = load_builtin()[3]  # the fourth pair: three refusals first
    ip, device = start_device([
        ServiceSpec(2323, "telnet", username=pair.username, password=pair.password, credential_id=pair.id),
    ])
    scope = Scope.load(write_scope(tmp_path / "scope.toml", [f"{ip}/32"]))
    limits = ProbeLimits(connect_timeout=1.0, read_timeout=2.0, deadline=20.0, attempt_delay=0.5, prompt_settle=0.02)
    started = datetime.now(timezone.utc)
    try:
        summary = asyncio.run(run_survey(
            scope, store=tmp_path / "store", credentials=load_builtin()[:4], ports=[2323], rate=2000, limits=limits,
            workers=1,
        ))
    finally:
        device.stop()
    finished = datetime.now(timezone.utc)
    (finding,) = summary.findings
    assert (finding.status, finding.credential_id) == ("vulnerable", pair.id), finding
    assert started.timestamp() + 1.5 <= finding.ts.timestamp() <= finished.timestamp()


def test_make_finding_takes_the_confirming_time() -> None:
    confirmed = datetime(2026, 5, 1, 12, 0, 7, tzinfo=timezone.utc)
    result = ProbeResult("ftp", "vulnerable", "mirai-04", "220 ready", None, "login accepted", 5, confirmed_at=confirmed)
    finding = make_finding(
        ts=datetime(2026, 5, 1, 12, 0, 0, tzinfo=timezone.utc), survey_id="S", scanner="127.0.0.1", ip="127.0.0.9",
        port=21, authorized=RANGE, result=result,
    )
    assert finding.ts == confirmed
