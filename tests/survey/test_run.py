"""End to end on the emulated fleet (loopback only): sweep, identify, probe, evidence, resume."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import random
import socket
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from iotscope.survey.credentials import load_builtin
from iotscope.survey.findings import FindingsDataset
from iotscope.survey.journal import ResumeError, SurveyJournal
from iotscope.survey.l4import import L4ImportError
from iotscope.survey.permutation import Shard
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


def interrupt_survey(scope: Scope, store: Path, ports: list[int]) -> str:
    """Start a survey of ``scope``, cancel it mid-sweep (256 x ports attempts at 2,000/s need more
    than the 0.5 s it gets), and return its id: an unfinished survey to resume."""

    async def interrupted() -> None:
        task = asyncio.create_task(run_survey(
            scope, store=store, credentials=load_builtin(), ports=ports, rate=2000, limits=FAST_LIMITS,
        ))
        await asyncio.sleep(0.5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(interrupted())
    with SurveyJournal(store) as journal:
        (job,) = journal.jobs()
    assert job.finished_at is None and not job.sweep_finished
    return job.survey_id


def test_resume_continues_the_unfinished_survey(tmp_path: Path, fleet: RunningFleet) -> None:
    scope = load_scope(tmp_path, fleet)
    store = tmp_path / "store"
    ports = fleet.ports()

    survey_id = interrupt_survey(scope, store, ports)
    with SurveyJournal(store) as journal:
        (job,) = journal.jobs()
        assert job.sweep_position > 0
    summary = survey(scope, store, fleet, resume=True)
    assert summary.resumed and summary.survey_id == survey_id
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


# -- shards of one survey (issue 6, item 1) -------------------------------------------------------------


def closed_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as sock:
        return sock.getsockname()[1]


def swept_targets(scope: Scope, store: Path, ports: list[int], **options) -> set[tuple[str, int]]:
    """The (address, port) pairs one survey run connects to (every port closed: only the sweep connects)."""
    with socket_audit() as audit:
        asyncio.run(run_survey(
            scope, store=store, credentials=[], ports=ports, rate=50000, limits=FAST_LIMITS, **options,
        ))
    assert len(audit.connects) == len(set(audit.connects)), "no target swept twice"
    return set(audit.connects)


@pytest.fixture(scope="module")
def closed_network() -> str:
    """A random loopback /27 where nothing listens (a parallel test run picks another)."""
    rng = random.SystemRandom()
    return f"127.{rng.randrange(1, 255)}.{rng.randrange(256)}.{rng.randrange(8) * 32}/27"


@pytest.mark.parametrize("count", [2, 3, 7])
def test_shards_are_disjoint_and_together_one_unsharded_run(tmp_path: Path, closed_network: str, count: int) -> None:
    """Each shard runs into its own store, as on its own machine: nothing but the scope and the
    ports is shared, so the permutation seed must be derived from them (or given with ``seed``)."""
    scope = Scope.load(write_scope(tmp_path / "scope.toml", [closed_network]))
    ports = [closed_port(), closed_port()]
    whole = swept_targets(scope, tmp_path / "unsharded", ports)
    assert whole == {(str(ip), port) for ip in ipaddress.ip_network(closed_network) for port in ports}
    shards = [
        swept_targets(scope, tmp_path / f"shard{index}", ports[::-1] if index % 2 else ports, shard=Shard(index, count))
        for index in range(count)
    ]
    assert sum(len(part) for part in shards) == len(whole), "pairwise disjoint"
    assert set().union(*shards) == whole
    seeded = [
        swept_targets(scope, tmp_path / f"seeded{index}", ports, shard=Shard(index, count), seed=7)
        for index in range(count)
    ]
    assert sum(len(part) for part in seeded) == len(whole) and set().union(*seeded) == whole


def test_shards_of_a_fleet_find_what_one_run_finds(tmp_path: Path, fleet: RunningFleet) -> None:
    scope = load_scope(tmp_path, fleet)
    found = [
        {(f.ip, f.port, f.status) for f in survey(scope, tmp_path / f"s{index}", fleet, shard=Shard(index, 3)).findings}
        for index in range(3)
    ]
    assert sum(map(len, found)) == len(fleet.truth), "no service probed by two shards"
    assert {(ip, port) for part in found for ip, port, _ in part} == {(row["ip"], row["port"]) for row in fleet.truth}
    vulnerable = {(ip, port) for part in found for ip, port, status in part if status == "vulnerable"}
    assert vulnerable == {(row["ip"], row["port"]) for row in fleet.truth if row["expected"] == "finding"}


def test_shards_split_an_imported_scan(tmp_path: Path, fleet: RunningFleet) -> None:
    lines = [f"open tcp {row['port']} {row['ip']} 1763780000" for row in fleet.truth if row["protocol"] == "ftp"]
    (tmp_path / "scan.txt").write_text("\n".join(lines) + "\n")
    scope = load_scope(tmp_path, fleet)
    found = [
        {(f.ip, f.port) for f in survey(
            scope, tmp_path / f"s{index}", fleet, shard=Shard(index, 2), l4_file=tmp_path / "scan.txt",
        ).findings}
        for index in range(2)
    ]
    assert not found[0] & found[1] and len(found[0] | found[1]) == len(lines)


# -- resume: the port set, and refusals before sweeping (item 12) --------------------------------------


def test_resume_with_the_ports_in_another_order(tmp_path: Path, fleet: RunningFleet) -> None:
    scope = load_scope(tmp_path, fleet)
    store = tmp_path / "store"
    survey_id = interrupt_survey(scope, store, fleet.ports())
    summary = survey(scope, store, fleet, ports=fleet.ports()[::-1], resume=True)
    assert summary.resumed and summary.survey_id == survey_id
    assert {(f.ip, f.port) for f in summary.findings} <= {(row["ip"], row["port"]) for row in fleet.truth}
    with SurveyJournal(store) as journal:
        stored = FindingsDataset(store).read(journal.findings_files(survey_id))
        assert len(journal.jobs()) == 1
    assert stored.num_rows == len(fleet.truth)


@pytest.mark.parametrize(("change", "reason"), [
    ({"ports": "other"}, r"has ports [\d,]+ \(not [\d,]+\)"),
    ({"shard": Shard(1, 2)}, r"shard 1/1 \(not 2/2\)"),
    ({"seed": 12345}, r"seed"),
])
def test_resume_of_another_job_is_refused_before_sweeping(
    tmp_path: Path, fleet: RunningFleet, change: dict, reason: str
) -> None:
    scope = load_scope(tmp_path, fleet)
    store = tmp_path / "store"
    interrupt_survey(scope, store, fleet.ports())
    options = dict(change)
    if options.get("ports") == "other":
        options["ports"] = fleet.ports()[:-1]
    with socket_audit() as audit, pytest.raises(ResumeError, match=reason):
        survey(scope, store, fleet, resume=True, **options)
    assert audit.connects == []  # (the sockets created are asyncio's own socketpair)
    with SurveyJournal(store) as journal:
        assert len(journal.jobs()) == 1


def test_resume_with_nothing_to_resume_is_refused(tmp_path: Path, fleet: RunningFleet) -> None:
    scope = load_scope(tmp_path, fleet)
    with socket_audit() as audit, pytest.raises(ResumeError, match="no unfinished survey"):
        survey(scope, tmp_path / "store", fleet, resume=True)
    assert audit.connects == []


# -- an unreachable imported target (item 5) -------------------------------------------------------------


def network_namespaces_unavailable() -> str:
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True, text=True, check=False)
    return probe.stderr.strip() if probe.returncode else ""


@pytest.mark.skipif(bool(network_namespaces_unavailable()), reason="unshare -n is not permitted here")
def test_an_unroutable_imported_target_is_an_error_finding(tmp_path: Path) -> None:
    """In a network namespace of its own (created by ``unshare -n``), a route that throws the
    lookup out of the local table makes one loopback address unroutable, as a target behind a
    missing route is: the source-address lookup fails with ENETUNREACH. That target gets an error
    finding and the survey goes on. Nothing leaves the namespace: it has no interface but ``lo``."""
    lost, reachable = "127.0.9.200", "127.0.9.201"
    (tmp_path / "scan.txt").write_text(f"open tcp 23 {lost} 1\nopen tcp 2121 {reachable} 1\n")
    write_scope(tmp_path / "scope.toml", ["127.0.9.0/24"])
    script = tmp_path / "inside.py"
    script.write_text(NAMESPACE_SCRIPT)
    result = subprocess.run(
        ["unshare", "-n", sys.executable, str(script), str(tmp_path), lost, reachable, "2121"],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    rows = {(row["ip"], row["port"]): row for row in json.loads(result.stdout)}
    assert set(rows) == {(lost, 23), (reachable, 2121)}
    assert rows[(lost, 23)]["status"] == "error" and "unreachable" in rows[(lost, 23)]["detail"]
    assert rows[(lost, 23)]["scanner"] is None
    assert rows[(reachable, 2121)]["protocol"] == "ftp" and rows[(reachable, 2121)]["scanner"] == "127.0.0.1"


NAMESPACE_SCRIPT = '''
import asyncio, json, socket, subprocess, sys, threading
from pathlib import Path
from iotscope.survey.credentials import load_builtin
from iotscope.survey.probes import ProbeLimits
from iotscope.survey.run import run_survey
from iotscope.survey.scope import Scope

directory, lost, reachable, port = Path(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
subprocess.run(["ip", "route", "add", "throw", lost + "/32", "table", "local"], check=True)
server = socket.create_server((reachable, port))

def serve():
    while True:
        conn, _ = server.accept()
        with conn, conn.makefile("rwb", buffering=0) as stream:
            stream.write(b"220 (vsFTPd 3.0.3)\\r\\n")
            for line in stream:
                answer = b"331 Password?" if line.startswith(b"USER") else b"530 Login incorrect."
                stream.write(answer + b"\\r\\n")

threading.Thread(target=serve, daemon=True).start()
limits = ProbeLimits(connect_timeout=1.0, read_timeout=1.0, deadline=4.0, greeting_timeout=0.5, attempt_delay=0.0,
                     max_attempts=2)
summary = asyncio.run(run_survey(
    Scope.load(directory / "scope.toml"), store=directory / "store", credentials=load_builtin(),
    ports=[23, port], l4_file=directory / "scan.txt", limits=limits,
))
print(json.dumps([{"ip": f.ip, "port": f.port, "status": f.status, "protocol": f.protocol, "detail": f.detail,
                   "scanner": f.scanner} for f in summary.findings]))
'''
