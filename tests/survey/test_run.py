"""End to end on the emulated fleet (loopback only): sweep, identify, probe, evidence, resume."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from iotscope.survey.credentials import load_builtin
from iotscope.survey.findings import FindingsDataset
from iotscope.survey.journal import SurveyJournal
from iotscope.survey.l4import import L4ImportError
from iotscope.survey.probes import ProbeLimits
from iotscope.survey.run import SurveyProgress, SurveySummary, run_survey
from iotscope.survey.scope import Scope
from tests.survey.conftest import RunningFleet, start_fleet, write_scope
from tests.survey.socket_audit import socket_audit

FAST_LIMITS = ProbeLimits(
    connect_timeout=1.0, read_timeout=1.0, deadline=4.0, greeting_timeout=0.5,
    attempt_delay=0.0, prompt_settle=0.02,
)


@pytest.fixture(scope="module")
def fleet() -> Iterator[RunningFleet]:
    """A 12-device fleet (all kinds and protocols) on a random loopback /24, for this module."""
    running = start_fleet(count=12, seed=4)
    try:
        yield running
    finally:
        running.thread.stop()


def load_scope(directory: Path, fleet: RunningFleet, blocklist: Sequence[str] = ()) -> Scope:
    return Scope.load(write_scope(directory / "scope.toml", [fleet.network], owner="Loopback ISP", blocklist=blocklist))


def survey(scope: Scope, store: Path, fleet: RunningFleet, **options) -> SurveySummary:
    options.setdefault("ports", fleet.ports())
    return asyncio.run(run_survey(
        scope, store=store, credentials=load_builtin(), rate=20000, limits=FAST_LIMITS, **options,
    ))


def test_survey_finds_every_vulnerable_service_and_nothing_else(tmp_path: Path, fleet: RunningFleet) -> None:
    scope = load_scope(tmp_path, fleet)
    progress: list[SurveyProgress] = []
    with socket_audit() as audit:
        summary = survey(scope, tmp_path / "store", fleet, progress=progress.append)
    truth = fleet.truth
    by_target = {(f.ip, f.port): f for f in summary.findings}
    assert set(by_target) == {(row["ip"], row["port"]) for row in truth}, "every open service probed once"
    assert len(summary.findings) == len(truth)
    for row in truth:
        finding = by_target[(row["ip"], row["port"])]
        where = f"{row['ip']}:{row['port']} {row['kind']}/{row['behaviour']}"
        if row["expected"] == "finding":
            assert finding.status == "vulnerable", where
            assert finding.protocol == row["protocol"], where
            assert finding.credential_id == row["credential_id"], where
            assert finding.severity in ("critical", "high", "medium"), where
        else:
            assert finding.status != "vulnerable", where
        if row["expected"] == "error":
            assert finding.status == "error", where
    assert {ipaddress.ip_address(h) for h, _ in audit.connects} <= set(ipaddress.ip_network(fleet.network))
    phases = {p.phase for p in progress}
    assert phases == {"sweep", "probe"} and progress[-1].done == progress[-1].total == len(truth)

    with SurveyJournal(tmp_path / "store") as journal:
        files = journal.findings_files(summary.survey_id)
        stored = FindingsDataset(tmp_path / "store").read(files)
        job = journal.job(summary.survey_id)
    assert job is not None and job.finished_at is not None
    assert stored.num_rows == len(truth)
    assert all(f.startswith("findings/date=") for f in files)
    assert set(stored.column("survey_id").to_pylist()) == {summary.survey_id}
    assert set(stored.column("scanner").to_pylist()) == {"127.0.0.1"}
    plaintexts = {c.password for c in load_builtin() if len(c.password) >= 6}
    banners = " ".join(stored.column("banner").to_pylist())
    assert not any(p in stored.column("credential_id").to_pylist() for p in plaintexts)
    assert all(len(b) <= 256 and b.isprintable() for b in stored.column("banner").to_pylist())
    assert banners  # evidence kept


def test_blocklisted_device_is_never_contacted(tmp_path: Path, fleet: RunningFleet) -> None:
    truth = fleet.truth
    target = next(row for row in truth if row["expected"] == "finding")
    before = {(s["ip"], s["port"]): s["connections"] for s in fleet.stats()}
    scope = load_scope(tmp_path, fleet, [target["ip"]])
    with socket_audit() as audit:
        summary = survey(scope, tmp_path / "store", fleet, ports=[target["port"]])
    after = {(s["ip"], s["port"]): s["connections"] for s in fleet.stats()}
    assert all(f.ip != target["ip"] for f in summary.findings)
    assert after[(target["ip"], target["port"])] == before[(target["ip"], target["port"])]
    assert target["ip"] not in {h for h, _ in audit.connects}


def test_resume_continues_the_unfinished_survey(tmp_path: Path, fleet: RunningFleet) -> None:
    scope = load_scope(tmp_path, fleet)
    store = tmp_path / "store"
    ports = fleet.ports()

    async def interrupted() -> None:
        task = asyncio.create_task(run_survey(
            scope, store=store, credentials=load_builtin(), ports=ports, rate=2000, limits=FAST_LIMITS,
        ))
        await asyncio.sleep(0.5)  # mid-sweep: 256 x ports attempts at 2,000/s
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(interrupted())
    with SurveyJournal(store) as journal:
        (job,) = journal.jobs()
        assert job.finished_at is None and not job.sweep_finished and job.sweep_position > 0
    summary = survey(scope, store, fleet, resume=True)
    assert summary.resumed and summary.survey_id == job.survey_id
    assert summary.sweep is not None and summary.sweep.attempted < 256 * len(ports) * 0.9
    with SurveyJournal(store) as journal:
        stored = FindingsDataset(store).read(journal.findings_files(job.survey_id))
    targets = list(zip(stored.column("ip").to_pylist(), stored.column("port").to_pylist(), strict=True))
    assert len(targets) == len(set(targets)) == len(fleet.truth)


def test_import_from_masscan_list_skips_the_sweep(tmp_path: Path, fleet: RunningFleet) -> None:
    truth = [row for row in fleet.truth if row["protocol"] == "ftp"][:2]
    lines = ["#masscan"] + [f"open tcp {row['port']} {row['ip']} 1763780000" for row in truth] + ["# end"]
    (tmp_path / "scan.txt").write_text("\n".join(lines) + "\n")
    scope = load_scope(tmp_path, fleet)
    summary = survey(scope, tmp_path / "store", fleet, l4_file=tmp_path / "scan.txt")
    assert summary.sweep is None and summary.imported is not None
    assert {(f.ip, f.port, f.protocol) for f in summary.findings} == {(r["ip"], r["port"], "ftp") for r in truth}
    assert {f.scanner for f in summary.findings} == {"127.0.0.1"}  # from the routing table


def test_import_refuses_out_of_scope_lines(tmp_path: Path, fleet: RunningFleet) -> None:
    (tmp_path / "scan.txt").write_text("open tcp 23 127.0.0.5 1763780000\n")
    scope = load_scope(tmp_path, fleet)
    with pytest.raises(L4ImportError, match=r"scan\.txt:1: refusing 127\.0\.0\.5: not in any authorized range"):
        survey(scope, tmp_path / "store", fleet, l4_file=tmp_path / "scan.txt")
