"""Job journal: which survey a resume continues, and atomic checkpoints."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from iotscope.survey.journal import JournalError, OpenPort, SurveyBusyError, SurveyJournal


def test_resume_picks_the_newest_unfinished_survey_of_the_same_job(tmp_path: Path) -> None:
    with SurveyJournal(tmp_path) as journal:
        journal.create("A", "job-1", 1, "1/1", [23], "s.toml")
        journal.create("B", "job-1", 2, "1/1", [23], "s.toml")
        journal.create("C", "job-2", 3, "1/2", [23], "s.toml")
        assert journal.resumable("job-1").survey_id == "B"
        journal.finish("B")
        assert journal.resumable("job-1").survey_id == "A"
        assert journal.resumable("job-3") is None


def test_incomplete_services_keep_the_pairs_tried_until_settled_and_stay_resumable(tmp_path: Path) -> None:
    with SurveyJournal(tmp_path) as journal:
        journal.create("A", "job-1", 1, "1/1", [23], "s.toml")
        journal.commit_findings("A", [], [("127.0.0.9", 23), ("127.0.0.9", 22)],
                                {("127.0.0.9", 23): ("p1", "p2"), ("127.0.0.9", 22): None})
        journal.finish("A")
        # Finished, but a service's list was not exhausted: --resume continues it.
        assert journal.resumable("job-1").survey_id == "A"
        journal.commit_findings("A", [], [("127.0.0.9", 23)], {("127.0.0.9", 23): ("p2", "p3")})
        assert journal.incomplete_services("A") == {("127.0.0.9", 23): ["p1", "p2", "p3"]}  # in the order tried
        journal.commit_findings("A", [], [("127.0.0.9", 23)], {("127.0.0.9", 23): None})  # settled
        assert journal.incomplete_services("A") == {}
        assert journal.resumable("job-1") is None


def test_checkpoints_round_trip_big_positions_and_open_ports(tmp_path: Path) -> None:
    position = 2**100  # IPv6 scopes have positions beyond SQLite's 64-bit integers
    with SurveyJournal(tmp_path) as journal:
        journal.create("A", "job", 2**63 + 5, "2/3", [23, 2323], "s.toml")
        journal.checkpoint_sweep("A", position, [position + 3, position + 1], [OpenPort("::1", 23, "::1")])
        journal.checkpoint_sweep("A", position + 4, [], [OpenPort("::1", 23, "::1"), OpenPort("127.0.0.2", 2323, None)])
    with SurveyJournal(tmp_path) as journal:
        job = journal.job("A")
        assert (job.seed, job.shard, job.ports) == (2**63 + 5, "2/3", [23, 2323])
        assert (job.sweep_position, job.sweep_done_above, job.sweep_finished) == (position + 4, [], False)
        assert journal.open_ports("A") == [OpenPort("::1", 23, "::1"), OpenPort("127.0.0.2", 2323, None)]


def test_findings_commit_marks_targets_probed(tmp_path: Path) -> None:
    with SurveyJournal(tmp_path) as journal:
        journal.create("A", "job", 1, "1/1", [23], "s.toml")
        journal.commit_findings("A", ["findings/date=2026-01-01/part-A-1.parquet"], [("127.0.0.2", 23)])
        assert journal.probed("A") == {("127.0.0.2", 23)}
        assert journal.findings_files() == journal.findings_files("A") == ["findings/date=2026-01-01/part-A-1.parquet"]


def test_unusable_store(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(JournalError, match="cannot open the survey store"):
        SurveyJournal(tmp_path / "file")


def test_a_survey_is_held_by_one_journal_at_a_time(tmp_path: Path) -> None:
    """flock conflicts between two opens even in one process; the CLI test runs two processes."""
    first, second = SurveyJournal(tmp_path), SurveyJournal(tmp_path)
    try:
        first.hold("S1")
        busy = rf"survey S1 is already running in another process \(pid {os.getpid()}\)"
        with pytest.raises(SurveyBusyError, match=busy):
            second.hold("S1")
        second.hold("S2")
        first.close()
        second.hold("S1")
    finally:
        first.close()
        second.close()
    assert oct((tmp_path / ".survey-locks").stat().st_mode & 0o777) == "0o700"


def test_replace_findings_files_swaps_in_one_transaction_or_not_at_all(tmp_path: Path) -> None:
    with SurveyJournal(tmp_path) as journal:
        journal.create("A", "key", 1, "1/1", [23], "scope.toml")
        journal.commit_findings("A", ["findings/date=2026-01-01/part-A-1.parquet", "findings/date=2026-01-01/part-A-2.parquet"], [])
        with pytest.raises(JournalError, match="findings files changed during compaction; nothing replaced"):
            journal.replace_findings_files("A", ["findings/date=2026-01-01/part-A-3.parquet"],
                                           ["findings/date=2026-01-01/part-A-1.parquet", "findings/date=2026-01-01/part-A-9.parquet"])
        assert len(journal.findings_files("A")) == 2
        journal.replace_findings_files("A", ["findings/date=2026-01-01/part-A-3.parquet"], journal.findings_files("A"))
        assert journal.findings_files("A") == journal.findings_files() == ["findings/date=2026-01-01/part-A-3.parquet"]
