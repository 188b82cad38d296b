"""The one read-only SQLite opener: reads what was committed, creates nothing, writes nothing."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from iotscope.store.sqlite import connect_read_only, is_wal
from iotscope.store.state import STORE_FORMAT, StoreError, StoreState


def _database(path: Path, *, wal: bool) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute(f"PRAGMA journal_mode={'WAL' if wal else 'DELETE'}")
    db.execute("CREATE TABLE t (x INTEGER)")
    db.execute("INSERT INTO t VALUES (1), (2)")
    return db


def _listing(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in directory.iterdir()}


@pytest.mark.parametrize("wal", [False, True])
def test_reads_a_closed_database_and_leaves_its_directory_byte_for_byte(tmp_path: Path, wal: bool) -> None:
    _database(tmp_path / "db.sqlite", wal=wal).close()
    assert is_wal(tmp_path / "db.sqlite") is wal
    before = _listing(tmp_path)
    db = connect_read_only(tmp_path / "db.sqlite")
    assert db.execute("SELECT sum(x) FROM t").fetchone()[0] == 3
    with pytest.raises(sqlite3.OperationalError):
        db.execute("INSERT INTO t VALUES (3)")
    db.close()
    assert _listing(tmp_path) == before  # no -wal, -shm or -journal file appeared


def test_sees_commits_still_in_the_wal_of_a_running_writer(tmp_path: Path) -> None:
    writer = _database(tmp_path / "db.sqlite", wal=True)
    writer.execute("PRAGMA wal_autocheckpoint = 0")
    writer.execute("INSERT INTO t VALUES (40)")  # committed, in the -wal file only
    assert (tmp_path / "db.sqlite-wal").stat().st_size > 0
    db = connect_read_only(tmp_path / "db.sqlite")
    assert db.execute("SELECT sum(x) FROM t").fetchone()[0] == 43
    db.close()
    writer.close()


def test_store_state_in_wal_mode_opens_read_only_without_creating_files(tmp_path: Path) -> None:
    """A store left in WAL mode by an older iotscope: a reader must not create -wal/-shm beside it
    (the store opener used ``mode=ro`` there, which does)."""
    db = sqlite3.connect(tmp_path / "state.sqlite", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE x (y)")
    db.execute(f"PRAGMA user_version = {STORE_FORMAT}")
    db.close()
    before = _listing(tmp_path)
    state = StoreState(tmp_path / "state.sqlite", read_only=True)
    state.close()
    assert _listing(tmp_path) == before


def test_missing_file_is_the_callers_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="not an iotscope store"):
        StoreState(tmp_path / "state.sqlite", read_only=True)
    assert not (tmp_path / "state.sqlite").exists()
