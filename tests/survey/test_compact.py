"""Compaction of findings files (issue 7, item 8): per survey when a run finishes, or on demand;
atomic for readers and crash-safe (kill -9 in a real subprocess)."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa
import pytest

from iotscope.survey.compact import compact_findings
from iotscope.survey.credentials import load_builtin
from iotscope.survey.findings import Finding, FindingsDataset
from iotscope.survey.journal import JournalError, SurveyBusyError, SurveyJournal
from iotscope.survey.probes import ProbeLimits
from iotscope.survey.report import store_findings
from iotscope.survey.run import run_survey
from iotscope.survey.scope import Scope
from tests.survey.conftest import start_fleet, write_scope

T0 = datetime(2026, 3, 1, 23, 59, 50, tzinfo=timezone.utc)


def finding(survey_id: str, n: int, ts: datetime) -> Finding:
    return Finding(
        ts, survey_id, "192.0.2.250", f"192.0.2.{n % 250}", 1000 + n, "telnet", "not_vulnerable", "info",
        "credentials-rejected", None, f"login {n}", None, "", 3, "Example ISP", "contract 1",
    )


def build_store(root: Path, survey_id: str, files: int, rows: int = 2) -> Path:
    """A store whose survey ``survey_id`` committed ``files`` small files (batches over midnight:
    two date partitions), as many runs' flushes leave them."""
    dataset = FindingsDataset(root)
    with SurveyJournal(root) as journal:
        journal.create(survey_id, "key", 1, "1/1", [23], "scope.toml")
        for batch in range(files):
            batch_rows = [finding(survey_id, batch * rows + i, T0 + timedelta(seconds=batch)) for i in range(rows)]
            paths = dataset.publish(survey_id, batch_rows)
            journal.commit_findings(survey_id, paths, [(f.ip, f.port) for f in batch_rows])
        journal.finish(survey_id)
    return root


def rows_of(table: pa.Table) -> Counter:
    return Counter(tuple(row.values()) for row in table.to_pylist())


def partition_files(store: Path) -> set[str]:
    return {p.relative_to(store).as_posix() for p in (store / "findings").glob("date=*/*.parquet")}


def committed(store: Path, survey_id: str | None = None) -> list[str]:
    with SurveyJournal(store, read_only=True) as journal:
        return journal.findings_files(survey_id)


def test_compaction_keeps_every_row_in_one_file_per_partition(tmp_path: Path) -> None:
    store = build_store(tmp_path / "store", "S1", files=40)
    build_store_other = FindingsDataset(store).publish("S2", [finding("S2", 1, T0)])  # another survey: untouched
    with SurveyJournal(store) as journal:
        journal.create("S2", "key2", 1, "1/1", [23], "scope.toml")
        journal.commit_findings("S2", build_store_other, [("192.0.2.1", 1001)])
    stray = FindingsDataset(store).publish("S1", [finding("S1", 999, T0)])  # a killed run's remains
    before = rows_of(store_findings(store))
    result = compact_findings(store)
    assert (result.files_before, result.files_after, result.orphans_removed) == (40 + 1, 2 + 1, 1)
    assert result.surveys == ["S1", "S2"] and result.busy == []
    files = committed(store, "S1")
    assert len(files) == 2 and {Path(f).parent.name for f in files} == {"date=2026-03-01", "date=2026-03-02"}
    assert committed(store, "S2") == build_store_other
    assert rows_of(store_findings(store)) == before
    assert partition_files(store) == set(committed(store)) and stray[0] not in partition_files(store)
    for path in files:
        assert stat.S_IMODE((store / path).stat().st_mode) == 0o600
    again = compact_findings(store, "S1")  # nothing left to do
    assert (again.files_before, again.files_after) == (2, 2) and committed(store, "S1") == files


def test_a_running_survey_is_left_alone_and_refused_by_name(tmp_path: Path) -> None:
    store = build_store(tmp_path / "store", "S1", files=3)
    with SurveyJournal(store) as running:
        running.hold("S1")  # as a `survey run` of S1 does
        code = f"from iotscope.survey.compact import compact_findings as c; r = c(__import__('pathlib').Path({str(store)!r})); print(r.busy)"
        other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
        assert other.stdout.strip() == "['S1']" and len(committed(store, "S1")) == 3
        cli = subprocess.run([sys.executable, "-m", "iotscope", "survey", "compact", "--store", str(store), "--survey", "S1"],
                             capture_output=True, text=True, timeout=60, check=False)
        assert cli.returncode == 2 and "survey S1 is already running" in cli.stderr and "Traceback" not in cli.stderr
    with pytest.raises(JournalError, match="no survey 'nope'"):
        compact_findings(store, "nope")
    with pytest.raises(JournalError, match="no survey in this store"):
        compact_findings(tmp_path / "empty")
    assert not (tmp_path / "empty").exists()
    assert issubclass(SurveyBusyError, JournalError)


def test_cli_compact(tmp_path: Path) -> None:
    store = build_store(tmp_path / "store", "S1", files=12)
    before = rows_of(store_findings(store))
    result = subprocess.run([sys.executable, "-m", "iotscope", "survey", "compact", "--store", str(store)],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert "1 survey(s): 12 findings files -> 2" in result.stderr
    assert rows_of(store_findings(store)) == before and len(committed(store)) == 2


def test_kill_9_during_compaction_leaves_the_old_or_the_new_set(tmp_path: Path) -> None:
    """``survey compact`` killed at many moments: the journal names either every old file or the
    compacted ones, each of them on disk, with every row once; a later compaction finishes the job
    and leaves no stray file."""
    template = build_store(tmp_path / "template", "S1", files=600)
    old = set(committed(template))
    expected = rows_of(store_findings(template))
    outcomes: Counter[str] = Counter()

    def compact_in_a_process(store: Path, kill_after: float | None) -> subprocess.Popen:
        process = subprocess.Popen([sys.executable, "-m", "iotscope", "survey", "compact", "--store", str(store)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            process.wait(kill_after)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
        process.wait(60)
        return process

    shutil.copytree(template, tmp_path / "timed")
    started = time.monotonic()
    assert compact_in_a_process(tmp_path / "timed", None).returncode == 0
    whole = time.monotonic() - started  # start-up, read, write, swap, delete
    for attempt in range(10):
        store = tmp_path / f"store{attempt}"
        shutil.copytree(template, store)
        compact_in_a_process(store, whole * (0.3 + 0.08 * attempt))  # from start-up to the end
        files = committed(store)
        assert all((store / f).is_file() for f in files), "the journal names a file that is gone"
        if set(files) == old:
            outcomes["old"] += 1
        else:
            assert not set(files) & old and len(files) == 2, "old and new files counted together"
            assert len(files) <= 2
            outcomes["new"] += 1
        assert rows_of(store_findings(store)) == expected, "rows lost or doubled"
        compact_findings(store)
        assert partition_files(store) == set(committed(store)) and len(committed(store)) == 2
        assert rows_of(store_findings(store)) == expected
        assert not list((store / "findings" / ".staging").glob("*"))
    assert outcomes["old"] >= 1, outcomes  # some kill landed before the swap
    print(outcomes)


def test_readers_see_every_row_while_a_compaction_runs(tmp_path: Path) -> None:
    """A reader lists the files, then reads them for a while: a compaction retiring them in
    between must not make it fail or miss rows (three rounds: the swap lands inside a read)."""
    template = build_store(tmp_path / "template", "S1", files=400)
    expected = store_findings(template).num_rows
    for round_ in range(3):
        store = tmp_path / f"store{round_}"
        shutil.copytree(template, store)
        seen: list[int] = []
        failures: list[BaseException] = []
        done = threading.Event()

        def read(store: Path = store, seen: list[int] = seen, failures: list[BaseException] = failures) -> None:
            while not done.is_set():
                try:
                    seen.append(store_findings(store).num_rows)
                except BaseException as exc:  # recorded: the assertion below shows it
                    failures.append(exc)
                    return

        reader = threading.Thread(target=read)
        reader.start()
        try:
            subprocess.run([sys.executable, "-m", "iotscope", "survey", "compact", "--store", str(store)],
                           capture_output=True, timeout=120, check=True)
        finally:
            done.set()
            reader.join()
        assert failures == [] and seen and set(seen) == {expected}, (failures, Counter(seen))
        assert len(committed(store)) == 2


def test_a_finished_run_leaves_one_file_per_partition(tmp_path: Path) -> None:
    """A real run on the emulated fleet: its batches (flushed every second) end as one file."""
    fleet = start_fleet(count=8, seed=4)
    try:
        scope = Scope.load(write_scope(tmp_path / "scope.toml", [fleet.network]))
        limits = ProbeLimits(connect_timeout=1.0, read_timeout=1.0, deadline=4.0, greeting_timeout=0.5,
                             attempt_delay=0.05, prompt_settle=0.02)
        summary = asyncio.run(run_survey(scope, store=tmp_path / "store", credentials=load_builtin(),
                                         ports=fleet.ports(), rate=20000, limits=limits, probe_concurrency=2))
    finally:
        fleet.thread.stop()
    files = committed(tmp_path / "store", summary.survey_id)
    assert len(files) == len({Path(f).parent for f in files}) == 1, files
    assert store_findings(tmp_path / "store").num_rows == len(summary.findings) == len(fleet.truth)
    assert partition_files(tmp_path / "store") == set(files) and summary.compaction_error is None
    assert os.stat(tmp_path / "store" / files[0]).st_size > 0
