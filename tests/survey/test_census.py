"""The exposure census (issue 7, item 7) on real surveys of the emulated loopback fleet."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from iotscope.survey.census import CensusError, exposure_census
from iotscope.survey.credentials import load_builtin
from iotscope.survey.journal import SurveyJournal
from iotscope.survey.probes import ProbeLimits
from iotscope.survey.report import ReportError
from iotscope.survey.run import SurveySummary, run_survey
from iotscope.survey.scope import Scope
from tests.survey.conftest import RunningFleet, start_fleet, write_scope

FAST_LIMITS = ProbeLimits(
    connect_timeout=1.0, read_timeout=1.0, deadline=4.0, greeting_timeout=0.5, attempt_delay=0.0, prompt_settle=0.02,
)


def survey(fleet: RunningFleet, store: Path, tmp_path: Path, owner: str = "Loopback ISP") -> SurveySummary:
    scope = Scope.load(write_scope(tmp_path / f"scope-{owner[:4]}.toml", [fleet.network], owner=owner))
    return asyncio.run(run_survey(
        scope, store=store, credentials=load_builtin(), ports=fleet.ports(), rate=20000, limits=FAST_LIMITS,
    ))


@pytest.fixture(scope="module")
def surveyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningFleet, Path, SurveySummary]]:
    """A 12-device fleet (every kind and protocol) surveyed once into a store."""
    fleet = start_fleet(count=12, seed=4)
    tmp_path = tmp_path_factory.mktemp("census")
    try:
        summary = survey(fleet, tmp_path / "store", tmp_path)
        yield fleet, tmp_path / "store", summary
    finally:
        fleet.thread.stop()


def test_census_counts_every_identified_service_not_only_vulnerable_ones(surveyed) -> None:
    fleet, store, summary = surveyed
    census = exposure_census(store, by="protocol")
    truth = fleet.truth
    vulnerable = Counter(row["protocol"] for row in truth if row["expected"] == "finding")
    login = Counter(row["protocol"] for row in truth if row["expected"] in ("finding", "none"))
    rows = {row["protocol"]: row for row in census.rows}
    assert set(rows) >= set(login)
    for protocol, row in rows.items():
        assert row["vulnerable"] == vulnerable[protocol], protocol
        # Hardened services are exposed too: counted, though no report lists them.
        assert login[protocol] <= row["services"] <= sum(1 for r in truth if r["protocol"] == protocol), protocol
        assert row["services"] == row["vulnerable"] + row["not_vulnerable"] + row["unsettled"]
    # Hardened services refuse the capped pairs of the long corpus: incomplete, counted as unsettled.
    assert sum(row["not_vulnerable"] + row["unsettled"] for row in census.rows) >= sum(login.values()) - sum(vulnerable.values())
    assert census.services + census.unidentified == len(truth) == summary.probed
    assert census.services == sum(1 for f in summary.findings if f.protocol != "unknown")
    assert census.closed == 0


@pytest.mark.parametrize("by", ["port", "owner", "device"])
def test_every_grouping_counts_the_same_services(surveyed, by: str) -> None:
    fleet, store, _ = surveyed
    census = exposure_census(store, by=by)
    by_protocol = exposure_census(store, by="protocol")
    assert sum(row["services"] for row in census.rows) == by_protocol.services
    assert sum(row["vulnerable"] for row in census.rows) == sum(r["vulnerable"] for r in by_protocol.rows)
    if by == "port":
        login_ports = {row["port"] for row in fleet.truth if row["expected"] in ("finding", "none")}
        assert login_ports <= {row["port"] for row in census.rows}
    if by == "owner":
        assert [row["owner"] for row in census.rows] == ["Loopback ISP"]
        assert census.rows[0]["addresses"] == len({row["ip"] for row in fleet.truth})


def test_json_and_csv_hold_the_same_rows(surveyed) -> None:
    _, store, _ = surveyed
    census = exposure_census(store, by="port")
    as_json = json.loads(census.render("json"))
    as_csv = list(csv.DictReader(io.StringIO(census.render("csv"))))
    assert as_json == census.rows
    assert [{k: int(v) for k, v in row.items()} for row in as_csv] == census.rows


def test_census_follows_the_latest_state_of_each_service(tmp_path: Path) -> None:
    """A device switched off since a survey: the next complete sweep records its services closed,
    and the census stops counting them (as reports stop listing them)."""
    fleet = start_fleet(count=3, seed=7)
    store = tmp_path / "store"
    try:
        survey(fleet, store, tmp_path)
        before = exposure_census(store)
    finally:
        fleet.thread.stop()
    assert before.services > 0
    second = survey(fleet, store, tmp_path)  # nothing answers now
    assert second.closed == before.services + before.unidentified
    after = exposure_census(store)
    assert after.rows == [] and after.services == 0 and after.closed == second.closed
    with SurveyJournal(store, read_only=True) as journal:
        first_id = journal.jobs()[0].survey_id
    assert exposure_census(store, survey_id=first_id).rows == before.rows  # one survey alone


def test_bad_requests(tmp_path: Path, surveyed) -> None:
    _, store, _ = surveyed
    with pytest.raises(CensusError, match="cannot group the census by 'vendor'"):
        exposure_census(store, by="vendor")
    with pytest.raises(ReportError, match="no survey in this store"):
        exposure_census(tmp_path / "nothing")
    with pytest.raises(ReportError, match="no survey 'nope'"):
        exposure_census(store, survey_id="nope")


def iotscope(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "iotscope", *args], capture_output=True, text=True, timeout=60,
                          env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"}, check=False)


def test_cli_census(surveyed) -> None:
    _, store, _ = surveyed
    expected = exposure_census(store, by="protocol")
    shown = iotscope("survey", "census", "--store", str(store))
    assert shown.returncode == 0, shown.stderr
    assert "exposed services by protocol" in shown.stdout
    cells = [[cell.strip() for cell in line.split("│")[1:-1]] for line in shown.stdout.splitlines() if line.count("│") > 2]
    assert cells == [[str(value) for value in row.values()] for row in expected.rows], shown.stdout
    assert f"{expected.services:,} identified services exposed" in shown.stderr
    as_json = iotscope("survey", "census", "--store", str(store), "--by", "owner", "--json")
    assert as_json.returncode == 0 and json.loads(as_json.stdout)[0]["owner"] == "Loopback ISP"
    as_csv = iotscope("survey", "census", "--store", str(store), "--by", "port", "--csv")
    assert as_csv.returncode == 0 and as_csv.stdout.splitlines()[0] == "port,services,addresses,vulnerable,not_vulnerable,unsettled"
    for args, message in [
        (["--by", "vendor"], "error: --by must be one of protocol, port, device, owner, not 'vendor'"),
        (["--json", "--csv"], "error: --json and --csv exclude each other"),
        (["--survey", "nope"], "no survey 'nope'"),
    ]:
        failed = iotscope("survey", "census", "--store", str(store), *args)
        assert failed.returncode == 2 and message in failed.stderr and "Traceback" not in failed.stderr, failed.stderr
