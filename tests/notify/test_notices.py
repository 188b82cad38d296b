"""NOTICE end to end: a real survey of the emulated loopback fleet, findings mailed to each ISP
through a real SMTP server, subscriber notices from the ISP's CSV and its sessions, and the
status after re-surveys (still vulnerable while the fleet runs, fixed once it is gone)."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from iotscope.survey.credentials import load_builtin
from tests.notify.conftest import SmtpServer, org_entry, write_orgs
from tests.notify.test_alerts import everything, text_of
from tests.survey.conftest import RunningFleet, start_fleet, write_scope


def iotscope(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "iotscope", *args], capture_output=True, text=True, env=env,
                          timeout=300, check=False)


def survey(fleet: RunningFleet, scope: Path, store: Path) -> None:
    run = iotscope("survey", "run", "--scope", str(scope), "--ports", ",".join(map(str, fleet.ports())),
                   "--rate", "2000", "--store", str(store), "--workers", "1")
    assert run.returncode == 0, run.stderr


@pytest.fixture(scope="module")
def fleet() -> Iterator[RunningFleet]:
    """Six devices (seed 4): three vulnerable (two of them with two services), a hardened one, a tarpit,
    a hostile one. The test stops it itself to show a re-survey finding the devices gone."""
    running = start_fleet(count=6, seed=4)
    try:
        yield running
    finally:
        running.thread.stop()


def test_findings_to_isps_subscribers_and_status(fleet: RunningFleet, smtp_server: SmtpServer, tmp_path: Path) -> None:
    store = tmp_path / "store"
    scope = write_scope(tmp_path / "scope.toml", [fleet.network])
    survey(fleet, scope, store)
    expected = fleet.expected_findings()
    vulnerable_ips = sorted({ip for ip, *_ in expected}, key=lambda ip: int(ip.split(".")[-1]))
    assert len(vulnerable_ips) == 3
    east_ips = vulnerable_ips[:2] + [r["ip"] for r in fleet.truth if r["kind"] in ("hardened", "tarpit")]
    west_ips = vulnerable_ips[2:] + [r["ip"] for r in fleet.truth if r["kind"] == "hostile"]
    orgs = write_orgs(tmp_path / "orgs.toml", [
        org_entry("ISP East", ["abuse@east.example"], sorted({f"{ip}/32" for ip in east_ips}), language="ja"),
        org_entry("ISP West", ["abuse@west.example", "soc@west.example"], sorted({f"{ip}/32" for ip in west_ips})),
    ])
    smtp = ["--smtp", f"127.0.0.1:{smtp_server.port}", "--smtp-user", smtp_server.user,
            "--smtp-cafile", str(smtp_server.cafile)]
    sent = iotscope("notify", "isp", "--orgs", str(orgs), "--store", str(store), "--outbox", str(tmp_path / "outbox"),
                    *smtp, env=smtp_server.env())
    assert sent.returncode == 0, sent.stderr
    received = {tuple(sorted(env["rcpt_tos"])): message for env, message in smtp_server.received()}
    assert set(received) == {("abuse@east.example",), ("abuse@west.example", "soc@west.example")}
    passwords = {c.password for c in load_builtin() if len(c.password) >= 4}
    csv_of = {}
    for rcpt, message in received.items():
        mine, theirs = (east_ips, west_ips) if rcpt == ("abuse@east.example",) else (west_ips, east_ips)
        text = everything(message)
        assert not any(ip in text for ip in theirs), "another ISP's host in this mail"
        (attachment,) = [p for p in message.iter_attachments() if p.get_filename() == "findings.csv"]
        rows = list(csv.DictReader(io.StringIO(text_of(attachment))))
        csv_of[rcpt] = text_of(attachment)
        got = {(r["ip"], int(r["port"]), r["protocol"], r["credential_id"] or None) for r in rows}
        assert got == {e for e in expected if e[0] in mine}
        assert all(r["tracking_id"].startswith("F-") and r["tracking_id"] in text for r in rows)
        # ports and addresses can equal a listed password ("2222", "1234"): only text columns can leak one
        leaked = [(k, v) for r in rows for k, v in r.items() if v in passwords and k not in ("ip", "port")]
        assert not leaked, f"a password in the ISP's CSV: {leaked}"
    assert "脆弱な IoT 機器" in str(received[("abuse@east.example",)]["Subject"])

    # told once: a second run sends nothing
    again = iotscope("notify", "isp", "--orgs", str(orgs), "--store", str(store), "--outbox", str(tmp_path / "outbox"),
                     *smtp, env=smtp_server.env())
    assert again.returncode == 0 and len(smtp_server.received()) == 2 and f"{len(expected)} told before" in again.stderr

    # the ISP (East) maps its findings to subscribers with its own sessions
    findings_csv = tmp_path / "east-findings.csv"
    findings_csv.write_text(csv_of[("abuse@east.example",)])
    east_rows = list(csv.DictReader(io.StringIO(csv_of[("abuse@east.example",)])))
    first = min(datetime.fromisoformat(r["timestamp"]) for r in east_rows)
    covered, uncovered = vulnerable_ips[0], vulnerable_ips[1]
    sessions = tmp_path / "sessions.csv"
    sessions.write_text(
        "address,start,stop,subscriber\n"
        f"{covered},{(first - timedelta(hours=2)).isoformat()},{(first - timedelta(hours=1)).isoformat()},C-OLD\n"
        f"{covered},{(first - timedelta(hours=1)).isoformat()},,C-0001\n"
        f"{uncovered},{(first - timedelta(days=2)).isoformat()},{(first - timedelta(days=1)).isoformat()},C-0002\n"
    )
    out = tmp_path / "notices"
    mapped = iotscope("notify", "subscribers", "--findings", str(findings_csv), "--assignments", str(sessions),
                      "--out", str(out), "--isp", "ISP East")
    assert mapped.returncode == 0, mapped.stderr
    index = list(csv.DictReader(io.StringIO((out / "notices.csv").read_text())))
    assert [r["subscriber"] for r in index] == ["C-0001"]
    notice = index[0]
    html = (out / notice["html"]).read_text()
    text = (out / notice["text"]).read_text()
    assert notice["notice_id"] in html and notice["notice_id"] in text and "パスワード" in text
    assert covered in html and uncovered not in html and "<script" not in html
    unmatched = list(csv.DictReader(io.StringIO((out / "unmatched.csv").read_text())))
    assert {r["ip"] for r in unmatched} == {uncovered}
    assert all("no session of this address covers" in r["reason"] for r in unmatched)
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in out.iterdir()) and out.stat().st_mode & 0o777 == 0o700

    # status: notified; a re-survey with the devices unchanged: still vulnerable
    status = json.loads(iotscope("notify", "status", "--store", str(store), "--json").stdout)
    assert {n["state"] for n in status["notices"]} == {"notified"} and len(status["notices"]) == len(expected)
    survey(fleet, scope, store)
    status = json.loads(iotscope("notify", "status", "--store", str(store), "--json").stdout)
    assert {n["state"] for n in status["notices"]} == {"still vulnerable"}
    east = sum(1 for e in expected if e[0] in east_ips)
    assert status["counts"]["ISP East"]["still vulnerable"] == east == 4
    assert status["counts"]["ISP West"]["still vulnerable"] == len(expected) - east
    # the devices go away (fixed or unplugged); the next survey closes every case
    fleet.thread.stop()
    survey(fleet, scope, store)
    closed = iotscope("notify", "status", "--store", str(store))
    assert closed.returncode == 0 and f"{len(expected)} notice(s) closed as fixed" in closed.stderr
    assert closed.stdout.count(": fixed") == len(expected)
    status = json.loads(iotscope("notify", "status", "--store", str(store), "--json").stdout)
    assert {n["state"] for n in status["notices"]} == {"fixed"}
    assert "closed as fixed" not in iotscope("notify", "status", "--store", str(store)).stderr  # once
