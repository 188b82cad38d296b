"""``notify.sqlite``: the org catalog (versioned), the alert history and the notices of a store.

Why a file of its own beside ``state.sqlite`` rather than tables in it: ``state.sqlite`` belongs
to ``store/`` and is versioned by its ``STORE_FORMAT``, which every packet reader checks; notify
tables there would change a format the telescope owns, and tie the packets' readers (``sql``,
``stats``, read-only mounts) to tables they never read. This file also holds contact addresses
and the history of who was told what, so it is private (0600) like the survey's evidence, while
the packet store may be shared read-only. It has its own ``user_version`` (``NOTIFY_FORMAT``, in
:mod:`iotscope.store.layout` so that the store's catalog can name it).

Versioned: loading an orgs file whose content differs from the newest catalog adds a version
(older versions stay, and every alert message records the version it was sent under), and the
history is append-only: a message is recorded ``pending`` before delivery and becomes ``sent``
only when the mail server accepted it, so nothing is ever marked sent that was not.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Self

from iotscope.notify.errors import NotifyError
from iotscope.notify.orgs import OrgCatalog
from iotscope.store.layout import NOTIFY_FILE, NOTIFY_FORMAT
from iotscope.store.lock import lock_holder, try_lock, unlock
from iotscope.store.sqlite import connect_read_only
from iotscope.survey.private import private_directory, private_file

FILENAME = NOTIFY_FILE
#: Held by the one writer of ``notify.sqlite``: two runs at once would both decide a host is due
#: and both alert it (the decisions are made before the messages are recorded).
LOCK_FILENAME = ".notify.lock"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS org_versions (
    version    INTEGER PRIMARY KEY,
    digest     TEXT NOT NULL UNIQUE,   -- SHA-256 of the canonical JSON
    source     TEXT NOT NULL,          -- the orgs file it was loaded from
    loaded_at  TEXT NOT NULL,
    document   TEXT NOT NULL           -- the canonical JSON (OrgCatalog.to_json)
);
CREATE TABLE IF NOT EXISTS messages (
    message_id  TEXT PRIMARY KEY,
    purpose     TEXT NOT NULL,         -- 'alert' (DAEDALUS) or 'isp' (NOTICE findings)
    org         TEXT NOT NULL,
    org_version INTEGER NOT NULL REFERENCES org_versions (version),
    recipients  TEXT NOT NULL,         -- JSON list
    created_at  TEXT NOT NULL,
    outbox_path TEXT NOT NULL,
    status      TEXT NOT NULL,         -- 'pending' (not delivered), 'sent' (accepted by the server), 'outbox' (no SMTP)
    sent_at     TEXT,
    attempts    INTEGER NOT NULL DEFAULT 0,
    error       TEXT
);
CREATE TABLE IF NOT EXISTS alert_history (
    message_id TEXT NOT NULL REFERENCES messages (message_id),
    org        TEXT NOT NULL,
    host       TEXT NOT NULL,
    role       TEXT NOT NULL,          -- 'scan' (likely infected) or 'backscatter' (under attack)
    first_seen TEXT NOT NULL,
    last_seen  TEXT NOT NULL,
    packets    INTEGER NOT NULL,
    ports      TEXT NOT NULL,          -- JSON list of ports
    tool       TEXT,
    PRIMARY KEY (message_id, host, role)
);
CREATE INDEX IF NOT EXISTS alert_history_host ON alert_history (org, host, role);
CREATE TABLE IF NOT EXISTS notices (
    notice_id   TEXT PRIMARY KEY,       -- tracking id of the finding's notification
    message_id  TEXT NOT NULL REFERENCES messages (message_id),
    org         TEXT NOT NULL,
    ip          TEXT NOT NULL,
    port        INTEGER NOT NULL,
    protocol    TEXT NOT NULL,
    survey_id   TEXT NOT NULL,
    finding_ts  TEXT NOT NULL,
    notified_at TEXT NOT NULL,
    closed_at   TEXT,                   -- set when a later survey no longer finds it vulnerable
    closed_by   TEXT                    -- that survey's id
);
CREATE INDEX IF NOT EXISTS notices_service ON notices (ip, port);
"""


def now_text() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class NotifyDatabase:
    """The open ``notify.sqlite`` of a store directory (created, 0600, on first write)."""

    def __init__(self, store: Path, *, read_only: bool = False) -> None:
        self.path = store / FILENAME
        self.read_only = read_only
        self._lock: int | None = None
        try:
            if read_only:
                if not self.path.is_file():
                    raise NotifyError(f"{store}: nothing notified yet (no {FILENAME})")
                self.db = connect_read_only(self.path)
            else:
                if not store.is_dir():
                    private_directory(store)
                self._lock = try_lock(store / LOCK_FILENAME)
                if self._lock is None:
                    holder = lock_holder(store / LOCK_FILENAME)
                    raise NotifyError(f"{store}: another alerts/notify run (pid {holder or '?'}) is writing; "
                                      "try again when it ends")
                private_file(self.path)
                self.db = sqlite3.connect(self.path, isolation_level=None)
                self.db.execute("PRAGMA busy_timeout = 10000")
                self.db.execute("PRAGMA journal_mode=DELETE")
            version = self.db.execute("PRAGMA user_version").fetchone()[0]
            tables = self.db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        except (sqlite3.DatabaseError, OSError) as exc:
            self._release()
            raise NotifyError(f"{self.path}: not a usable notify database ({exc})") from None
        if tables and version != NOTIFY_FORMAT:
            self.close()
            raise NotifyError(f"{self.path}: notify format {version}, this iotscope reads format {NOTIFY_FORMAT}")
        if not read_only:
            try:
                self.db.executescript(_SCHEMA)
                self.db.execute(f"PRAGMA user_version = {NOTIFY_FORMAT}")
            except sqlite3.DatabaseError as exc:
                self.close()
                raise NotifyError(f"{self.path}: cannot write the notify database ({exc})") from None

    def close(self) -> None:
        self.db.close()
        self._release()

    def _release(self) -> None:
        if self._lock is not None:
            unlock(self._lock)
            self._lock = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- org catalog ------------------------------------------------------------------------------

    def record_catalog(self, catalog: OrgCatalog) -> int:
        """The version number of ``catalog``: the newest one when its content is unchanged, else
        a new version (an org file edited back to an old content gets that old version)."""
        row = self.db.execute("SELECT version FROM org_versions WHERE digest = ?", (catalog.digest,)).fetchone()
        if row:
            return row[0]
        cursor = self.db.execute(
            "INSERT INTO org_versions (digest, source, loaded_at, document) VALUES (?, ?, ?, ?)",
            (catalog.digest, catalog.source, now_text(), catalog.to_json()),
        )
        return int(cursor.lastrowid)

    def catalog_versions(self) -> list[tuple[int, str, str]]:
        """(version, source, loaded_at) of every catalog version, oldest first."""
        return self.db.execute("SELECT version, source, loaded_at FROM org_versions ORDER BY version").fetchall()

    def catalog_document(self, version: int) -> dict:
        row = self.db.execute("SELECT document FROM org_versions WHERE version = ?", (version,)).fetchone()
        if row is None:
            raise NotifyError(f"{self.path}: no org catalog version {version}")
        return json.loads(row[0])

    # -- messages ---------------------------------------------------------------------------------

    def add_message(self, message_id: str, purpose: str, org: str, org_version: int, recipients: list[str],
                    outbox_path: str, status: str) -> None:
        self.db.execute(
            "INSERT INTO messages (message_id, purpose, org, org_version, recipients, created_at, outbox_path, status) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (message_id, purpose, org, org_version, json.dumps(recipients), now_text(), outbox_path, status),
        )

    def mark_message(self, message_id: str, *, sent: bool, attempts: int, error: str | None = None) -> None:
        """Record a delivery outcome: ``sent`` only when the server accepted the message."""
        self.db.execute(
            "UPDATE messages SET status = ?, sent_at = ?, attempts = attempts + ?, error = ? WHERE message_id = ?",
            ("sent" if sent else "pending", now_text() if sent else None, attempts, error, message_id),
        )

    def messages(self, status: str | None = None) -> list[dict]:
        query = "SELECT * FROM messages" + (" WHERE status = ?" if status else "") + " ORDER BY created_at, message_id"
        cursor = self.db.execute(query, (status,) if status else ())
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """``with db.transaction():`` groups writes (a message with its history rows): all or none."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")
