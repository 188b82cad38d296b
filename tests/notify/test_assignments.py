"""The ISP's sessions file: matching by address and time, and one line for each way it is unusable."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from iotscope.notify.assignments import Assignments
from iotscope.notify.errors import NotifyError

HEADER = "address,start,stop,subscriber\n"


def write(tmp_path: Path, body: str, header: str = HEADER) -> Path:
    path = tmp_path / "sessions.csv"
    path.write_text(header + body, encoding="utf-8")
    return path


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_a_finding_maps_to_the_session_that_covered_it(tmp_path: Path) -> None:
    sessions = Assignments.load(write(tmp_path, (
        "198.51.100.7,2026-11-30T08:00:00,2026-11-30T20:00:00,C-1\n"
        "198.51.100.7,2026-11-30T20:00:00,,C-2\n"
        "2001:DB8::1,2026-11-30T00:00:00Z,2026-12-01T00:00:00Z,C-3\n"
    )))
    assert sessions.session_at("198.51.100.7", at("2026-11-30T19:59:59"))[0].subscriber == "C-1"
    assert sessions.session_at("198.51.100.7", at("2026-11-30T20:00:00"))[0].subscriber == "C-2"  # [start, stop)
    assert sessions.session_at("::ffff:198.51.100.7", at("2027-01-01T00:00:00"))[0].subscriber == "C-2"  # still open
    assert sessions.session_at("2001:db8::1", at("2026-11-30T12:00:00"))[0].subscriber == "C-3"
    none, reason = sessions.session_at("198.51.100.7", at("2026-11-30T07:00:00"))
    assert none is None and "no session of this address covers" in reason
    none, reason = sessions.session_at("198.51.100.8", at("2026-11-30T12:00:00"))
    assert none is None and reason == "no session for this address in the assignments"


@pytest.mark.parametrize(("body", "message"), [
    ("198.51.100.7,2026-11-30T08:00,2026-11-30T20:00,C-1\n198.51.100.7,2026-11-30T19:00,2026-11-30T21:00,C-2\n",
     "sessions.csv:3: session of 198.51.100.7 from 2026-11-30T19:00:00+00:00 overlaps the session on line 2"),
    ("198.51.100.7,2026-11-30T08:00,,C-1\n198.51.100.7,2026-11-30T19:00,2026-11-30T21:00,C-2\n",
     "overlaps the session on line 2 (until open)"),
    ("198.51.100.7,yesterday,2026-11-30T20:00,C-1\n", "sessions.csv:2: start 'yesterday' is not an ISO 8601 time"),
    ("198.51.100.7,2026-11-30T20:00,2026-11-30T08:00,C-1\n", "sessions.csv:2: stop 2026-11-30T08:00 is not after start"),
    ("198.51.100.300,2026-11-30T08:00,,C-1\n", "sessions.csv:2: not an IP address: '198.51.100.300'"),
    ("198.51.100.7,2026-11-30T08:00,,\n", "sessions.csv:2: empty subscriber id"),
    ("198.51.100.7,2026-11-30T08:00\n", "sessions.csv:2: 2 fields, the header has 4"),
])
def test_bad_sessions_are_one_line(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(NotifyError) as error:
        Assignments.load(write(tmp_path, body))
    assert message in str(error.value) and "\n" not in str(error.value)


def test_bad_header_and_the_cli_exit_code(tmp_path: Path) -> None:
    with pytest.raises(NotifyError, match="sessions.csv:1: missing column.s. stop"):
        Assignments.load(write(tmp_path, "", header="address,start,subscriber\n"))
    sessions = write(tmp_path, "198.51.100.7,2026-11-30T08:00,,C-1\n198.51.100.7,2026-11-30T09:00,,C-2\n")
    findings = tmp_path / "findings.csv"
    findings.write_text("tracking_id,timestamp,ip,port,protocol\nF-1,2026-11-30T10:00:00Z,198.51.100.7,23,telnet\n")
    run = subprocess.run([sys.executable, "-m", "iotscope", "notify", "subscribers", "--findings", str(findings),
                          "--assignments", str(sessions), "--out", str(tmp_path / "out")],
                         capture_output=True, text=True, check=False)
    assert run.returncode == 2 and "overlaps" in run.stderr and "Traceback" not in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()  # nothing written from an unusable file
