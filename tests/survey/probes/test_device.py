"""The deadline protects the device: one budget for all its services (issue 6 item 13)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from iotscope.simulate.devices.fleet import ServiceSpec
from iotscope.survey.credentials import load_builtin
from iotscope.survey.probes import ProbeLimits
from iotscope.survey.report import export_report
from iotscope.survey.run import run_survey
from iotscope.survey.scope import Scope
from tests.survey.conftest import write_scope
from tests.survey.one_device import start_device

#: Each failed login costs the device 0.4 s (login(1) waits 3 s); 3 s cannot try the whole list.
DEADLINE = 3.0
LIMITS = ProbeLimits(connect_timeout=1.0, read_timeout=1.5, deadline=DEADLINE, attempt_delay=0.0, prompt_settle=0.02)


def test_three_slow_services_of_one_device_share_one_deadline(tmp_path: Path) -> None:
    ports = [2323, 2324, 2325]
    ip, device = start_device(
        [ServiceSpec(port, "telnet", username="admin", password="k3Q!x9-strong-Zp") for port in ports],
        fail_delay=0.4,
    )
    scope = Scope.load(write_scope(tmp_path / "scope.toml", [f"{ip}/32"]))
    credentials = load_builtin()
    try:
        summary = asyncio.run(run_survey(
            scope, store=tmp_path / "store", credentials=credentials, ports=ports, rate=2000, limits=LIMITS, workers=1,
        ))
        attempts_seen = sum(s["attempts"] for s in device.stats())
    finally:
        device.stop()
    assert summary.seconds < DEADLINE + 2.0, f"one device kept busy {summary.seconds:.1f} s"
    assert sorted(f.port for f in summary.findings) == ports
    # Nothing was exhausted, so nothing may claim "not vulnerable": each service is incomplete,
    # with the pairs tried and the pairs left.
    assert {f.status for f in summary.findings} == {"incomplete"}, [(f.port, f.status, f.detail) for f in summary.findings]
    for finding in summary.findings:
        assert finding.attempts + finding.remaining == len({(c.username, c.password) for c in credentials}), finding
        assert finding.tag == "incomplete" and "deadline" in finding.detail
    assert 0 < sum(f.attempts for f in summary.findings) <= attempts_seen
    report = export_report(tmp_path / "store", tmp_path / "out")
    assert report.incomplete == report.errors == 3  # in the report, not silently "rejected"
    assert "pairs tried" in (tmp_path / "out" / "errors.csv").read_text()
