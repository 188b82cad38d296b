"""Compaction of findings: one Parquet file per survey and date partition instead of hundreds.

A survey publishes its evidence in small batches (every second or 256 rows, so an interrupted
run loses almost nothing), which leaves hundreds of small files per survey: slow to open for a
report, and a burden for any tool reading ``findings/``. Compaction rewrites the files of one
survey as a single file per date partition with the same rows, when the run finishes and
with ``iotscope survey compact`` (for stores written before, or a run that was interrupted).

Crash-safe and atomic for readers, because the job journal, not the directory, says which files
count: the new files are written in staging and moved into their partitions (they do not count
yet), then one journal transaction names them and retires the old ones
(:meth:`~iotscope.survey.journal.SurveyJournal.replace_findings_files`), and only then are the
old files deleted. A ``kill -9`` at any point leaves the journal naming either the old set or
the new one, never both or neither; a file it left unnamed is deleted by the next compaction or
resume of that survey. A reader that listed the old files just before the swap finds one gone
and reads the journal again (:func:`~iotscope.survey.report.store_findings`). The survey's lock
is held throughout, so no run of the same survey writes meanwhile.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from iotscope.survey.findings import FindingsDataset
from iotscope.survey.journal import JournalError, SurveyBusyError, SurveyJournal


@dataclass
class CompactResult:
    #: Surveys whose files were looked at (compacted or already compact).
    surveys: list[str] = field(default_factory=list)
    files_before: int = 0
    files_after: int = 0
    #: Files of these surveys that the journal did not name (a killed run's or compaction's), deleted.
    orphans_removed: int = 0
    #: Surveys left alone because a run of theirs holds the lock.
    busy: list[str] = field(default_factory=list)


def compact_findings(store: Path, survey_id: str | None = None) -> CompactResult:
    """Compact the findings files of ``survey_id``, or of every survey of ``store`` not running now.

    Raises :class:`~iotscope.survey.journal.JournalError` for a store without surveys or an
    unknown survey, and :class:`SurveyBusyError` when the one survey asked for is running."""
    if not (store / SurveyJournal.FILENAME).is_file():
        raise JournalError(f"{store}: no survey in this store (run `iotscope survey run ... --store {store}` first)")
    result = CompactResult()
    dataset = FindingsDataset(store)
    with SurveyJournal(store) as journal:
        if survey_id is not None and journal.job(survey_id) is None:
            known = ", ".join(j.survey_id for j in journal.jobs()[-5:]) or "none"
            raise JournalError(f"{store}: no survey {survey_id!r} (latest: {known})")
        for sid in [survey_id] if survey_id is not None else [j.survey_id for j in journal.jobs()]:
            try:
                journal.hold(sid)
            except SurveyBusyError:
                if survey_id is not None:
                    raise
                result.busy.append(sid)
                continue
            compact_survey(journal, dataset, sid, result)
    return result


def compact_survey(journal: SurveyJournal, dataset: FindingsDataset, survey_id: str, result: CompactResult) -> None:
    """Compact one survey whose lock ``journal`` holds (see the module doc); adds to ``result``."""
    result.orphans_removed += dataset.remove_uncommitted(survey_id, journal.findings_files(survey_id))
    partitions: dict[str, list[str]] = {}
    for path in journal.findings_files(survey_id):
        partitions.setdefault(PurePosixPath(path).parent.name, []).append(path)
    result.surveys.append(survey_id)
    retired, published = [], []
    for partition, old in sorted(partitions.items()):
        result.files_before += len(old)
        result.files_after += 1
        if len(old) < 2:
            continue
        table = dataset.read(old)  # in the journal's order: the history as it was committed
        published.append(dataset.publish_table(survey_id, partition.removeprefix("date="), table))
        retired += old
    if not published:
        return
    journal.replace_findings_files(survey_id, published, retired)  # the one moment the set changes
    for path in retired:
        (dataset.root / path).unlink(missing_ok=True)
