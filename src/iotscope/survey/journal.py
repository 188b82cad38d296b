"""Job state of surveys, in SQLite (``survey_state.sqlite`` in the store), so a run can resume.

A survey has two phases and both checkpoint here: the sweep (position in its permutation, plus
the few positions finished out of order above it, and the open ports found) and the probes
(which open ports are done, and the findings files that hold their results). A findings file
counts once its row is committed here, in the same transaction that marks its targets probed,
so an interrupted run neither loses nor duplicates evidence (see ``iotscope.survey.findings``).

Writers create the file 0600 (its WAL and shared-memory files inherit that mode from SQLite);
readers (reports) open it with ``read_only=True`` and never write: no schema, no WAL files.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from iotscope.errors import IotscopeError
from iotscope.store.layout import SURVEY_STATE_FILE
from iotscope.store.lock import lock_holder, try_lock, unlock
from iotscope.store.sqlite import connect_read_only
from iotscope.survey.private import private_directory, private_file

_SCHEMA = """
CREATE TABLE IF NOT EXISTS surveys (
    survey_id     TEXT PRIMARY KEY,
    job_key       TEXT NOT NULL,    -- hash of what the permutation depends on (see run.py)
    seed          TEXT NOT NULL,    -- big integers are stored as text
    shard         TEXT NOT NULL,    -- "i/N"
    ports         TEXT NOT NULL,    -- JSON list
    scope_source  TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    sweep_position TEXT NOT NULL DEFAULT '0',
    sweep_done_above TEXT NOT NULL DEFAULT '[]',  -- JSON list of positions done above the watermark
    sweep_finished INTEGER NOT NULL DEFAULT 0,
    finished_at   TEXT
);
CREATE TABLE IF NOT EXISTS open_ports (
    survey_id TEXT NOT NULL,
    ip        TEXT NOT NULL,
    port      INTEGER NOT NULL,
    scanner   TEXT,                -- local address the connect came from (None when imported)
    found_at  TEXT NOT NULL,
    PRIMARY KEY (survey_id, ip, port)
);
CREATE TABLE IF NOT EXISTS probed (
    survey_id TEXT NOT NULL,
    ip        TEXT NOT NULL,
    port      INTEGER NOT NULL,
    PRIMARY KEY (survey_id, ip, port)
);
-- Services whose credential list was not exhausted (``incomplete``): the listed pairs tried so
-- far, so that --resume continues each one where it stopped. A settled result removes the row.
CREATE TABLE IF NOT EXISTS incomplete_services (
    survey_id TEXT NOT NULL,
    ip        TEXT NOT NULL,
    port      INTEGER NOT NULL,
    tried     TEXT NOT NULL,       -- JSON list of credential ids, in the order tried
    PRIMARY KEY (survey_id, ip, port)
);
CREATE TABLE IF NOT EXISTS findings_files (
    survey_id TEXT NOT NULL,
    path      TEXT PRIMARY KEY      -- relative to the store root
);
"""


class JournalError(IotscopeError, ValueError):
    """The store directory cannot hold survey state (not a directory, not writable, corrupt)."""


class SurveyBusyError(JournalError):
    """Another process is running this survey (two runs would double every login and finding)."""


class ResumeError(JournalError):
    """``--resume`` has no unfinished survey of the same job to continue."""


@dataclass(frozen=True, slots=True)
class OpenPort:
    ip: str
    port: int
    scanner: str | None = None


@dataclass(frozen=True)
class SurveyJob:
    survey_id: str
    job_key: str
    seed: int
    shard: str
    ports: list[int]
    scope_source: str
    created_at: str
    sweep_position: int
    sweep_done_above: list[int]
    sweep_finished: bool
    finished_at: str | None


class SurveyJournal:
    """The job-state database of one store directory."""

    FILENAME = SURVEY_STATE_FILE

    def __init__(self, store_root: Path, *, read_only: bool = False) -> None:
        self._root = store_root
        self._locks: list[int] = []  # survey locks held (see hold)
        if read_only:
            self._db = _open_read_only(store_root / self.FILENAME)
            return
        try:
            if not store_root.is_dir():
                private_directory(store_root)
            private_file(store_root / self.FILENAME)
            self._db = sqlite3.connect(store_root / self.FILENAME, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise JournalError(f"{store_root}: cannot open the survey store ({exc})") from None

    def close(self) -> None:
        self._db.close()
        for fd in self._locks:
            unlock(fd)
        self._locks.clear()

    def hold(self, survey_id: str) -> None:
        """Run survey ``survey_id`` in this process only, until :meth:`close` (or its death): a lock
        (``iotscope.store.lock``) on ``.survey-locks/<id>.lock`` in the store. Raises
        :class:`SurveyBusyError` if another process holds it."""
        path = self._root / ".survey-locks" / f"{survey_id}.lock"
        try:
            path.parent.mkdir(mode=0o700, exist_ok=True)
            fd = try_lock(path)
        except OSError as exc:
            raise JournalError(f"{self._root}: cannot lock survey {survey_id} ({exc.strerror})") from None
        if fd is None:
            pid = lock_holder(path)
            raise SurveyBusyError(
                f"survey {survey_id} is already running in another process{f' (pid {pid})' if pid else ''}; "
                "wait for it to end or stop it, then --resume"
            )
        self._locks.append(fd)

    def __enter__(self) -> SurveyJournal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def create(self, survey_id: str, job_key: str, seed: int, shard: str, ports: list[int], scope_source: str) -> SurveyJob:
        self._db.execute(
            "INSERT INTO surveys (survey_id, job_key, seed, shard, ports, scope_source, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (survey_id, job_key, str(seed), shard, json.dumps(ports), scope_source, _now()),
        )
        job = self.job(survey_id)
        assert job is not None
        return job

    def job(self, survey_id: str) -> SurveyJob | None:
        row = self._db.execute("SELECT * FROM surveys WHERE survey_id = ?", (survey_id,)).fetchone()
        return _row_to_job(row) if row else None

    def jobs(self) -> list[SurveyJob]:
        return [_row_to_job(r) for r in self._db.execute("SELECT * FROM surveys ORDER BY created_at, survey_id")]

    def resumable(self, job_key: str) -> SurveyJob | None:
        """The newest survey of the same job (same scope ranges, ports and shard) that is unfinished
        or has incomplete services (credential lists not exhausted)."""
        row = self._db.execute(
            "SELECT * FROM surveys s WHERE job_key = ? AND (finished_at IS NULL OR EXISTS "
            "(SELECT 1 FROM incomplete_services i WHERE i.survey_id = s.survey_id)) "
            "ORDER BY created_at DESC, rowid DESC LIMIT 1",
            (job_key,),
        ).fetchone()
        return _row_to_job(row) if row else None

    def checkpoint_sweep(
        self, survey_id: str, position: int, done_above: list[int], found: list[OpenPort], *, finished: bool = False
    ) -> None:
        """Record sweep progress and the open ports found since the last checkpoint, atomically."""
        with self._transaction():
            self._db.executemany(
                "INSERT OR IGNORE INTO open_ports VALUES (?, ?, ?, ?, ?)",
                [(survey_id, p.ip, p.port, p.scanner, _now()) for p in found],
            )
            self._db.execute(
                "UPDATE surveys SET sweep_position = ?, sweep_done_above = ?, sweep_finished = ? WHERE survey_id = ?",
                (str(position), json.dumps(sorted(done_above)), int(finished), survey_id),
            )

    def add_open_ports(self, survey_id: str, found: list[OpenPort]) -> None:
        """Open ports from an imported L4 scan (zmap/masscan) instead of a sweep."""
        self.checkpoint_sweep(survey_id, 0, [], found, finished=True)

    def open_ports(self, survey_id: str) -> list[OpenPort]:
        rows = self._db.execute(
            "SELECT ip, port, scanner FROM open_ports WHERE survey_id = ? ORDER BY rowid", (survey_id,)
        )
        return [OpenPort(ip, port, scanner) for ip, port, scanner in rows]

    def probed(self, survey_id: str) -> set[tuple[str, int]]:
        return {(ip, port) for ip, port in self._db.execute("SELECT ip, port FROM probed WHERE survey_id = ?", (survey_id,))}

    def commit_findings(
        self, survey_id: str, paths: list[str], targets: list[tuple[str, int]],
        tried: dict[tuple[str, int], tuple[str, ...] | None] | None = None,
    ) -> None:
        """Published findings files (paths relative to the store) and the targets whose results
        they hold: from this statement on both count. ``tried`` maps a target to the credential
        ids its probe tried when it is ``incomplete`` (added to those tried before), or to None
        when its result settles it (it leaves the incomplete services)."""
        with self._transaction():
            self._db.executemany("INSERT INTO findings_files VALUES (?, ?)", [(survey_id, p) for p in paths])
            self._db.executemany("INSERT OR IGNORE INTO probed VALUES (?, ?, ?)", [(survey_id, ip, port) for ip, port in targets])
            earlier = self.incomplete_services(survey_id) if tried else {}
            for (ip, port), ids in (tried or {}).items():
                if ids is None:
                    self._db.execute(
                        "DELETE FROM incomplete_services WHERE survey_id = ? AND ip = ? AND port = ?", (survey_id, ip, port),
                    )
                    continue
                before = earlier.get((ip, port), [])
                union = before + [i for i in dict.fromkeys(ids) if i not in set(before)]
                self._db.execute(
                    "INSERT OR REPLACE INTO incomplete_services VALUES (?, ?, ?, ?)", (survey_id, ip, port, json.dumps(union)),
                )

    def incomplete_services(self, survey_id: str) -> dict[tuple[str, int], list[str]]:
        """Services of ``survey_id`` left ``incomplete``, each with the credential ids tried so far."""
        rows = self._db.execute("SELECT ip, port, tried FROM incomplete_services WHERE survey_id = ?", (survey_id,))
        return {(ip, port): json.loads(tried) for ip, port, tried in rows}

    def replace_findings_files(self, survey_id: str, new: list[str], old: list[str]) -> None:
        """Swap ``old`` findings files of ``survey_id`` for ``new`` ones holding the same rows (a
        compaction), in one transaction: readers see the old set or the new one, never both or
        neither. Refused (:class:`JournalError`, nothing changed) unless every ``old`` file is
        still committed for that survey."""
        with self._transaction():
            committed = {path for (path,) in self._db.execute(
                "SELECT path FROM findings_files WHERE survey_id = ?", (survey_id,),
            )}
            if not set(old) <= committed:
                raise JournalError(f"survey {survey_id}: findings files changed during compaction; nothing replaced")
            self._db.executemany("DELETE FROM findings_files WHERE path = ?", [(p,) for p in old])
            self._db.executemany("INSERT INTO findings_files VALUES (?, ?)", [(survey_id, p) for p in new])

    def findings_files(self, survey_id: str | None = None) -> list[str]:
        if survey_id is None:
            rows = self._db.execute("SELECT path FROM findings_files ORDER BY rowid")
        else:
            rows = self._db.execute("SELECT path FROM findings_files WHERE survey_id = ? ORDER BY rowid", (survey_id,))
        return [path for (path,) in rows]

    def finish(self, survey_id: str) -> None:
        self._db.execute("UPDATE surveys SET finished_at = ? WHERE survey_id = ?", (_now(), survey_id))

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self._db.execute("COMMIT" if exc_type is None else "ROLLBACK")


def _open_read_only(path: Path) -> sqlite3.Connection:
    """``path`` for reading only, creating nothing (see :mod:`iotscope.store.sqlite`: without a
    ``-wal`` file, no writer running or interrupted, the file is read ``immutable``; a report takes
    milliseconds, and a survey starting meanwhile writes to a WAL file, the main file only at checkpoints)."""
    if not path.is_file():
        raise JournalError(f"{path.parent}: no survey state ({path.name}) in this store")
    try:
        db = connect_read_only(path)
        db.execute("SELECT count(*) FROM surveys").fetchone()
    except (sqlite3.Error, OSError) as exc:
        raise JournalError(f"{path.parent}: cannot read the survey state ({exc})") from None
    return db


def _row_to_job(row: tuple) -> SurveyJob:
    (survey_id, job_key, seed, shard, ports, scope_source, created_at, position, done_above, sweep_finished, finished_at) = row
    return SurveyJob(
        survey_id, job_key, int(seed), shard, json.loads(ports), scope_source, created_at,
        int(position), json.loads(done_above), bool(sweep_finished), finished_at,
    )


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")
