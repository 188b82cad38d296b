"""Reverse names of devices: loopback from the hosts file only, and into findings and reports."""

from __future__ import annotations

import asyncio
import csv
import ipaddress
from pathlib import Path

from iotscope.simulate.devices.fleet import ServiceSpec
from iotscope.survey.credentials import load_builtin
from iotscope.survey.probes import ProbeLimits, hostname
from iotscope.survey.probes.hostname import hosts_file_name, reverse_name
from iotscope.survey.report import export_report
from iotscope.survey.run import run_survey
from iotscope.survey.scope import Scope
from tests.survey.conftest import write_scope
from tests.survey.one_device import start_device


def test_reverse_name_of_loopback_comes_from_the_hosts_file_only(tmp_path: Path) -> None:
    hosts = tmp_path / "hosts"
    hosts.write_text("# test\n127.0.0.1 localhost\n127.0.0.77  cam-7.example.test cam-7\n::1 ip6-localhost\nbad line\n")
    assert asyncio.run(reverse_name("127.0.0.77", 1.0, hosts)) == "cam-7.example.test"
    assert asyncio.run(reverse_name("::1", 1.0, hosts)) == "ip6-localhost"
    assert asyncio.run(reverse_name("127.0.0.78", 1.0, hosts)) is None  # not listed: no DNS query either
    assert asyncio.run(reverse_name("127.0.0.77", 0, hosts)) is None  # lookups off
    assert hosts_file_name(ipaddress.ip_address("127.0.0.77"), tmp_path / "absent") is None


def test_findings_and_report_carry_the_device_hostname(tmp_path: Path, monkeypatch) -> None:
    """Issue 7 item 4: the report's ``hostname`` column was always empty."""
    pair = load_builtin()[0]
    ip, device = start_device([
        ServiceSpec(2323, "telnet", username=pair.username, password=pair.password, credential_id=pair.id),
    ])
    hosts = tmp_path / "hosts"
    hosts.write_text(f"{ip} dvr-1.subscriber.example.test\n")
    monkeypatch.setattr(hostname, "HOSTS_FILE", hosts)
    scope = Scope.load(write_scope(tmp_path / "scope.toml", [f"{ip}/32"]))
    limits = ProbeLimits(connect_timeout=1.0, read_timeout=1.0, deadline=8.0, attempt_delay=0.0, prompt_settle=0.02)
    try:
        summary = asyncio.run(run_survey(
            scope, store=tmp_path / "store", credentials=load_builtin()[:2], ports=[2323], rate=2000, limits=limits,
            workers=1,
        ))
    finally:
        device.stop()
    (finding,) = summary.findings
    assert (finding.status, finding.hostname) == ("vulnerable", "dvr-1.subscriber.example.test"), finding
    export_report(tmp_path / "store", tmp_path / "out")
    with open(tmp_path / "out" / "iotscope-test-fleet.csv", newline="") as handle:
        (row,) = list(csv.DictReader(handle))
    assert row["hostname"] == "dvr-1.subscriber.example.test"
