"""The catalog of a store directory: every dataset in it, who writes it, its format, files and view.

Why: one ``--store`` directory holds datasets written by several stages (ingest, the analysis
passes, the survey, notify). ``store/`` owns the directory, so it must be able to say what is in
it without importing those stages: the list is built from the registries that define each dataset
(``PACKET_SCHEMA``/``STORE_FORMAT``, :data:`iotscope.store.datasets.DATASETS`, and
:mod:`iotscope.store.layout` for the survey's and notify's files), so a dataset added to a
registry appears here, in ``iotscope store info`` and in the check of docs/schema.md, by itself.

Read-only: the packet store is opened with ``read_only=True`` and every SQLite file through
:func:`iotscope.store.sqlite.connect_read_only`; nothing is created, cleaned up or locked.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import asdict, dataclass
from pathlib import Path

from iotscope.store.datasets import ANALYSIS_DIR, DATASETS, SUMMARIES_KEY, view_snapshot
from iotscope.store.summaries import ALERTS, CATEGORIES, SOURCES
from iotscope.store.layout import (
    FINDINGS_DIR,
    FINDINGS_FORMAT,
    NOTIFY_FILE,
    NOTIFY_FORMAT,
    STORE_FORMAT,
    SURVEY_STATE_FILE,
)
from iotscope.store.packets import PacketStore
from iotscope.store.sqlite import connect_read_only
from iotscope.store.state import StoreError

STATE_FILE = "state.sqlite"
_HOURLY = "date=YYYY-MM-DD/hour=HH/*.parquet"


@dataclass(frozen=True)
class DatasetInfo:
    """One dataset of a store, as ``iotscope store info`` lists it.

    ``format`` is the version this iotscope writes and reads; ``stored_formats`` the versions the
    store records for what it holds (empty when nothing is written yet or, for ``findings``, when
    the files do not record one). ``files`` counts the files that count now (committed, not retired).
    """

    name: str
    writer: str  # the module that writes it
    format: int
    stored_formats: tuple[int, ...]
    location: str  # relative to the store root
    listed_in: str  # what says which of its files count
    view: str | None  # its DuckDB view in ``iotscope sql``, if it has one
    files: int

    def to_json(self) -> dict[str, object]:
        return {**asdict(self), "stored_formats": list(self.stored_formats)}


def store_catalog(root: Path) -> list[DatasetInfo]:
    """Every dataset a store directory can hold, with what this one holds of each.

    Raises :class:`StoreError` (one line) for a directory that holds none of a store's files, or
    a file that cannot be read.
    """
    root = Path(root)
    if not root.is_dir():
        raise StoreError(f"{root}: no such store directory")
    if not any((root / name).is_file() for name in (STATE_FILE, SURVEY_STATE_FILE, NOTIFY_FILE)):
        raise StoreError(f"{root}: not an iotscope store (no {STATE_FILE}, {SURVEY_STATE_FILE} or {NOTIFY_FILE})")
    return [_packets(root), *_analysis(root), _findings(root), _notify(root)]


def _packets(root: Path) -> DatasetInfo:
    files, stored = 0, ()
    if (root / STATE_FILE).is_file():
        with PacketStore(root, read_only=True) as store:  # refuses a state.sqlite of another format
            files, stored = len(store.state.live_files()), (STORE_FORMAT,)
    return DatasetInfo(
        "packets", "iotscope.store.packets (iotscope ingest, the sensor)", STORE_FORMAT, stored,
        f"packets/{_HOURLY}", f"{STATE_FILE}: ingested_files + compacted_files - retired_files", "packets", files)


def _analysis(root: Path) -> list[DatasetInfo]:
    snapshot = view_snapshot(root)  # empty without state.sqlite
    out = []
    for spec in DATASETS.values():
        stored = set()
        for entry in snapshot.hours.values():
            version = json.loads(entry.config).get(spec.name, {}).get("version")
            if isinstance(version, int) and spec.name in entry.rows:
                stored.add(version)
        out.append(DatasetInfo(
            spec.name, "iotscope.telescope.passes (iotscope analyze)", spec.version, tuple(sorted(stored)),
            f"{ANALYSIS_DIR}/{spec.name}/{_HOURLY}", f"{STATE_FILE}: analysed_hours", spec.name,
            len(snapshot.rows_files(spec.name))))
    for spec in (ALERTS, SOURCES, CATEGORIES):  # whole-store results, recomputed at the end of each analyze
        path = snapshot.summary_file(spec.name)
        out.append(DatasetInfo(
            spec.name, "iotscope.telescope.passes (iotscope analyze, whole store)", spec.version,
            (spec.version,) if path else (), f"{ANALYSIS_DIR}/summary/{spec.name}/<run>.parquet",
            f"{STATE_FILE}: analysis_settings '{SUMMARIES_KEY}'", None if spec is CATEGORIES else spec.name,
            int(path is not None)))
    return out


def _findings(root: Path) -> DatasetInfo:
    files = _count(root / SURVEY_STATE_FILE, "SELECT count(*) FROM findings_files")
    return DatasetInfo(
        "findings", "iotscope.survey.findings (iotscope survey run)", FINDINGS_FORMAT, (),
        f"{FINDINGS_DIR}/date=YYYY-MM-DD/part-<survey>-<id>.parquet", f"{SURVEY_STATE_FILE}: findings_files",
        None, files)


def _notify(root: Path) -> DatasetInfo:
    path = root / NOTIFY_FILE
    stored = (_count(path, "PRAGMA user_version"),) if path.is_file() else ()
    return DatasetInfo(
        "notify", "iotscope.notify.database (iotscope alerts, notify)", NOTIFY_FORMAT, stored,
        f"{NOTIFY_FILE}: org_versions, messages, alert_history, notices", NOTIFY_FILE, None, int(path.is_file()))


def _count(path: Path, sql: str) -> int:
    """The one integer ``sql`` returns from the SQLite file ``path`` (0 when there is no file)."""
    if not path.is_file():
        return 0
    try:
        db = connect_read_only(path)
        try:
            return int(db.execute(sql).fetchone()[0])
        finally:
            db.close()
    except (sqlite3.Error, OSError) as exc:
        raise StoreError(f"{path}: cannot read ({exc})") from None
